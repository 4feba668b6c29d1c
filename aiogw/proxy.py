"""The core, the hot path: route → authenticate → read → parse once → forward → relay.

Nothing here knows a provider or a feature: what differs between providers lives in the
route's dialect, and every feature is a stage (`aiogw.pipeline`), whose hooks the core
calls at their points: `admit` before the body is read, `check` once it is parsed,
`reserve` (the one that may wait) last before it leaves, the exchange's taps on the
answer (`aiogw.stage.Tap`), `end` once it is over. The body is parsed once (orjson) for the stages that need it and forwarded as the original bytes.
A stream is relayed chunk by chunk as it arrives, with no re-framing; when the client
leaves, the upstream response is closed at once (the server runs with handler
cancellation, so that holds while waiting for the first byte too); when the upstream
breaks, the client keeps what arrived and its connection is closed without the final
chunk, so it sees a truncated stream exactly as it would have from the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
import orjson
from aiohttp import web

from aiogw import body as request_body
from aiogw import exchange, forwarded, routing, untrusted
from aiogw.config import Config
from aiogw.config_reader import ip_networks
from aiogw.config_routes import NEVER_FORWARDED
from aiogw.dialects import OTHER, Dialect, guess
from aiogw.errors import (
    BadRequest,
    EndpointNotAllowed,
    GatewayError,
    NotConfigured,
    NotFound,
    RequestTimeout,
    Unauthorized,
    Unavailable,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from aiogw.exchange import Exchange
from aiogw.keys import KeyIndex
from aiogw.relay import Ending, relay
from aiogw.stage import Stages, Tap, enforce
from aiogw.upstream import GATEWAY_KEY_HEADER, CredentialEcho, Upstream, find_gateway_key, response_headers

log = logging.getLogger("aiogw.proxy")

# Keys of the providers themselves, told apart from a mistyped gateway key in the message.
_PROVIDER_KEY_PREFIXES = ("sk-ant-", "sk-proj-", "sk-", "AIza")
_UPSTREAM_FAILED = (UpstreamUnreachable, UpstreamTimeout)
_UPSTREAM_BROKE = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError)


class Proxy:
    __slots__ = (
        "body_timeout", "cut_by", "draining", "inflight", "keys", "max_body", "mount", "stages", "streams", "trusted",
        "upstreams", "users",
    )

    def __init__(self, config: Config, keys: KeyIndex, upstreams: dict[str, Upstream], stages: Stages) -> None:
        self.mount = config.server.mount
        self.max_body = config.server.max_body_bytes
        self.body_timeout = config.clients.body_timeout
        self.trusted = ip_networks(config.server.trusted_proxies)  # balancers: X-Forwarded-For names the client
        # An empty user list in the config means: any user a key was made for.
        self.users = config.user_names()
        self.keys = keys
        self.upstreams = upstreams
        self.stages = stages
        self.inflight = 0  # exchanges being handled, for the drain and metrics
        self.streams = 0  # of which relaying a stream
        self.draining = False  # SIGTERM: what is cut after the grace period says so
        self.cut_by = "drain period over"  # or a second signal: what the cut exchanges' records say

    def configure(self, users: frozenset[str], upstreams: dict[str, Upstream], stages: Stages) -> None:
        """A reload: new requests see all of these at once; one in flight keeps the
        upstream and stages it started with."""
        self.users, self.upstreams, self.stages = users, upstreams, stages

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ex = Exchange(request.method)
        self.inflight += 1
        headers = request.headers
        ex.client = self._client(request)
        # What a record keeps of the client's own text: valid UTF-8, bounded.
        ex.user_agent = untrusted.text(headers.get("User-Agent"), untrusted.USER_AGENT)
        ex.session = untrusted.text(
            headers.get("X-Claude-Code-Session-Id") or headers.get("session-id"), untrusted.SESSION
        )
        stages = self.stages
        if stages.keeps_answer:
            ex.chunks = []  # read back at the end (accounting, the audit): kept by reference
        dialect: Dialect | None = None
        upstream: Upstream | None = None
        try:
            route, path, query = routing.split(request.raw_path, self.mount)
            upstream = self.upstreams.get(route)
            if upstream is None:
                raise NotFound(f"no route named {route!r}; the gateway serves {', '.join(sorted(self.upstreams))}")
            upstream.inflight += 1  # from here: a reload retires this upstream only once it is done
            dialect = upstream.dialect
            ex.route, ex.dialect, ex.path, ex.query = route, dialect.name, path, query
            if path == "/" and request.method == "HEAD":
                ex.status, ex.endpoint = 200, "probe"
                return web.Response()  # Claude Code's start-up probe: answer at once, no upstream
            # Classified as the provider will read it: percent-decoded (`/v1/%6Dessages`
            # is /v1/messages upstream, and must be guarded and charged as one).
            plain = routing.decoded(path)
            endpoint = dialect.endpoint(request.method, plain)
            ex.endpoint = endpoint.name
            if self.draining:  # a keep-alive client's next request, during the drain
                raise Unavailable("the gateway is shutting down; retry in a moment", retry_after=1, kind="draining")
            key = await self._authenticate(request, upstream, query, ex)
            if (bad := untrusted.bad_header(headers.items())) is not None:
                # aiohttp kept the bytes as surrogates: forwarded, they would be mangled.
                raise BadRequest(f"the {bad!r} header is not valid UTF-8; send header values as UTF-8 text")
            if endpoint is OTHER and not upstream.allows(request.method, plain):
                said = f"the gateway does not forward {request.method} {untrusted.text(plain, 200)} on route {route!r}"
                raise EndpointNotAllowed(
                    f"{said}: {request.method} is never forwarded" if request.method in NEVER_FORWARDED
                    else f"{said}; the operator can allow it with the route's `allow` list"
                )
            stages.admit(ex)
            ex.body = body = await request_body.read(request, self.max_body, self.body_timeout)
            if endpoint.json:
                ex.json = _parse(body)
                ex.model = untrusted.text(endpoint.model or _model(ex.json), untrusted.MODEL)
                ex.stream = endpoint.stream or ex.json.get("stream") is True
            stages.check(ex)
            if stages.reserves:
                await stages.reserve(ex)
            return await self._forward(request, upstream, ex, key)
        except GatewayError as err:
            ex.path = ex.path or _path_as_sent(request)  # a refused path, as it came
            ex.status = err.status
            # The upstream failed, or the gateway turned the request away (itself a 5xx
            # when it cannot take it: drain, audit back-pressure, no credential).
            ex.outcome = exchange.UPSTREAM_ERROR if isinstance(err, _UPSTREAM_FAILED) else exchange.REFUSED
            ex.reason = err.kind
            response = _error_response(dialect or guess(request.path), err)
            if isinstance(err, RequestTimeout):
                # The rest of a body this slow is not worth waiting for: answer, then close
                # (aiohttp would otherwise go on reading it, up to 10 s, after the answer).
                response.force_close()
                with contextlib.suppress(ConnectionError):
                    await response.prepare(request)
                    await response.write_eof()
                if request.transport is not None:
                    request.transport.close()
            return response
        except Exception:
            # A gateway bug: the agent still gets its provider's error shape, not a
            # plain-text page, and the exchange is audited; the log has the traceback.
            log.exception("unexpected error in a %s %s exchange", ex.dialect or "?", ex.endpoint or "?")
            ex.outcome, ex.reason = exchange.GATEWAY_ERROR, "internal"
            if ex.relaying:  # the stream's head is out: all that is left is to cut it
                if request.transport is not None:
                    request.transport.close()
                raise
            ex.status = 500
            err = GatewayError(
                "aiogw hit an unexpected error handling this request; it is logged, the operator can look it up"
            )
            return _error_response(dialect or guess(request.path), err)
        except asyncio.CancelledError:
            if self.draining:  # cut at the end of the drain's grace period
                ex.outcome, ex.reason = exchange.SHUTDOWN, f"gateway stopping: {self.cut_by}"
            else:
                ex.outcome = exchange.CLIENT_ABORTED
                # The connection sweep let go of a client that stopped reading: say so.
                ex.reason = getattr(request.protocol, "gone", None) or ex.reason
            raise
        finally:
            ex.finish()
            stages.end(ex)  # before it stops counting as open: the drain then finds it queued
            self.inflight -= 1
            if upstream is not None:
                upstream.inflight -= 1

    def unparsed(self, request: web.BaseRequest, status: int, reason: str) -> None:
        """Record a request aiohttp refused before any handler (it could not parse it):
        every answered request has its record, within the budget of requests with no
        known key (these have none)."""
        ex = Exchange(untrusted.text(request.method, 32) or "?")
        ex.client = self._client(request)
        try:
            ex.path = _path_as_sent(request)
            ex.user_agent = untrusted.text(request.headers.get("User-Agent"), untrusted.USER_AGENT)
        except Exception:  # a request line too broken to have a path
            ex.path = "?"
        ex.status, ex.outcome, ex.reason = status, exchange.REFUSED, f"unparsable: {reason}"
        ex.finish()
        self.stages.end(ex)

    def _client(self, request: web.BaseRequest) -> str | None:
        """The peer, or behind a trusted balancer the agent its X-Forwarded-For names."""
        if not self.trusted:
            return request.remote
        return forwarded.client_of(request.remote, request.headers.get("X-Forwarded-For"), self.trusted)

    async def _authenticate(self, request: web.Request, upstream: Upstream, query: str, ex: Exchange) -> str:
        """The user's gateway key, once it is known to be good (it is then stripped from
        wherever the client put it before anything goes upstream)."""
        if upstream.passes_client_key:
            key = request.headers.get(GATEWAY_KEY_HEADER)
            where = f"the {GATEWAY_KEY_HEADER} header (this route passes your own provider key through)"
        else:
            key = find_gateway_key(request.headers, query)
            where = "your SDK's API key setting (x-api-key, Authorization: Bearer, x-goog-api-key or ?key=)"
        if not key:
            raise Unauthorized(f"missing gateway key: put the key from `aiogw keys create` in {where}")
        record = await self.keys.resolve(key)
        if record is None:
            hint = (
                " (this looks like a provider key: the gateway holds those; send your gateway key)"
                if key.startswith(_PROVIDER_KEY_PREFIXES)
                else ""
            )
            raise Unauthorized(
                f"unknown or revoked gateway key{hint}: ask the gateway operator for a key (`aiogw keys create USER`)"
            )
        ex.user, ex.key_id = record.user, record.id  # known from here on, refusals included
        if record.revoked_at is not None:
            raise Unauthorized(
                "this gateway key was revoked: ask the gateway operator for a new one (`aiogw keys create USER`)",
                kind="auth:revoked",
            )
        if self.users and record.user not in self.users:
            raise Unauthorized(
                f"the user {record.user!r} of this key is no longer in the gateway's config", kind="auth:user_removed"
            )
        if upstream.credential is None and not upstream.passes_client_key:
            raise NotConfigured(
                f"route {upstream.route.name!r} has no provider credential: the operator must set "
                f"{upstream.route.credential.name} for the gateway"
            )
        return key

    async def _forward(self, request: web.Request, upstream: Upstream, ex: Exchange, key: str) -> web.StreamResponse:
        headers = upstream.headers(request.headers, key)
        for tap in ex.taps:
            headers.update(tap.upstream_headers)
        ex.sent()
        resp = await upstream.send(request.method, ex.path, ex.query, headers, ex.body, key)
        ex.first_byte()
        ex.status = resp.status
        ex.response_headers = resp.headers
        if resp.status >= 400:
            ex.outcome = exchange.UPSTREAM_ERROR
        try:
            if _is_streamed(resp):
                return await self._relay(request, resp, ex, upstream)
            try:
                data = await resp.read()
            except TimeoutError:
                raise UpstreamTimeout("the upstream stopped sending its response; try again later") from None
            except aiohttp.ClientError:
                raise UpstreamUnreachable(
                    "the upstream closed the connection before its response was complete"
                ) from None
            ex.upstream_done()
            ex.response_body = data
            if upstream.secret_bytes is not None and upstream.secret_bytes in data:
                raise CredentialEcho()
            for tap in ex.taps:
                enforce(tap.whole(ex, data))
            return web.Response(
                status=resp.status, reason=resp.reason, body=data, headers=response_headers(resp.headers, upstream.secret)
            )
        finally:
            # A response read to its end goes back to the pool; any other (client gone,
            # upstream broken, cancelled) closes its connection now, which stops upstream.
            if resp.content.is_eof():
                resp.release()
            else:
                resp.close()

    async def _relay(
        self, request: web.Request, resp: aiohttp.ClientResponse, ex: Exchange, upstream: Upstream
    ) -> web.StreamResponse:
        headers = response_headers(resp.headers, upstream.secret)
        headers["X-Accel-Buffering"] = "no"  # an nginx in front must not buffer the stream
        out = web.StreamResponse(status=resp.status, reason=resp.reason, headers=headers)
        await out.prepare(request)
        ex.relaying = True
        # What the stages' taps do to this stream: at most one filter edits it and one
        # watch reads it (the first tap to offer each).
        strip = watch = watcher = None
        for tap in ex.taps:
            if strip is None:
                strip = tap.edit(ex)
            if watch is None and (watch := tap.watch(ex)) is not None:
                watcher = tap
        self.streams += 1
        try:
            ending = await relay(
                resp.content.readany, out.write, broke=_UPSTREAM_BROKE, chunks=ex.chunks, strip=strip, watch=watch,
                secret=upstream.secret_bytes,
            )
            if ending is Ending.DONE:
                ex.upstream_done()
                await out.write_eof()
            elif ending is Ending.CLIENT_GONE:
                ex.outcome = exchange.CLIENT_ABORTED
            elif ending is Ending.BLOCKED:
                assert watcher is not None
                await _stop(out, ex, watcher)
            else:
                # The upstream broke, or sent the provider key back: close without the
                # final chunk, so the client sees a truncated body, as it would from the
                # provider, and never waits for more.
                ex.outcome = exchange.UPSTREAM_ABORTED
                if ending is Ending.ECHO:
                    ex.reason = CredentialEcho.kind
                if request.transport is not None:
                    request.transport.close()
            return out
        finally:
            self.streams -= 1
            if watcher is not None:
                watcher.closed(ex)


async def _stop(out: web.StreamResponse, ex: Exchange, tap: Tap) -> None:
    """A stream a tap's watch stopped: the tap's last words (the dialect's error event),
    then the end of the stream; the upstream is closed by the caller."""
    ex.outcome = exchange.REFUSED
    try:
        last = tap.stopped(ex)
        if last:
            await out.write(last)
        await out.write_eof()
    except ConnectionError:
        pass


def _path_as_sent(request: web.BaseRequest) -> str:
    """The request's path as the client sent it, for the record of a refusal: bounded."""
    return untrusted.text(request.raw_path.partition("?")[0], untrusted.PATH) or ""


def _is_streamed(resp: aiohttp.ClientResponse) -> bool:
    """Relay piecewise unless the upstream sent a sized, non-SSE body."""
    return resp.content_length is None or resp.content_type == "text/event-stream"


def _parse(body: bytes | None) -> dict:
    if not body:
        raise BadRequest("this endpoint needs a JSON object as the request body")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


def _model(body: dict) -> str | None:
    model = body.get("model")
    return model if isinstance(model, str) else None


def _error_response(dialect: Dialect, err: GatewayError) -> web.Response:
    headers = {"Content-Type": "application/json"}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    body = dialect.error_body(err.status, err.message, retry_after=err.retry_after)
    return web.Response(status=err.status, body=body, headers=headers)
