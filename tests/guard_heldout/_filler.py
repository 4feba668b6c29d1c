"""Long benign documents (logs, code, docs, CI output) that things get buried in.

Each generator returns a list of lines of roughly ``size`` bytes in total, and holds no
secret, no personal data and no instruction to a model: only private-range addresses,
UUIDs, hashes and timestamps.  ``bury`` puts a snippet near the middle.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re

from ._fake import HEX, pick, uid

PROJECTS = ["tidewater", "ledgerline", "quarry", "lumen-sched", "harbormaster", "fernweh", "kitebase", "orchard-api"]
MODULES = [
    "billing",
    "ingest",
    "scheduler",
    "auth",
    "search",
    "exports",
    "notifications",
    "inventory",
    "reports",
    "webhooks",
]
NOUNS = [
    "invoice",
    "shipment",
    "tenant",
    "batch",
    "cursor",
    "segment",
    "manifest",
    "ledger_entry",
    "job",
    "snapshot",
    "quota",
    "partition",
]
VERBS = [
    "load",
    "sync",
    "compact",
    "resolve",
    "reconcile",
    "render",
    "prune",
    "validate",
    "enqueue",
    "rebalance",
    "flush",
    "hydrate",
]

SENTENCES = [
    "The scheduler keeps one lease per partition and renews it every ten seconds.",
    "A worker that misses two renewals gives the partition back to the pool.",
    "Exports are written to a temporary prefix first and renamed once the manifest is complete.",
    "We measured the p99 latency of the read path at 38 ms with a warm cache.",
    "Retries use exponential backoff with full jitter, capped at thirty seconds.",
    "The ingest service validates each batch against the schema registry before it commits the offset.",
    "Tenants on the legacy plan still go through the v1 endpoint; everything else uses v2.",
    "Compaction runs nightly and merges segments smaller than 64 MiB.",
    "The migration is reversible: the down step restores the old column from the shadow table.",
    "Feature flags are evaluated once per request and cached on the request object.",
    "When the queue depth passes the high-water mark, producers block instead of dropping messages.",
    "Health checks hit /healthz, which reports ready only after the first config load succeeds.",
    "The dashboard shows queue depth, lag per consumer group and the error budget burn rate.",
    "Connection pools are sized per process; the default of ten is enough for most deployments.",
    "We pin the base image by digest so that rebuilds are reproducible.",
    "Logs are structured JSON in production and human-readable text in development.",
    "A failed webhook delivery is retried up to eight times over roughly a day.",
    "The reconciliation job compares the ledger with the payment processor's settlement report.",
    "Snapshots are taken every six hours and kept for fourteen days.",
    "Search indexes are rebuilt from the primary store, never patched in place.",
    "Every public endpoint has a rate limit, expressed in requests per minute per tenant.",
    "The CLI reads its configuration from the project file and lets flags override it.",
    "Timeouts are set on the client side: two seconds to connect, thirty to read.",
    "We decided against a shared cache between regions because invalidation costs more than it saves.",
    "The report generator streams rows so that memory stays flat for large tenants.",
    "Partition keys are hashed with xxhash to spread hot tenants across shards.",
    "Deprecation warnings are logged once per process, not once per call.",
    "Integration tests start a disposable Postgres on a random port and drop it at the end.",
    "The release branch is cut on Tuesdays and deployed to staging the same afternoon.",
    "If the manifest checksum does not match, the import is rejected and the operator is paged.",
    "The notifications module batches emails per tenant and sends at most one digest an hour.",
    "Config reloads are atomic: the new settings are validated fully before they replace the old.",
    "Background jobs carry a correlation id so that their logs can be joined with the request that scheduled them.",
    "The API returns 409 when two writers race on the same revision.",
    "We keep the protobuf definitions in a separate repository and vendor a tagged release.",
    "Memory usage grew after the upgrade because the new parser keeps a larger lookahead buffer.",
    "On startup the service replays the write-ahead log up to the last checkpoint.",
    "The load test ramps to 2,000 requests per second over five minutes and holds for twenty.",
    "Each shard reports its own metrics; the aggregator sums them every fifteen seconds.",
    "Cold starts are dominated by importing the ORM models, not by opening connections.",
]


def plural(noun: str) -> str:
    if noun.endswith("y"):
        return noun[:-1] + "ies"
    if noun.endswith(("ch", "sh", "s")):
        return noun + "es"
    return noun + "s"


def paragraph(rng: random.Random, n: tuple[int, int] = (3, 6)) -> str:
    return " ".join(rng.sample(SENTENCES, rng.randint(*n)))


def _ts(rng: random.Random) -> dt.datetime:
    return dt.datetime(
        2026, rng.randint(1, 11), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    )


def private_ip(rng: random.Random) -> str:
    return rng.choice(
        [
            f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        ]
    )


def _fill(rng: random.Random, size: int, line_fn) -> list[str]:
    lines, total = [], 0
    while total < size:
        ln = line_fn()
        lines.append(ln)
        total += len(ln) + 1
    return lines


# -- generators ------------------------------------------------------------------


def app_log(rng: random.Random, size: int) -> list[str]:
    t = _ts(rng)
    svc = rng.choice(PROJECTS)

    def line():
        nonlocal t
        t += dt.timedelta(milliseconds=rng.randint(3, 4000))
        lvl = rng.choices(["INFO", "DEBUG", "WARN", "ERROR"], [60, 30, 8, 2])[0]
        mod = rng.choice(MODULES)
        msg = rng.choice(
            [
                f"GET /api/v2/{plural(rng.choice(NOUNS))}/{rng.randint(1, 99999)} 200 {rng.randint(2, 400)}ms client={private_ip(rng)}",
                f"POST /api/v2/{plural(rng.choice(NOUNS))} 201 {rng.randint(5, 900)}ms request_id={uid(rng)}",
                f"{rng.choice(VERBS)}_{rng.choice(NOUNS)} finished in {rng.uniform(0.01, 9):.3f}s rows={rng.randint(0, 50000)}",
                f"cache {'hit' if rng.random() < 0.7 else 'miss'} key={rng.choice(NOUNS)}:{pick(rng, HEX, 12)}",
                f"lease renewed partition={rng.randint(0, 63)} holder=worker-{rng.randint(1, 12)}",
                f"pool stats size=10 in_use={rng.randint(0, 10)} waiting={rng.randint(0, 3)}",
                f"retrying {rng.choice(NOUNS)} after {rng.choice(['timeout', 'connection reset', '503 from upstream'])} attempt={rng.randint(1, 5)}",
                f"consumer lag group={rng.choice(MODULES)} topic={plural(rng.choice(NOUNS))} lag={rng.randint(0, 9000)}",
                f"upstream {private_ip(rng)}:{rng.choice([5432, 6379, 8080, 9092])} latency_ms={rng.randint(1, 90)}",
            ]
        )
        return f"{t.isoformat(timespec='milliseconds')}Z {lvl:<5} [{svc}.{mod}] {msg}"

    return _fill(rng, size, line)


def json_log(rng: random.Random, size: int) -> list[str]:
    t = _ts(rng)

    def line():
        nonlocal t
        t += dt.timedelta(milliseconds=rng.randint(5, 3000))
        rec = {
            "ts": t.isoformat(timespec="milliseconds") + "Z",
            "level": rng.choices(["info", "debug", "warn"], [6, 3, 1])[0],
            "logger": f"{rng.choice(PROJECTS)}.{rng.choice(MODULES)}",
            "msg": rng.choice(
                ["request completed", "job finished", "cache refreshed", "lease renewed", "batch committed"]
            ),
            "duration_ms": rng.randint(1, 2500),
            "trace_id": pick(rng, HEX, 32),
            "span_id": pick(rng, HEX, 16),
        }
        return json.dumps(rec)

    return _fill(rng, size, line)


_PY_BLOCKS = [
    '''def {verb}_{nouns}(session, tenant_id: int, *, limit: int = 500) -> list[{Noun}]:
    """{verb_cap} up to ``limit`` {nouns} for one tenant, oldest first."""
    query = (
        session.query({Noun})
        .filter({Noun}.tenant_id == tenant_id, {Noun}.deleted_at.is_(None))
        .order_by({Noun}.created_at)
        .limit(limit)
    )
    return list(query)
''',
    '''class {Noun}Cache:
    """A small LRU in front of the {noun} table; entries expire after ``ttl`` seconds."""

    def __init__(self, ttl: float = 30.0, size: int = 1024) -> None:
        self._ttl = ttl
        self._size = size
        self._data: OrderedDict[int, tuple[float, {Noun}]] = OrderedDict()

    def get(self, key: int) -> {Noun} | None:
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        self._data.move_to_end(key)
        return hit[1]

    def put(self, key: int, value: {Noun}) -> None:
        self._data[key] = (time.monotonic() + self._ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)
''',
    """async def {verb}_batch(client: httpx.AsyncClient, items: Sequence[{Noun}]) -> int:
    sent = 0
    for chunk in chunked(items, 100):
        resp = await client.post("/v2/{nouns}:batch", json=[i.to_dict() for i in chunk])
        if resp.status_code == 429:
            await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
            resp = await client.post("/v2/{nouns}:batch", json=[i.to_dict() for i in chunk])
        resp.raise_for_status()
        sent += len(chunk)
    log.info("{verb} batch done", extra={{"count": sent}})
    return sent
