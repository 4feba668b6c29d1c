"""The request guard, a stage: scan every text of a request, then act.

`block` refuses the request (403 in the dialect's envelope, a status SDKs do not retry)
naming the pattern and the place, never the matched text; `redact` masks the span and
the changed body is forwarded; `log` only records the finding; `off` ignores it. All
findings go into the exchange, and from there into the audit record.

A body is read whole however deep it nests (orjson parses 1,024 levels): no walk
recurses, and a redacted body is written back by `jsonout`, past the 254 levels
orjson writes too. Depth alone never refuses a request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from aiogw import jsonout
from aiogw.dialects import DIALECTS
from aiogw.dialects.walk import Paths, Text, path_text
from aiogw.errors import Blocked
from aiogw.exchange import Exchange
from aiogw.guards import redact
from aiogw.guards.history import HistoryMemo, Pair, Read, conversation_key, read_parts
from aiogw.guards.policy import Policy
from aiogw.stage import CONTINUE, REWRITE, Refuse, Verdict

if TYPE_CHECKING:  # the engine needs Hyperscan; the app builds it only with guards on
    from aiogw.guards.engine import Engine, Match


class ScanMemo:
    """Matches of recent texts, so a conversation's history is not scanned again.

    Agents resend the whole conversation every turn: without this, each turn scans
    every earlier message again. A text's matches depend only on the text and its
    place, so they are kept by (place, text): Python caches a string's hash on the
    string and a hit costs one comparison, a tenth of a scan. Short texts are scanned
    every time (cheaper than keeping them): all the texts a request has left for a
    place go to the engine in one call. Bounded by the characters it keeps alive.
    """

    __slots__ = ("_entries", "chars", "max_chars")

    MIN_CHARS = 512

    def __init__(self, max_chars: int = 32 * 1024 * 1024) -> None:
        self.max_chars = max_chars
        self._entries: OrderedDict[tuple[str, str], list[Match]] = OrderedDict()
        self.chars = 0  # the characters of the texts kept, held to max_chars

    def __len__(self) -> int:
        """How many texts are kept."""
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """The (place, text) of each text kept, the least recently used first."""
        return iter(list(self._entries))

    def scan(self, engine: Engine, items: Sequence[Text]) -> list[list[Match]]:
        """The matches of each text, in order."""
        out: list[list[Match]] = [[] for _ in items]
        pending: dict[str, list[int]] = {}
        entries = self._entries
        for i, t in enumerate(items):
            if len(t.text) >= self.MIN_CHARS:
                found = entries.get((t.place, t.text))
                if found is not None:
                    entries.move_to_end((t.place, t.text))
                    out[i] = found
                    continue
            pending.setdefault(t.place, []).append(i)
        for place, indices in pending.items():
            results = engine.scan_many(place, [items[i].text for i in indices])
            for i, found in zip(indices, results, strict=True):
                out[i] = found
                if len(items[i].text) >= self.MIN_CHARS:
                    self._keep(place, items[i].text, found)
        return out

    def _keep(self, place: str, text: str, found: list[Match]) -> None:
        if (place, text) in self._entries:  # the same text twice in one request
            return
        self._entries[(place, text)] = found
        self.chars += len(text)
        while self.chars > self.max_chars:
            (_, old), _ = self._entries.popitem(last=False)
            self.chars -= len(old)


class GuardCheck:
    __slots__ = ("conversations", "engine", "memo", "policy")

    def __init__(self, engine: Engine, policy: Policy) -> None:
        self.engine = engine
        self.policy = policy
        self.memo = ScanMemo()
        self.conversations = HistoryMemo()

    def read(self, ex: Exchange) -> tuple[list[Pair], bytes | None, Read | None, Read | None]:
        """The request's texts that have matches, with them, in order; what to remember
        of it (the conversation's key and read); and the conversation's read before it."""
        assert ex.json is not None
        dialect = DIALECTS[ex.dialect]
        s = dialect.shape(ex.endpoint, ex.json)
        if s is None:
            items = dialect.request_texts(ex.endpoint, ex.json)
            return _hits(zip(items, self.memo.scan(self.engine, items), strict=True)), None, None, None
        key = conversation_key(ex.user, s, s.entries(ex.json), ex.session)
        prev = self.conversations.get(key)
        head, entries, new, tail, same, tail_texts = read_parts(s, ex.json, prev)
        fresh = head + [t for out in new for t in out] + (tail_texts or [])
        found = iter(zip(fresh, self.memo.scan(self.engine, fresh), strict=True))
        head_hits = _hits(next(found) for _ in head)
        # Per history entry, only its texts with matches: most have none, and a
        # resent history is not walked again, not even here.
        items = prev.items[:same] if prev is not None else []
        self.conversations.reused += same
        items += [_hits(next(found) for _ in out) for out in new]
        tail_hits = _hits(next(found) for _ in tail_texts) if tail_texts is not None else prev.tail_pairs  # type: ignore[union-attr]
        read = Read(entries, items, tail, tail_hits, len(ex.body or b""), same)
        return head_hits + [p for hits in items if hits for p in hits] + tail_hits, key, read, prev

    def check(self, ex: Exchange) -> Verdict:
        if ex.json is None:
            return CONTINUE
        actions = self.policy.for_user(ex.user)
        findings: list[dict[str, Any]] = []
        blocked = None
        pairs, key, read, prev = self.read(ex)
        paths = Paths()
        for t, matches in pairs:
            path = None  # made once a text, shared by its findings (a text may be 1,000 deep)
            for m in matches:
                p = m.pattern
                action = actions.action(p.category, t.place, p.action)
                if action == "off":
                    continue
                if path is None:
                    path = list(paths.of(t))
                finding = {
                    "id": p.id,
                    "category": p.category,
                    "subcategory": p.subcategory,
                    "place": t.place,
                    "action": action,
                    "path": path,
                    "start": m.start,
                    "end": m.end,
                }
                findings.append(finding)
                # The message names the most telling finding: a named kind of secret
                # (aws_access_key) before a generic one over the same text.
                if action == "block" and (blocked is None or (_generic(blocked) and not _generic(finding))):
                    blocked = finding
        if read is not None and not any(f["action"] == "redact" for f in findings):
            # Not after a redaction: the body (which `read` refers to) is masked in
            # place, and the client resends its own, unmasked text next turn.
            if prev is not None:
                ex.history = (prev.history, read.same)
            self.conversations.put(key, read)
        if not findings:
            return CONTINUE
        ex.findings = findings
        to_mask = [f for f in findings if f["action"] == "redact"]
        if to_mask:
            # Before a refusal too: the audit stores a refused request as it would
            # have been forwarded, masked for a user whose policy says redact.
            redact.apply(ex.json, to_mask)
            ex.body = jsonout.dumps(ex.json)
        if blocked is not None:
            return Refuse(
                Blocked(
                    f"aiogw blocked this request: {blocked['category']} '{blocked['subcategory']}' (pattern "
                    f"{blocked['id']}) in {blocked['place']} at {path_text(blocked['path'])}. Remove it and send again; "
                    "if it is in an earlier turn, every resend carries it: start a new conversation."
                )
            )
        return REWRITE if to_mask else CONTINUE


def _generic(finding: dict[str, Any]) -> bool:
    return finding["subcategory"].startswith("generic")


def _hits(pairs: Iterable[Pair]) -> list[Pair]:
    return [p for p in pairs if p[1]]
