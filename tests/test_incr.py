"""incr(namespace, key, delta=1): atomic across processes, keeping the entry's expiry; an int is added to by
L2 itself (a script on Redis, a transaction on SQLite), anything else swapped in only if L2 still holds
what was read."""

from __future__ import annotations

import asyncio
import decimal
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest

from tiercache import AsyncCacheManager, CacheManager, NamespaceConfig
from tiercache.wire import EXACT_INT
from redis_servers import wait_for


@pytest.fixture
def url(any_l2_url: str) -> str:
    return any_l2_url


def test_incr_adds_and_keeps_the_expiry(url: str) -> None:
    with CacheManager(url, env="test", hmac_key="k",
                      config={"p": NamespaceConfig(serializer="pickle", l2_ttl=600)}) as m:
        m.set("p", "n", 5, ttl=300)
        raw = m.l2.get(m._l2_key("p", "n"))
        assert raw[9:11] == b"M\x00"  # an int is msgpack in every namespace: L2 can add to it
        assert m.incr("p", "n") == 6 and m.incr("p", "n", -10) == -4
        assert m.get("p", "n") == -4 and m.l1("p").ttl("n") <= 300
        after = m.l2.get(m._l2_key("p", "n"))
        assert after[:9] == raw[:9]  # the expiry header, as it was
        assert m.stats()["l2_writes_dropped"] == 0


def test_values_l2_cannot_add_to_are_swapped_in(url: str) -> None:
    with CacheManager(url, env="test") as m:
        m.set("ns", "f", 1.5)
        m.set("ns", "d", decimal.Decimal("1.25"))
        m.set("ns", "big", EXACT_INT + 10)  # beyond what Redis's Lua numbers hold exactly
        assert m.incr("ns", "f", 2) == 3.5 and m.incr("ns", "d") == decimal.Decimal("2.25")
        assert m.incr("ns", "big", 1) == EXACT_INT + 11 and m.incr("ns", "big", -(EXACT_INT + 11)) == 0
        m.l1("ns").clear()
        assert m.get_many("ns", ["f", "d", "big"]) == {"f": 3.5, "d": decimal.Decimal("2.25"), "big": 0}


def test_absent_keys_and_values_that_take_no_int_are_refused(url: str) -> None:
    with CacheManager(url, env="test") as m:
        m.delete("ns", "none")
        with pytest.raises(KeyError):
            m.incr("ns", "none")
        m.set("ns", "s", "text")
        with pytest.raises(TypeError):
            m.incr("ns", "s")
        with pytest.raises(TypeError, match="delta"):
            m.incr("ns", "s", 1.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="delta"):
            m.incr("ns", "s", True)
        m.set("ns", "g", 1.0, ttl=1000)
        with pytest.raises(TypeError):
            m.incr("ns", "g", "1")  # type: ignore[arg-type]
        assert m.get("ns", "g") == 1.0
        m.l1("ns").clear()
        assert m.get("ns", "s") == "text" and m.get("ns", "none") is None


def test_the_async_manager_adds_alike(url: str) -> None:
    async def main() -> List[Any]:
        async with AsyncCacheManager(url, env="test") as m:
            await m.set("ns", "n", 1)
            await m.set("ns", "f", 0.5)
            return [await m.incr("ns", "n", 41), await m.incr("ns", "f"), await m.get("ns", "n")]

    assert asyncio.run(main()) == [42, 1.5, 42]


def test_another_process_drops_its_copy(url: str) -> None:
    cfg = {"ns": NamespaceConfig(promotion="immediate")}
    with CacheManager(url, env="test", config=cfg) as a, CacheManager(url, env="test") as b:
        if a.listener_connected is not None:
            assert a.listener_connected.wait(5)
        b.set("ns", "n", 1)
        b.flush_invalidations()
        assert wait_for(lambda: a.get("ns", "n") == 1 and "n" in a.l1("ns"))
        b.incr("ns", "n")
        b.flush_invalidations()
        assert wait_for(lambda: "n" not in a.l1("ns")) and a.get("ns", "n") == 2


