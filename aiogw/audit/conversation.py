"""A request's conversation, as the audit stores it: its parts and its id.

A conversation is resent whole on every turn. `split_request` cuts a request into its
system prompt, tool definitions and messages, each addressed by its `digest`, so a part
seen before is stored once and each turn refers to it; the memo of recent requests
(`PartsMemo`) saves hashing again what the previous turn already hashed.
`conversation_id` groups the turns of a conversation that has no session id.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from aiogw import jsonout
from aiogw.audit.memo import PartsMemo
from aiogw.dialects.shape import equal, same_prefix
from aiogw.exchange import Exchange

_CONTENT = ("system", "messages", "tools")


def digest(data: bytes) -> bytes:
    """16-byte BLAKE2b: collision-safe for content addressing, and fast."""
    return hashlib.blake2b(data, digest_size=16).digest()


def _hashed(value: Any) -> tuple[bytes, bytes]:
    data = jsonout.dumps(value, sort_keys=True)
    return digest(data), data


def split_request(
    dialect: Any, endpoint: str, body: dict, size: int, memo: PartsMemo | None, day: int = 0,
    hint: tuple[list[Any], int] | None = None, session: str | None = None,
) -> tuple[bytes, dict[str, Any], list[tuple[bytes, Any]]]:
    """Request → (inline metadata as JSON; refs by part; parts). Content parts are hashed.

    A part is (digest, bytes) when it was serialised here, or (digest, value) when its
    digest came from the memo; the writer serialises those only if it never stored them.
    Parts the memo's previous turn of this conversation already handed to the writer
    the same UTC `day` are left out: they are stored (or in an earlier batch), and a
    blob's `last_seen` only moves by the day.
    """
    parts_obj = dialect.request_parts(endpoint, body)
    meta = jsonout.dumps({f.name: getattr(parts_obj, f.name) for f in dataclasses.fields(parts_obj) if f.name not in _CONTENT})
    refs: dict[str, Any] = {}
    parts: list[tuple[bytes, Any]] = []
    messages = parts_obj.messages if isinstance(parts_obj.messages, list) else None
    key = None
    prev = None
    if memo is not None and messages:
        # By the agent's session id too, when it sends one: conversations that open
        # alike must not push each other's entry out (see guards.history).
        key = _hashed(messages[0])[0]
        if session:
            key = digest(session.encode() + b"\0" + key)
        prev = memo.get(key)
        if hint is not None and hint[0]:  # the request the guard compared this one with
            prev = memo.made_from(hint[0][-1]) or prev
    handed = prev is not None and prev["day"] == day  # the previous turn's parts are with the writer
    entry: dict[str, Any] = {"day": day}
    for name in ("system", "tools"):
        value = getattr(parts_obj, name)
        if value is None:
            continue
        if prev is not None and equal(prev.get(name), value):  # (a body may nest past Python's limit)
            h = prev[name + "_ref"]
            if not handed:
                parts.append((h, value))
        else:
            h, data = _hashed(value)
            parts.append((h, data))
        refs[name] = h
        entry[name], entry[name + "_ref"] = value, h
    if messages is not None:
        old = prev["messages"] if prev is not None else []
        old_refs = prev["message_refs"] if prev is not None else []
        same = _known_same(hint, old, messages)
        if same is None:
            same = same_prefix(old, messages)
        hashes = old_refs[:same]
        if not handed:
            parts.extend(zip(hashes, messages[:same], strict=True))
        for message in messages[same:]:
            h, data = _hashed(message)
            parts.append((h, data))
            hashes.append(h)
        opening = next(
            (i + 1 for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), None
        )
        refs["messages"] = hashes
        refs["opening"] = hashes[: opening or 1]
        entry["messages"], entry["message_refs"] = messages, hashes
    if key is not None and memo is not None:
        memo.put(key, size, entry)
    return meta, refs, parts


def _known_same(hint: tuple[list[Any], int] | None, old: list[Any], new: list[Any]) -> int | None:
    """How many entries `new` shares with `old`, when the guard already compared them:
    it compared `new` with a list `hint[0]` and found `hint[1]` equal. If `old` holds the
    very objects of that list (one parsed body's objects are its own, so one shared
    object at the last compared place says both lists come from that body), the answer
    is the guard's."""
    if hint is None:
        return None
    seen, same = hint
    if same == 0 or same > len(old) or same > len(seen) or same > len(new):
        return None
    return same if old[same - 1] is seen[same - 1] and len(old) == len(seen) else None


def conversation_id(dialect: Any, ex: Exchange, refs: dict[str, Any]) -> str | None:
    """The conversation of a request without a session id: every turn resends the same
    opening (system prompt, then messages up to the first user message), so its hash
    groups the turns of one conversation. The user and the route are hashed with it: two
    users' agents, or one user's on two providers, that open alike (one system prompt,
    one task) hold two conversations, not one."""
    opening = refs.get("opening")
    system = refs.get("system")
    if opening is None and ex.json is not None and dialect is not None:
        system, opening = _opening_refs(dialect, ex)
    if not opening:
        return None
    user = (ex.user or "").encode("utf-8", "surrogatepass")  # a user named by a client's header
    route = ex.route.encode("utf-8", "surrogatepass")
    return "p-" + digest(user + b"\0" + route + b"\0" + (system or b"") + b"".join(opening)).hex()


def _opening_refs(dialect: Any, ex: Exchange) -> tuple[bytes | None, list[bytes]]:
    parts = dialect.request_parts(ex.endpoint, ex.json)
    system = _hashed(parts.system)[0] if parts.system is not None else None
    opening = []
    for message in parts.messages or ():
        opening.append(_hashed(message)[0])
        if isinstance(message, dict) and message.get("role") == "user":
            break
    return system, opening
