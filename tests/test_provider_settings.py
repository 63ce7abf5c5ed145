"""The settings of sign-in providers: presets, the JSON list, and the problems that stop a
start with one line."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from keyturn.config import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


ENTRY = {
    "id": "corp",
    "name": "Corp",
    "issuer": "https://sso.example.com/",
    "client_id": "keyturn",
    "client_secret": "s3cret",
}


def test_presets_come_first_then_the_list() -> None:
    configured = settings(
        google_client_id="g",
        google_client_secret="gs",
        github_client_id="h",
        github_client_secret="hs",
        oidc_providers=[ENTRY],
    )

    found = [(p.id, p.kind, p.issuer) for p in configured.identity_providers]

    assert found == [
        ("google", "oidc", "https://accounts.google.com"),
        ("github", "github", None),
        ("corp", "oidc", "https://sso.example.com"),
    ]
    assert configured.configuration_problems() == []


def test_a_secret_never_shows_in_the_settings_repr() -> None:
    configured = settings(oidc_providers=[ENTRY], github_client_id="h", github_client_secret="hs")

    assert "s3cret" not in repr(configured) and "hs'" not in repr(configured)


@pytest.mark.parametrize(
    "change",
    [
        {"id": "Corp"},
        {"id": "a" * 33},
        {"issuer": "ftp://sso.example.com"},
        {"issuer": "https://sso.example.com/?tenant=1"},
        {"scopes": ["email"]},
        {"surprise": True},
    ],
)
def test_a_malformed_provider_entry_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(oidc_providers=[{**ENTRY, **change}])


def test_half_a_preset_and_a_taken_id_are_problems() -> None:
    configured = settings(
        github_client_id="h",
        google_client_id="g",
        google_client_secret="gs",
        oidc_providers=[{**ENTRY, "id": "google"}],
    )

    problems = " ".join(configured.configuration_problems())

    assert "KEYTURN_GITHUB_CLIENT_ID and KEYTURN_GITHUB_CLIENT_SECRET" in problems
    assert "names provider google twice" in problems


def test_production_wants_https_issuers() -> None:
    configured = settings(
        env="production", oidc_providers=[{**ENTRY, "issuer": "http://sso.example.com"}]
    )

    assert any("corp must be an https://" in p for p in configured.production_problems())
