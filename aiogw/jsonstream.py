"""An incremental splitter for a streamed JSON array (Gemini's streamGenerateContent
without `alt=sse`): `[{…},\\r\\n{…}\\r\\n]`, sent piece by piece.

`feed` returns the bytes of each top-level element as soon as it is complete; the
caller parses them (orjson.loads). It only tracks nesting, strings and escapes — it does
not validate JSON — so it is cheap: it jumps between the few bytes that matter with
compiled regexes instead of looking at every byte in Python.
"""

from __future__ import annotations

import re

# Outside strings only these bytes change state; inside, only a quote or a backslash.
_STRUCTURE = re.compile(rb'[\[\]{}"]')
_IN_STRING = re.compile(rb'["\\]')
# A bare scalar element (number, true, false, null) ends at a comma, a bracket or space.
_SCALAR_END = re.compile(rb"[,\]\s]")
_SPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


class _Malformed(ValueError):
    pass


class JSONArraySplitter:
    """Feed bytes; get each complete top-level element of the array as bytes.

    States: before the opening '[', between elements (commas and whitespace skipped),
    inside an element, after the closing ']'. Malformed input — a stream that does not
    start with '[' (e.g. an error object), an unbalanced closing bracket — never raises:
    the elements before the fault are returned, `error` says what was wrong, and
    the splitter takes nothing more. Bytes after the closing ']' other than whitespace
    are ignored. Either makes `close()` False.
    """

    __slots__ = ("_buf", "_depth", "_in_string", "_pos", "_start", "_state", "_trailing", "error")

    _BEFORE, _BETWEEN, _INSIDE, _AFTER, _FAILED = range(5)

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # next byte to look at
        self._start = -1  # where the current element begins
        self._depth = 0  # nesting inside the current element
        self._in_string = False
        self._state = self._BEFORE
        self._trailing = False  # non-space bytes after the closing ']'
        self.error: str | None = None

    @property
    def closed(self) -> bool:
        """The closing ']' has been seen."""
        return self._state == self._AFTER

    @property
    def buffered(self) -> int:
        """Bytes held between feeds: the element not yet complete, none of those returned."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Scan a chunk; return the elements it completed, in order."""
        if self._state == self._FAILED:
            return []
        self._buf += data
        out: list[bytes] = []
        try:
            while self._step(out):
                pass
        except _Malformed as exc:
            self.error, self._state = str(exc), self._FAILED
            self._buf.clear()
            return out
        self._compact()
        return out

    def close(self) -> bool:
        """End of stream: True when the array was closed and nothing but whitespace
        followed; False for a stream cut short (its last element is lost)."""
        return self.closed and not self._trailing

    def _step(self, out: list[bytes]) -> bool:
        """Advance as far as the buffer allows; False when more bytes are needed."""
        if self._state == self._INSIDE:
            return self._scan_element(out)
        pos = self._skip_space()
        if pos >= len(self._buf):
            return False
        byte = self._buf[pos]
        if self._state == self._BEFORE:
            return self._open(pos)
        if self._state == self._AFTER:
            self._trailing = True
            self._pos = len(self._buf)
            return False
        if byte == 0x2C:  # ',' between elements
            self._pos = pos + 1
        elif byte == 0x5D:  # ']' the array ends
            self._state, self._pos = self._AFTER, pos + 1
        elif byte == 0x7D:  # '}'
            raise _Malformed(f"unbalanced '}}' at byte {pos}")
        else:
            self._state, self._start, self._pos, self._depth = self._INSIDE, pos, pos, 0
        return True

    def _open(self, pos: int) -> bool:
        if self._buf.startswith(_BOM, pos):
            self._pos = pos + len(_BOM)
            return True
        if len(self._buf) - pos < len(_BOM) and _BOM.startswith(self._buf[pos:]):
            return False  # maybe a BOM split across feeds
        if self._buf[pos] != 0x5B:  # '['
            raise _Malformed(f"a JSON array must start with '[', not {bytes(self._buf[pos : pos + 20])!r}")
        self._state, self._pos = self._BETWEEN, pos + 1
        return True

    def _skip_space(self) -> int:
        buf, pos = self._buf, self._pos
        while pos < len(buf) and buf[pos] in _SPACE:
            pos += 1
        self._pos = pos
        return pos

    def _scan_element(self, out: list[bytes]) -> bool:
        buf = self._buf
        if self._depth == 0 and not self._in_string and self._pos == self._start:
            first = buf[self._start]
            if first not in b'[{"':
                return self._scan_scalar(out)
        while True:
            if self._in_string:
                m = _IN_STRING.search(buf, self._pos)
                if m is None:
                    self._pos = len(buf)
                    return False
                at = m.start()
                if buf[at] == 0x5C:  # backslash: skip the escaped byte, once it is here
                    if at + 1 >= len(buf):
                        self._pos = at
                        return False
                    self._pos = at + 2
                    continue
                self._in_string, self._pos = False, at + 1
                if self._depth == 0:  # a string scalar element
                    return self._emit(out, at + 1)
                continue
            m = _STRUCTURE.search(buf, self._pos)
            if m is None:
                self._pos = len(buf)
                return False
            at = m.start()
            byte = buf[at]
            self._pos = at + 1
            if byte == 0x22:  # '"'
                self._in_string = True
            elif byte in b"[{":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth < 0:
                    raise _Malformed(f"unbalanced {chr(byte)!r} at byte {at}")
                if self._depth == 0:
                    return self._emit(out, at + 1)

    def _scan_scalar(self, out: list[bytes]) -> bool:
        m = _SCALAR_END.search(self._buf, self._start)
        if m is None:
            return False  # the number may go on in the next chunk
        return self._emit(out, m.start())

    def _emit(self, out: list[bytes], end: int) -> bool:
        out.append(bytes(self._buf[self._start : end]))
        self._state, self._pos, self._start = self._BETWEEN, end, -1
        return True

    def _compact(self) -> None:
        """Drop what no element needs any more, so the buffer holds at most one element."""
        keep = self._start if self._state == self._INSIDE else self._pos
        if keep > 0:
            del self._buf[:keep]
            self._pos -= keep
            if self._start >= 0:
                self._start -= keep
