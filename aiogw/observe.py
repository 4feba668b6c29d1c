"""What the gateway tells its operator about each exchange: metrics and the log line.

`Observer` is called once per exchange, when its usage and cost are known (the
finisher's report, `aiogw.finish`): it adds the exchange to the metrics and writes its log
line. What is read rather than counted (open streams, the audit queue, memory) is read
when /metrics is scraped.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiogw import __version__, exchange, logs, metrics
from aiogw.audit.ids import new_id
from aiogw.metrics import Bounded, Counter, Gauge, Histogram
from aiogw.ops_settings import MetricsSettings

if TYPE_CHECKING:
    from aiogw.audit.recorder import Recorder
    from aiogw.audit.writer import AuditWriter
    from aiogw.connections import Watch
    from aiogw.exchange import Exchange
    from aiogw.finish import Finisher
    from aiogw.limits.shared import SharedLedger
    from aiogw.proxy import Proxy
    from aiogw.unauthenticated import KeylessRecords

_TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_STARTED = time.time()


class GatewayMetrics:
    """Every family /metrics shows; `exchange` is the only call on the request path."""

    def __init__(
        self, settings: MetricsSettings, proxy: Proxy, watch: Watch | None = None, finisher: Finisher | None = None,
        audit: tuple[Recorder, AuditWriter] | None = None, keyless: KeylessRecords | None = None,
        shared: SharedLedger | None = None,
    ) -> None:
        self._model, self._user, self._reason = Bounded(0), Bounded(0), Bounded(0)
        self.configure(settings)
        self.requests = Counter(
            "aiogw_requests_total", "Exchanges by route, dialect, model and HTTP status (0: no response).",
            ("route", "dialect", "model", "status"),
        )
        self.outcomes = Counter("aiogw_outcomes_total", "Exchanges by outcome.", ("route", "outcome"))
        self.duration = Histogram(
            "aiogw_request_duration_seconds", "The whole exchange, from the request to the answer's end.",
            metrics.EXCHANGE_BUCKETS, ("route",),
        )
        self.first_byte = Histogram(
            "aiogw_upstream_first_byte_seconds", "From sending upstream to the upstream's response headers.",
            metrics.EXCHANGE_BUCKETS, ("route",),
        )
        self.overhead = Histogram(
            "aiogw_gateway_overhead_seconds",
            "Time in the gateway itself: the exchange's time less the upstream's (sent to last byte).",
            metrics.OVERHEAD_BUCKETS, ("route",),
        )
        self.tokens = Counter(
            "aiogw_tokens_total", "Tokens by user, model and kind, as the provider counted them.",
            ("user", "model", "kind"),
        )
        self.cost = Counter("aiogw_cost_usd_total", "Spend in USD by user and model.", ("user", "model"))
        self.unpriced = Counter(
            "aiogw_unpriced_exchanges_total",
            "Exchanges of a model the price table lacks, charged the default price.", ("model",),
        )
        self.findings = Counter(
            "aiogw_guard_findings_total", "Guard findings by category, place and action.",
            ("category", "place", "action"),
        )
        self.refusals = Counter("aiogw_refusals_total", "Requests the gateway refused, by reason.", ("reason",))
        self.reloads = Counter("aiogw_config_reloads_total", "Config reloads (SIGHUP) by result.", ("result",))
        for result in ("applied", "refused"):  # there from the start, for alerts on increase()
            self.reloads.values[(result,)] = 0
        self.audit_batch = Histogram(
            "aiogw_audit_batch_write_seconds", "Time to build and commit one audit batch.", metrics.BATCH_BUCKETS
        )
        self._read = (_readings(proxy, finisher, audit, keyless) + (_connections(watch) if watch is not None else [])
                      + (_shared(shared) if shared is not None else []))

    def configure(self, settings: MetricsSettings) -> None:
        """Settings, at start or reload: a lower cap keeps the values already seen."""
        self.settings = settings
        for bounded in (self._model, self._user, self._reason):
            bounded.limit = settings.max_label_values

    def exchange(self, ex: Exchange) -> None:
        route = ex.route
        model = self._model(ex.model)
        self.requests.inc((route, ex.dialect, model, ex.status))
        self.outcomes.inc((route, ex.outcome))
        total, first_byte, overhead = ex.durations()
        self.duration.observe((route,), total)
        if first_byte is not None:
            self.first_byte.observe((route,), first_byte)
        self.overhead.observe((route,), overhead)
        if ex.outcome == exchange.REFUSED:
            self.refusals.inc((self._reason(ex.reason or "unknown"),))
        if ex.findings:
            for f in ex.findings:
                self.findings.inc((f["category"], f["place"], f["action"]))
        usage = ex.usage
        if usage is not None and (usage.input or usage.output or usage.cache_read or usage.cache_write):
            user = self._user(ex.user)
            for kind in _TOKEN_KINDS:
                n = getattr(usage, kind)
                if n:
                    self.tokens.inc((user, model, kind), n)
            if ex.cost:
                self.cost.inc((user, model), ex.cost)
            if not ex.priced:
                self.unpriced.inc((model,))

    def families(self) -> list[Counter | Gauge | Histogram]:
        return [
            self.requests, self.outcomes, self.duration, self.first_byte, self.overhead, self.tokens, self.cost,
            self.unpriced, self.findings, self.refusals, self.reloads, self.audit_batch, *self._read,
        ]

    def exposition(self) -> bytes:
        return metrics.exposition(self.families())


def _readings(
    proxy: Proxy, finisher: Finisher | None, audit: tuple[Recorder, AuditWriter] | None, keyless: KeylessRecords | None
) -> list[Gauge]:
    recorder, writer = audit if audit is not None else (None, None)

    def total(*reads: tuple[object | None, str]) -> Callable[[], float]:
        """The sum of these attributes, of the parts that exist in this gateway."""
        return lambda: sum(getattr(part, name) for part, name in reads if part is not None)

    out = [
        Gauge("aiogw_requests_in_flight", "Exchanges being handled.", lambda: proxy.inflight),
        Gauge("aiogw_active_streams", "Streams being relayed.", lambda: proxy.streams),
        Gauge(
            "aiogw_audit_queue_depth", "Finished exchanges and built records waiting to be written.",
            total((finisher, "depth"), (writer, "depth")),
        ),
        Gauge(
            "aiogw_audit_queue_bytes", "Bytes of bodies and answers of finished exchanges waiting for the finisher.",
            total((finisher, "pending_bytes")),
        ),
        Gauge("aiogw_audit_records_written_total", "Audit records committed.", total((writer, "written"))),
        Gauge(
            "aiogw_audit_backpressure_refusals_total",
            "Requests refused with a 503 because the audit queue was full (fail-closed).",
            total((finisher, "refused")),
        ),
        Gauge("aiogw_audit_write_errors_total", "Audit batches that failed and were retried.",
              total((writer, "write_errors"))),
        Gauge("aiogw_audit_spilled_total", "Audit records written to the spill file (database unwritable).",
              total((writer, "spilled"))),
        Gauge("aiogw_audit_database_up", "1 while the state database takes the audit's batches, 0 while they go "
              "to the spool.", lambda: 0 if writer is not None and not writer.database_up else 1),
        Gauge("aiogw_audit_spool_bytes", "Bytes of audit batches in the spool, not yet in the database.",
              lambda: writer.spool.pending if writer is not None else 0),
        Gauge("aiogw_audit_records_spooled_total", "Audit records written to the spool (the database was away).",
              total((writer, "spooled"))),
        Gauge("aiogw_audit_records_replayed_total", "Audit records of the spool written to the database.",
              total((writer, "replayed"))),
        Gauge("aiogw_audit_records_sanitized_total",
              "Audit records with a value made storable (escaped, cut or clamped).", total((recorder, "sanitized"))),
        Gauge("aiogw_audit_records_unstorable_total",
              "Audit records the database refused on their own (spilled).", total((writer, "unstorable"))),
        Gauge("aiogw_audit_records_lost_total",
              "Audit records neither stored nor spilled (not buildable, or the spill file unwritable).",
              total((writer, "lost"), (recorder, "lost"), (finisher, "lost"))),
        Gauge(
            "aiogw_unrecorded_refusals_total",
            "Requests without a valid gateway key past [clients] unauthenticated_records_per_minute: "
            "refused and counted, not recorded.",
            total((keyless, "unrecorded")),
        ),
        Gauge("aiogw_build_info", "The running version.", lambda: {(__version__,): 1}, ("version",)),
        Gauge("process_resident_memory_bytes", "Resident memory.", _rss),
        Gauge("process_cpu_seconds_total", "CPU time, user and system.", _cpu),
        Gauge("process_open_fds", "Open file descriptors.", lambda: len(os.listdir("/proc/self/fd"))),
        Gauge("process_start_time_seconds", "Start time, seconds since the epoch.", _start_time),
    ]
    return _totals_as_counters(out)


def _shared(shared: SharedLedger) -> list[Gauge]:
    """The limits' Redis ([limits] store): only with one."""
    return _totals_as_counters([
        Gauge("aiogw_limits_store_up", "1 while the limits' Redis answers, 0 while it is away.",
              lambda: 1 if shared.up else 0),
        Gauge("aiogw_limits_store_failures_total", "Times the connection to the limits' Redis was lost.",
              lambda: shared.link.failures),
        Gauge("aiogw_limits_unshared_admissions_total",
              "Requests admitted on this process's own counters while Redis was away (on_store_failure = open).",
              lambda: shared.unshared),
        Gauge("aiogw_limits_store_refusals_total",
              "Requests refused because Redis was away (on_store_failure = closed).", lambda: shared.refused_away),
        Gauge("aiogw_limits_reservations", "Requests of this process holding a reservation in Redis.",
              lambda: len(shared.open)),
        Gauge("aiogw_limits_leased_admissions_total",
              "Requests admitted on a lease this process holds, with no round trip to Redis.",
              lambda: shared.leases.leased),
        Gauge("aiogw_limits_leases", "Users for whom this process holds a lease in Redis.",
              lambda: shared.leases.held),
    ])


