"""An exchange made into its audit record, whatever it holds.

The finisher calls `build` for each exchange it records; the record goes to the writer.
If a part of the exchange cannot be read or kept, the record is made without it and
says so in its `reason`: first without the answer, then without the request, at last
the row alone, which every exchange has. Only a fault of ours past all three loses the
record, and it is counted (`lost`).
"""

from __future__ import annotations

import logging

from aiogw.audit import record as rec
from aiogw.audit.memo import PartsMemo
from aiogw.config import AuditSettings
from aiogw.exchange import Exchange

log = logging.getLogger("aiogw.audit")


class Recorder:
    def __init__(self, settings: AuditSettings) -> None:
        self.settings = settings  # its policy; a reload replaces it
        self._memo = PartsMemo()
        self.sanitized = 0  # records with a value made storable (text escaped or cut, a number clamped)
        self.lost = 0  # exchanges that could not be recorded at all

    def build(self, ex: Exchange) -> rec.Record | None:
        """The exchange's record; None only for a fault of ours (logged and counted)."""
        self._memo.mark()
        try:
            return self._counted(rec.build(ex, self.settings.policy, self._memo))
        except Exception:
            # A provider answer the tap could not read must not cost the record: keep
            # the row and the request, note why the answer is missing.
            log.exception("audit: could not read the answer of a %s %s exchange", ex.dialect, ex.endpoint)
            self._memo.drop_fresh()  # an entry this build may have put was never handed
        ex.chunks = None
        ex.response_body = None
        ex.reading = None
        ex.json = None
        ex.reason = (ex.reason + "; " if ex.reason else "") + "audit: answer unreadable"
        try:
            return self._counted(rec.build(ex, self.settings.policy))
        except Exception:  # nor the request: the row alone
            log.exception("audit: could not keep the request of a %s %s exchange", ex.dialect, ex.endpoint)
        ex.body, ex.findings = None, None
        ex.reason += "; request unreadable"
        try:
            return self._counted(rec.build(ex, rec.METADATA))
        except Exception:
            log.exception("audit: a %s %s exchange (%s) could not be recorded at all", ex.dialect, ex.endpoint,
                          ex.id or "no id")
            self.lost += 1
            return None

    def _counted(self, record: rec.Record) -> rec.Record:
        if record.mended:
            self.sanitized += 1
        return record
