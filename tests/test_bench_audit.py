"""The audit bench's generated database holds what it says: a row the schema refuses
must fail the generation, not leave the queries timed on an empty table."""

import sqlite3

from bench import audit_queries


def test_generated_database_has_every_record(tmp_path):
    db = tmp_path / "audit.db"
    made = audit_queries.generate(db, records=3_000, blobs=200)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM exchanges").fetchone()[0] == made["records"] == 3_000
        assert conn.execute("SELECT count(*) FROM payloads").fetchone()[0] == 3_000
        assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 200
        assert conn.execute("SELECT count(DISTINCT user) FROM exchanges").fetchone()[0] > 21  # the queries pick the 21st
    finally:
        conn.close()


def test_onoff_rounds_pair_every_off_process_with_every_on_process():
    from bench.onoff import pairing

    for n_off, n_on in ((1, 1), (2, 2), (3, 3), (2, 3), (3, 1)):
        rounds = n_off * n_on
        seen = {pairing(i, n_off, n_on) for i in range(rounds)}
        assert seen == {(a, b) for a in range(n_off) for b in range(n_on)}, (n_off, n_on)
