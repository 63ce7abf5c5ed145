"""Languages Keyturn speaks: choosing one from a request, and loading a gettext catalog.

A top-level module, beside `wire` and `clock`, because both the pages (`http`, `web`) and the
mail (`mail`) need it and neither may import the other. Catalogs are `.po` files compiled in
memory by Babel when first loaded, so a fresh checkout or `pip install -e .` needs no build step
and no compiled `.mo` file can drift from its source.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path
from typing import Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DEFAULT_LOCALE: Final = "en"
LOCALES: Final = ("en", "ko")
DOMAIN: Final = "messages"


def negotiate_locale(accept_language: str | None, *, chosen: str | None = None) -> str:
    """The locale to speak: `chosen` (the `lang` cookie) when Keyturn has it, else the most
    preferred of Accept-Language (RFC 9110 §12.5.4) that Keyturn has, else English.

    Pure: no I/O. Malformed parts of the header are skipped, never an error.
    """
    if chosen in LOCALES:
        return chosen
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, parameters = part.strip().partition(";")
        language = tag.strip().split("-", 1)[0].lower()
        if language not in LOCALES:
            continue
        weight = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if not 0 < weight <= 1:
            continue
        # Highest weight wins; among equals, the one listed first.
        candidate = (weight, -position, language)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else DEFAULT_LOCALE


@cache
def load_translations(directory: Path, locale: str) -> gettext.NullTranslations:
    """The catalog `directory/<locale>/LC_MESSAGES/messages.po`, compiled in memory.

    The source language (English) has no catalog: its msgids are the text.
    """
    if locale == DEFAULT_LOCALE:
        return gettext.NullTranslations()
    path = directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)
