"""Tags: set(..., tags=...) and invalidate_tag remove every entry carrying a tag, from L2 and from every
process's L1, on Redis, Redis Cluster and SQLite, with the sync and the async manager."""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path
from typing import Any, List

import pytest

from tiercache import AsyncCacheManager, CacheManager, NamespaceConfig
from tiercache.errors import L2Error
from tiercache.manager.base import TAG_BATCH
from redis_servers import wait_for


@pytest.fixture
def url(any_l2_url: str) -> str:
    return any_l2_url


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def tag_story(m: Any) -> List[Any]:
    """What both managers must answer alike."""
    await _maybe(m.clear("ns"))
    out: List[Any] = []
    await _maybe(m.set("ns", "u1", "alice", tags=("user:1", "users")))
    await _maybe(m.set("ns", "u2", "bob", tags=["user:2", "users"]))
    await _maybe(m.set_many("ns", {"p1": 1, "p2": 2}, tags={"user:1"}))
    await _maybe(m.set("ns", "plain", "kept"))
    out.append(await _maybe(m.get_or_set("ns", "loaded", lambda: "L", tags=("user:1",))))
    out.append(await _maybe(m.invalidate_tag("ns", "user:1")))  # u1, p1, p2, loaded
    for key in ("u1", "p1", "p2", "loaded", "u2", "plain"):
        m.l1("ns").delete(key)  # what L2 holds, not this process's copy
        out.append(await _maybe(m.get("ns", key, "-")))
    out.append(await _maybe(m.invalidate_tag("ns", "user:1")))  # nothing left
    out.append(await _maybe(m.invalidate_tag("ns", "users")))  # u2
    out.append(await _maybe(m.get("ns", "u2", "-")))
    out.append(await _maybe(m.invalidate_tag("other", "users")))  # a tag belongs to its namespace
    out.append(m.stats()["tag_invalidations"])
    return out


EXPECTED = ["L", 4, "-", "-", "-", "-", "bob", "kept", 0, 1, "-", 0, 4]


def test_invalidate_tag_removes_what_carries_the_tag(url: str) -> None:
    with CacheManager(url, env="test") as m:
        assert asyncio.run(tag_story(m)) == EXPECTED


def test_the_async_manager_tags_alike(url: str) -> None:
    async def main() -> List[Any]:
        async with AsyncCacheManager(url, env="test") as m:
            return await tag_story(m)

    assert asyncio.run(main()) == EXPECTED


def test_another_process_drops_its_copies(url: str) -> None:
    """Managers of one process have their own ids: what one invalidates, the other hears as another process
    would."""
    cfg = {"ns": NamespaceConfig(promotion="immediate")}
    with CacheManager(url, env="test", config=cfg) as a, CacheManager(url, env="test") as b:
        if a.listener_connected is not None:
            assert a.listener_connected.wait(5)
        a.get("ns", "k")  # (a namespace a holds: messages for it are heard)
        b.set("ns", "k", "v", tags=("t",))
        b.flush_invalidations()  # its message heard before a reads: a read the message overtook is not kept
        assert wait_for(lambda: a.counters.by_namespace()["ns"]["invalidations_received"] == 1)
        assert a.get("ns", "k") == "v" and "k" in a.l1("ns")
        assert b.invalidate_tag("ns", "t") == 1
        b.flush_invalidations()
        assert wait_for(lambda: "k" not in a.l1("ns"))
        assert a.get("ns", "k") is None


def test_a_tag_carried_by_many_keys_goes_in_rounds(url: str) -> None:
    """However many keys carry the tag, invalidate_tag holds at most TAG_BATCH of them at a time."""
    with CacheManager(url, env="test") as m:
        m.clear("many")
        n = 2 * TAG_BATCH + 17
        m.set_many("many", {i: i for i in range(n)}, tags=("all",))
        m.set_many("many", {f"odd{i}": i for i in range(5)}, tags=("odd",))
        rounds: List[int] = []
        pop = m.l2.pop_tagged

        def counted(tag_key: str, count: int) -> Any:
            keys = pop(tag_key, count)
            rounds.append(len(keys))
            assert count <= TAG_BATCH
            return keys

        m.l2.pop_tagged = counted
        assert m.invalidate_tag("many", "all") == n
        assert rounds == [TAG_BATCH, TAG_BATCH, 17]
        m.l1("many").clear()
        assert m.get_many("many", [0, TAG_BATCH, n - 1]) == {} and m.get("many", "odd3") == 3


