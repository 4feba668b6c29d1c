"""Load bench for aiogw: `make bench` (`python -m bench.run`); figures land in RESULTS.md.

Timings live here, never in tests (STYLE.md §15). Every figure is a ratio against a
direct call to the fake upstream and against `bench.passthrough`, a minimal aiohttp
proxy that stands for the best a simple Python proxy can do, measured in the same run.

    python -m bench.run [--quick]        the load bench (`make bench`), ~4.5 minutes
    python -m bench.audit_storage        audit storage size, queries and prune, ~2 minutes
    python -m bench.profile TARGET WORKLOAD   py-spy on one target under one workload
    python -m bench.guard_quality        guard recall and false positives on the corpus
"""
