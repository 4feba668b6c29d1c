"""A request's texts by a dialect's name, for callers that hold the name (tests, tools).

The readers are the dialects' own (`Dialect.shape`, `Dialect.request_texts`, in the
`*_texts` modules; the places in `blocks`). `same_prefix` and `equal`, which compare a
conversation's history with the last turn's, live in `shape` and are named here too,
where the audit imports them from.
"""

from __future__ import annotations

from typing import Any

from aiogw.dialects import DIALECTS
from aiogw.dialects.shape import equal, same_prefix
from aiogw.dialects.walk import Text

__all__ = ["equal", "same_prefix", "texts"]


def texts(dialect: str, endpoint: str, body: dict[str, Any]) -> list[Text]:
    """Every text of a request, in order; none for a dialect of no known name."""
    found = DIALECTS.get(dialect)
    return found.request_texts(endpoint, body) if found is not None else []
