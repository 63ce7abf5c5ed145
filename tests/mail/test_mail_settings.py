"""KEYTURN_SMTP_URL and KEYTURN_MAIL_FROM are checked when settings load."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from keyturn.config import Settings


def load(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "smtp://127.0.0.1:25",
        "smtp://user:p%40ss@mail.example.com:587?starttls=true",
        "smtps://user:pass@mail.example.com:465",
    ],
)
def test_smtp_urls_of_the_contract_load(url: str) -> None:
    settings = load(smtp_url=url)
    assert settings.smtp_url is not None and settings.smtp_url.get_secret_value() == url
    assert "pass" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    ["http://user:hunter2@mail.example.com", "smtp://", "smtp://user:hunter2@host:port"],
)
def test_malformed_smtp_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load(smtp_url=url)
    assert "hunter2" not in "".join(error["msg"] for error in caught.value.errors())


def test_an_empty_smtp_url_means_none() -> None:
    assert load(smtp_url="").smtp_url is None


@pytest.mark.parametrize("value", ["no-reply", "Keyturn <no-reply@example.com>\r\nBcc: x@y.z"])
def test_mail_from_must_be_one_address(value: str) -> None:
    with pytest.raises(ValidationError):
        load(mail_from=value)
