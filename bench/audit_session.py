"""Audit storage of one long agent session: database bytes against request bytes.

A 200-turn Claude Code session (bench.agent_text: a ~30 KB system prompt and tool
list, a growing history, a few KB of tool output per turn) goes through a real aiogw
(its defaults: audit and guards on) to the fake upstream, as Claude Code sends it:
streaming, `?beta=true`, its headers and one session id. Then the gateway stops (its
writer drains), the WAL is checkpointed (TRUNCATE) and the state database's files
are weighed against the request bytes the agent sent.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

from bench import agent_text, procs
from bench.targets import ROOT, start_fake, start_gateway

TURNS = 200


async def drive(url: str, key: str, turns: int) -> dict[str, float]:
    session = agent_text.Session(seed=11)
    headers = {
        "x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "user-agent": "claude-cli/2.0.14 (external, cli)", "x-app": "cli",
        "X-Claude-Code-Session-Id": str(uuid.UUID(int=0x5E55_10)),
    }
    sent = answered = 0
    statuses: dict[int, int] = {}
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        for _ in range(turns):
            body = orjson.dumps(session.body(stream=True))
            sent += len(body)
            async with http.post(url + "?beta=true", data=body, headers=headers) as resp:
                answered += len(await resp.read())
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            session.turn()
    return {"request_bytes": sent, "response_bytes": answered, "seconds": time.perf_counter() - t0,
            "statuses": statuses, "last_body": len(body), "first_body": len(orjson.dumps(agent_text.Session(11).body()))}


def _weigh(db: Path) -> dict[str, float]:
    conn = sqlite3.connect(db)
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        files = {p.name: p.stat().st_size for p in db.parent.glob(db.name + "*")}
        q = conn.execute
        out = {
            "checkpoint_busy": busy,
            "db": files.get(db.name, 0), "wal": files.get(db.name + "-wal", 0),
            "rows": q("SELECT count(*) FROM exchanges").fetchone()[0],
            "ok_rows": q("SELECT count(*) FROM exchanges WHERE status = 200").fetchone()[0],
            "findings": q("SELECT coalesce(sum(findings), 0) FROM exchanges").fetchone()[0],
            "blobs": q("SELECT count(*) FROM blobs").fetchone()[0],
            "blob_bytes": q("SELECT coalesce(sum(length(data)), 0) FROM blobs").fetchone()[0],
            "blob_raw": q("SELECT coalesce(sum(size), 0) FROM blobs").fetchone()[0],
            "payload_bytes": q("SELECT coalesce(sum(length(request_meta)) + sum(length(message_refs)) + "
                               "sum(coalesce(length(response), 0)) + sum(coalesce(length(raw_stream), 0)) + "
                               "sum(coalesce(length(request_raw), 0)), 0) FROM payloads").fetchone()[0],
            "page_size": q("PRAGMA page_size").fetchone()[0],
            "freelist": q("PRAGMA freelist_count").fetchone()[0],
        }
    finally:
        conn.close()
    return out


def run(tmp: Path, turns: int = TURNS) -> dict[str, float]:
    servers = procs.Procs(tmp, ROOT)
    try:
        _, fake_port = start_fake(servers)
        gw = start_gateway(servers, tmp, "aiogw", fake_port)
        sent = asyncio.run(drive(gw.url, gw.key, turns))
    finally:
        servers.stop_all()  # SIGTERM: the gateway drains its audit queue and closes
    weighed = _weigh(tmp / "aiogw" / "state.db")
    return {**sent, **weighed, "turns": turns}


def markdown(r: dict) -> list[str]:
    stored = r["db"] + r["wal"]
    ratio = stored / r["request_bytes"]
    ok = ratio <= 0.05 and r["ok_rows"] == r["turns"]
    statuses = ", ".join(f"{n} × {code}" for code, n in sorted(r["statuses"].items()))
    mib = 2**20
    return [
        f"- **{'PASS' if ok else 'MISS'}** storage: the database holds the whole session in "
        f"{stored / mib:.2f} MiB, **{ratio:.2%}** of the {r['request_bytes'] / mib:.1f} MiB of requests the agent "
        f"sent (target ≤ 5%). Answers: {statuses}; audit rows: {r['rows']} ({r['ok_rows']} with status 200).",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| turns (requests) | {r['turns']} |",
        f"| first / last request body | {r['first_body'] / 1024:,.1f} KiB / {r['last_body'] / 1024:,.1f} KiB |",
        f"| request bytes sent, total | {r['request_bytes']:,} |",
        f"| response bytes received | {r['response_bytes']:,} |",
        f"| database file after `PRAGMA wal_checkpoint(TRUNCATE)` | {r['db']:,} |",
        f"| WAL file after the checkpoint | {r['wal']:,} |",
        f"| stored / sent | {ratio:.2%} |",
        f"| stored contents (blobs): count, bytes stored, bytes before compression | {r['blobs']:,}, "
        f"{r['blob_bytes']:,}, {r['blob_raw']:,} |",
        f"| payload rows' bytes (refs, metadata, answers, raw streams) | {r['payload_bytes']:,} |",
        f"| guard findings recorded | {r['findings']} |",
        f"| free pages in the file | {r['freelist']} × {r['page_size']} B |",
        f"| session wall time | {r['seconds']:.1f} s |",
    ]
