"""What differs between providers, as plain data in and out (no sockets here).

A dialect classifies an upstream path into an `Endpoint`, names the header that carries
the provider credential, renders the gateway's own errors in the provider's envelope
(and as a stream's last event) so each SDK raises its usual exception, reads answers
and usage back, and gives the guards a request's and an answer's texts. Every fact
about a provider lives here: a stage looks its dialect up in `DIALECTS` by the route's
dialect name and asks it, and never tests the name itself.
"""

from __future__ import annotations

from aiogw.dialects.anthropic import ANTHROPIC
from aiogw.dialects.base import OTHER, Answer, Dialect, Endpoint, RequestParts, Usage
from aiogw.dialects.gemini import GEMINI
from aiogw.dialects.openai import OPENAI

__all__ = ["DIALECTS", "OTHER", "Answer", "Dialect", "Endpoint", "RequestParts", "Usage", "guess"]

DIALECTS: dict[str, Dialect] = {d.name: d for d in (ANTHROPIC, OPENAI, GEMINI)}


def guess(path: str) -> Dialect:
    """The dialect a path most likely speaks, for errors before a route is known."""
    if "/messages" in path or "/anthropic" in path:
        return ANTHROPIC
    if ":generateContent" in path or ":streamGenerateContent" in path or "/v1beta/" in path:
        return GEMINI
    return OPENAI
