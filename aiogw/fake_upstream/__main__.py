"""Standalone: python -m aiogw.fake_upstream --port N"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from aiogw.fake_upstream.model import LEAN_MIN_BYTES, FakeConfig
from aiogw.fake_upstream.server import FakeUpstream


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m aiogw.fake_upstream", description="Fake Anthropic, OpenAI and Gemini APIs."
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--chunks", type=int, default=FakeConfig.chunks)
    parser.add_argument("--chunk-delay", type=float, default=FakeConfig.chunk_delay)
    parser.add_argument("--compress", action="store_true")
    parser.add_argument(
        "--lean", action="store_true", help=f"for bodies over {LEAN_MIN_BYTES} bytes, skip the text walk (bench mode)"
    )
    parser.add_argument(
        "--record", action="store_true", help="keep every request in memory (off: a bench run would grow without bound)"
    )
    return parser.parse_args(argv)


async def _serve_until_signal(config: FakeConfig, host: str, port: int) -> None:
    fake = FakeUpstream(config)
    bound = await fake.start(host, port)
    print(f"fake upstream listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    config = FakeConfig(
        anthropic_key=os.environ.get("FAKE_ANTHROPIC_KEY", FakeConfig.anthropic_key),
        openai_key=os.environ.get("FAKE_OPENAI_KEY", FakeConfig.openai_key),
        gemini_key=os.environ.get("FAKE_GEMINI_KEY", FakeConfig.gemini_key),
        chunks=args.chunks,
        chunk_delay=args.chunk_delay,
        compress=args.compress,
        record=args.record,
        lean=args.lean,
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_until_signal(config, args.host, args.port))
    else:
        uvloop.run(_serve_until_signal(config, args.host, args.port))


if __name__ == "__main__":
    main()
