"""The reference ceiling: a minimal aiohttp-on-uvloop reverse proxy.

It does what every Python proxy must do and nothing else: one shared keep-alive
session, forward method, path, headers and body, relay the response (chunk by chunk
when it has no length, else read and answer). No auth, no parsing, no logging. aiogw's
throughput is judged as a fraction of this one's, measured in the same run.

    python -m bench.passthrough --port N --upstream http://127.0.0.1:M
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
import uvloop
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

# Hop-by-hop headers (RFC 9110 §7.6.1) and those aiohttp recomputes for each side.
_DROP = frozenset(("connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                   "host", "content-length", "proxy-connection"))


def _filtered(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in _DROP:
            out.add(name, value)
    return out


class Passthrough:
    __slots__ = ("base", "session")

    def __init__(self, upstream: str) -> None:
        self.base = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            # Same pool size and header policy as aiogw, so neither side is handicapped:
            # no pool queueing, and only the client's own headers go upstream.
            connector=aiohttp.TCPConnector(limit=16_384, limit_per_host=0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        body = await request.read()
        url = URL(self.base + request.raw_path, encoded=True)
        async with self.session.request(request.method, url, headers=_filtered(request.headers),
                                        data=body or None, allow_redirects=False) as resp:
            headers = _filtered(resp.headers)
            if resp.content_length is None:
                out = web.StreamResponse(status=resp.status, reason=resp.reason, headers=headers)
                await out.prepare(request)
                async for chunk in resp.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out
            data = await resp.read()
            return web.Response(status=resp.status, reason=resp.reason, body=data, headers=headers)


async def serve(host: str, port: int, upstream: str) -> None:
    proxy = Passthrough(upstream)
    await proxy.start()
    # Bodies as large as aiogw accepts (its default max_body_bytes).
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=4096, reuse_address=True).start()
    print(f"passthrough listening on http://{host}:{port} -> {upstream}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await proxy.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9000")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    main()
