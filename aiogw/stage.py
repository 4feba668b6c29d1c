"""What a stage is, and the runner the core calls: the contract between the two.

The core (`aiogw.proxy`) routes, authenticates, reads the body, forwards and relays;
everything else an exchange goes through is a stage, and `aiogw.pipeline.build` puts
the stages in one ordered list. A stage has any of these hooks, and each hook runs
over the stages that have it, in the list's order:

- `admit(ex) -> Verdict`: before the body is read (a refusal that need not read it);
- `check(ex) -> Verdict`: on the parsed request. A check may also give the exchange a
  `Tap`: its part in this one exchange's answer (see below);
- `reserve(ex) -> Awaitable[Verdict]`: after every check, the one hook that may wait
  (limits shared in Redis: a round trip); the last word before the request leaves;
- `end(ex) -> None`: on the loop, once the exchange is over, answered or not. Never
  raises: an end hook's trouble is its own to log.

A verdict is one of three types, never a None convention:

- `CONTINUE`: go on with the body as it is;
- `REWRITE`: go on; the stage changed `ex.json` and put the new bytes in `ex.body`
  (a redaction); later stages see the new body;
- `Refuse(error)`: stop; the error is answered in the dialect's envelope and recorded.

A `Tap` is per exchange (Envoy's per-stream filter): made by a check that has
something to do with this exchange's answer, it holds what that stage needs to
remember about it, so no flag on the exchange says who does what.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiogw.errors import GatewayError
from aiogw.exchange import Exchange
from aiogw.relay import Filter, Watch

log = logging.getLogger("aiogw.stage")


@dataclass(frozen=True, slots=True)
class Continue:
    pass


@dataclass(frozen=True, slots=True)
class Rewrite:
    pass


@dataclass(frozen=True, slots=True)
class Refuse:
    error: GatewayError


Verdict = Continue | Rewrite | Refuse
CONTINUE = Continue()
REWRITE = Rewrite()


def enforce(verdict: Verdict) -> None:
    """Raise a refusal's error; any other verdict goes on."""
    if verdict.__class__ is Refuse:
        raise verdict.error  # type: ignore[union-attr]


class Tap:
    """One stage's part in one exchange's answer. Every method has a default that does
    nothing; a tap overrides what it needs.

    - `upstream_headers`: set on the upstream request (the usage filter needs the
      stream uncompressed);
    - `edit(ex)` / `watch(ex)`: at a stream's head (status and headers on `ex`), the
      relay's filter that rewrites what is written, or its watch that reads each chunk
      after it is written and may stop the stream (see `aiogw.relay`);
    - `stopped(ex) -> bytes`: the last bytes of a stream its watch stopped;
    - `closed(ex)`: a stream it watched is over (relayed, stopped or cut);
    - `whole(ex, data) -> Verdict`: a whole (not streamed) answer, as it came, before
      it is returned; a refusal replaces it with the error;
    - `finish(ex, answer)`: off the request path, in the finisher, with the answer read
      once (`aiogw.answer.Reading`), before usage is charged and the record built.
    """

    __slots__ = ()
    upstream_headers: Mapping[str, str] = {}

    def edit(self, ex: Exchange) -> Filter | None:
        return None

    def watch(self, ex: Exchange) -> Watch | None:
        return None

    def stopped(self, ex: Exchange) -> bytes:
        return b""

    def closed(self, ex: Exchange) -> None:
        return None

    def whole(self, ex: Exchange, data: bytes) -> Verdict:
        return CONTINUE

    def finish(self, ex: Exchange, answer: Any) -> None:
        return None


class Stages:
    """The hooks of an ordered list of stages, gathered once (a reload builds a new
    one); an exchange keeps the one it started with to its end."""

    __slots__ = ("admits", "checks", "ends", "keeps_answer", "reserves", "stages")

    def __init__(self, stages: Sequence[object], keeps_answer: bool) -> None:
        self.stages = tuple(stages)
        self.admits = tuple(s.admit for s in stages if hasattr(s, "admit"))
        self.checks = tuple(s.check for s in stages if hasattr(s, "check"))
        self.reserves = tuple(s.reserve for s in stages if hasattr(s, "reserve"))
        self.ends = tuple(s.end for s in stages if hasattr(s, "end"))
        # Something reads the answer once the exchange is over (the finisher): the
        # relay keeps the chunks for it, by reference.
        self.keeps_answer = keeps_answer

    def admit(self, ex: Exchange) -> None:
        """Raises the first refusal's error."""
        for admit in self.admits:
            enforce(admit(ex))

    def check(self, ex: Exchange) -> None:
        """Raises the first refusal's error."""
        for check in self.checks:
            enforce(check(ex))

    async def reserve(self, ex: Exchange) -> None:
        """Raises the first refusal's error."""
        for reserve in self.reserves:
            enforce(await reserve(ex))

    def end(self, ex: Exchange) -> None:
        for end in self.ends:
            try:
                end(ex)
            except Exception:  # one stage's trouble must not cost the others (the record) the exchange
                log.exception("stage %s failed at the end of a %s %s exchange", _owner(end), ex.dialect, ex.endpoint)


def _owner(hook: Any) -> str:
    return type(getattr(hook, "__self__", hook)).__name__
