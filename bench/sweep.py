"""The concurrency sweep of issue 7: memory per open stream, up to 5,000 streams at once.

    python -m bench.sweep [--levels 500,1000,2500,5000] [--hold 8] [--targets passthrough,aiogw]
                          [--ramp 500] [--rate 5000]

For each level N, a load generator (a subprocess pinned to LOAD_CPU, beside the fake
upstream, like bench.streams) opens N streaming Messages requests through the target,
`ramp` new ones a second, and the fake makes each last long enough (x-fake-chunks,
x-fake-delay) that all N are open together for about `hold` seconds. When all N have
their first bytes, the target's RSS is read (VmRSS, and VmHWM for the peak); then the
streams run to their end and each is checked: a 200, and a body that ends with
`message_stop`. Anything else is a failure, counted by kind, the first one's text kept;
a stream still running at the client's deadline is one too ("deadline"), and a client
that dies makes the sweep raise. Nothing is dropped.

Memory per open stream is (RSS with all open − RSS idle just before the level) / N.
Levels run in increasing order in the same process, so a level's idle RSS already holds
what the previous one left (memory Python keeps once freed, pooled upstream
connections); `kib_per_stream_base` divides from the RSS before the first level
instead, the fairer figure for the top level. If an open stream ends before the last
one opens (the target queues requests: a connection pool smaller than N), RSS is read
at that moment, and `open` says how many were open at once (fewer than N). That is what
5,000 showed on the pass-through and on aiogw while both pooled at most 4,096 upstream
connections (aiogw's `[server] max_upstream_connections` default then; 16,384 now):
904 requests waited for a free one and `open` was 4,096.

Why a ramp, not all N in the same millisecond (`--ramp 0` still does that): with
aiohttp's default backlog of 128 (the fake's until it asked for 4,096), a burst of
thousands of connects overflowed its accept queue and the kernel dropped SYNs, which
the connecting side resends 1, 3, 7, 15 s later. A burst then measures the fake's backlog (direct, 5,000 at once:
30 s until all were open, TTFB p99 16 s), not the target, and through a proxy those
resends can outlast the proxy's upstream connect timeout. Opened in small batches
(MAX_BATCH, every RAMP_STEP), no accept queue on the way fills while its server keeps
up; TTFB is then the latency of one more stream with the others open.

Why events are far apart at high levels: the fake and the client share one core; past
EVENT_RATE events a second in all they, not the target, would set the pace. Events are
MIN_GAP apart at least, further apart when N streams would exceed the rate (1 s at
5,000). `load_busy` shows how busy that core was, `others` how much of either core other
jobs on the machine took. Memory per stream is what the sweep is for; stream
throughput is bench.streams'.

File descriptors: a proxy holds two sockets per open stream (client side, upstream
side), the fake one, the client one. The servers inherit the bench's own limits
(Procs.start), a login shell's soft RLIMIT_NOFILE is often 1,024, and none of them
raises its own. So before each level the sweep raises the soft limit of the running
target (and of the fake, given its PID) to its hard limit with prlimit(2)
(`resource.prlimit`), which a process may do to another of its own user, and the hard
limit too if that is still short and the bench may (CAP_SYS_RESOURCE); if neither
suffices it warns, and the failures show in the row. No server's code or config
changes, and only processes the bench started are touched. The client raises its own.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp
import orjson
import uvloop

from bench import procs
from bench.bodies import messages_body
from bench.stats import percentile
from bench.targets import LOAD_CPU, PROXY_CPU, ROOT, TARGETS, Target, start

LEVELS = (500, 1000, 2500, 5000)
HOLD = 8.0  # seconds all N streams of a level stay open together
RAMP = 500.0  # new streams a second; 0: all at once (see the docstring)
RAMP_STEP = 0.02  # seconds between two batches of new streams
# At most this many at once, well under the fake's backlog of 128 even when the client
# catches up after a late wake-up: the ramp slows down instead of bursting.
MAX_BATCH = 64
MIN_GAP = 0.1  # seconds between two events of a stream, at least
EVENT_RATE = 5000.0  # events a second the fake sends, in all, at most (see the docstring)
FD_SPARE = 512  # descriptors a server needs besides its streams' sockets (logs, databases, pools)
# The fake's Anthropic stream: message_start, content_block_start, ping, the deltas,
# content_block_stop, message_delta, message_stop; `gap` apart after the first.
EXTRA_EVENTS = 6
END = b"message_stop"  # the last event's name: a stream that ends without it was cut
TAIL = 64  # bytes of a stream's end kept to look for END
SILENCE = 30.0  # seconds without a byte, on top of a stream's own length, that fail it


# --------------------------------------------------------------------------------------
# The load generator (the subprocess)
# --------------------------------------------------------------------------------------


class Tally:
    """What the streams of one level did, and the moment to read the target's RSS:
    when every stream is open (or failed before opening), or when an open stream ends
    first: then as many are open as ever will be."""

    __slots__ = ("all_open_s", "completed", "errors", "failed", "first_error", "n", "open_now", "opened",
                 "settled", "settled_open", "t0", "ttfb")

    def __init__(self, n: int) -> None:
        self.n = n
        self.t0 = time.perf_counter()
        self.opened = 0  # streams that got their first body bytes
        self.open_now = 0
        self.completed = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.first_error = ""
        self.ttfb: list[float] = []
        self.all_open_s = float("nan")
        self.settled = asyncio.Event()
        self.settled_open = 0

    def open(self, ttfb: float) -> None:
        self.opened += 1
        self.open_now += 1
        self.ttfb.append(ttfb)
        if self.opened == self.n:
            self.all_open_s = time.perf_counter() - self.t0
        self._check()

    def end(self, was_open: bool, error: tuple[str, str] | None) -> None:
        """A stream is over; `error` is (kind, text) when it failed."""
        if was_open:
            self._settle()  # before the count falls: the most open at once
            self.open_now -= 1
        if error is None:
            self.completed += 1
        else:
            self.failed += 1
            self.errors[error[0]] += 1
            self.first_error = self.first_error or error[1]
        self._check()

    def _check(self) -> None:
        never_opened = self.completed + self.failed - (self.opened - self.open_now)
        if self.opened + never_opened >= self.n:
            self._settle()

    def _settle(self) -> None:
        if not self.settled.is_set():
            self.settled_open = self.open_now
            self.settled.set()


async def one_stream(session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes,
                     tally: Tally) -> None:
    t0 = time.perf_counter()
    was_open = False
    error: tuple[str, str] | None = None
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                text = (await resp.read())[:300].decode(errors="replace")
                error = (f"HTTP {resp.status}", f"HTTP {resp.status}: {text}")
            else:
                tail = b""
                async for chunk in resp.content.iter_any():
                    if not was_open:
                        was_open = True
                        tally.open(time.perf_counter() - t0)
                    tail = (tail + chunk)[-TAIL:]
                if END not in tail:
                    error = ("cut", f"the stream ended without {END.decode()}: …{tail.decode(errors='replace')!r}")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        # A disconnect, a reset, a refused connect, a read timeout: each is a failure.
        error = (type(exc).__name__, f"{type(exc).__name__}: {exc}")
    tally.end(was_open, error)


async def launch(n: int, ramp: float, start: Callable[[], Awaitable[None]],
                 tasks: list[asyncio.Future[None]]) -> None:
    """Start n streams into `tasks`, `ramp` a second (all at once if 0)."""
    t0 = time.perf_counter()
    while len(tasks) < n:
        # All those due by now (a late wake-up catches up), but no more than MAX_BATCH.
        due = n if ramp <= 0 else min(n, int((time.perf_counter() - t0) * ramp) + 1, len(tasks) + MAX_BATCH)
        tasks.extend(asyncio.ensure_future(start()) for _ in range(due - len(tasks)))
        if len(tasks) < n:
            await asyncio.sleep(RAMP_STEP)


def _raise_own_nofile(need: int) -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: one socket per stream."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < need:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {need}: raise it (ulimit -Hn) to open that many streams")


def _say(obj: dict) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()


async def load(spec: dict) -> dict:
    """Open spec["n"] streams, spec["ramp"] a second; say one line when they are all open
    (see Tally); return the summary (ms for TTFB)."""
    n = spec["n"]
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", **spec["headers"]}
    body = messages_body(1000, stream=True)
    # limit=0: no pool cap, each stream on its own connection. No total timeout (a stream
    # is meant to last), but a silence longer than a whole stream fails it: a request
    # queued in the target may wait out one stream's length before its headers come.
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=SILENCE, sock_read=spec["lasts"] + SILENCE)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        tally = Tally(n)
        tasks: list[asyncio.Future[None]] = []
        launcher = asyncio.ensure_future(
            launch(n, spec["ramp"], lambda: one_stream(session, spec["url"], headers, body, tally), tasks))
        try:
            await asyncio.wait_for(tally.settled.wait(), spec["deadline"])
        except TimeoutError:
            pass  # said as such (settled false); the bench still reads the target
        _say({"open": tally.settled_open if tally.settled.is_set() else tally.open_now,
              "settled": tally.settled.is_set()})
        await launcher
        _, pending = await asyncio.wait(tasks, timeout=spec["deadline"])
        for task in pending:
            task.cancel()
        if pending:  # overran the deadline: failures too
            await asyncio.wait(pending)
            tally.failed += len(pending)
            tally.errors["deadline"] += len(pending)
            tally.first_error = tally.first_error or f"{len(pending)} streams unfinished after {spec['deadline']:g} s"
    ms = 1000.0
    return {
        "opened": tally.opened, "completed": tally.completed, "failed": tally.failed,
        "errors": dict(tally.errors), "error": tally.first_error, "open_s": tally.all_open_s,
        "ttfb_p50": percentile(tally.ttfb, 50) * ms, "ttfb_p99": percentile(tally.ttfb, 99) * ms,
    }


def client_main(spec_json: str) -> None:
    spec = orjson.loads(spec_json)
    _raise_own_nofile(spec["n"] + 64)
    _say(uvloop.run(load(spec)))


# --------------------------------------------------------------------------------------
# The sweep (the bench's side)
# --------------------------------------------------------------------------------------


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a live process in MiB: resident now, and its peak so far."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":", 1)
            found[name] = int(value.split()[0]) / 1024
    return found.get("VmRSS", float("nan")), found.get("VmHWM", float("nan"))


def open_fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def raise_nofile(pid: int, need: int) -> int:
    """Let process `pid` open `need` descriptors if it may (see the module docstring);
    returns its soft limit now, which may still be short (a hard limit we may not raise)."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    if hard < need:
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (need, need))  # needs CAP_SYS_RESOURCE
            return need
        except (PermissionError, ValueError):
            pass
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pace(n: int, hold: float, rate: float, ramp: float) -> tuple[float, int, float]:
    """(seconds between events, text deltas, seconds a stream lasts) for N streams
    opened `ramp` a second and then all open together for about `hold` seconds."""
    gap = max(MIN_GAP, n / rate)
    wanted = hold + (n / ramp if ramp > 0 else 0.0)
    chunks = max(1, round(wanted / gap) - (EXTRA_EVENTS - 1))
    return gap, chunks, (chunks + EXTRA_EVENTS - 1) * gap


