"""The audit trail: one record per exchange, written in batches behind the hot path.

record.py    Exchange → Record (plain data: the list row, payloads, blobs)
conversation.py  a request split into parts, the resent history found, the conversation id
recorder.py  the finisher's step: an exchange made into its record, with fallbacks
storable.py  every value of a row made storable: valid text, bounded, 64-bit integers
memo.py      the digests of parts already serialised, per conversation
store.py     the SQLite schema and batch writes (content-addressed blobs)
writer.py    persists records only: batches committed by a background task, bounded
spill.py     the file beside the database for what it cannot take: always encodes
queries.py   reading it back: list, show, conversation, export, prune
render.py, cli.py  `aiogw audit ...`
"""