def test_a_namespace_in_l1_alone_adds_under_the_managers_lock(tmp_path: Path) -> None:
    import threading

    cfg = {"mem": NamespaceConfig(persist_to_l2=False, l1_grace_period=30)}
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config=cfg) as m:
        m.set("mem", "n", 0)
        threads = [threading.Thread(target=lambda: [m.incr("mem", "n") for _ in range(500)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert m.get("mem", "n") == 2000


WORKER = """
import sys
from tiercache.manager import CacheManager
with CacheManager(sys.argv[1], env="test") as m:
    for _ in range(250):
        m.incr("ns", "counter")
"""


def test_processes_adding_at_once_lose_nothing(url: str) -> None:
    with CacheManager(url, env="test") as m:
        m.set("ns", "counter", 0)
        workers = [subprocess.Popen([sys.executable, "-c", WORKER, url], stderr=subprocess.PIPE, text=True)
                   for _ in range(4)]
        errors = [w.communicate(timeout=120)[1] for w in workers]
        assert all(w.returncode == 0 for w in workers), errors
        m.l1("ns").clear()
        assert m.get("ns", "counter") == 1000


def test_a_swapped_value_keeps_its_l2_expiry(url: str) -> None:
    """Not L1's: a shorter l1_ttl, or no L1 copy at all, leaves the entry's L2 expiry as it was."""
    cfg = {"ns": NamespaceConfig(l1_ttl=5, l2_ttl=None)}
    with CacheManager(url, env="test", config=cfg) as m:
        m.set("ns", "f", 0.5, ttl=1000)
        before = m.l2.get(m._l2_key("ns", "f"))[:9]
        m.l1("ns").clear()
        assert m.incr("ns", "f") == 1.5
        assert m.l2.get(m._l2_key("ns", "f"))[:9] == before  # the expiry header, as it was
        if m.l2.kind == "redis":
            assert 990_000 < m.l2.client.pttl(m._l2_key("ns", "f")) <= 1_000_000


def test_a_swap_that_loses_a_race_reads_again(tmp_path: Path) -> None:
    """Another write between the read and the swap: nothing is lost, the value is read again."""
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test") as m, \
            CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test") as other:
        m.set("ns", "f", 1.0)
        real = m.l2.swap
        raced: List[int] = []

        def swap(key: str, old: bytes, new: bytes) -> bool:
            if not raced:
                raced.append(1)
                other.incr("ns", "f", 10)  # lands first
            return real(key, old, new)

        m.l2.swap = swap
        assert m.incr("ns", "f", 1) == 12.0 and other.get("ns", "f") in (11.0, 12.0)
        other.l1("ns").clear()
        assert other.get("ns", "f") == 12.0


def test_a_key_owed_a_repair_is_added_to_as_this_process_sees_it(tmp_path: Path) -> None:
    """A write that never reached L2 left L2 the value it replaced: incr counts on from this process's
    value (and writes it as set does), add sees this process's view."""
    from tiercache.errors import L2Error

    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test",
                      config={"ns": NamespaceConfig(promotion="immediate")}) as m:
        m.set("ns", "n", 5)
        m.set("ns", "gone", 1)
        real_set, real_delete = m.l2.set, m.l2.delete

        def down(*args: Any) -> Any:
            raise L2Error("down")

        m.l2.set = m.l2.delete = down
        m.set("ns", "n", 100)  # dropped: L2 still has 5
        m.delete("ns", "gone")  # dropped: L2 still has 1
        m.l2.set, m.l2.delete = real_set, real_delete
        assert m.incr("ns", "n") == 101
        assert m.add("ns", "gone", "new") is True and m.get("ns", "gone") == "new"


def test_a_cancelled_incr_leaves_no_old_copy(tmp_path: Path) -> None:
    """Cancelled while L2 adds (here: on the store's worker thread): the copy of the old value goes."""
    import threading

    async def main() -> Any:
        async with AsyncCacheManager(f"sqlite:///{tmp_path}/l2.db", env="test",
                                     config={"ns": NamespaceConfig(promotion="immediate")}) as m:
            await m.set("ns", "n", 1)
            assert m.l1("ns").peek("n") == 1
            real = m.l2.sync.incr
            started, go, done = threading.Event(), threading.Event(), threading.Event()

            def held(key: str, delta: int) -> Any:
                started.set()
                go.wait(10)
                try:
                    return real(key, delta)
                finally:
                    done.set()

            m.l2.incr = lambda key, delta: m.l2._run(held, key, delta)
            task = asyncio.ensure_future(m.incr("ns", "n"))
            assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert "n" not in m.l1("ns")
            go.set()
            await asyncio.get_running_loop().run_in_executor(None, done.wait, 10)
            return await m.get("ns", "n")

    assert asyncio.run(main()) == 2


def test_an_l2_that_can_neither_add_nor_swap_counts_on_from_this_process(tmp_path: Path) -> None:
    from tiercache.l2 import SQLiteL2

    class Plain:
        """An L2 of the base protocol and locks only."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            if name in ("incr", "swap"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    with CacheManager(Plain(SQLiteL2(tmp_path / "l2.db")), env="test") as m:
        m.set("ns", "n", 1)
        assert m.incr("ns", "n", 2) == 3 and m.get("ns", "n") == 3
        m.l1("ns").clear()
        assert m.get("ns", "n") == 3  # written through to L2 as set writes
