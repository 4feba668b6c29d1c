"""Audit spools of workers that no longer run (`[server] workers` lowered between two
starts): worker 0 takes them over and replays them, so no record waits in one for ever."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from aiogw import config
from aiogw.app import orphan_spools
from aiogw.audit import spool as spool_mod
from aiogw.audit.recorder import Recorder
from aiogw.audit.writer import AuditWriter
from aiogw.config import AuditSettings
from aiogw.store.sqlite import SQLiteStore
from tests.builders import close_writer, exchange, turns, until
from tests.conftest import FAKE_ROUTES, PROVIDER_KEYS


def test_the_spools_of_workers_past_the_count_are_the_orphans(tmp_path):
    path = tmp_path / "aiogw.toml"
    path.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n[server]\nworkers = 2\n'
                    + FAKE_ROUTES.format(fake="http://127.0.0.1:9"))
    cfg = config.load(path, env=PROVIDER_KEYS)
    for name in ("state.db.audit-spool", "state.db.w1.audit-spool", "state.db.w2.audit-spool",
                 "state.db.w2.audit-spool.done", "state.db.w10.audit-spool", "state.db.wx.audit-spool"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in orphan_spools(cfg)] == ["state.db.w10.audit-spool", "state.db.w2.audit-spool"]
    one = replace(cfg, server=replace(cfg.server, workers=1))
    assert [p.name for p in orphan_spools(one)] == [
        "state.db.w1.audit-spool", "state.db.w10.audit-spool", "state.db.w2.audit-spool"]


async def test_worker_0_takes_over_an_orphan_spool_and_stores_its_records_once(tmp_path):
    db = tmp_path / "state.db"
    settings = AuditSettings(batch_size=4, flush_interval=0.001)
    recorder = Recorder(settings)
    records = [recorder.build(exchange(1_000_000 + i, msgs)) for i, msgs in enumerate(turns(5))]
    orphan = spool_mod.path_for(Path(f"{db}.w3"))
    left = spool_mod.Spool(orphan, 1 << 30)
    left.append(spool_mod.encode(records[:2]))
    left.append(spool_mod.encode(records[2:]))
    left.mark(len(spool_mod.encode(records[:2])))  # its first batch was stored before that worker stopped
    store = SQLiteStore(db)
    await store.open()
    await store.write_batch(records[:2], {})
    writer = AuditWriter(store, db, settings, orphans=[orphan])
    await writer.start()
    try:
        assert await until(lambda: writer.replayed == 3 and not writer.spool.pending)
    finally:
        await close_writer(writer)
    assert not orphan.exists() and not orphan.with_name(orphan.name + ".done").exists()
    started = [r[0] for r in sqlite3.connect(db).execute("SELECT started FROM exchanges ORDER BY started")]
    assert started == [1_000_000 + i for i in range(5)]  # each once