@pytest.mark.parametrize("tags, error", [
    ("user:1", TypeError),  # a lone str would be its characters
    (b"t", TypeError),
    (("ok", 1), TypeError),
    (("ok", ""), ValueError),
    (("\ud800",), ValueError),
    (5, TypeError),
])
def test_bad_tags_are_refused_and_nothing_is_written(tmp_path: Path, tags: Any, error: type) -> None:
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test") as m:
        with pytest.raises(error, match="tag"):
            m.set("ns", "k", 1, tags=tags)
        with pytest.raises(error, match="tag"):
            m.get_or_set("ns", "k", lambda: 1, tags=tags)
        with pytest.raises(error, match="tag"):
            m.cached("ns", tags=tags)
        assert m.get("ns", "k") is None and "k" not in m.l1("ns")
        with pytest.raises((TypeError, ValueError), match="tag"):
            m.invalidate_tag("ns", 1)  # type: ignore[arg-type]


def test_cached_results_carry_its_tags(tmp_path: Path) -> None:
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test") as m:
        calls: List[int] = []

        @m.cached("ns", tags=("prices",))
        def price(item: int) -> int:
            calls.append(item)
            return item * 10

        assert price(1) == 10 and price(1) == 10 and calls == [1]
        assert m.invalidate_tag("ns", "prices") == 1
        assert price(1) == 10 and calls == [1, 1]


def test_a_namespace_kept_in_l1_only_tags_in_this_process(tmp_path: Path) -> None:
    cfg = {"mem": NamespaceConfig(persist_to_l2=False)}
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config=cfg) as m:
        m.set("mem", "a", 1, tags=("t",))
        m.set("mem", "b", 2)
        assert m.invalidate_tag("mem", "t") == 1
        assert m.get("mem", "a") is None and m.get("mem", "b") == 2
        assert m.invalidate_tag("mem", "t") == 0


def test_the_l1_only_index_forgets_keys_l1_let_go(tmp_path: Path) -> None:
    from tiercache.manager.base import LOCAL_TAGS_MIN

    cfg = {"mem": NamespaceConfig(persist_to_l2=False, l1_max_entries=10)}
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config=cfg) as m:
        for i in range(3 * LOCAL_TAGS_MIN):
            m.set("mem", i, i, tags=("t",))
        assert m._local_tagged <= 2 * LOCAL_TAGS_MIN  # bounded, not 3 × LOCAL_TAGS_MIN
        assert m.invalidate_tag("mem", "t") == 10  # what L1 still held
        assert len(m.l1("mem")) == 0


def test_an_l2_failure_while_invalidating_empties_the_namespace(tmp_path: Path) -> None:
    """Which entries carry the tag is known to L2 only: when it fails, the namespace goes (here at once,
    in L2 once it answers again)."""
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test") as m:
        m.set("ns", "tagged", 1, tags=("t",))
        m.set("ns", "other", 2)
        real = m.l2.pop_tagged

        def failing(tag_key: str, count: int) -> Any:
            raise L2Error("down")

        m.l2.pop_tagged = failing
        assert m.invalidate_tag("ns", "t") == 0
        assert len(m.l1("ns")) == 0 and m.stats()["l2_errors"] == 1
        assert m.l2.get(m._l2_key("ns", "tagged")) is not None  # L2 not reached yet...
        m.l2.pop_tagged = real
        m.get("ns", "x")  # ...an answer from L2 starts the repair
        assert wait_for(lambda: m.l2.get(m._l2_key("ns", "other")) is None)
        assert m.get("ns", "tagged") is None and m.get("ns", "other") is None


def test_sqlite_forgets_tags_of_expired_entries(tmp_path: Path, clock: Any) -> None:
    from tiercache.l2 import SQLiteL2

    l2 = SQLiteL2(tmp_path / "l2.db", clock=clock)
    try:
        l2.set_tagged({"a": b"1", "b": b"2"}, 10.0, ["t"])
        l2.set_tagged({"c": b"3"}, None, ["t"])
        clock.advance(11)
        l2.purge_expired()
        assert l2.pop_tagged("t", 10) == ["c"] and l2.pop_tagged("t", 10) == []
    finally:
        l2.close()


