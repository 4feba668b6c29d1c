"""The gateway's own endpoints: /healthz, /readyz and /metrics. None needs a gateway key;
/metrics answers the networks in `[metrics] allow`, or anyone with its token."""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from aiogw import metrics
from aiogw.observe import GatewayMetrics
from aiogw.ops_settings import MetricsSettings

if TYPE_CHECKING:
    from aiogw.audit.writer import AuditWriter
    from aiogw.finish import Finisher
    from aiogw.limits.persistence import LimitStore
    from aiogw.limits.shared import SharedLedger
    from aiogw.proxy import Proxy
    from aiogw.worker_metrics import Peers


# This process's number among `[server] workers`, set once in each worker process
# (aiogw.serving.worker_process); None in a gateway of one process, whose /readyz
# stays as it was.
_worker: int | None = None


def identify(worker: int) -> None:
    """Name this process worker `worker`: its /readyz then says which worker answered."""
    global _worker
    _worker = worker


async def healthz(request: web.Request) -> web.Response:
    """The process answers: nothing more (a liveness probe)."""
    return web.json_response({"status": "ok"})


def readyz(state: Path, store: LimitStore, proxy: Proxy, finisher: Finisher, writer: AuditWriter | None,
           shared: SharedLedger | None = None) -> web.Response:
    """Whether to send this gateway traffic (a readiness probe): it listens (it answers),
    its audit writer runs and keeps up, the task saving spend and windows runs, its
    state is writable, and it is not stopping."""
    checks = {
        "state_writable": os.access(state.parent, os.W_OK) and (not state.exists() or os.access(state, os.W_OK)),
        "spend_saving": store.alive,  # the spend and windows written to the state store (LimitStore)
    }
    if writer is not None:
        checks["audit_writer"] = writer.alive and finisher.alive
        checks["audit_keeping_up"] = not finisher.saturated
    if proxy.draining:
        checks["not_stopping"] = False  # a load balancer moves traffic away during the drain
    ready = all(checks.values())
    body: dict = {"status": "ready" if ready else "not ready", "checks": checks}
    if _worker is not None:
        body["worker"], body["pid"] = _worker, os.getpid()  # which of the port's workers answered
    if shared is not None:
        # Redis away is said, not a reason to leave the balancer: every instance shares it,
        # and on_store_failure says what admission does meanwhile.
        body["limits"] = {"store": "up" if shared.up else "away", "on_store_failure": shared.settings.on_failure}
    if writer is not None:
        # While the database is away the gateway serves and its records wait in the
        # spool: ready, and said; a full spool turns into the back-pressure above.
        body["audit"] = {"database": "up" if writer.database_up else "away", "spool_bytes": writer.spool.pending}
    return web.json_response(body, status=200 if ready else 503)


class MetricsEndpoint:
    """GET /metrics; `settings` is replaced on reload."""

    def __init__(self, gauges: GatewayMetrics) -> None:
        self.metrics = gauges
        self.peers: Peers | None = None  # the other workers (aiogw.worker_metrics), under a supervisor
        self.configure(gauges.settings)

    def configure(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.networks = settings.networks()

    async def handle(self, request: web.Request) -> web.Response:
        if not self.settings.enabled:
            return web.json_response({"error": "metrics are off: set [metrics] enabled = true"}, status=404)
        if not self._allowed(request):
            return web.json_response(
                {"error": "not allowed: scrape from an address in [metrics] allow, or send "
                          "'Authorization: Bearer <token>' with the token set in [metrics] token"},
                status=403,
            )
        body = self.metrics.exposition()
        if self.peers is not None:  # one of several workers: it answers for all of them
            body = await self.peers.gather(body)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    def _allowed(self, request: web.Request) -> bool:
        token = self.settings.token
        if token is not None:
            sent = request.headers.get("Authorization", "")
            if sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].strip().encode(), token.encode()):
                return True
        try:
            address = ipaddress.ip_address((request.remote or "").split("%")[0])
        except ValueError:
            return False  # a unix socket or an unknown peer: only the token admits it
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)
