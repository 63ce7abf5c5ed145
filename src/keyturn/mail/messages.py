"""The messages Keyturn sends, rendered from Jinja templates in the reader's language.

Each message is a subject, a text part and an HTML part (`templates/<name>.subject.txt`,
`<name>.txt`, `<name>.html`); every sentence in them goes through the gettext catalogs under
`locale/`. Links point at KEYTURN_PUBLIC_ORIGIN's pages and carry the token in the fragment,
which browsers never send to a server, so the token stays out of every access log.
"""

from __future__ import annotations

import email.policy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from babel.dates import format_timedelta
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from keyturn.i18n import DEFAULT_LOCALE, LOCALES, load_translations

TEMPLATES: Final = Path(__file__).parent / "templates"
CATALOGS: Final = Path(__file__).parent / "locale"


@dataclass(frozen=True, slots=True)
class MessageKind:
    """What a message needs: the page its link opens, and whether the link carries a token."""

    page: str
    has_token: bool
    variables: frozenset[str] = frozenset()


MESSAGES: Final[Mapping[str, MessageKind]] = {
    "verify_email": MessageKind("/verify-email", True),
    "reset_password": MessageKind("/reset-password", True),
    "email_change_confirm": MessageKind("/verify-email", True),
    "password_changed": MessageKind("/forgot-password", False),
    "email_change_notice": MessageKind("/forgot-password", False, frozenset({"new_email"})),
    "recovery_code_used": MessageKind("/forgot-password", False, frozenset({"remaining"})),
}


class UnknownMessageError(ValueError):
    """A message name or its variables that no template has: a bug in the caller."""


def link_to(origin: str, page: str, token: str | None = None) -> str:
    """`origin` + `page`, with `#token=...` when there is one (never in the query string)."""
    link = origin.rstrip("/") + page
    return f"{link}#token={quote(token, safe='')}" if token else link


@cache
def _environment(locale: str) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        keep_trailing_newline=False,
    )
    environment.install_gettext_translations(  # type: ignore[attr-defined]
        load_translations(CATALOGS, locale), newstyle=True
    )
    return environment


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def render_mail(name: str, *, locale: str, variables: Mapping[str, Any]) -> RenderedMail:
    """The subject, text and HTML of message `name` in `locale` (English when unknown)."""
    if name not in MESSAGES:
        raise UnknownMessageError(f"no message named {name!r}")
    environment = _environment(locale if locale in LOCALES else DEFAULT_LOCALE)
    subject = environment.get_template(f"{name}.subject.txt").render(variables).strip()
    context = {**variables, "subject": subject, "locale": locale}
    text = environment.get_template(f"{name}.txt").render(context).strip() + "\n"
    html = environment.get_template(f"{name}.html").render(context)
    return RenderedMail(subject=subject, text=text, html=html)


class MailComposer:
    """Builds complete messages (headers, text and HTML parts) for the outbox."""

    def __init__(self, *, origin: str, mail_from: str) -> None:
        self._origin = origin
        self._from = mail_from
        _name, address = parseaddr(mail_from)
        self.envelope_from = address
        self._domain = address.rpartition("@")[2] or "keyturn.invalid"

    def compose(
        self,
        name: str,
        *,
        to: str,
        locale: str,
        variables: Mapping[str, Any],
        now: datetime,
    ) -> EmailMessage:
        """Message `name` for `to`. Variables: `token` and `ttl_seconds` for a message whose
        link carries a token, and each name in MESSAGES[name].variables.

        Raises UnknownMessageError for an unknown name or a missing variable.
        """
        kind = MESSAGES.get(name)
        if kind is None:
            raise UnknownMessageError(f"no message named {name!r}")
        needed = kind.variables | ({"token", "ttl_seconds"} if kind.has_token else set())
        missing = needed - variables.keys()
        if missing:
            raise UnknownMessageError(f"message {name!r} needs {sorted(missing)}")
        context = {key: value for key, value in variables.items() if key != "token"}
        context["link"] = link_to(
            self._origin, kind.page, str(variables["token"]) if kind.has_token else None
        )
        if kind.has_token:
            context["duration"] = format_timedelta(
                timedelta(seconds=int(variables["ttl_seconds"])),
                threshold=1.0,
                locale=locale if locale in LOCALES else DEFAULT_LOCALE,
            )
        rendered = render_mail(name, locale=locale, variables=context)
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"] = self._from
        message["To"] = Address(addr_spec=to)
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = make_msgid(domain=self._domain)
        # No autoreplies (RFC 3834) to an address nobody reads.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        # After the parts: set_content() drops every Content-* header set before it.
        message["Content-Language"] = locale if locale in LOCALES else DEFAULT_LOCALE
        return message
