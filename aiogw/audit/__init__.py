"""The audit trail: one record per exchange, written in batches behind the hot path.

record.py    Exchange → Record (plain data: the list row, payloads, blobs)
conversation.py  a request split into parts, the resent history found, the conversation id
recorder.py  the finisher's step: an exchange made into its record, with fallbacks
storable.py  every value of a row made storable: valid text, bounded, 64-bit integers
memo.py      the digests of parts already serialised, per conversation
writer.py    persists records only: batches committed to the state store (aiogw.store) by a task, bounded
spill.py     the file beside the database for what it cannot take: always encodes
render.py, cli.py  `aiogw audit ...`
"""
