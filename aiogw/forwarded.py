"""The client's address behind a load balancer: `[server] trusted_proxies`.

Behind a balancer every connection comes from the balancer. When the connection's
peer is in `trusted_proxies`, the client is read from `X-Forwarded-For`: the nearest
address in it that is not itself a trusted proxy (read from the right, since each
proxy appends the peer it saw: only the entries the trusted proxies added are
believed; what a client wrote on its own is further left). Anything else keeps the
peer's address. The audit record, the log line and the budget of records of requests
without a valid key (`[clients]`) then see the agent, not the balancer.

The forwarding headers themselves are never sent upstream (aiogw.upstream): they name
hosts of the operator's network, which are no business of the provider's.
"""

from __future__ import annotations

import ipaddress

from aiogw.config_reader import Network
from aiogw.untrusted import text

_MAX_HOPS = 32  # a longer chain is read this far from the right


def client_of(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str | None:
    """The client's address: the peer's, or behind trusted proxies the first untrusted
    hop of X-Forwarded-For, from the right."""
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = forwarded_for.rsplit(",", _MAX_HOPS)[-_MAX_HOPS:]
    for hop in reversed(hops):
        address = hop.strip()
        if not _trusted(address, trusted):
            return text(address, 64) if _valid(address) else peer
    return text(hops[0].strip(), 64) if _valid(hops[0].strip()) else peer


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _trusted(address: str | None, trusted: tuple[Network, ...]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return any(ip in network for network in trusted)
