"""The audit benches: the generated database holds what it says (a row the schema
refuses must fail the generation, not leave the queries timed on an empty table); the
on/off rounds pair every process; bad arguments stop before anything is started."""

import sqlite3

import pytest

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
    from bench.harness import pairing

    for n_off, n_on in ((1, 1), (2, 2), (3, 3), (2, 3), (3, 1)):
        rounds = n_off * n_on
        seen = {pairing(i, n_off, n_on) for i in range(rounds)}
        assert seen == {(a, b) for a in range(n_off) for b in range(n_on)}, (n_off, n_on)


def test_the_stream_clients_command_is_one_its_own_parser_reads():
    from bench import streams

    cmd = streams.command("http://127.0.0.1:1/x", "k", 1, concurrency=16, chunks=50, delay=0, duration=2.5, warmup=0.3)
    assert cmd[:3] == ["taskset", "-c", "1"] and cmd[4:6] == ["-m", "bench.streams"]
    args = streams.parser().parse_args(cmd[6:])
    assert (args.url, args.key, args.concurrency, args.chunks, args.delay, args.duration, args.warmup) == (
        "http://127.0.0.1:1/x", "k", 16, 50, 0.0, 2.5, 0.3
    )


@pytest.mark.parametrize("argv", [["--duration", "0"], ["--duration", "-1"], ["--rounds", "0"], ["--pairs", "0"],
                                  ["--configs", ","], ["--configs", "nonsense"]])
def test_audit_alone_refuses_what_it_cannot_measure_before_starting_anything(argv, capsys, monkeypatch):
    from bench import audit_alone

    monkeypatch.setattr(audit_alone, "measure", lambda *a: pytest.fail("measured despite a bad argument"))
    with pytest.raises(SystemExit) as stopped:
        audit_alone.main(argv)
    assert stopped.value.code == 2 and "error:" in capsys.readouterr().err
