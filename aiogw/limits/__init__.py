"""Spend and rate limits: prices, usage accounting, admission, persisted counters."""
