"""add(namespace, key, value, ttl=None): store only when L2 holds no live value for the key, atomically
across processes (Redis SET NX, one SQLite statement), with both managers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, List

import pytest

from tiercache import AsyncCacheManager, CacheManager, NamespaceConfig
from tiercache.errors import L2Error, SerializationError


@pytest.fixture
def url(any_l2_url: str) -> str:
    return any_l2_url


def test_add_stores_only_what_is_not_there(url: str) -> None:
    with CacheManager(url, env="test") as m, CacheManager(url, env="test") as other:
        m.delete("ns", "k")
        assert m.add("ns", "k", "first") is True
        assert other.add("ns", "k", "second") is False  # another process: L2 has it
        m.l1("ns").clear()
        assert m.get("ns", "k") == "first" and other.get("ns", "k") == "first"
        other.delete("ns", "k")
        assert other.add("ns", "k", "third", ttl=60) is True


def test_the_async_manager_adds_alike(url: str) -> None:
    async def main() -> List[bool]:
        async with AsyncCacheManager(url, env="test") as m:
            await m.delete("ns", "k")
            return [await m.add("ns", "k", 1), await m.add("ns", "k", 2), await m.get("ns", "k") == 1]

    assert asyncio.run(main()) == [True, False, True]


def test_racing_adds_store_one_value(url: str) -> None:
    managers = [CacheManager(url, env="test") for _ in range(4)]
    try:
        managers[0].delete("ns", "race")
        start = threading.Barrier(8)
        won: List[Any] = []

        def one(i: int) -> None:
            start.wait()
            if managers[i % 4].add("ns", "race", i):
                won.append(i)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1
        managers[1].l1("ns").clear()
        assert managers[1].get("ns", "race") == won[0]
    finally:
        for m in managers:
            m.close()


def test_an_expired_value_is_not_there(tmp_path: Path, clock: Any) -> None:
    from tiercache.l2 import SQLiteL2

    l2 = SQLiteL2(tmp_path / "l2.db", clock=clock)
    try:
        assert l2.add("k", b"1", 5.0) is True and l2.add("k", b"2", 5.0) is False
        clock.advance(6)
        assert l2.add("k", b"3") is True and l2.get("k") == b"3"
    finally:
        l2.close()


def test_a_value_that_cannot_be_stored_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test",
                      config={"j": NamespaceConfig(serializer="json")}) as m:
        with pytest.raises(SerializationError):
            m.add("j", "k", {1, 2})
        assert m.add("j", "k", [1, 2]) is True and m.get("j", "k") == [1, 2]
        with pytest.raises(TypeError):
            m.add("j", 1.5, 1)  # type: ignore[arg-type]


def test_without_l2_this_process_decides(tmp_path: Path) -> None:
    cfg = {"mem": NamespaceConfig(persist_to_l2=False), "ns": NamespaceConfig()}
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config=cfg) as m:
        assert m.add("mem", "k", 1) is True and m.add("mem", "k", 2) is False and m.get("mem", "k") == 1
        m.set("ns", "held", "v")

        def down(*args: Any) -> Any:
            raise L2Error("down")

        m.l2.add = down
        assert m.add("ns", "held", "w") is False  # L1 holds it
        assert m.add("ns", "new", "w") is True and m.l1("ns").get("new") == "w"
        assert m.stats()["l2_writes_dropped"] == 1  # removed from L2 once it answers
