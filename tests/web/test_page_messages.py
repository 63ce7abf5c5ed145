"""Every page speaks English and Korean from the catalog under web/locale: no sentence of a
template, or of the script (which takes its sentences from templates/_strings.html), is left
untranslated."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from jinja2 import Environment, nodes

from keyturn.http.locales import CATALOGS, WEB_DIR

TEMPLATES = WEB_DIR / "templates"
SCRIPT = WEB_DIR / "static" / "app.js"
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def extracted_msgids() -> set[str]:
    found = set()
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(TEMPLATES),
        method_map=[("**.html", "jinja2.ext:babel_extract")],
        options_map={"**": {"extensions": ""}},
    ):
        assert isinstance(message, str), f"{filename}:{lineno} has a plural form"
        found.add(message)
    return found


def catalog(name: str):  # type: ignore[no-untyped-def]
    return read_po(BytesIO((CATALOGS / name).read_bytes()), locale="ko")


def test_every_page_sentence_has_a_korean_translation() -> None:
    """A msgid of the templates that the Korean catalog lacks, leaves empty or marks fuzzy
    fails, and so does a stale entry no template uses, or a .pot not extracted again."""
    used = extracted_msgids()
    korean = catalog("ko/LC_MESSAGES/messages.po")
    translated = {m.id for m in korean if m.id and m.string and not m.fuzzy}

    assert sorted(used - translated) == []
    assert sorted({m.id for m in korean if m.id} - used) == []
    template = catalog("messages.pot")
    assert {m.id for m in template if m.id} == used, "run pybabel extract (docs/browser-mode.md)"


def test_korean_translations_keep_every_placeholder() -> None:
    for message in catalog("ko/LC_MESSAGES/messages.po"):
        if message.id:
            assert sorted(PLACEHOLDER.findall(message.string)) == sorted(
                PLACEHOLDER.findall(message.id)
            ), message.id


def _template_text_outside_catalog(source: str) -> list[str]:
    # The `page` block names the page for the script (data-page); it is not text.
    source = re.sub(r"{% block page %}[\w-]*{% endblock %}", "", source)
    # Parsed, never rendered: escaping does not apply.
    tree = Environment(extensions=["jinja2.ext.i18n"], autoescape=True).parse(source)
    found = []
    for output in tree.find_all(nodes.Output):
        joined = "".join(
            node.data if isinstance(node, nodes.TemplateData) else " " for node in output.nodes
        )
        text = re.sub(r"<[^>]*>", " ", joined)  # markup and its attributes
        text = re.sub(r"&\w+;", " ", text)
        # The product's name, and the names of things that are not words of a language.
        text = re.sub(r"\bKeyturn\b|/openapi\.json", " ", text)
        if re.search(r"[^\W\d_]", text):
            found.append(" ".join(text.split()))
    return found


@pytest.mark.parametrize("path", sorted(TEMPLATES.iterdir()), ids=lambda path: path.name)
def test_templates_hold_no_text_outside_the_catalog(path: Path) -> None:
    """Words in a template must sit inside _() or {% trans %}, else Korean readers see English."""
    assert _template_text_outside_catalog(path.read_text()) == []


def test_the_check_finds_text_outside_the_catalog() -> None:
    assert _template_text_outside_catalog("<p>Hello {{ name }}</p>") == ["Hello"]
    assert _template_text_outside_catalog('<p title="x">{{ _("Hello") }}</p>') == []


# A directive, and a browser's own name.
NOT_SENTENCES = {"use strict", "Headless Chrome"}


def _script_sentences(source: str) -> list[str]:
    """String literals of the script that read as English words for a person, not as names
    (ids, API paths, codes, storage keys) or as browser and system names."""
    without_comments = re.sub(r"^\s*//.*$", "", source, flags=re.MULTILINE)
    literals = re.findall(r'"((?:[^"\\\n]|\\.)*)"|`((?:[^`\\]|\\.)*)`', without_comments)
    found = []
    for double, template in literals:
        text = re.sub(r"\$\{[^}]*\}", " ", double or template)
        if re.search(r"[A-Za-z]{2,},? [A-Za-z]{2,}", text) and text not in NOT_SENTENCES:
            found.append(text)
    return found


def test_the_script_shows_no_sentence_of_its_own() -> None:
    """Every sentence app.js shows comes from the page (t("key")), so it is translated; the
    only English left is the API's `message`, kept for the console."""
    assert _script_sentences(SCRIPT.read_text()) == ["The server answered  ."]


def test_every_key_the_script_uses_is_in_the_page() -> None:
    source = SCRIPT.read_text()
    keys = set(re.findall(r'\bt(?:Nodes|Count)?\(\s*"([\w-]+)"', source))
    keys |= set(re.findall(r'"((?:reason|notice)-[\w-]+)"', source))
    keys |= {"lockout", "too-many", "choose-password", "choose-new-password"}
    # _strings.html and the parts it includes (_strings_passkeys.html, ...).
    strings = "".join(path.read_text() for path in TEMPLATES.glob("_strings*.html"))
    defined = set(re.findall(r'data-key="([\w-]+)"', strings))
    plural = {key for key in re.findall(r'tCount\(\s*"([\w-]+)"', source)}
    missing = {key for key in keys - plural if key not in defined}
    missing |= {f"{key}-other" for key in plural if f"{key}-other" not in defined}
    assert sorted(missing) == []
