"""Gateway keys through the state store, and the gateway's in-memory index of them,
on every store (tests/stores.py)."""

import asyncio
import time

import pytest

from aiogw import keys
from tests.pgserver import pg_server_fixture, pg_url_fixture  # noqa: F401
from tests.stores import STORES, dump_of, fresh_store


@pytest.fixture(params=STORES)
async def store(request, tmp_path):
    async with fresh_store(request, tmp_path) as opened:
        yield opened


async def make(store, user="alice"):
    record, key, digest = keys.new_key(user)
    await store.create_key(record, digest)
    return record, key


async def test_create_stores_only_a_hash(store):
    record, key = await make(store)
    assert key.startswith(keys.KEY_PREFIX) and len(key) > 40
    assert record.user == "alice" and record.id.startswith("key_")
    dump = await dump_of(store)
    assert key.encode() not in dump
    assert key[len(keys.KEY_PREFIX) :].encode() not in dump
    assert keys.digest(key).hex().encode() in dump.lower()  # the dump holds the stored keys: the test can fail
    assert [r.id for r in await store.list_keys()] == [record.id]


async def test_keys_are_unique(store):
    made = {(await make(store))[1] for _ in range(20)}
    assert len(made) == 20
    assert len(await store.list_keys()) == 20


async def test_revoke(store):
    record, _ = await make(store)
    assert await store.revoke_key(record.id, time.time())
    assert not await store.revoke_key(record.id, time.time())  # already revoked
    assert not await store.revoke_key("key_nope", time.time())
    (listed,) = await store.list_keys()
    assert listed.revoked_at is not None


async def until_changed(store, seen):
    """The signature changes when another process made or revoked a key: at once on
    SQLite (a stamp file), once the NOTIFY arrived on PostgreSQL."""
    deadline = time.monotonic() + 5
    while store.key_signature() == seen and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_index_follows_create_and_revoke_without_restart(store):
    index = keys.KeyIndex(store)
    await index.load()  # no key yet
    assert len(index) == 0
    seen = store.key_signature()
    record, key = await make(store)
    await until_changed(store, seen)
    found = await index.resolve(key)
    assert found is not None and found.user == "alice" and found.id == record.id
    assert await index.resolve(key + "x") is None
    seen = store.key_signature()
    await store.revoke_key(record.id, time.time())
    await until_changed(store, seen)
    await asyncio.sleep(keys.KeyIndex.RECHECK)  # a known key is looked at again this often
    revoked = await index.resolve(key)  # known, for the audit record of its refusal
    assert revoked is not None and revoked.revoked_at is not None and revoked.user == "alice"
    assert len(index) == 0  # live keys


class Counting:
    """The store, counting the index's looks at the signature."""

    def __init__(self, store):
        self.store, self.looks = store, 0
        self.where, self.transient = store.where, store.transient

    def key_signature(self):
        self.looks += 1
        return self.store.key_signature()

    async def load_keys(self):
        return await self.store.load_keys()


async def test_a_known_key_is_rechecked_at_most_every_recheck(store):
    source = Counting(store)
    index = keys.KeyIndex(source)
    await index.load()
    seen = store.key_signature()
    _, key = await make(store)
    await until_changed(store, seen)
    assert await index.resolve(key) is not None  # unknown: looked up at once
    source.looks = 0
    for _ in range(100):
        assert await index.resolve(key) is not None
    assert source.looks <= 1  # not one look per request


async def test_concurrent_resolves_share_one_reload(store):
    index = keys.KeyIndex(store)
    await index.load()
    seen = store.key_signature()
    _, key = await make(store, "bob")
    await until_changed(store, seen)
    results = await asyncio.gather(*(index.resolve(key) for _ in range(50)))
    assert all(r is not None and r.user == "bob" for r in results)


async def test_the_index_keeps_its_keys_when_the_store_fails():
    """A store that cannot be read (locked, away): the keys known so far still resolve."""

    class Failing:
        where, transient = "nowhere", ()
        signature = 0

        def key_signature(self):
            return self.signature

        async def load_keys(self):
            if self.signature:
                raise OSError("the database is away")
            return {keys.digest("aiogw-k"): keys.KeyRecord("key_1", "alice", 0.0, None)}

    source = Failing()
    index = keys.KeyIndex(source)
    await index.load()
    source.signature = 1  # a change the index cannot read
    found = await index.resolve("aiogw-k")
    assert found is not None and found.user == "alice"
