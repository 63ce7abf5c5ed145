"""The log pipeline: JSON lines with the request id, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from keyturn.observability.logging import (
    JsonFormatter,
    RedactionFilter,
    bind_request_id,
    logging_config,
    redact,
)

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLWJ5dGVz"
REFRESH = "ktr_Zm9vYmFyYmF6cXV4cXV1eA"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger("keyturn.test-redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    bind_request_id(None)


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {JWT}",
        f"authorization={JWT}",
        f"token {JWT} refused",
        f"refresh with {REFRESH}",
        f"Cookie: access_token={JWT}; refresh_token={REFRESH}",
        f"{{'email': 'a@example.com', 'password': '{PASSWORD}'}}",
        f'{{"password": "{PASSWORD}", "email": "a@example.com"}}',
        f"grant_type=password&username=a&password={PASSWORD.replace(' ', '+')}",
        f"new_password={PASSWORD}",
        "Authorization: Basic YXBwOnMzY3JldA==",
        f"client_secret='{PASSWORD}'",
        f"AUTHORIZATION: BEARER {JWT}",
        f"Access_Token={PASSWORD}",
        f"PASSWORD: {PASSWORD}",
        f"X-CSRF-Token={PASSWORD}",
        f"Private_Key_PEM={PASSWORD}",
        f"SET-COOKIE: refresh_token={REFRESH}",
    ],
)
def test_redact_removes_every_secret(text: str) -> None:
    cleaned = redact(text)
    for secret in (JWT, REFRESH, PASSWORD, PASSWORD.replace(" ", "+"), "YXBwOnMzY3JldA=="):
        assert secret not in cleaned
    for word in PASSWORD.split():
        assert word not in cleaned
    assert "[redacted]" in cleaned


def test_harmless_text_is_kept() -> None:
    text = "refresh_token_reused for user 42 from 203.0.113.7: session ended"
    assert redact(text) == text


def test_json_lines_carry_request_id_and_redacted_extras(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    bind_request_id("req-123")
    logger.info(
        "login for %s with %s",
        "ada@example.com",
        f"password={PASSWORD}",
        extra={"authorization": f"Bearer {JWT}", "headers": {"cookie": "a=b"}, "user_id": "u1"},
    )
    entry = json.loads(stream.getvalue())
    assert entry["request_id"] == "req-123"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "keyturn.test-redaction"
    assert entry["user_id"] == "u1"
    assert entry["authorization"] == "[redacted]"
    assert entry["headers"] == {"cookie": "[redacted]"}
    assert PASSWORD not in stream.getvalue()
    assert JWT not in stream.getvalue()


def test_tracebacks_are_redacted(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    try:
        raise ValueError(f"bad token {JWT} and {REFRESH}")
    except ValueError:
        logger.exception("failed")
    entry = json.loads(stream.getvalue())
    assert "ValueError" in entry["exception"]
    assert JWT not in stream.getvalue()
    assert REFRESH not in stream.getvalue()


def test_server_logging_config_routes_everything_through_the_filter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The dictConfig `keyturn serve` hands uvicorn: JSON on stderr, redacted."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(logging_config("DEBUG"))
        logging.getLogger("uvicorn.error").info("header Authorization: Bearer %s", JWT)
        logging.getLogger("keyturn.anything").warning("refresh %s", REFRESH)
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                root.removeHandler(handler)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "keyturn.anything"]
    assert all("[redacted]" in line["message"] for line in lines)
