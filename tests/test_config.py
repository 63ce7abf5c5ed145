"""Every setting is documented, and production refuses unsafe ones with a clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.config import Settings
from keyturn.core.sealing import new_sealing_key

DOCS = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [
        f"KEYTURN_{name.upper()}"
        for name in Settings.model_fields
        if f"`KEYTURN_{name.upper()}`" not in text
    ]
    assert missing == []


def test_production_problems_name_each_unsafe_setting() -> None:
    unsafe = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="production",
        debug=True,
        jwt_algorithm="HS256",
        secret_key="too short",
        cookie_secure=False,
        argon2_memory_kib=1024,
    )
    problems = " ".join(unsafe.production_problems())
    for name in [
        "KEYTURN_DEBUG",
        "KEYTURN_SECRET_KEY",
        "KEYTURN_COOKIE_SECURE",
        "KEYTURN_ARGON2",
        "KEYTURN_SECRETS_KEY",
    ]:
        assert name in problems
    safe = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="production",
        smtp_url="smtps://keyturn:secret@smtp.example.com:465",
        mail_from="Keyturn <no-reply@example.com>",
        secrets_key=new_sealing_key(),
    )
    assert safe.production_problems() == []


def test_production_without_smtp_refuses_to_start_with_one_sentence() -> None:
    """Verification and reset mail cannot be sent without SMTP: production says so."""
    problems = Settings(  # type: ignore[call-arg]
        _env_file=None, env="production", secrets_key=new_sealing_key()
    ).production_problems()
    assert len(problems) == 1
    assert "KEYTURN_SMTP_URL" in problems[0] and "KEYTURN_MAIL_FROM" in problems[0]
    assert Settings(_env_file=None).production_problems() == []  # type: ignore[call-arg]


def test_hs256_without_a_long_key_cannot_start_anywhere() -> None:
    weak = Settings(_env_file=None, jwt_algorithm="HS256", secret_key="x" * 31)  # type: ignore[call-arg]
    assert weak.configuration_problems()
    strong = Settings(_env_file=None, jwt_algorithm="HS256", secret_key="x" * 32)  # type: ignore[call-arg]
    assert strong.configuration_problems() == []


def test_a_malformed_mfa_encryption_key_is_refused_with_a_sentence() -> None:
    from cryptography.fernet import Fernet
    from pydantic import ValidationError

    good = Fernet.generate_key().decode()
    assert Settings(_env_file=None, mfa_encryption_key=good).mfa_encryption_key is not None  # type: ignore[call-arg]
    for bad in ("short-secret-value", good[:-4] + "!!!!", good + "AAAA"):
        with pytest.raises(ValidationError) as refused:
            Settings(_env_file=None, mfa_encryption_key=bad)  # type: ignore[call-arg]
        # What `keyturn` prints: the sentence, never the value.
        sentences = [error["msg"] for error in refused.value.errors()]
        assert sentences == [
            "Value error, must be 32 random bytes in url-safe base64 (a Fernet key)"
        ]
