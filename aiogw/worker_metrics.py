"""/metrics for the whole gateway when it runs as workers: a scrape reaches one worker
(the kernel picks which, as for any connection), and that worker answers for all.

Each worker keeps its own counters. It also listens on a unix socket of its own in a
folder the supervisor made for this run (mode 0700: only the gateway's user reaches
it); a connection there gets the worker's exposition and is closed. A scrape through
the port asks every other worker at once and answers every sample labelled with its
worker (`worker="0"`, `worker="1"` …), family by family, so Prometheus's
`sum without (worker) (...)` gives the gateway's totals and a counter never jumps
back because another worker answered. A worker that does not answer within a second
(restarting) is left out and counted in `aiogw_scrape_workers_missing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("aiogw")

_ASK_TIMEOUT = 1.0  # seconds: a worker this slow to render is restarting or stuck
_MAX_EXPOSITION = 64 * 1024 * 1024


class Peers:
    """This worker's place among the workers of one run, for /metrics."""

    def __init__(self, folder: Path, number: int, count: int) -> None:
        self.folder, self.number, self.count = folder, number, count
        self._server: asyncio.AbstractServer | None = None

    def path(self, number: int) -> Path:
        return self.folder / f"w{number}.sock"

    async def listen(self, render: Callable[[], bytes]) -> None:
        """Answer the other workers with `render()` (this worker's exposition)."""

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(render())
                await writer.drain()
            except (ConnectionError, OSError):
                pass  # the asking worker gave up
            finally:
                writer.close()

        path = self.path(self.number)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # this worker's predecessor (it died) left its socket
        self._server = await asyncio.start_unix_server(answer, path)

    async def gather(self, own: bytes) -> bytes:
        """Every worker's exposition, this one's `own` among them, as one."""
        others = [n for n in range(self.count) if n != self.number]
        answers = await asyncio.gather(*(self._ask(n) for n in others))
        parts = [(self.number, own)] + [(n, body) for n, body in zip(others, answers, strict=True) if body is not None]
        missing = len(others) + 1 - len(parts)
        return merge(sorted(parts)) + (
            b"# HELP aiogw_scrape_workers_missing Workers whose metrics this scrape lacks (restarting or stuck).\n"
            b"# TYPE aiogw_scrape_workers_missing gauge\n"
            b"aiogw_scrape_workers_missing %d\n" % missing
        )

    async def _ask(self, number: int) -> bytes | None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.path(number)), _ASK_TIMEOUT)
        except (OSError, TimeoutError):
            return None
        try:
            return await asyncio.wait_for(reader.read(_MAX_EXPOSITION), _ASK_TIMEOUT)
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
            with contextlib.suppress(OSError):
                os.unlink(self.path(self.number))


def merge(parts: list[tuple[int, bytes]]) -> bytes:
    """Expositions of several workers as one: each family's HELP and TYPE once, then
    its samples from every worker, each with a `worker` label."""
    families: dict[bytes, tuple[list[bytes], list[bytes]]] = {}
    for number, body in parts:
        label = b'worker="%d"' % number
        current: list[bytes] | None = None
        for line in body.splitlines():
            if not line:
                continue
            if line.startswith(b"#"):
                fields = line.split(b" ", 3)
                if len(fields) >= 3 and fields[1] in (b"HELP", b"TYPE"):
                    head, samples = families.setdefault(fields[2], ([], []))
                    if line not in head:
                        head.append(line)
                    current = samples
                continue
            if current is None:  # a sample before any HELP or TYPE: a family of its own
                current = families.setdefault(b"", ([], []))[1]
            current.append(_labelled(line, label))
    out = bytearray()
    for head, samples in families.values():
        for line in (*head, *samples):
            out += line + b"\n"
    return bytes(out)


def _labelled(sample: bytes, label: bytes) -> bytes:
    """`name{a="1"} 2` -> `name{worker="0",a="1"} 2`; `name 2` -> `name{worker="0"} 2`.
    A metric's name holds neither a brace nor a space, so the first of them ends it."""
    brace, space = sample.find(b"{"), sample.find(b" ")
    if brace != -1 and (space == -1 or brace < space):
        return sample[: brace + 1] + label + (b"," if sample[brace + 1 : brace + 2] != b"}" else b"") + sample[brace + 1 :]
    return sample[:space] + b"{" + label + b"}" + sample[space:]