def run_client(spec: dict, on_open: Callable[[dict], None]) -> tuple[dict, float, float]:
    """Run the load generator on LOAD_CPU; `on_open` is called with its first line the
    moment it says the streams are open. Returns (its summary, its CPU seconds, wall s)."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    cmd = ["taskset", "-c", str(LOAD_CPU), sys.executable, "-m", "bench.sweep", "client", orjson.dumps(spec).decode()]
    with tempfile.TemporaryFile() as err:
        client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        try:
            assert client.stdout is not None
            said = client.stdout.readline()
            if said:
                on_open(orjson.loads(said))
            # The client stops at its own deadline. read(), not communicate(): that
            # would bypass what readline() already buffered.
            rest = client.stdout.read()
            client.wait(timeout=30)
        finally:
            if client.poll() is None:  # our own client only, by its PID
                client.kill()
                client.wait()
        if client.returncode != 0 or not said or not rest:
            err.seek(0)
            raise RuntimeError(f"sweep client ({spec['n']} streams to {spec['url']}) exited {client.returncode}:\n"
                               f"{err.read().decode(errors='replace')[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return orjson.loads(rest), cpu, time.monotonic() - t0


def run_level(target: Target, n: int, *, hold: float, headers: dict[str, str], rate: float, ramp: float,
              upstream_pid: int | None, rss_base: float) -> dict:
    """One level: N streams through `target`; its row (MiB, KiB, ms, % of a core)."""
    for pid, need in ((target.pid, 2 * n + FD_SPARE), (upstream_pid, n + FD_SPARE)):
        if pid is not None and (got := raise_nofile(pid, need)) < need:
            print(f"warning: PID {pid} may open only {got} files, {need} wanted", file=sys.stderr, flush=True)
    gap, chunks, lasts = pace(n, hold, rate, ramp)
    spec = {"url": target.url, "n": n, "ramp": ramp, "lasts": lasts,
            # Generous: a stream queued in the target may wait out a whole one first.
            "deadline": 2 * lasts + 60,
            "headers": {"x-api-key": target.key, "x-fake-chunks": str(chunks), "x-fake-delay": str(gap), **headers}}
    procs.wait_idle(target.pid)  # an audit writer still draining the last level would count
    idle, _ = rss_mb(target.pid)
    seen: dict = {}

    def on_open(said: dict) -> None:  # the streams are open: read the target now
        seen.update(said, rss=rss_mb(target.pid)[0], fds=open_fds(target.pid))

    proxied = upstream_pid != target.pid
    cpu0, fake0, cores0 = procs.cpu_seconds(target.pid), _cpu(upstream_pid), procs.core_busy()
    got, client_cpu, wall = run_client(spec, on_open)
    cores1 = procs.core_busy()
    target_cpu = procs.cpu_seconds(target.pid) - cpu0
    # Other jobs' share of each core we use: its busy time less our processes' on it.
    load_busy = procs.busy_percent(cores0, cores1, f"cpu{LOAD_CPU}")
    ours_on_load = client_cpu + (_cpu(upstream_pid) - fake0 if upstream_pid else 0.0)
    others = [load_busy - 100 * ours_on_load / wall] if upstream_pid else []
    if proxied:
        others.append(procs.busy_percent(cores0, cores1, f"cpu{PROXY_CPU}") - 100 * target_cpu / wall)
    kib = 1024.0 / n
    return {
        "level": n, "open": seen["open"], "opened": got["opened"], "completed": got["completed"],
        "failed": got["failed"], "open_s": got["open_s"], "ttfb_p50_ms": got["ttfb_p50"],
        "ttfb_p99_ms": got["ttfb_p99"], "rss_idle_mb": idle, "rss_open_mb": seen["rss"],
        "kib_per_stream": (seen["rss"] - idle) * kib, "kib_per_stream_base": (seen["rss"] - rss_base) * kib,
        "peak_rss_mb": rss_mb(target.pid)[1], "fds": seen["fds"], "gap_ms": gap * 1000,
        "target_cpu": 100 * target_cpu / wall, "load_busy": load_busy,
        "others": max(0.0, *others) if others else float("nan"),
        "errors": ", ".join(f"{kind} ×{count}" for kind, count in got["errors"].items()),
        "error": got["error"],
    }


def _cpu(pid: int | None) -> float:
    return procs.cpu_seconds(pid) if pid else 0.0


def sweep(target: Target, levels: Sequence[int] = LEVELS, *, hold: float = HOLD,
          headers: dict[str, str] | None = None, rate: float = EVENT_RATE, ramp: float = RAMP,
          upstream_pid: int | None = None) -> list[dict]:
    """Each level in turn (ascending) against a running target; one row per level.
    `headers` go with every request (a peer's routing headers); `upstream_pid` is the
    fake's: its descriptor limit is raised too (the target's always is), and its CPU
    counted as ours in `others`."""
    procs.wait_idle(target.pid)
    rss_base, _ = rss_mb(target.pid)
    return [run_level(target, n, hold=hold, headers=headers or {}, rate=rate, ramp=ramp, upstream_pid=upstream_pid,
                      rss_base=rss_base) for n in sorted(levels)]


COLUMNS = {  # key → (heading, decimals)
    "level": ("streams", 0), "open": ("open at once", 0), "completed": ("completed", 0), "failed": ("failed", 0),
    "open_s": ("all open after s", 1), "ttfb_p50_ms": ("TTFB p50 ms", 0), "ttfb_p99_ms": ("TTFB p99 ms", 0),
    "rss_idle_mb": ("RSS idle MiB", 0), "rss_open_mb": ("RSS open MiB", 0), "kib_per_stream": ("KiB / stream", 1),
    "kib_per_stream_base": ("KiB / stream from start", 1), "peak_rss_mb": ("peak RSS MiB", 0),
    "fds": ("fds", 0), "gap_ms": ("event gap ms", 0), "target_cpu": ("target CPU %", 0),
    "load_busy": ("load core %", 0), "others": ("others %", 0), "errors": ("errors", 0),
}


def _cell(value: object, decimals: int) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:,.{decimals}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value) if value else "–"


def table(rows: list[dict]) -> str:
    """Markdown: a line per (target, level), then the first error of each level that had any."""
    out = ["| target | " + " | ".join(h for h, _ in COLUMNS.values()) + " |", "|---|" + "---:|" * len(COLUMNS)]
    out += [f"| {r['target']} | " + " | ".join(_cell(r[k], d) for k, (_, d) in COLUMNS.items()) + " |" for r in rows]
    errors = [f"- {r['target']}, {r['level']:,} streams: {r['error']}" for r in rows if r["error"]]
    return "\n".join(out + (["", *errors] if errors else []))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:  # the load generator, as run_client starts it
        client_main(argv[1])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="open streams per level, comma-separated")
    parser.add_argument("--hold", type=float, default=HOLD, help="seconds all streams of a level stay open together")
    parser.add_argument("--ramp", type=float, default=RAMP, help="new streams a second; 0: all at once")
    parser.add_argument("--rate", type=float, default=EVENT_RATE, help="events a second the fake sends, at most")
    parser.add_argument("--targets", default="passthrough,aiogw", help=f"from {', '.join(TARGETS)}")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    names = tuple(args.targets.split(","))
    if unknown := set(names) - set(TARGETS):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    # SIGTERM as Ctrl-C: the `finally` below stops the servers either way.
    signal.signal(signal.SIGTERM, _interrupt)
    rows = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aiogw-sweep-") as tmp:
        servers = procs.Procs(Path(tmp), ROOT)
        try:
            targets, fake_pid = start(servers, Path(tmp), names)
            print(f"servers up (proxies on CPU {PROXY_CPU}, fake and client on CPU {LOAD_CPU}); logs in {tmp}",
                  flush=True)
            for t in targets:
                for row in sweep(t, levels, hold=args.hold, rate=args.rate, ramp=args.ramp, upstream_pid=fake_pid):
                    rows.append({"target": t.name, **row})
                    print(f"{t.name} {row['level']:>6,}: {row['open']:,} open at once, {row['failed']} failed, "
                          f"RSS {row['rss_open_mb']:.0f} MiB, {row['kib_per_stream']:.1f} KiB/stream", flush=True)
        except KeyboardInterrupt:
            print("sweep interrupted; servers stopped", file=sys.stderr)
            return 130
        finally:
            servers.stop_all()
    print(f"\n{table(rows)}\n\n{time.monotonic() - t0:.0f} s; hold {args.hold:g} s, ramp {args.ramp:g} streams/s, "
          f"at most {args.rate:g} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
