"""`[clients]`: what the gateway allows a client connection before it lets go of it.

Every bound here is against a client that holds gateway resources without making
progress: one that trickles its headers or body, keeps sockets open, stops reading its
answer, or sends requests without a key. Read by `aiogw.config` with its reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """Seconds, and counts; 0 turns a bound off."""

    # From a request's first byte to the end of its headers. SDKs send the head in one
    # write; ten seconds is slow network and then some.
    header_timeout: float = 10.0
    # The whole request body. An agent's largest turn (a few MB) takes well under a
    # second on any link a coding agent works over; two minutes leaves room for worse.
    body_timeout: float = 120.0
    # A keep-alive connection with no request on it. SDKs drop idle connections after
    # 5-60 s themselves, so a longer bound never closes one they still mean to use.
    idle_timeout: float = 75.0
    # A client that takes nothing of its answer for this long (its socket buffers stay
    # full) is let go, and the upstream request with it.
    write_timeout: float = 60.0
    # Open connections from one address. Behind a load balancer or a NAT every client
    # has the same address: raise it there, or set 0 for no cap.
    max_connections_per_address: int = 256
    # Records of requests without a valid gateway key, per client address and minute
    # (a burst of as many passes at once). Past it, such refusals are counted in the
    # metrics, not recorded: they cost the sender nothing and the audit disk a row each.
    unauthenticated_records_per_minute: int = 120


def read_clients(r: Any, table: dict[str, Any]) -> ClientLimits:
    r.only(table, "clients", set(ClientLimits.__slots__))
    d = ClientLimits()
    seconds = ("header_timeout", "body_timeout", "idle_timeout", "write_timeout")
    counts = ("max_connections_per_address", "unauthenticated_records_per_minute")
    return ClientLimits(
        **{name: r.number(table, f"clients.{name}", getattr(d, name)) for name in seconds},
        **{name: r.int_in(table, f"clients.{name}", getattr(d, name), 0, 1 << 20) for name in counts},
    )