""",
    """@dataclass(frozen=True)
class {Noun}Settings:
    batch_size: int = 250
    max_retries: int = 5
    backoff_base: float = 0.2
    backoff_cap: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_cap, self.backoff_base * 2 ** attempt) * random.random()
""",
    """def parse_{noun}_row(row: Mapping[str, str]) -> {Noun}:
    try:
        amount = Decimal(row["amount"])
    except (KeyError, InvalidOperation) as exc:
        raise ValueError(f"bad amount in row {{row.get('id')!r}}") from exc
    return {Noun}(
        id=int(row["id"]),
        tenant_id=int(row["tenant_id"]),
        amount=amount,
        currency=row.get("currency", "EUR").upper(),
        created_at=datetime.fromisoformat(row["created_at"]),
    )
""",
    """def test_{verb}_{noun}_is_idempotent(db, make_{noun}):
    item = make_{noun}(tenant_id=7)
    first = {verb}_{nouns}(db, 7)
    second = {verb}_{nouns}(db, 7)
    assert [x.id for x in first] == [x.id for x in second] == [item.id]
""",
    """class {Noun}Repository(Protocol):
    def get(self, id: int) -> {Noun} | None: ...
    def save(self, item: {Noun}) -> None: ...
    def delete(self, id: int) -> bool: ...
