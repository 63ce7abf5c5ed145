"""Sealing secrets at rest: what seals opens, with the current or an older key, and nothing
else does; the development key file is owner-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keyturn.config import Settings
from keyturn.core.sealing import Sealer, SealingError, is_sealed, new_sealing_key
from keyturn.services.sealing import load_sealer


def test_a_sealed_value_opens_with_its_key_and_hides_the_plaintext() -> None:
    sealer = Sealer([new_sealing_key()])
    sealed = sealer.seal(b"-----BEGIN PRIVATE KEY-----")
    assert is_sealed(sealed) and "PRIVATE" not in sealed
    assert sealer.unseal(sealed) == b"-----BEGIN PRIVATE KEY-----"
    assert not sealer.needs_resealing(sealed)


def test_older_keys_unseal_and_the_current_key_reseals() -> None:
    old, new = new_sealing_key(), new_sealing_key()
    sealed = Sealer([old]).seal(b"secret")
    rotated = Sealer([new, old])
    assert rotated.unseal(sealed) == b"secret"
    assert rotated.needs_resealing(sealed)
    assert Sealer([new]).unseal(rotated.reseal(sealed)) == b"secret"


@pytest.mark.parametrize("value", ["plain text", "fernet:not-a-token"])
def test_plain_tampered_or_foreign_values_do_not_open(value: str) -> None:
    with pytest.raises(SealingError):
        Sealer([new_sealing_key()]).unseal(value)
    foreign = Sealer([new_sealing_key()]).seal(b"x")
    with pytest.raises(SealingError, match="KEYTURN_SECRETS_KEY"):
        Sealer([new_sealing_key()]).unseal(foreign)


def test_a_malformed_key_is_refused_with_a_clear_error() -> None:
    with pytest.raises(SealingError, match="url-safe base64"):
        Sealer(["too short"])


def test_development_key_is_generated_owner_only_and_kept(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        path = tmp_path / ".keyturn" / "secrets.key"
        first = load_sealer(settings, development_key_path=path)
        sealed = first.seal(b"kept")
        again = load_sealer(settings, development_key_path=path)
    finally:
        os.umask(previous)
    assert again.unseal(sealed) == b"kept"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]


def test_key_file_holds_the_current_key_then_older_ones(tmp_path: Path) -> None:
    old, new = new_sealing_key(), new_sealing_key()
    key_file = tmp_path / "sealing.keys"
    key_file.write_text(f"{new}\n{old}\n")
    settings = Settings(_env_file=None, secrets_key_file=key_file)  # type: ignore[call-arg]
    sealer = load_sealer(settings)
    assert sealer.unseal(Sealer([old]).seal(b"a")) == b"a"
    assert Sealer([new]).unseal(sealer.seal(b"b")) == b"b"
    missing = Settings(_env_file=None, secrets_key_file=tmp_path / "nope")  # type: ignore[call-arg]
    with pytest.raises(SealingError, match="nope"):
        load_sealer(missing)


def test_production_without_a_key_does_not_generate_one(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, env="production")  # type: ignore[call-arg]
    with pytest.raises(SealingError, match="KEYTURN_SECRETS_KEY"):
        load_sealer(settings, development_key_path=tmp_path / "secrets.key")
    assert not (tmp_path / "secrets.key").exists()
