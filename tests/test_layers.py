"""Imports flow one way: http and cli → services → ratelimit, revocation, mail, storage → core.

Every module of src/keyturn is parsed (imports inside functions and under TYPE_CHECKING
count too) and each `keyturn.*` import is held against the table below; a failure names the
arrow that runs back up. docs/design.md draws the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "keyturn"
TESTS = Path(__file__).resolve().parent

FOUNDATION = frozenset({"wire", "errors", "clock"})
# What each part of keyturn may import besides itself. A key is a top-level module or package
# of keyturn; an entry is a module or package (a prefix of what is imported).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "wire": frozenset(),
    "errors": frozenset({"wire"}),
    "clock": frozenset({"wire"}),
    "config": FOUNDATION,
    "core": FOUNDATION,
    "observability": FOUNDATION,
    "i18n": FOUNDATION,  # message catalogs, for mails and pages
    "storage": FOUNDATION | {"core"},
    "ratelimit": FOUNDATION | {"config", "core", "storage"},
    "revocation": FOUNDATION | {"config", "core", "storage"},
    "mail": FOUNDATION | {"config", "core", "storage", "i18n", "observability"},
    "services": FOUNDATION
    | {"config", "core", "storage", "ratelimit", "revocation", "mail", "observability", "i18n"},
    "http": FOUNDATION | {"config", "core", "services", "observability", "i18n"},
    # `keyturn db` and `keyturn keys` open the database and migrate it before any service runs.
    "cli": FOUNDATION
    | {"config", "core", "services", "observability", "storage.db", "storage.migrations"},
    "client": frozenset({"wire"}),
    "verify": frozenset({"wire", "errors", "core.tokens", "core.keys"}),
    "web": frozenset(),  # templates and static files only
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return any(
        (root / relative).with_suffix(".py").is_file()
        or (root / relative / "__init__.py").is_file()
        for root in (SOURCE.parent, TESTS.parent)
    )


def imported_modules(source: str, *, importer: str, is_package: bool) -> list[tuple[str, int]]:
    """Every module `source` imports, with its line: `from a import b` is `a.b` when b is a
    module of ours, else `a`."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if is_module(candidate) else base, node.lineno))
    return found


def upward_arrows(importer: str, imports: list[tuple[str, int]]) -> list[str]:
    """The imports that `importer` may not make, as 'a -> b (line n)'."""
    part = importer.split(".")[1] if "." in importer else ""
    if not part:  # keyturn/__init__.py holds the version only
        allowed: frozenset[str] = frozenset()
    else:
        allowed = MAY_IMPORT.get(part, frozenset())
    arrows = []
    for target, line in imports:
        if target != "keyturn" and not target.startswith("keyturn."):
            continue
        inner = target.removeprefix("keyturn").removeprefix(".")
        if not inner:  # `from keyturn import __version__`
            continue
        if inner == part or inner.startswith(part + "."):
            if part == "http" and _route_imports_route(importer, target):
                arrows.append(f"{importer} -> {target} (line {line}): routes import no route")
            continue
        if not any(inner == entry or inner.startswith(entry + ".") for entry in allowed):
            arrows.append(f"{importer} -> {target} (line {line})")
    return arrows


def _route_imports_route(importer: str, target: str) -> bool:
    routes = "keyturn.http.routes."
    return importer.startswith(routes) and target.startswith(routes) and target != importer


def test_every_part_of_keyturn_has_a_place_in_the_table() -> None:
    """A new package must be placed in the import order before it can be imported."""
    parts = {path.stem for path in SOURCE.glob("*.py")} | {
        path.parent.name for path in SOURCE.glob("*/__init__.py")
    }
    parts.discard("__init__")
    assert sorted(parts - MAY_IMPORT.keys()) == []


def test_imports_flow_one_way() -> None:
    """No module imports a part of keyturn above its own (or a route another route)."""
    arrows: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        name = module_name(path)
        imports = imported_modules(
            path.read_text(), importer=name, is_package=path.name == "__init__.py"
        )
        arrows.extend(upward_arrows(name, imports))
    assert not arrows, "imports that run back up:\n" + "\n".join(arrows)


def test_an_arrow_back_up_is_reported() -> None:
    """The check itself: storage importing a service, even inside a function, is named."""
    source = "def later() -> None:\n    from keyturn.services import accounts\n"
    imports = imported_modules(source, importer="keyturn.storage.users", is_package=False)
    assert upward_arrows("keyturn.storage.users", imports) == [
        "keyturn.storage.users -> keyturn.services.accounts (line 2)"
    ]
    routes = imported_modules(
        "from keyturn.http.routes import auth\n",
        importer="keyturn.http.routes.oauth",
        is_package=False,
    )
    assert upward_arrows("keyturn.http.routes.oauth", routes) == [
        "keyturn.http.routes.oauth -> keyturn.http.routes.auth (line 1): routes import no route"
    ]


def test_no_test_module_imports_another() -> None:
    """Tests share helpers through tests/support only, never by importing a test module
    (or a conftest)."""
    offenders: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        name = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
        for target, line in imported_modules(path.read_text(), importer=name, is_package=False):
            if target.startswith("tests") and not target.startswith("tests.support"):
                offenders.append(f"{name} -> {target} (line {line})")
    assert not offenders, "test modules importing test modules:\n" + "\n".join(offenders)


def test_no_module_is_over_400_lines() -> None:
    """One concept per module, a few hundred lines each: a module past 400 lines holds two."""
    long = {
        str(path.relative_to(SOURCE)): lines
        for path in SOURCE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
