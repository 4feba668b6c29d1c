"""Load bench for aiogw: `make bench` (`python -m bench.run`); figures land in RESULTS.md,
the lab notes behind them in NOTES.md.

Timings live here, never in tests (STYLE.md §15). Every comparison runs on one loop,
`bench.harness`: a suite is its sides (targets from `bench.targets`: the fake upstream
direct, `bench.passthrough`, aiogw configs started from TOML, the peers of
`bench.peers`) × its workloads (`bench.loads`: wrk bodies, streams, agent sessions),
rounds interleaved, medians, a section of RESULTS.md. Each command is a suite:

    python -m bench.run [--quick]        the load bench (`make bench`)
    python -m bench.full [--quick]       aiogw beside its peers on every workload (`make bench-full`)
    python -m bench.peers                a first look at the peers, 1 KB only (`make bench-peers`)
    python -m bench.ops                  metrics and the exchange log, off against on (`make bench-ops`)
    python -m bench.limits               limits off against on; the admission estimate's error
    python -m bench.audit_alone          the audit off against on
    python -m bench.commits --before REV this tree against another commit
    python -m bench.sweep                open streams up to 5,000: memory per stream
    python -m bench.audit_storage        audit storage size, queries and prune
    python -m bench.profile TARGET WORKLOAD   py-spy on one target under one workload
    python -m bench.guard_quality        guard recall and false positives on the corpus
"""