def test_redis_tag_index_sheds_members_long_expired(redis_url: str) -> None:
    """The index is a sorted set scored by expiry: a tagged write drops members whose entry expired more than
    TAG_PRUNE_MARGIN_MS ago, and the index itself expires with its longest-lived entry."""
    import redis

    from tiercache.l2.redis import TAG_PRUNE_MARGIN_MS, queue_tagged

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete("tix")
        now = time.time()
        pipe = client.pipeline(transaction=False)
        queue_tagged(pipe, {"old": b"1"}, 1.0, ["tix"], now - 3600)  # written an hour ago, 1 s TTL
        queue_tagged(pipe, {"new": b"2"}, 30.0, ["tix"], now)
        pipe.execute()
        assert client.zrange("tix", 0, -1) == [b"new"]
        assert 0 < client.pttl("tix") <= 30_000 + TAG_PRUNE_MARGIN_MS
        pipe = client.pipeline(transaction=False)
        queue_tagged(pipe, {"short": b"3"}, 1.0, ["tix"], now)  # never shortens the index's life
        queue_tagged(pipe, {"forever": b"4"}, None, ["tix"], now)
        pipe.execute()
        assert client.pttl("tix") == -1 and client.zcard("tix") == 3
        pipe = client.pipeline(transaction=False)
        queue_tagged(pipe, {"later": b"5"}, 1.0, ["tix"], now)  # an entry that never expires keeps it forever
        pipe.execute()
        assert client.pttl("tix") == -1 and client.zcard("tix") == 4
    finally:
        client.delete("tix", "old", "new", "short", "forever", "later")
        client.close()


def test_no_tags_is_none_or_empty_and_falsy_non_collections_are_refused(tmp_path: Path) -> None:
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test") as m:
        assert m.set("ns", "a", 1, tags=None) and m.set("ns", "b", 1, tags=[]) and m.get_or_set("ns", "c", lambda: 1,
                                                                                                  tags=None) == 1
        for bad in ("", 0, b""):
            with pytest.raises(TypeError, match="tags"):
                m.set("ns", "d", 1, tags=bad)
        assert m.get("ns", "d") is None


def test_strict_mode_keeps_what_a_failed_round_took_from_the_index(tmp_path: Path) -> None:
    """The index lets go of a round's keys before they are deleted: when the delete fails (strict mode
    raises), they are owed a removal, read as misses meanwhile, and removed once L2 answers."""
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", strict=True) as m:
        m.set("ns", "k", "v", tags=("t",))
        real = m.l2.delete_many

        def failing(keys: Any) -> Any:
            raise L2Error("down")

        m.l2.delete_many = failing
        with pytest.raises(L2Error):
            m.invalidate_tag("ns", "t")
        m.l2.delete_many = real
        assert "k" not in m.l1("ns") and m.get("ns", "k") is None
        assert wait_for(lambda: m.l2.get(m._l2_key("ns", "k")) is None)


def test_an_async_store_without_tags_refuses_them_clearly(tmp_path: Path) -> None:
    from tiercache.l2 import SQLiteL2
    from tiercache.l2.aio import threaded

    class Plain:
        """An L2 of the base protocol only."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            if name in ("set_tagged", "pop_tagged", "add", "lock", "unlock"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    async def main() -> None:
        async with AsyncCacheManager(threaded(Plain(SQLiteL2(tmp_path / "l2.db"))), env="test") as m:
            with pytest.raises(TypeError, match="tags"):
                await m.set("ns", "k", 1, tags=("t",))
            assert m.stats()["l2_errors"] == 0 and await m.get("ns", "k") is None

    asyncio.run(main())


def test_deleted_and_cleared_keys_leave_the_index(url: str) -> None:
    with CacheManager(url, env="test") as m:
        m.clear("ns")
        m.set_many("ns", {i: i for i in range(50)}, tags=("t",))
        assert m.delete_many("ns", range(25)) == 25
        m.set("ns", 3, "untagged now")
        if m.l2.kind == "sqlite":  # a row of the index goes with its entry's
            assert m.invalidate_tag("ns", "t") == 25 and m.get("ns", 3) == "untagged now"
            m.set_many("ns", {i: i for i in range(50)}, tags=("t",))
        m.clear("ns")  # the namespace's indexes go with it
        assert m.invalidate_tag("ns", "t") == 0
