"""The commands' way to the state store: the config's store, opened for one command.

The commands are synchronous; each runs its work on the store under `asyncio.run`.
A store that cannot be opened (`StateUnavailable`, `SchemaError`) is the command's
error, said in one line by `cli.main`. Reading commands never make a database: an
SQLite path with no file is said to be wrong, not quietly created empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogw import config as config_mod
from aiogw.store import make_store
from aiogw.store.base import Store

T = TypeVar("T")


def where(cfg: config_mod.Config) -> str:
    """The store a config names, for the commands' `state:` line (no password)."""
    return make_store(cfg.state_path, cfg.state_url).where


def run(cfg: config_mod.Config, work: Callable[[Store], Awaitable[T]], *, create: bool = False,
        hint: str = "") -> T:
    """`work(store)` on the config's store, opened and closed around it. `create`: an
    SQLite file may be made (the key commands); `hint` follows the no-file error."""
    if cfg.state_url is None and not create and not cfg.state_path.exists():
        raise FileNotFoundError(f"no state database at {cfg.state_path}: has the gateway run with this config?{hint}")

    async def go() -> T:
        store = make_store(cfg.state_path, cfg.state_url, cfg.state_password)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())
