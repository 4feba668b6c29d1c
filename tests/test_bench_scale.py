"""bench.scale's own helpers with plain data: the [limits] table a reload switches, the
process tree's CPU, Redis's command stats, and the report's verdicts from made-up runs
(the bench itself runs for minutes against servers of its own and is not part of the suite)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from bench import scale


def test_a_reload_takes_the_counted_limits_out_and_keeps_the_store():
    text = "[server]\nport = 1\n" + scale.limits_toml("redis://127.0.0.1:6390/3")
    assert tomllib.loads(text)["limits"]["requests_per_minute"] == 100_000_000
    off = tomllib.loads(text.replace(scale.COUNTED, ""))["limits"]
    assert off == {"store": "redis://127.0.0.1:6390/3"}
    assert tomllib.loads(text.replace(scale.COUNTED, "") + scale.COUNTED) == tomllib.loads(text)
    assert "store" not in tomllib.loads(scale.limits_toml(None))["limits"]


def test_the_tree_holds_a_live_child_and_its_cpu_counts():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in scale.tree(os.getpid())
        total, own = scale.tree_seconds(os.getpid())
        assert total >= own > 0
        assert scale.stat_seconds(os.getpid(), reaped=True) >= scale.stat_seconds(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in scale.tree(os.getpid())


def test_evalsha_calls_are_read_from_commandstats():
    stats = ("# Commandstats\r\ncmdstat_info:calls=3,usec=90,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n"
             "cmdstat_evalsha:calls=2000,usec=44000,usec_per_call=22.00,rejected_calls=0,failed_calls=0\r\n")
    assert scale.evalsha(stats) == (2000, 44000)
    assert scale.evalsha("# Commandstats\r\n") == (0, 0)


def _run(rps: float, cpu: float, p50: float = 0.5, errors: int = 0) -> dict[str, float]:
    return {"rps": rps, "cpu_us": cpu, "gw_us": cpu * 0.8, "sup_us": 0.5, "workers_us": cpu * 0.8, "redis_us": cpu * 0.2,
            "p50": p50, "p99": p50 * 3, "errors": errors, "calls": 2.0, "script_us": 20.0, "wrk_us": 20.0,
            "fake_us": 100.0, "machine_us": cpu + 150, "gw_cores": 1.0, "load_cores": 0.5}


def _res(cpu_ratio: float, p50_added: float, on_share: float, errors: int = 0) -> dict:
    return {
        "cpu": {(scale.PACED_NAME, "memory"): [_run(2500, 200), _run(2500, 210)],
                (scale.PACED_NAME, "redis"): [_run(2500, 200 * cpu_ratio, errors=errors), _run(2500, 210 * cpu_ratio)],
                (scale.SATURATED, "memory"): [_run(5000, 170)], (scale.SATURATED, "redis"): [_run(4000, 180)]},
        "latency": {(scale.LONE, "memory"): [_run(2000, 250, 0.40), _run(2000, 250, 0.42)],
                    (scale.LONE, "redis"): [_run(1800, 300, 0.40 + p50_added), _run(1800, 300, 0.42 + p50_added)]},
        "latency_exact": {(scale.LONE, "memory"): [_run(2000, 250, 0.40)],
                          (scale.LONE, "exact"): [_run(1800, 300, 0.40 + 2 * p50_added)]},
        "onoff": {(scale.SATURATED, "off"): [_run(7000, 130)], (scale.SATURATED, "on"): [_run(7000 * on_share, 160)]},
        "scripts": [["1", "1,600", "0", "28 / 30.1", "23 / 24.8", "40 / 41.0"]],
        "workers": {(scale.PACED_NAME, "1 worker"): [_run(2500, 240)], (scale.PACED_NAME, "2 workers"): [_run(2500, 300)],
                    (scale.SATURATED, "1 worker"): [_run(4300, 235)], (scale.SATURATED, "2 workers"): [_run(3900, 265)]},
    }


def test_each_target_gets_its_verdict():
    verdicts, body = scale.report(_res(1.10, 0.12, 0.93))
    text = "\n".join(verdicts)
    assert f"**PASS** CPU an answer, {scale.PACED_NAME}: 2 workers with Redis 1.10×" in text
    assert f"**PASS** CPU an answer, {scale.SATURATED}: 2 workers with Redis 1.06×" in text
    assert "**PASS** added p50, one request at a time, leased: +0.120 ms" in text
    assert "**PASS** added p50, one request at a time, every admission asking Redis: +0.240 ms" in text
    assert "**PASS** limits on in Redis: 93% of limits-off" in text
    assert f"**INFO** 2 workers against 1, both with Redis, {scale.SATURATED}: 0.91× the answers/s" in text
    assert f"{scale.PACED_NAME}: 1.00× the answers/s (per round 1.00), 1.25× the CPU an answer" in text
    assert any(line.startswith("| paced") for line in body) and "cannot show 2×" in "\n".join(body)


def test_misses_and_refusals_are_misses():
    verdicts = "\n".join(scale.report(_res(1.40, 0.35, 0.70))[0])
    assert f"**MISS** CPU an answer, {scale.PACED_NAME}: 2 workers with Redis 1.40×" in verdicts
    assert "**MISS** added p50, one request at a time, leased: +0.350 ms" in verdicts
    assert "**MISS** added p50, one request at a time, every admission asking Redis: +0.700 ms" in verdicts
    assert "**MISS** limits on in Redis: 70% of limits-off" in verdicts
    refused = "\n".join(scale.report(_res(1.0, 0.0, 1.0, errors=3))[0])
    assert f"**MISS** CPU an answer, {scale.PACED_NAME}: 2 workers with Redis 1.00×" in refused
    assert "non-200 answers 3" in refused
