"""Guards: prompt-injection, credential and PII scanning on precompiled Hyperscan
databases. `catalog` holds the patterns (data: catalog.toml), `engine` compiles and
runs them, `validators` and `normalize` are the plain functions they rely on."""
