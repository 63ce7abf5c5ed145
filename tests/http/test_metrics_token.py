"""KEYTURN_METRICS_TOKEN: /metrics answers only a scraper that sends the token."""

from __future__ import annotations

import pytest

from tests.support.api import bearer, error_of
from tests.support.environment import ApiFactory

METRICS_TOKEN = "scrape-me-if-you-know-this-9f2c"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "missing_token"),
        (bearer("wrong-token-of-the-same-length-x"), "invalid_token"),
        (bearer(METRICS_TOKEN[:-1]), "invalid_token"),
        (bearer(METRICS_TOKEN + "x"), "invalid_token"),
        ({"Authorization": "Bearer "}, "invalid_token"),
        ({"Authorization": f"Basic {METRICS_TOKEN}"}, "invalid_token"),
        ({"Authorization": METRICS_TOKEN}, "invalid_token"),
    ],
)
async def test_metrics_refuse_a_scraper_without_the_token(
    make_api: ApiFactory, headers: dict[str, str], expected: str
) -> None:
    """401 with WWW-Authenticate, and no metric in the body."""
    api = await make_api(metrics_token=METRICS_TOKEN)
    response = await api.get("/metrics", headers=headers)
    assert error_of(response) == (401, expected)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "keyturn_" not in response.text


async def test_metrics_answer_the_token(make_api: ApiFactory) -> None:
    api = await make_api(metrics_token=METRICS_TOKEN)
    response = await api.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    assert "keyturn_http_request_duration_seconds" in response.text


async def test_metrics_stay_open_without_a_token(make_api: ApiFactory) -> None:
    """Unset (the default), /metrics needs nothing, as before."""
    api = await make_api()
    assert (await api.get("/metrics")).status_code == 200


async def test_a_short_metrics_token_is_refused_at_start(make_api: ApiFactory) -> None:
    """An empty or guessable token would open /metrics to anyone who tries it."""
    for weak in ("", "short"):
        with pytest.raises(ValueError, match="KEYTURN_METRICS_TOKEN"):
            await make_api(metrics_token=weak)
