"""Ending sessions and tokens everywhere: the service, the feed, the Redis channel, the list."""
