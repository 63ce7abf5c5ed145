"""Fast shared state behind small interfaces: revocations, rate limits, caches."""
