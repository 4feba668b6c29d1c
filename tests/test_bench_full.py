"""bench.full's report: the verdicts against issue 7's targets and the tables, from made-up
measures (the bench itself runs for minutes and is not part of the suite)."""

from __future__ import annotations

from bench import full


def _http(rps: float, p50: float) -> dict:
    return {"rps": rps, "p50": p50, "p99": p50 * 2, "p999": p50 * 3, "errors": 0, "cpu_us": 1e6 / rps}


def _stream(rps: float, ttfb: float, gap: float) -> dict:
    return {"rps": rps, "ttfb_p50": ttfb, "ttfb_p99": ttfb * 2, "gap_p50": 5.0, "gap_p99": gap, "errors": 0,
            "cpu_us": 3000.0}


def _got(aiogw_small: float) -> dict:
    small = {"direct": 5000, "passthrough": 4000, "aiogw": aiogw_small, "nginx": 4000, "litellm": 50, "portkey": 600}
    return {
        "small": {name: [_http(rps, 1000 / rps), _http(rps, 1000 / rps)] for name, rps in small.items()},
        "large": {name: [_http(rps, 100 / rps)] for name, rps in
                  {"direct": 900, "passthrough": 800, "aiogw": 450, "litellm": 30, "portkey": 100}.items()},
        "streams-50": {"direct": [_stream(150, 5.0, 9.0)], "passthrough": [_stream(150, 5.2, 9.0)],
                       "aiogw": [_stream(148, 5.9, 9.1)], "nginx": [_stream(150, 5.0, 9.0)]},
    }


def _sweep(open_at_once: int, failed: int = 0) -> list[dict]:
    return [{"target": "aiogw", "level": 5000, "open": open_at_once, "failed": failed, "rss_open_mb": 350.0}]


def test_each_target_gets_its_verdict():
    lines = full.verdicts(_got(3000), {"aiogw": 120.0}, _sweep(5000))
    text = "\n".join(lines)
    assert "**PASS** aiogw, small: 75% of the pass-through's" in text
    assert "**MISS** aiogw, large: 56% of the pass-through's" in text
    assert "**PASS** aiogw, small: 60.0× litellm's" in text and "**MISS** aiogw, small: 5.0× portkey's" not in text
    assert "**PASS** aiogw, small: 5.0× portkey's" in text
    assert "**PASS** aiogw, streams-50: 0.99× nginx's streams/s" in text
    assert "**PASS** aiogw, streams-50: TTFB p50 +0.70 ms" in text
    assert "**PASS** aiogw, streams-50: adds +0.10 ms to the inter-chunk gap p99" in text
    assert "**PASS** aiogw peak RSS over the runs: 120 MiB" in text
    assert "**PASS** aiogw with 5,000 streams: 5,000 open at once" in text


def test_misses_are_called_misses():
    text = "\n".join(full.verdicts(_got(1500), {"aiogw": 227.0}, _sweep(4096)))
    assert "**MISS** aiogw, small: 38% of the pass-through's" in text
    assert "**MISS** aiogw, small: 2.5× portkey's" in text
    assert "**MISS** aiogw peak RSS over the runs: 227 MiB" in text
    # Streams that waited for a connection were not open at once: not a pass, however little memory.
    assert "**MISS** aiogw with 5,000 streams: 4,096 open at once" in text
    assert "**MISS**" in "\n".join(full.verdicts(_got(3000), {}, _sweep(5000, failed=1)))


def test_every_table_row_has_as_many_cells_as_its_header():
    got = _got(3000)
    lines = full.tables(got, {"aiogw": 120.0})
    for i, line in enumerate(lines):
        if line.startswith("| target |"):
            width = line.count("|")
            assert lines[i + 1].count("|") == width
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                assert row.count("|") == width, row


def test_more_streams_than_nginx_is_no_miss():
    got = {"streams-50": {"direct": [_stream(150, 5.0, 9.0)], "aiogw": [_stream(170, 5.0, 9.0)],
                          "nginx": [_stream(140, 5.0, 9.0)]}}
    assert "- **PASS** aiogw, streams-50: 1.21× nginx's streams/s (target: at least 0.95×)" in full.verdicts(got, {}, [])
    got["streams-50"]["aiogw"] = [_stream(130, 5.0, 9.0)]
    assert "- **MISS** aiogw, streams-50: 0.93× nginx's streams/s (target: at least 0.95×)" in full.verdicts(got, {}, [])
