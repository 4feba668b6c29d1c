"""Spend and rate limits.

admission.py      the stage that admits a request or refuses it (rate, concurrency, budget)
usage_request.py  the stage that asks OpenAI chat streams for their usage, and its tap
accounting.py     an exchange's usage priced and charged, once; ChargeNow, the on-loop charge
ledger.py         the users' windows, slots and budgets (plain arithmetic)
prices.py         the price table (data: prices.toml)
persistence.py    the counters saved to and restored from the state database
"""
