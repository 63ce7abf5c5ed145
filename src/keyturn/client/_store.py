"""Where the SDK keeps its tokens: in memory by default, or in a private file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Tokens:
    """An access token and the refresh token that renews it; `expires_at` is a Unix time."""

    access_token: str
    refresh_token: str
    expires_at: float

    def __repr__(self) -> str:  # never print a token by accident
        return f"Tokens(expires_at={self.expires_at})"


@runtime_checkable
class TokenStore(Protocol):
    """Keeps one Tokens value. `save` must be complete before it returns: a rotated refresh
    token is single-use, and the SDK hands out the new one only after saving it."""

    def load(self) -> Tokens | None: ...

    def save(self, tokens: Tokens) -> None: ...

    def clear(self) -> None: ...


class MemoryTokenStore:
    """Tokens in this process only (the default)."""

    def __init__(self, tokens: Tokens | None = None) -> None:
        self._tokens = tokens

    def load(self) -> Tokens | None:
        return self._tokens

    def save(self, tokens: Tokens) -> None:
        self._tokens = tokens

    def clear(self) -> None:
        self._tokens = None


class FileTokenStore:
    """Tokens in a JSON file readable by its owner only (mode 0600), replaced atomically.

    Example:
        >>> store = FileTokenStore("~/.config/myapp/keyturn-tokens.json")  # doctest: +SKIP

    Several processes may share the file, but each refreshes on its own: give each its own
    file, or one process the job of refreshing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def load(self) -> Tokens | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return Tokens(
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]),
                expires_at=float(data["expires_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, tokens: Tokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkstemp creates the file with mode 0600; rename makes the swap atomic, so a reader
        # sees the old tokens or the new ones, never half a file.
        descriptor, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(asdict(tokens), file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
