"""The 200-turn agent session's audit storage on PostgreSQL: database bytes against the
request bytes the agent sent (target ≤ 5%, as on SQLite: bench.audit_session).

    python -m bench.audit_session_pg [--turns 200]

The same session (bench.agent_text, seed 11) through an aiogw as shipped whose state is
a PostgreSQL database of the bench's own durable server (bench.pgcluster); after the
gateway stops (its writer drains), the audit tables are weighed with
`pg_total_relation_size` (heap, TOAST and indexes) of every day partition of
`exchanges` and `payloads`, and of `blobs`. Prints only: the figure goes into
bench/RESULTS.md by hand, with this command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from bench import audit_session, procs
from bench.pgcluster import BenchPg
from bench.postgres import PASSWORD_ENV, _migrate
from bench.targets import ROOT, Gateway, start_fake, start_gateway

WEIGH = """
SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) + pg_total_relation_size('blobs')
FROM pg_inherits WHERE inhparent IN ('exchanges'::regclass, 'payloads'::regclass)
"""


def run(tmp: Path, turns: int) -> dict:
    with BenchPg() as db:
        db.create_database("session")
        url = f"postgresql://aiogw@127.0.0.1:{db.port}/session"
        asyncio.run(_migrate(url, db.password))
        os.environ[PASSWORD_ENV] = db.password
        servers = procs.Procs(tmp, ROOT)
        try:
            _, fake_port = start_fake(servers)
            state = f'url = "{url}"\npassword = {{ env = "{PASSWORD_ENV}" }}\n'
            gw = start_gateway(servers, tmp, "aiogw", fake_port, Gateway(state=state))
            sent = asyncio.run(audit_session.drive(gw.url, gw.key, turns))
        finally:
            servers.stop_all()  # SIGTERM: the gateway drains its audit queue and closes
        stored = int(db.sql(WEIGH, database="session").strip())
        rows = int(db.sql("SELECT count(*) FROM exchanges WHERE status = 200", database="session").strip())
        days = int(db.sql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'exchanges'::regclass",
                          database="session").strip())
    return {**sent, "stored": stored, "ok_rows": rows, "partitions": days, "turns": turns}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.audit_session_pg", description=__doc__.splitlines()[0])
    p.add_argument("--turns", type=int, default=audit_session.TURNS)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aiogw-session-pg-") as tmp:
        r = run(Path(tmp), args.turns)
    ratio = r["stored"] / r["request_bytes"]
    verdict = "PASS" if ratio <= 0.05 and r["ok_rows"] == r["turns"] else "MISS"
    mib = 2**20
    print(f"{verdict}: {r['turns']} turns, {r['ok_rows']} answered 200; requests sent {r['request_bytes'] / mib:.1f} "
          f"MiB; audit tables {r['stored'] / mib:.2f} MiB ({r['partitions']} day partitions of exchanges, each "
          f"with its payloads); stored / sent {ratio:.2%} (target ≤ 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
