"""The commands' way to the state store: the config's store, opened for one command.

The commands are synchronous; each runs its work on the store under `asyncio.run`.
A store that cannot be opened (`StateUnavailable`, `SchemaError`) is the command's
error, said in one line by `cli.main`; so is a server that goes away once opened, or
refuses a statement (`Store.failure`), rather than the driver's traceback. Reading
commands never make a database: an SQLite path with no file is said to be wrong, not
quietly created empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from aiogw import config as config_mod
from aiogw.store import make_store
from aiogw.store.base import StateUnavailable, Store

T = TypeVar("T")

# What logs, during a command, the trouble the command then says in one line: asyncpg's
# pool, its reconnects with their tracebacks; the key watch, its lost connection.
_QUIET = ("asyncpg", "aiogw.store")


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
        with said(store):  # open() says what it knows (StateUnavailable); a server gone meanwhile, here
            await store.open()
        try:
            with said(store):
                return await work(store)
        finally:
            await store.close()

    with quiet_driver():
        return asyncio.run(go())


@contextlib.contextmanager
def said(store: Store) -> Iterator[None]:
    """An error of the store's in the block (`Store.failure`) as StateUnavailable, in one
    line and without the driver's traceback; anything else as it is."""
    try:
        yield
    except Exception as exc:
        text = store.failure(exc)
        if text is None:
            raise
        raise StateUnavailable(text) from None


@contextlib.contextmanager
def quiet_driver() -> Iterator[None]:
    """For one command: the driver's and the store's log lines of a server gone away
    are not printed (the command says what failed); their levels restored after."""
    loggers = [logging.getLogger(name) for name in _QUIET]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
