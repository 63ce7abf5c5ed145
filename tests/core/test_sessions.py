"""Session ids sort by creation time, so the indexes holding them grow at one end."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from keyturn.core.sessions import new_session_id

SESSION_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # the API's shape, the column's width


def test_ids_sort_by_creation_time_and_differ_within_a_millisecond() -> None:
    start = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    moments = [start + timedelta(milliseconds=n) for n in (0, 1, 2, 1000, 86_400_000)]
    ids = [new_session_id(moment) for moment in moments]
    assert ids == sorted(ids)
    same_moment = {new_session_id(start) for _ in range(1000)}
    assert len(same_moment) == 1000
    assert all(SESSION_ID_SHAPE.fullmatch(session_id) for session_id in same_moment | set(ids))


def test_ids_keep_their_order_far_ahead() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    later = datetime(2999, 1, 1, tzinfo=UTC)
    assert new_session_id(now) < new_session_id(later)
    assert len(new_session_id(later)) == len(new_session_id(now))
