import asyncio
import sqlite3

from aiogw import keys


def test_create_stores_only_a_hash(tmp_path):
    db = tmp_path / "state.db"
    record, key = keys.create(db, "alice")
    assert key.startswith(keys.KEY_PREFIX) and len(key) > 40
    assert record.user == "alice" and record.id.startswith("key_")
    dump = b"".join(line.encode() for line in sqlite3.connect(db).iterdump())
    assert key.encode() not in dump
    assert key[len(keys.KEY_PREFIX) :].encode() not in dump
    assert [r.id for r in keys.list_keys(db)] == [record.id]


def test_keys_are_unique(tmp_path):
    db = tmp_path / "state.db"
    made = {keys.create(db, "alice")[1] for _ in range(20)}
    assert len(made) == 20


def test_revoke(tmp_path):
    db = tmp_path / "state.db"
    record, _ = keys.create(db, "alice")
    assert keys.revoke(db, record.id)
    assert not keys.revoke(db, record.id)  # already revoked
    assert not keys.revoke(db, "key_nope")
    (listed,) = keys.list_keys(db)
    assert listed.revoked_at is not None


def test_list_without_database(tmp_path):
    assert keys.list_keys(tmp_path / "none.db") == []


async def test_index_follows_create_and_revoke_without_restart(tmp_path):
    db = tmp_path / "state.db"
    index = keys.KeyIndex(db)
    index.load()  # no database yet
    assert len(index) == 0
    record, key = await asyncio.to_thread(keys.create, db, "alice")
    found = await index.resolve(key)
    assert found is not None and found.user == "alice" and found.id == record.id
    assert await index.resolve(key + "x") is None
    await asyncio.to_thread(keys.revoke, db, record.id)
    await asyncio.sleep(keys.KeyIndex.RECHECK)  # a known key is looked at again this often
    revoked = await index.resolve(key)  # known, for the audit record of its refusal
    assert revoked is not None and revoked.revoked_at is not None and revoked.user == "alice"
    assert len(index) == 0  # live keys


async def test_a_known_key_is_rechecked_at_most_every_recheck(tmp_path, monkeypatch):
    db = tmp_path / "state.db"
    index = keys.KeyIndex(db)
    index.load()
    _, key = await asyncio.to_thread(keys.create, db, "alice")
    assert await index.resolve(key) is not None  # unknown: looked up at once
    stats = []
    real = keys.KeyIndex._signature
    monkeypatch.setattr(keys.KeyIndex, "_signature", lambda self: stats.append(1) or real(self))
    for _ in range(100):
        assert await index.resolve(key) is not None
    assert len(stats) <= 1  # not one stat() per request


async def test_concurrent_resolves_share_one_reload(tmp_path):
    db = tmp_path / "state.db"
    index = keys.KeyIndex(db)
    index.load()
    _, key = await asyncio.to_thread(keys.create, db, "bob")
    results = await asyncio.gather(*(index.resolve(key) for _ in range(50)))
    assert all(r is not None and r.user == "bob" for r in results)