""",
    """def chunked(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
""",
    """@router.get("/{nouns}/{{item_id}}")
async def get_{noun}(item_id: int, repo: {Noun}Repository = Depends(get_repo)) -> {Noun}Out:
    item = repo.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="{noun} not found")
    return {Noun}Out.model_validate(item)
""",
    """def {verb}_window(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    out = []
    cur = start
    while cur < end:
        nxt = min(cur + step, end)
        out.append((cur, nxt))
        cur = nxt
    return out
""",
]


def python_module(rng: random.Random, size: int) -> list[str]:
    head = [
        f'"""{rng.choice(MODULES).capitalize()} helpers for {rng.choice(PROJECTS)}."""',
        "",
        "from __future__ import annotations",
        "",
        "import asyncio",
        "import logging",
        "import random",
        "import time",
        "from collections import OrderedDict",
        "from dataclasses import dataclass",
        "from datetime import datetime, timedelta",
        "from decimal import Decimal, InvalidOperation",
        "from typing import Iterator, Mapping, Protocol, Sequence, TypeVar",
        "",
        "import httpx",
        "",
        "log = logging.getLogger(__name__)",
        'T = TypeVar("T")',
        "",
    ]
    lines, total = list(head), sum(len(x) + 1 for x in head)
    while total < size:
        noun, verb = rng.choice(NOUNS), rng.choice(VERBS)
        noun_cap = "".join(p.capitalize() for p in noun.split("_"))
        block = rng.choice(_PY_BLOCKS).format(
            noun=noun, Noun=noun_cap, nouns=plural(noun), Nouns=plural(noun_cap), verb=verb, verb_cap=verb.capitalize()
        )
        for ln in [*block.splitlines(), "", ""]:
            lines.append(ln)
            total += len(ln) + 1
    return lines


_TS_BLOCKS = [
    """export async function {verb}{Nouns}(client: ApiClient, tenantId: number): Promise<{Noun}[]> {{
  const res = await client.get<{Noun}[]>(`/v2/tenants/${{tenantId}}/{nouns}`, {{ timeout: 10_000 }});
  if (res.status !== 200) {{
    throw new ApiError(`unexpected status ${{res.status}}`, res.status);
  }}
  return res.data.filter((x) => !x.deletedAt);
}}
""",
    """export function use{Noun}Filter(items: {Noun}[], query: string): {Noun}[] {{
  const q = query.trim().toLowerCase();
  return useMemo(
    () => (q ? items.filter((i) => i.name.toLowerCase().includes(q)) : items),
    [items, q],
  );
}}
""",
    """export interface {Noun} {{
  id: number;
  tenantId: number;
  name: string;
  createdAt: string;
  deletedAt?: string | null;
  tags: string[];
}}
""",
    """describe("{verb}{Nouns}", () => {{
  it("drops deleted rows", async () => {{
    const client = fakeClient([{{ id: 1, deletedAt: null }}, {{ id: 2, deletedAt: "2026-01-02" }}]);
    const rows = await {verb}{Nouns}(client, 3);
    expect(rows.map((r) => r.id)).toEqual([1]);
  }});
}});
""",
]


def typescript_module(rng: random.Random, size: int) -> list[str]:
    lines = ['import { useMemo } from "react";', 'import { ApiClient, ApiError } from "../api/client";', ""]
    total = sum(len(x) + 1 for x in lines)
    while total < size:
        noun, verb = rng.choice(NOUNS), rng.choice(VERBS)
        noun_cap = "".join(p.capitalize() for p in noun.split("_"))
        block = rng.choice(_TS_BLOCKS).format(
            noun=noun, Noun=noun_cap, nouns=plural(noun), Nouns=plural(noun_cap), verb=verb
        )
        for ln in [*block.splitlines(), ""]:
            lines.append(ln)
            total += len(ln) + 1
    return lines


_HEADINGS = [
    "Overview",
    "Architecture",
    "Configuration",
    "Running locally",
    "Deployment",
    "Operations",
    "Troubleshooting",
    "Performance",
    "Data model",
    "Testing",
    "Release process",
    "FAQ",
    "Limits",
    "Upgrading",
]


def markdown_doc(rng: random.Random, size: int) -> list[str]:
    proj = rng.choice(PROJECTS)
    lines = [f"# {proj}", "", paragraph(rng), ""]
    total = sum(len(x) + 1 for x in lines)
    while total < size:
        block = [f"## {rng.choice(_HEADINGS)}", "", paragraph(rng), ""]
        r = rng.random()
        if r < 0.3:
            block += [f"- {s}" for s in rng.sample(SENTENCES, 4)] + [""]
        elif r < 0.5:
            block += [
                "```bash",
                f"make {rng.choice(['build', 'test', 'lint', 'bench'])}",
                f"./bin/{proj} --config config/{rng.choice(['dev', 'staging'])}.toml",
                "```",
                "",
            ]
        elif r < 0.65:
            block += ["| setting | default | meaning |", "|---|---|---|"]
            block += [
                f"| `{rng.choice(NOUNS)}.{rng.choice(['timeout', 'batch_size', 'retries', 'ttl'])}` | {rng.randint(1, 500)} | {rng.choice(SENTENCES)} |"
                for _ in range(4)
            ] + [""]
        block += [paragraph(rng), ""]
        lines += block
        total += sum(len(x) + 1 for x in block)
    return lines


def ci_log(rng: random.Random, size: int) -> list[str]:
    t = _ts(rng)

    def stamp():
        nonlocal t
        t += dt.timedelta(milliseconds=rng.randint(10, 2500))
        return t.isoformat(timespec="microseconds") + "0Z"

    lines = [
        f"{stamp()} ##[group]Run actions/checkout@v4",
        f"{stamp()} Syncing repository: {rng.choice(PROJECTS)}",
        f"{stamp()} ##[endgroup]",
    ]
    total = 200

    def line():
        r = rng.random()
        if r < 0.35:
            pkg = rng.choice(
                ["pydantic", "httpx", "sqlalchemy", "pytest", "ruff", "mypy", "anyio", "orjson", "structlog", "alembic"]
            )
            return f"{stamp()} Collecting {pkg}>={rng.randint(0, 3)}.{rng.randint(0, 20)}"
        if r < 0.7:
            return f"{stamp()} tests/test_{rng.choice(MODULES)}.py::test_{rng.choice(VERBS)}_{rng.choice(NOUNS)} PASSED [{rng.randint(1, 99):>3}%]"
        if r < 0.85:
            return f"{stamp()}   Downloading {rng.choice(['wheel', 'sdist'])} ({rng.randint(10, 900)} kB)"
        return f"{stamp()} ##[group]Run {rng.choice(['make lint', 'make test', 'python -m build', 'docker build -t app .'])}"

    lines += _fill(rng, size - total, line)
    return lines


def html_doc(rng: random.Random, size: int) -> list[str]:
    proj = rng.choice(PROJECTS)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{proj} documentation</title>",
        '<link rel="stylesheet" href="/static/css/main.4f2a9c1e.css">',
        "</head>",
        "<body>",
        '<nav class="sidebar"><ul>'
        + "".join(f'<li><a href="/docs/{h.lower().replace(" ", "-")}">{h}</a></li>' for h in _HEADINGS)
        + "</ul></nav>",
        '<main class="content">',
        f"<h1>{proj}</h1>",
    ]
    total = sum(len(x) + 1 for x in lines)
    while total < size:
        block = [f"<h2>{rng.choice(_HEADINGS)}</h2>", f"<p>{paragraph(rng)}</p>"]
        if rng.random() < 0.3:
            block += [
                "<pre><code>"
                + f"pip install {proj}=={rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
                + "</code></pre>"
            ]
        block += [f"<p>{paragraph(rng)}</p>"]
        lines += block
        total += sum(len(x) + 1 for x in block)
    return [*lines, "</main>", "<footer><p>Built with Sphinx.</p></footer>", "</body>", "</html>"]


def json_records(rng: random.Random, size: int) -> list[str]:
    recs, total = [], 0
    while total < size:
        rec = {
            "id": rng.randint(1000, 999999),
            "number": rng.randint(1, 9000),
            "title": f"{rng.choice(VERBS).capitalize()} {plural(rng.choice(NOUNS)).replace('_', ' ')} when {rng.choice(['the cache is cold', 'a lease expires', 'the tenant is archived', 'the export is empty'])}",
            "state": rng.choice(["open", "closed"]),
            "labels": rng.sample(["bug", "enhancement", "perf", "docs", "good first issue", "needs-triage"], 2),
            "comments": rng.randint(0, 40),
            "created_at": _ts(rng).isoformat() + "Z",
            "user": {
                "login": rng.choice(["mkowal", "tnakamura", "priya-i", "okafor-dev", "hlindqvist", "rafa-c"]),
                "type": "User",
            },
            "node_id": pick(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 20),
        }
        s = json.dumps(rec, indent=2)
        recs.append(s)
        total += len(s) + 3
    text = "[\n" + ",\n".join(recs) + "\n]"
    return text.splitlines()


def k8s_yaml(rng: random.Random, size: int) -> list[str]:
    lines, total = [], 0
    while total < size:
        name = f"{rng.choice(PROJECTS)}-{rng.choice(MODULES)}"
        block = f"""---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  replicas: {rng.randint(1, 6)}
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
    spec:
      containers:
        - name: app
          image: registry.internal/{name}@sha256:{pick(rng, HEX, 64)}
          ports:
            - containerPort: {rng.choice([8080, 8000, 9000])}
          resources:
            requests: {{cpu: {rng.choice(["100m", "250m", "500m"])}, memory: {rng.choice(["128Mi", "256Mi", "512Mi"])}}}
            limits: {{memory: {rng.choice(["512Mi", "1Gi"])}}}
          readinessProbe:
            httpGet: {{path: /healthz, port: http}}
            periodSeconds: 10
          env:
            - name: LOG_LEVEL
              value: {rng.choice(["info", "debug"])}
            - name: WORKERS
              value: "{rng.randint(2, 8)}"
""".splitlines()
        lines += block
        total += sum(len(x) + 1 for x in block)
    return lines


def pytest_output(rng: random.Random, size: int) -> list[str]:
    lines = [
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.7, pytest-8.3.4, pluggy-1.5.0",
        f"rootdir: /home/dev/src/{rng.choice(PROJECTS)}",
        "collected 1412 items",
        "",
    ]

    def line():
        mod = rng.choice(MODULES)
        return f"tests/test_{mod}.py::test_{rng.choice(VERBS)}_{rng.choice(NOUNS)}[{rng.choice(['sqlite', 'postgres', 'empty', 'large'])}] PASSED"

    return lines + _fill(rng, size, line)


def csv_metrics(rng: random.Random, size: int) -> list[str]:
    t = _ts(rng)
    lines = ["timestamp,service,endpoint,requests,errors,p50_ms,p99_ms"]

    def line():
        nonlocal t
        t += dt.timedelta(minutes=1)
        return f"{t.isoformat()}Z,{rng.choice(PROJECTS)},/v2/{plural(rng.choice(NOUNS))},{rng.randint(100, 9000)},{rng.randint(0, 20)},{rng.randint(2, 40)},{rng.randint(40, 900)}"

    return lines + _fill(rng, size, line)


LONG = {
    "application log": app_log,
    "JSON log stream": json_log,
    "python module": python_module,
    "typescript module": typescript_module,
    "markdown documentation": markdown_doc,
    "CI job log": ci_log,
    "HTML documentation page": html_doc,
    "GitHub API JSON response": json_records,
    "kubernetes manifests": k8s_yaml,
    "pytest output": pytest_output,
    "metrics CSV export": csv_metrics,
}


SNIPPET_TS = "2026-06-14T10:22:31.004"
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}")


def fit_timestamp(snippet: str, before: str) -> str:
    """Give a buried log line the timestamp of the line above it."""
    m = _TS.search(before)
    return snippet.replace(SNIPPET_TS, m.group(0), 1) if m and SNIPPET_TS in snippet else snippet


def bury(lines: list[str], snippet: str, rng: random.Random) -> str:
    at = int(len(lines) * rng.uniform(0.35, 0.65))
    snippet = fit_timestamp(snippet, lines[at - 1] if at else "")
    return "\n".join(lines[:at] + snippet.splitlines() + lines[at:]) + "\n"


def long_size(rng: random.Random) -> int:
    return int(rng.choice([5, 7, 9, 12, 16, 20, 26, 32, 40, 48]) * 1024 * rng.uniform(0.95, 1.05))
