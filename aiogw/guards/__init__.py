"""Guards: prompt-injection, credential and PII scanning on precompiled Hyperscan
databases. `catalog` holds the patterns (data: catalog.toml), `databases` compiles them,
`engine` runs them, `validators` and `normalize` are the plain functions they rely on.
The stages: `check` (the request guard) and `answer_stage` (the answer guard, whose
scans are in `response`)."""
