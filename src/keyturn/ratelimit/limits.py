"""Per-client-IP limits on registering and refreshing (login limits live in auth.py).

Registrations are counted where login failures are (Redis, else the database): each one
writes to the database anyway, and a shared count is what stops an address from creating
accounts in bulk. Refresh is a hot path, so its counter is never a database write: Redis
when configured, else a counter in each worker process (N workers let an address through
up to N times the limit; the limit is there against floods, not single extra requests).
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from keyturn import errors
from keyturn.config import Settings
from keyturn.core.context import RequestContext
from keyturn.ratelimit.protocol import RateLimiter

REFRESH_WINDOW = timedelta(minutes=1)
IPV6_CLIENT_PREFIX = 64
# How long a successful login makes its address (IPv6: its /64) known to the account.
KNOWN_ADDRESS_DAYS = 30
KNOWN_ADDRESS_AGE = timedelta(days=KNOWN_ADDRESS_DAYS)


def address_key(ip: str) -> str:
    """What one client's address counts as: the address itself for IPv4, its /64 for IPv6.

    An IPv6 host is usually given a whole /64 and can pick a new address in it for every
    request; counting per address would let it reset any per-address limit at will.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def login_account_key(subject: str) -> str:
    """The login failure counter of an account: its user id, or for an identifier that names
    no account, the identifier as typed (normalised)."""
    return "login:account:" + subject


def known_address_account_key(subject: str, ip: str) -> str:
    """The allowance of its own an account gives an address it logged in from before."""
    return login_account_key(f"{subject}:from:{address_key(ip)}")


def login_address_key(ip: str) -> str:
    return "login:ip:" + address_key(ip)


class ClientLimits:
    def __init__(self, settings: Settings, *, shared: RateLimiter, fast: RateLimiter) -> None:
        self._settings = settings
        self._shared = shared
        self._fast = fast
        self._register_window = timedelta(seconds=settings.login_window_seconds)

    def count_registration(self, context: RequestContext) -> None:
        """Count one registration attempt from the caller's address.

        Raises TooManyRequestsError past KEYTURN_REGISTER_MAX_PER_IP in
        KEYTURN_LOGIN_WINDOW_SECONDS. Callers without an address (the CLI) are not counted.
        """
        if not context.ip:
            return
        wait = self._shared.hit(
            "register:ip:" + address_key(context.ip),
            limit=self._settings.register_max_per_ip,
            window=self._register_window,
        )
        if wait is not None:
            raise errors.TooManyRequestsError(
                f"Too many registrations from this address; try again in {wait} seconds.",
                retry_after_seconds=wait,
            )

    def count_refresh(self, context: RequestContext) -> None:
        """Count one refresh from the caller's address.

        Raises TooManyRequestsError past KEYTURN_REFRESH_MAX_PER_IP in a minute.
        """
        if not context.ip:
            return
        wait = self._fast.hit(
            "refresh:ip:" + address_key(context.ip),
            limit=self._settings.refresh_max_per_ip,
            window=REFRESH_WINDOW,
        )
        if wait is not None:
            raise errors.TooManyRequestsError(
                f"Too many refreshes from this address; try again in {wait} seconds.",
                retry_after_seconds=wait,
            )
