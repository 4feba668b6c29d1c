"""The audit trail: one record per exchange, written in batches behind the hot path.

record.py   Exchange → Record (plain data: the list row, payloads, blobs)
store.py    the SQLite schema and batch writes (content-addressed blobs)
writer.py   the bounded queue and the background task that commits batches
queries.py  reading it back: list, show, conversation, export, prune
"""
