"""A model's answer's texts by a dialect's name, for callers that hold the name (tests,
tools). The readers are the dialects' own (`Dialect.answer_texts`)."""

from __future__ import annotations

from typing import Any

from aiogw.dialects import DIALECTS


def answer_texts(dialect: str, data: Any) -> list[str]:
    """The text a model produced in one stream event or one whole response (parsed
    JSON); none for a dialect of no known name."""
    found = DIALECTS.get(dialect)
    return found.answer_texts(data) if found is not None else []