class Observer:
    """The finisher's report: an id for the exchange, its metrics, its log line."""

    __slots__ = ("line", "metrics")

    def __init__(self, metrics: GatewayMetrics | None, line: Callable[[Exchange], None] | None) -> None:
        self.metrics = metrics
        self.line = line

    def __call__(self, ex: Exchange) -> None:
        if ex.id is None:
            ex.id = new_id(ex.started)  # the audit record takes the same id
        if self.metrics is not None:
            self.metrics.exchange(ex)
        if self.line is not None and not ex.quiet:
            self.line(ex)


def _connections(watch: Watch) -> list[Gauge]:
    out = [
        Gauge("aiogw_client_connections_open", "Client connections open.", lambda: len(watch.open)),
        Gauge(
            "aiogw_client_connections_refused_total",
            "Connections closed at once: their address had [clients] max_connections_per_address open.",
            lambda: watch.refused,
        ),
        Gauge(
            "aiogw_client_timeouts_total", "Client connections let go by a [clients] timeout, by reason.",
            lambda: {(reason,): n for reason, n in watch.timed_out.items()}, ("reason",),
        ),
        Gauge(
            "aiogw_client_error_lines_dropped_total",
            "Lines of requests aiohttp could not parse, past the log's 60 a minute: counted, not logged.",
            lambda: logs.CLIENT_ERRORS.dropped,
        ),
    ]
    return _totals_as_counters(out)


def _totals_as_counters(gauges: list[Gauge]) -> list[Gauge]:
    """Counters read from elsewhere are still counters to Prometheus."""
    for g in gauges:
        if g.name.endswith("_total"):
            g.kind = "counter"
    return gauges


def _start_time() -> float:
    """This process's start (a worker forked long after the supervisor has its own):
    the kernel's, from /proc, else when this module was imported."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rpartition(b")")[2].split()[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return _STARTED
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _rss() -> float:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
