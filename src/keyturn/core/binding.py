"""Refresh binding: whether a refresh comes from where its session was opened."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from keyturn.core.context import RequestContext
from keyturn.core.sessions import Session

# Wide enough for a phone moving between cells of one carrier or a home router renumbering,
# narrow enough that a token replayed from another network is refused.
_IPV4_PREFIX = 24
_IPV6_PREFIX = 48

BindingCheck = Callable[[Session, RequestContext], bool]
"""Whether a refresh sent with this context agrees with what its session recorded."""


def binding_check(binding: str) -> BindingCheck | None:
    """The check KEYTURN_REFRESH_BINDING names; None for `off`."""
    return _CHECKS.get(binding)


def _by_user_agent(session: Session, context: RequestContext) -> bool:
    return same_user_agent(session.user_agent, context.user_agent)


def _by_network(session: Session, context: RequestContext) -> bool:
    return same_network(session.ip, context.ip)


def same_user_agent(recorded: str | None, presented: str | None) -> bool:
    return recorded == presented


def same_network(recorded: str | None, presented: str | None) -> bool:
    """Both addresses in one IPv4 /24 or IPv6 /48. An address that is missing or does not
    parse agrees with nothing but the same missing value: the check fails closed."""
    if recorded is None or presented is None:
        return recorded == presented
    try:
        first = ipaddress.ip_address(recorded)
        second = ipaddress.ip_address(presented)
    except ValueError:
        return False
    first, second = _unmapped(first), _unmapped(second)
    if first.version != second.version:
        return False
    prefix = _IPV4_PREFIX if first.version == 4 else _IPV6_PREFIX
    network = ipaddress.ip_network(f"{first}/{prefix}", strict=False)
    return second in network


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_CHECKS: dict[str, BindingCheck] = {"user_agent": _by_user_agent, "network": _by_network}
