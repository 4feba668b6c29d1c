"""Moved to `aiogw.jsonout`; kept only for the importers that are not this change's to
edit (guards.history, tests/test_guards_hostile.py). Delete once they import jsonout."""

from aiogw.jsonout import dumps, dumps_any_depth

__all__ = ["dumps", "dumps_any_depth"]
