"""The one per-request object every stage reads and writes.

Slotted and flat: it is created for every request, so it must be cheap, and it is
what the audit record (a later stage) is made from once the exchange is over.
"""

from __future__ import annotations

import time
from typing import Any

# Outcomes, as the audit and the logs name them.
OK = "ok"
REFUSED = "refused"
UPSTREAM_ERROR = "upstream_error"
CLIENT_ABORTED = "client_aborted"
UPSTREAM_ABORTED = "upstream_aborted"
GATEWAY_ERROR = "gateway_error"  # a fault of the gateway's own (a bug): logged with its traceback
SHUTDOWN = "shutdown"  # still open when the gateway's drain period ran out
OUTCOMES = (OK, REFUSED, UPSTREAM_ERROR, CLIENT_ABORTED, UPSTREAM_ABORTED, SHUTDOWN, GATEWAY_ERROR)


class Exchange:
    __slots__ = (
        "body",
        "chunks",
        "client",
        "cost",
        "dialect",
        "endpoint",
        "estimate",
        "findings",
        "held",
        "history",
        "id",
        "json",
        "key_id",
        "method",
        "model",
        "outcome",
        "path",
        "priced",
        "query",
        "quiet",
        "reading",
        "reason",
        "relaying",
        "response_body",
        "response_headers",
        "route",
        "session",
        "started",
        "status",
        "stream",
        "t0",
        "t_end",
        "t_first_byte",
        "t_last",
        "t_sent",
        "taps",
        "usage",
        "user",
        "user_agent",
    )

    def __init__(self, method: str) -> None:
        self.started = time.time()
        self.t0 = time.perf_counter()
        self.t_sent: float | None = None  # handed to the upstream
        self.t_first_byte: float | None = None
        self.t_last: float | None = None  # the upstream's last byte read
        self.t_end: float | None = None
        self.id: str | None = None  # the audit id, made when first needed
        self.method = method
        self.path = ""
        self.query = ""
        self.route = ""
        self.dialect = ""
        self.endpoint = ""
        self.user: str | None = None
        self.key_id: str | None = None
        self.body: bytes | None = None
        self.json: dict[str, Any] | None = None
        self.model: str | None = None
        self.stream = False
        self.status = 0
        self.outcome = OK
        self.reason: str | None = None
        self.relaying = False  # a stream's head went out: an error can no longer be answered
        self.response_headers: Any = None
        self.response_body: bytes | None = None
        # Relayed chunks, by reference, for the finisher; None while nothing reads the answer back.
        self.chunks: list[bytes] | None = None
        self.client: str | None = None
        self.user_agent: str | None = None
        self.quiet = False  # past the budget of unauthenticated records: counted only, not recorded or logged
        self.session: str | None = None  # the agent's own session id, if it sends one
        self.findings: list[dict[str, Any]] | None = None
        # Limits and accounting: the user's limit state this exchange holds a slot of
        # and the admitted token estimate; then what the exchange cost.
        self.held: Any = None
        self.estimate = 0
        # The stages' parts in this exchange's answer (aiogw.stage.Tap), made by their checks.
        self.taps: tuple[Any, ...] = ()
        # (the previous turn's history list, how many of its entries this request
        # repeats), when the guard compared them: the audit need not compare again.
        self.history: tuple[list[Any], int] | None = None
        self.usage: Any = None  # dialects.Usage, once charged: the exchange is settled
        self.cost: float | None = None
        self.priced = True
        # The response read back (aiogw.answer.Reading), made when first needed.
        self.reading: Any = None

    def sent(self) -> None:
        self.t_sent = time.perf_counter()

    def first_byte(self) -> None:
        self.t_first_byte = time.perf_counter()

    def upstream_done(self) -> None:
        self.t_last = time.perf_counter()

    def finish(self) -> None:
        self.t_end = time.perf_counter()

    def durations(self) -> tuple[float, float | None, float]:
        """(the whole exchange, the upstream's time to first byte or None, the gateway's
        own share: the whole less the upstream's time from sending to its last byte),
        in seconds; for metrics and the log line."""
        t_end = self.t_end or time.perf_counter()
        total = t_end - self.t0
        if self.t_sent is None:
            return total, None, total  # refused before it left: all of it was the gateway's
        first_byte = self.t_first_byte - self.t_sent if self.t_first_byte is not None else None
        return total, first_byte, max(0.0, total - ((self.t_last or t_end) - self.t_sent))
