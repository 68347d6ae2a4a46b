"""Who is calling: the client address a rate limit can key on.

X-Forwarded-For is believed only as far as a chain of trusted proxies reaches: starting at the
TCP peer, each hop that is a trusted proxy hands over to the address it says it received the
request from (the header is read right to left). The first untrusted address is the client.
Anyone can send the header, so with no trusted proxies it is ignored.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

UNKNOWN = "unknown"

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def _parse(value: str) -> Address | None:
    try:
        address = ip_address(value.strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; key them as IPv4.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> Address | None:
    """The client's address, or None when the peer is not an IP address (a unix socket)."""
    current = _parse(peer) if peer else None
    if current is None or not trusted:
        return current
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if not any(current in network for network in trusted):
            break
        previous = _parse(hop)
        if previous is None:
            # A garbled hop: the last proxy we trust is as far as we can see.
            break
        current = previous
    return current


def rate_limit_key(address: Address | None) -> str:
    """IPv4 addresses key alone; IPv6 by /64, the block one subscriber usually holds."""
    if address is None:
        return UNKNOWN
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return str(address)


class ClientKeys:
    """Rate-limit keys per (peer, X-Forwarded-For), remembered: parsing addresses costs more
    than the rest of the rate limit, and a client sends the same pair request after request."""

    def __init__(self, trusted: Sequence[Network], *, cache_size: int = 4096) -> None:
        self._trusted = tuple(trusted)
        self._cached = functools.lru_cache(maxsize=cache_size)(self._compute)

    def key(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        # Without trusted proxies the header means nothing, so it must not split the cache.
        hops = tuple(forwarded_for) if self._trusted else ()
        return self._cached(peer, hops)

    def _compute(self, peer: str | None, hops: tuple[str, ...]) -> str:
        return rate_limit_key(client_address(peer, hops, self._trusted))
