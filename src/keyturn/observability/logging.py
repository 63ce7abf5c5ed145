"""JSON logs: one object per line, the request id of the request being served, and a
redaction filter so that no token, password, Authorization or Cookie value reaches a log.

`keyturn serve` hands `logging_config()` to the HTTP server (granian or uvicorn), which
applies it in every worker.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

REDACTED: Final = "[redacted]"
# A record may carry its extra fields already written as JSON members under this attribute
# (the access line does, once per request: building and encoding a dict for it cost more than
# the request it describes). Whoever writes them has redacted what goes in.
PREFORMATTED_FIELDS: Final = "keyturn_json_fields"
_request_id: ContextVar[str | None] = ContextVar("keyturn_request_id", default=None)

# Names whose values are secrets wherever they appear: log `extra` keys, key=value text, JSON.
SENSITIVE_NAMES: Final = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "secret_key",
        "authorization",
        "cookie",
        "set-cookie",
        "set_cookie",
        "x-csrf-token",
        "csrf_token",
        "private_key_pem",
    }
)
_NAMES = "|".join(re.escape(name) for name in sorted(SENSITIVE_NAMES, key=len, reverse=True))
_PATTERNS: Final = (
    # JWTs (access tokens, ours or anyone's): three base64url parts, header starting {"
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # Keyturn refresh tokens.
    (re.compile(r"ktr_[A-Za-z0-9_-]+"), REDACTED),
    # Credentials after an auth scheme.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # Whole credential headers, to the end of the line.
    (
        re.compile(r"(?i)\b((?:set-)?cookie|authorization)(\s*[:=]\s*)[^\r\n]+"),
        rf"\1\2{REDACTED}",
    ),
    # name: value, name=value, "name": "value", 'name': 'value' (forms, reprs, JSON); an
    # unquoted value runs to the next separator, spaces included (a passphrase has spaces).
    (
        re.compile(rf"""(?i)(["']?(?:{_NAMES})["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\r\n&,;}}\]]+)"""),
        rf"\1{REDACTED}",
    ),
)
# Every pattern above needs one of these words (any case): one search of the lowered text
# clears most of what is logged (an access line's path, a client address) without running each
# substitution over it. Lowered by str.lower() rather than (?i), which is several times slower.
_TRIGGERS: Final = frozenset({"eyj", "ktr_", "bearer", "basic", "cookie", "authorization"})
_MAY_HOLD_SECRET: Final = re.compile(
    "|".join(re.escape(word) for word in sorted(_TRIGGERS | SENSITIVE_NAMES, key=len, reverse=True))
)
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName", "color_message"}


def bind_request_id(request_id: str | None) -> None:
    """Name the request being served in every log line written while serving it."""
    _request_id.set(request_id)


def current_request_id() -> str | None:
    return _request_id.get()


def redact(text: str) -> str:
    """`text` with every token, password and credential header value replaced."""
    if _MAY_HOLD_SECRET.search(text.lower()) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(name: str, value: Any) -> Any:
    if name.lower() in SENSITIVE_NAMES:
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", item) for item in value]
    return value


class RedactionFilter(logging.Filter):
    """Rewrites each record in place: message, arguments, extras and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if PREFORMATTED_FIELDS in record.__dict__:
            return True
        for name in [name for name in record.__dict__ if name not in _STANDARD_ATTRIBUTES]:
            setattr(record, name, _redact_value(name, record.__dict__[name]))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        preformatted = record.__dict__.get(PREFORMATTED_FIELDS)
        if preformatted is not None:
            moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            return (
                f'{{"time":"{moment}","level":"{record.levelname}",'
                f'"logger":{json_string(record.name)},'
                f'"message":{json_string(record.getMessage())},{preformatted}}}'
            )
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRIBUTES and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


_PLAIN_JSON_TEXT = re.compile(r"[ -!#-\[\]-~]*")


def json_string(text: str) -> str:
    """`text` as a JSON string; printable ASCII without quotes or backslashes (what a path,
    a method or an address almost always is) needs no encoder."""
    if _PLAIN_JSON_TEXT.fullmatch(text):
        return f'"{text}"'
    return json.dumps(text, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A dictConfig for the server (granian's and uvicorn's loggers too): JSON lines on stderr,
    every record through the redaction filter."""
    level = level.upper()
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "json",
        "filters": ["redact"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactionFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "_granian": {"handlers": [], "level": level, "propagate": True},
            "granian.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }
