"""Which provider a request is for, and the aiohttp server that answers it (`FakeUpstream`)."""

from __future__ import annotations

import asyncio
import gzip
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from aiogw.fake_upstream.anthropic import (
    anthropic_auth,
    anthropic_count_tokens,
    anthropic_error,
    anthropic_headers,
    anthropic_messages,
    anthropic_model,
    anthropic_models,
)
from aiogw.fake_upstream.gemini import (
    gemini_auth,
    gemini_batch_embed,
    gemini_count_tokens,
    gemini_embed,
    gemini_error,
    gemini_generate,
    gemini_headers,
    gemini_model,
    gemini_models,
    gemini_stream,
)
from aiogw.fake_upstream.model import (
    CHUNKS_HEADER,
    DELAY_HEADER,
    FAULT_HEADER,
    GATE_HEADER,
    JSON,
    MAX_BODY_BYTES,
    MAX_CHUNKS,
    MID_FAULT_EVENTS,
    SHUTDOWN_TIMEOUT_S,
    STALL_POLL_S,
    TEXT_HEADER,
    BadRequest,
    Call,
    FakeConfig,
    JsonReply,
    Knobs,
    Received,
    Reply,
    StreamReply,
    Strs,
    parse_fault,
)
from aiogw.fake_upstream.openai import (
    chat_completions,
    embeddings,
    openai_auth,
    openai_error,
    openai_headers,
    openai_model,
    openai_models,
    responses,
    responses_input_tokens,
)

Endpoint = Callable[[Call], Reply]
Route = tuple[str, "re.Pattern[str]", Endpoint]


