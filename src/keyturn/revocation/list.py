"""The in-process revocation list every access check reads."""

from __future__ import annotations

import time


class RevocationList:
    """Ended sessions and revoked token ids, each kept until no token it covers can be valid.

    Fed by this process's own writes at once and by the shared feed; `synced_at` is
    monotonic time of the last successful sync, so a check can refuse to trust a stale list.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, float] = {}
        self._tokens: dict[str, float] = {}
        self.synced_at = time.monotonic()

    def revoke_session(self, session_id: str, *, until: float) -> None:
        self._sessions[session_id] = max(until, self._sessions.get(session_id, 0.0))

    def revoke_token(self, token_id: str, *, until: float) -> None:
        self._tokens[token_id] = max(until, self._tokens.get(token_id, 0.0))

    def is_revoked(self, session_id: str, token_id: str) -> bool:
        return session_id in self._sessions or token_id in self._tokens

    def mark_synced(self) -> None:
        self.synced_at = time.monotonic()

    def staleness(self) -> float:
        return time.monotonic() - self.synced_at

    def prune(self, *, now: float) -> None:
        for table in (self._sessions, self._tokens):
            for subject in [subject for subject, until in table.items() if until <= now]:
                del table[subject]

    def live_entries(self, *, now: float) -> tuple[dict[str, float], dict[str, float]]:
        """Copies of (sessions, tokens), each subject mapped to the epoch time it lasts until."""
        sessions = {subject: until for subject, until in self._sessions.items() if until > now}
        tokens = {subject: until for subject, until in self._tokens.items() if until > now}
        return sessions, tokens

    def __len__(self) -> int:
        return len(self._sessions) + len(self._tokens)
