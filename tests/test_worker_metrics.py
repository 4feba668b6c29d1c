"""Expositions of several workers merged into one (aiogw.worker_metrics.merge)."""

from __future__ import annotations

from aiogw.worker_metrics import merge

ONE = b"""# HELP aiogw_requests_total Exchanges.
# TYPE aiogw_requests_total counter
aiogw_requests_total{route="a",status="200"} 3
# HELP aiogw_active_streams Streams.
# TYPE aiogw_active_streams gauge
aiogw_active_streams 1
# HELP aiogw_request_duration_seconds Time.
# TYPE aiogw_request_duration_seconds histogram
aiogw_request_duration_seconds_bucket{route="a",le="0.1"} 2
aiogw_request_duration_seconds_sum{route="a"} 0.15
aiogw_request_duration_seconds_count{route="a"} 3
"""


def test_each_family_once_with_every_workers_samples_labelled():
    two = ONE.replace(b"} 3", b"} 5").replace(b"streams 1", b"streams 0")
    merged = merge([(0, ONE), (1, two)]).decode()
    lines = merged.splitlines()
    assert lines.count("# TYPE aiogw_requests_total counter") == 1
    assert lines[:4] == [
        "# HELP aiogw_requests_total Exchanges.",
        "# TYPE aiogw_requests_total counter",
        'aiogw_requests_total{worker="0",route="a",status="200"} 3',
        'aiogw_requests_total{worker="1",route="a",status="200"} 5',
    ]
    assert 'aiogw_active_streams{worker="0"} 1' in lines and 'aiogw_active_streams{worker="1"} 0' in lines
    # A histogram's samples stay under their family, in order, each worker's together.
    start = lines.index("# TYPE aiogw_request_duration_seconds histogram")
    assert lines[start + 1:] == [
        'aiogw_request_duration_seconds_bucket{worker="0",route="a",le="0.1"} 2',
        'aiogw_request_duration_seconds_sum{worker="0",route="a"} 0.15',
        'aiogw_request_duration_seconds_count{worker="0",route="a"} 3',
        'aiogw_request_duration_seconds_bucket{worker="1",route="a",le="0.1"} 2',
        'aiogw_request_duration_seconds_sum{worker="1",route="a"} 0.15',
        'aiogw_request_duration_seconds_count{worker="1",route="a"} 5',
    ]


def test_empty_labels_and_a_family_only_one_worker_has():
    merged = merge([(0, b"# TYPE x gauge\nx{} 1\n"), (2, b"# TYPE x gauge\nx{} 2\n# TYPE y gauge\ny 7\n")]).decode()
    assert merged.splitlines() == ["# TYPE x gauge", 'x{worker="0"} 1', 'x{worker="2"} 2', "# TYPE y gauge",
                                   'y{worker="2"} 7']
