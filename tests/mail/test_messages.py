"""Every mail speaks English and Korean from the catalogs, as a text and an HTML part."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from io import BytesIO

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from jinja2 import Environment, nodes

from keyturn.i18n import negotiate_locale
from keyturn.mail.messages import (
    CATALOGS,
    MESSAGES,
    TEMPLATES,
    MailComposer,
    UnknownMessageError,
)

VARIABLES = {
    "token": "t0k3n-ABC_123",
    "ttl_seconds": 1800,
    "new_email": "new@example.com",
    "remaining": 9,
}


def extracted_msgids() -> set[str]:
    method_map = [("**.html", "jinja2.ext:babel_extract"), ("**.txt", "jinja2.ext:babel_extract")]
    return {message for _file, _line, message, _comments, _context in _extract(method_map)}


def _extract(method_map: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    for filename, lineno, message, comments, context in extract_from_dir(
        str(TEMPLATES), method_map=method_map, options_map={"**": {"extensions": ""}}
    ):
        assert isinstance(message, str), f"{filename}:{lineno} has a plural form"
        yield filename, lineno, message, comments, context


def catalog(locale: str):  # type: ignore[no-untyped-def]
    path = CATALOGS / locale / "LC_MESSAGES" / "messages.po"
    return read_po(BytesIO(path.read_bytes()), locale=locale)


def test_every_template_sentence_has_a_korean_translation() -> None:
    """A msgid in the templates that the Korean catalog lacks, leaves empty or marks fuzzy
    fails, and so does a stale catalog entry no template uses."""
    used = extracted_msgids()
    korean = catalog("ko")
    translated = {m.id for m in korean if m.id and m.string and not m.fuzzy}
    assert sorted(used - translated) == []
    assert sorted({m.id for m in korean if m.id} - used) == []
    template = read_po(BytesIO((CATALOGS / "messages.pot").read_bytes()))
    assert {m.id for m in template if m.id} == used, "run pybabel extract (docs/mail.md)"


def test_korean_translations_keep_every_placeholder() -> None:
    for message in catalog("ko"):
        if message.id:
            placeholders = set(re.findall(r"%\(\w+\)s", message.id))
            assert set(re.findall(r"%\(\w+\)s", message.string)) == placeholders, message.id


def _template_text_outside_catalog(source: str) -> list[str]:
    # Parsed, never rendered: escaping does not apply.
    tree = Environment(extensions=["jinja2.ext.i18n"], autoescape=True).parse(source)
    found = []
    for output in tree.find_all(nodes.Output):
        # Literal text with each expression as a blank, so a tag split by {{ link }} is one.
        joined = "".join(
            node.data if isinstance(node, nodes.TemplateData) else " " for node in output.nodes
        )
        text = re.sub(r"<[^>]*>", " ", joined)  # markup and its attributes
        text = re.sub(r"&\w+;", " ", text)
        if re.search(r"[^\W\d_]", text):
            found.append(" ".join(text.split()))
    return found


@pytest.mark.parametrize("path", sorted(TEMPLATES.iterdir()), ids=lambda path: path.name)
def test_templates_hold_no_text_outside_the_catalog(path) -> None:  # type: ignore[no-untyped-def]
    """Words in a template must sit inside {% trans %} or _(), else Korean readers see English."""
    assert _template_text_outside_catalog(path.read_text()) == []


def test_the_check_finds_text_outside_the_catalog() -> None:
    assert _template_text_outside_catalog("<p>Hello {{ name }}</p>") == ["Hello"]
    assert _template_text_outside_catalog("<p>{% trans %}Hello{% endtrans %}</p>") == []


def compose(name: str, locale: str) -> EmailMessage:
    composer = MailComposer(
        origin="https://auth.example.com/", mail_from="Keyturn <no-reply@example.com>"
    )
    raw = composer.compose(
        name, to="ada@example.com", locale=locale, variables=VARIABLES, now=datetime.now(UTC)
    )
    # What the SMTP server receives, parsed back.
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("locale", ["en", "ko"])
def test_each_message_is_multipart_text_and_html(name: str, locale: str) -> None:
    message = compose(name, locale)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    kind = MESSAGES[name]
    link = "https://auth.example.com" + kind.page
    if kind.has_token:
        link += "#token=t0k3n-ABC_123"
    assert link in text.get_content()
    assert f'href="{link}"' in html.get_content()
    assert message["Content-Language"] == locale
    assert message["Subject"].isascii() is False if locale == "ko" else message["Subject"].isascii()


def test_korean_subject_is_encoded_and_decodes_back() -> None:
    composer = MailComposer(origin="https://a.example", mail_from="Keyturn <no-reply@a.example>")
    raw = composer.compose(
        "reset_password",
        to="ada@example.com",
        locale="ko",
        variables=VARIABLES,
        now=datetime.now(UTC),
    )
    header = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject:"))
    assert header.isascii() and b"=?utf-8?" in header  # RFC 2047 encoded-word
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "비밀번호 재설정"
    body = parsed.get_body(("plain",))
    assert body is not None and "30분 후에 만료됩니다" in body.get_content()


def test_html_part_escapes_variables() -> None:
    composer = MailComposer(origin="https://a.example", mail_from="Keyturn <no-reply@a.example>")
    raw = composer.compose(
        "email_change_notice",
        to="ada@example.com",
        locale="en",
        variables={"new_email": "<script>x</script>@example.com"},
        now=datetime.now(UTC),
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content() and "&lt;script&gt;" in html.get_content()


def test_a_display_name_and_an_address_outside_ascii_are_encoded() -> None:
    """A sender's name in Korean, and an internationalized address, become encoded-words:
    composing never fails on what a user could register."""
    composer = MailComposer(origin="https://a.example", mail_from="키턴 <no-reply@a.example>")
    raw = composer.compose(
        "password_changed", to="사용자@a.example", locale="ko", variables={}, now=datetime.now(UTC)
    )
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["From"] == "키턴 <no-reply@a.example>"
    assert composer.envelope_from == "no-reply@a.example"


def test_unknown_message_or_missing_variable_is_refused() -> None:
    composer = MailComposer(origin="https://a.example", mail_from="no-reply@a.example")
    with pytest.raises(UnknownMessageError):
        composer.compose(
            "welcome", to="a@a.example", locale="en", variables={}, now=datetime.now(UTC)
        )
    with pytest.raises(UnknownMessageError):
        composer.compose(
            "verify_email",
            to="a@a.example",
            locale="en",
            variables={"token": "x"},
            now=datetime.now(UTC),
        )


@pytest.mark.parametrize(
    ("header", "chosen", "expected"),
    [
        (None, None, "en"),
        ("", None, "en"),
        ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", None, "ko"),
        ("en-US,en;q=0.9,ko;q=0.8", None, "en"),
        ("fr-FR, ko;q=0.5", None, "ko"),
        ("fr-FR, de;q=0.5", None, "en"),
        ("en;q=0.3, ko;q=0.6", None, "ko"),
        ("ko;q=0, en", None, "en"),
        ("ko;q=abc, en;q=0.1", None, "en"),
        (";;;,,,q=", None, "en"),
        ("ko", "en", "en"),
        ("en", "ko", "ko"),
        ("en", "xx", "en"),
    ],
)
def test_negotiate_locale(header: str | None, chosen: str | None, expected: str) -> None:
    assert negotiate_locale(header, chosen=chosen) == expected
