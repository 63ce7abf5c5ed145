"""Reading /metrics in tests: one sample of the Prometheus text by name and labels."""

from __future__ import annotations

import httpx


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, sample_labels = sample.partition("{")
        found = ",".join(sorted(sample_labels.rstrip("}").split(","))) if sample_labels else ""
        if sample_name == name and found == wanted:
            return float(value)
    return 0.0


async def scrape(api: httpx.AsyncClient) -> str:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text
