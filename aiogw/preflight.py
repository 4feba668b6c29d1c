"""The checks a request passes before it leaves, and the one loop that runs them.

Each check is a small object with one method, `check(ex) -> Verdict`, run in the order
of the list the app builds (guards first, then limits, then budget). A verdict is one
of three types, never a None convention:

- `CONTINUE`: go on with the body as it is;
- `Rewrite()`: go on, the check changed `ex.json` and put the new bytes in `ex.body`
  (a redaction); later checks see the new body;
- `Refuse(error)`: stop; the error is answered in the dialect's envelope and audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiogw.errors import GatewayError
from aiogw.exchange import Exchange


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


class Check(Protocol):
    def check(self, ex: Exchange) -> Verdict: ...


def run(checks: Sequence[Check], ex: Exchange) -> None:
    """Run the checks in order; raises the first refusal's error."""
    for c in checks:
        verdict = c.check(ex)
        if isinstance(verdict, Refuse):
            raise verdict.error