@dataclass(frozen=True, slots=True)
class Dialect:
    """One provider: its routes, its key check, its error envelope, its headers."""

    name: str
    routes: tuple[Route, ...]
    authenticate: Callable[[Strs, Strs, FakeConfig], JsonReply | None]
    error: Callable[[int, str | None], JsonReply]
    headers: Callable[[], dict[str, str]]

    def route(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        for route_method, pattern, endpoint in self.routes:
            if route_method == method and (m := pattern.fullmatch(path)):
                return endpoint, m.groupdict()
        return None


def _routes(*table: tuple[str, str, Endpoint]) -> tuple[Route, ...]:
    return tuple((method, re.compile(pattern), endpoint) for method, pattern, endpoint in table)


_MODEL = r"(?P<model>[^/:]+)"
_GEMINI_BASE = r"/v1(?:beta)?/models"

ANTHROPIC = Dialect(
    "anthropic",
    _routes(
        ("POST", r"/v1/messages", anthropic_messages),
        ("POST", r"/v1/messages/count_tokens", anthropic_count_tokens),
        ("GET", r"/v1/models", anthropic_models),
        ("GET", rf"/v1/models/{_MODEL}", anthropic_model),
    ),
    anthropic_auth,
    anthropic_error,
    anthropic_headers,
)

OPENAI = Dialect(
    "openai",
    _routes(
        ("POST", r"/v1/chat/completions", chat_completions),
        ("POST", r"/v1/responses", responses),
        ("POST", r"/v1/responses/input_tokens", responses_input_tokens),
        ("POST", r"/v1/embeddings", embeddings),
        ("GET", r"/v1/models", openai_models),
        ("GET", rf"/v1/models/{_MODEL}", openai_model),
    ),
    openai_auth,
    openai_error,
    openai_headers,
)

GEMINI = Dialect(
    "gemini",
    _routes(
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:generateContent", gemini_generate),
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:streamGenerateContent", gemini_stream),
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:countTokens", gemini_count_tokens),
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:embedContent", gemini_embed),
        ("POST", rf"{_GEMINI_BASE}/{_MODEL}:batchEmbedContents", gemini_batch_embed),
        ("GET", _GEMINI_BASE, gemini_models),
        ("GET", rf"{_GEMINI_BASE}/{_MODEL}", gemini_model),
    ),
    gemini_auth,
    gemini_error,
    gemini_headers,
)

_PREFIXES = {"anthropic": ANTHROPIC, "openai": OPENAI, "gemini": GEMINI, "google": GEMINI}


def pick_dialect(path: str, headers: Strs, query: Strs) -> tuple[Dialect, str]:
    """The provider a request is for, and its path without a provider prefix.

    ``GET /v1/models`` exists for all three, so headers decide where the path cannot."""
    first, _, rest = path[1:].partition("/")
    if first in _PREFIXES:
        return _PREFIXES[first], f"/{rest}"
    if path.startswith("/v1beta/") or ":" in path or "x-goog-api-key" in headers or "key" in query:
        return GEMINI, path
    if path.startswith("/v1/messages") or "anthropic-version" in headers or "x-api-key" in headers:
        return ANTHROPIC, path
    return OPENAI, path


def read_knobs(headers: Strs, config: FakeConfig) -> Knobs:
    """Per-request controls; ValueError when a header is malformed."""
    fault = parse_fault(headers.get(FAULT_HEADER, config.fault))
    try:
        chunks = int(headers.get(CHUNKS_HEADER, config.chunks))
        delay = float(headers.get(DELAY_HEADER, config.chunk_delay))
    except ValueError:
        raise ValueError(f"{CHUNKS_HEADER} must be an integer and {DELAY_HEADER} a number") from None
    if not 1 <= chunks <= MAX_CHUNKS or not (math.isfinite(delay) and delay >= 0):
        raise ValueError(f"{CHUNKS_HEADER} must be 1..{MAX_CHUNKS}, {DELAY_HEADER} >= 0")
    return Knobs(fault, chunks, delay)


def _parse_body(method: str, raw: bytes) -> JSON:
    if method != "POST":
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


def _gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _cut(request: web.BaseRequest, resp: web.StreamResponse) -> web.StreamResponse:
    """Abort the connection. The handler still returns a response: aiohttp then fails
    quietly to finish it, where a raised ConnectionError would be logged as an error."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return resp


def _accepts_gzip(request: web.BaseRequest) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


class FakeUpstream:
    """The fake providers as one server.

    ``received`` lists every request as it arrived (when ``config.record``).
    ``aborted`` counts exchanges whose client left before the fake finished them:
    mid-stream (including a ``stall-mid``), or while a ``stall`` held back the headers.
    """

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.received: list[Received] = []
        self._aborted = 0
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._gates: dict[str, asyncio.Event] = {}

    def open_gate(self, name: str) -> None:
        """Let a stream sent with `x-fake-gate: NAME` go on past its first event.

        Call it on the fake's own loop (e.g. with `loop.call_soon_threadsafe`).
        """
        self._gates.setdefault(name, asyncio.Event()).set()

    @property
    def aborted(self) -> int:
        return self._aborted

    def clear(self) -> None:
        """Forget what was received and the aborted count."""
        self.received.clear()
        self._aborted = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on host:port (0 picks a free port); return the bound port."""
        if self._runner is not None:
            raise RuntimeError("FakeUpstream is already started")
        self._stopping = False
        # handler_cancellation: a client that leaves cancels its handler at once, which
        # is how a stalled handler learns it and how a stream stops between events.
        runner = web.AppRunner(
            self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=4096)  # the bench opens thousands of streams at once
        await site.start()
        self._runner = runner
        return runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True  # stalled handlers notice and let go
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve(request)
        except asyncio.CancelledError:
            # aiohttp cancels a handler when its client disconnects; at stop() it
            # cancels what is left, which is no client's doing.
            if not self._stopping:
                self._aborted += 1
            raise

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if self.config.record:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.received.append(
                Received(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string, headers, raw)
            )
        dialect, path = pick_dialect(request.path, request.headers, request.query)
        try:
            knobs = read_knobs(request.headers, self.config)
        except ValueError as exc:
            return self._json(request, dialect, dialect.error(400, str(exc)))
        if knobs.fault.kind == "refuse":
            return _cut(request, web.Response())
        if knobs.fault.kind == "stall":
            return await self._hold(request, web.Response())
        denied = dialect.authenticate(request.headers, request.query, self.config)
        if denied is not None:
            return self._json(request, dialect, denied)
        if knobs.fault.kind == "status":
            return self._json(request, dialect, dialect.error(knobs.fault.status, None))
        reply = self._reply(request, dialect, path, raw, knobs)
        if isinstance(reply, StreamReply):
            return await self._stream(request, dialect, reply, knobs, MID_FAULT_EVENTS)
        if knobs.fault.kind in ("stall-mid", "die"):
            # A plain JSON answer broken half-way: the status line says 200, the body ends early.
            data = orjson.dumps(reply.body)
            halves = StreamReply([data[: len(data) // 2], data[len(data) // 2 :]], "application/json")
            return await self._stream(request, dialect, halves, knobs, 1)
        return self._json(request, dialect, reply)

    def _reply(self, request: web.Request, dialect: Dialect, path: str, raw: bytes, knobs: Knobs) -> Reply:
        found = dialect.route(request.method, path)
        if found is None:
            return dialect.error(404, f"Not found: {request.method} {request.path}")
        endpoint, params = found
        try:
            body = _parse_body(request.method, raw)
            text = request.headers.get(TEXT_HEADER, self.config.text)
            call = Call(body, raw, request.query, params, text, knobs.chunks, self.config.lean)
            return endpoint(call)
        except BadRequest as exc:
            return dialect.error(400, str(exc))

    def _json(self, request: web.Request, dialect: Dialect, reply: JsonReply) -> web.Response:
        data = orjson.dumps(reply.body)
        headers = {**dialect.headers(), **(reply.headers or {})}
        if self.config.compress and _accepts_gzip(request):
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=data, status=reply.status, headers=headers, content_type="application/json")

    async def _stream(
        self, request: web.Request, dialect: Dialect, reply: StreamReply, knobs: Knobs, cut_after: int
    ) -> web.StreamResponse:
        """Write the frames one by one, each flushed; stop the moment the client leaves."""
        resp = web.StreamResponse(headers=dialect.headers())
        resp.headers["Content-Type"] = reply.content_type
        resp.headers["Cache-Control"] = "no-cache"
        packer = None
        if self.config.compress and _accepts_gzip(request):
            resp.headers["Content-Encoding"] = "gzip"
            packer = zlib.compressobj(wbits=31)  # 31: gzip header and trailer
        mid_fault = knobs.fault.kind in ("stall-mid", "die")
        frames = reply.frames[:cut_after] if mid_fault else reply.frames
        # A gated stream holds every event after the first until the test opens the gate:
        # that proves, without timing, that a proxy relays before the next event exists.
        gate_name = request.headers.get(GATE_HEADER)
        gate = self._gates.setdefault(gate_name, asyncio.Event()) if gate_name else None
        try:
            await resp.prepare(request)
            for i, frame in enumerate(frames):
                if i and gate is not None:
                    await gate.wait()
                if i and knobs.delay:
                    await asyncio.sleep(knobs.delay)
                if self._stopping:
                    return _cut(request, resp)
                # A sync flush per event, so each event can be decoded as it arrives.
                data = packer.compress(frame) + packer.flush(zlib.Z_SYNC_FLUSH) if packer else frame
                await resp.write(data)
            if knobs.fault.kind == "die":
                return _cut(request, resp)
            if knobs.fault.kind == "stall-mid":
                return await self._hold(request, resp)
            await resp.write_eof(packer.flush() if packer else b"")
        except ConnectionError:
            # The client went away: stop at once; aiohttp drops the connection quietly.
            self._aborted += 1
        return resp

    async def _hold(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        """Send nothing more until the client leaves (counted) or the server stops."""
        while not self._stopping:
            if _gone(request):
                self._aborted += 1
                return resp
            await asyncio.sleep(STALL_POLL_S)
        return _cut(request, resp)


