"""AsyncCacheManager: the CacheManager contract with awaitables, on a real redis-server and the SQLite store."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import weakref
from typing import Any, Awaitable, List

import pytest

from tiercache import AsyncCacheManager, CacheManager, NamespaceConfig
from tiercache.errors import CircuitOpenError, L2Error
from tiercache.l2.aio import AsyncRedisL2, ThreadedL2

BIG = {"l1_max_entries": 10_000, "l1_max_bytes": 1 << 24, "l1_ttl": 3600, "l2_ttl": None}


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def calls(client: Any, name: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0))


@pytest.fixture(params=["sqlite", "redis"])
def l2_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/l2.db"
    return request.getfixturevalue("redis_url")  # type: ignore[no-any-return]


def test_the_two_tier_contract(l2_url: str) -> None:
    async def main() -> None:
        async with AsyncCacheManager(l2_url, env="test", config={"ns": BIG}) as m:
            assert await m.set("ns", "a", {"x": 1}) is True
            assert await m.get("ns", "a") == {"x": 1}
            assert await m.get("ns", "absent", "d") == "d"
            assert await m.set_many("ns", {1: "one", b"b": (1, 2)}) == 2
            m.l1("ns").clear()  # from L2 now
            assert await m.get_many("ns", [1, b"b", "a", "nope"]) == {1: "one", b"b": (1, 2), "a": {"x": 1}}
            assert await m.get("ns", 1) == "one"  # promoted into L1 by get_many
            assert await m.delete("ns", "a") is True and await m.get("ns", "a") is None
            assert await m.warmup("other", [("w", 1)]) == 1
            assert await m.clear("ns") >= 2 and await m.get("ns", 1) is None
            with pytest.raises(TypeError):
                await m.set("ns", 1.5, "float keys are rejected")
            with pytest.raises(ValueError):
                await m.set("ns", "k", 1, ttl=-1)
            assert await m.ping() is True
            health = await m.perform_health_assessment()
            assert health["status"] in ("idle", "healthy", "degraded", "unhealthy", "critical")
            stats = m.stats()
            assert stats["sets"] == 4 and stats["deletes"] == 1 and stats["l2_hits"] >= 3

    run(main())


def test_an_l1_hit_is_already_done_and_awaits_no_io(tmp_path: Any) -> None:
    async def main() -> None:
        async with AsyncCacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config={"ns": BIG},
                                     invalidation=False) as m:
            await m.set("ns", "k", 1)
            hit = m.get("ns", "k")
            assert inspect.isawaitable(hit) and not inspect.iscoroutine(hit)
            await m.l2.aclose()  # L2 gone: an L1 hit does not notice
            assert await hit == 1 and await m.get("ns", "k") == 1
            assert await asyncio.gather(m.get("ns", "k"), m.get("ns", "k")) == [1, 1]
            miss = m.get("ns", "other")
            assert inspect.iscoroutine(miss)
            assert await miss is None  # L2 fails: a miss, counted, never raised
            assert m.stats()["l2_errors"] == 1

    run(main())


def test_concurrent_misses_run_the_loader_once(l2_url: str) -> None:
    async def main() -> None:
        async with AsyncCacheManager(l2_url, env="test", config={"ns": BIG}) as m:
            started: List[int] = []

            async def loader() -> str:
                started.append(1)
                await asyncio.sleep(0.05)
                return "v"

            results = await asyncio.gather(*[m.get_or_set("ns", "k", loader) for _ in range(1000)])
            assert results == ["v"] * 1000 and len(started) == 1
            assert m.stats()["loader_calls"] == 1

            def failing() -> Any:
                raise RuntimeError("source down")

            outcomes = await asyncio.gather(*[m.get_or_set("ns", "e", failing) for _ in range(10)],
                                            return_exceptions=True)
            assert all(isinstance(o, RuntimeError) for o in outcomes) and m.stats()["loader_errors"] == 1

    run(main())


def test_cancelling_one_waiter_does_not_cancel_the_load(tmp_path: Any) -> None:
    async def main() -> None:
        async with AsyncCacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config={"ns": BIG}) as m:
            release = asyncio.Event()
            runs: List[int] = []

            async def loader() -> str:
                runs.append(1)
                await release.wait()
                return "loaded"

            first = asyncio.ensure_future(m.get_or_set("ns", "k", loader))
            others = [asyncio.ensure_future(m.get_or_set("ns", "k", loader)) for _ in range(5)]
            while not runs:
                await asyncio.sleep(0)
            first.cancel()  # the caller that started the load goes away
            await asyncio.gather(first, return_exceptions=True)
            release.set()
            assert await asyncio.gather(*others) == ["loaded"] * 5
            assert first.cancelled() and len(runs) == 1
            assert await m.get("ns", "k") == "loaded"

    run(main())


def test_single_flight_spans_threads_and_loops(tmp_path: Any) -> None:
    m = AsyncCacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config={"ns": BIG})
    gate = threading.Event()
    runs: List[int] = []
    results: List[Any] = []

    def loader() -> str:  # a sync loader is fine too; this one blocks its loop until the gate opens
        runs.append(1)
        gate.wait(10)
        return "shared"

    def worker() -> None:
        results.append(asyncio.run(m.get_or_set("ns", "k", loader)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while not runs and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # let the other threads reach the flight (they wait on it, they cannot finish first)
    gate.set()
    for t in threads:
        t.join(10)
    assert results == ["shared"] * 4 and len(runs) == 1
    asyncio.run(m.aclose())


def test_concurrent_misses_go_to_redis_as_one_mget(redis_server: Any, redis_url: str) -> None:
    async def main() -> None:
        async with AsyncCacheManager(redis_url, env="test", config={"ns": BIG}, invalidation=False) as m:
            await m.set_many("ns", {i: i for i in range(200)})
            m.l1("ns").clear()
            client = redis_server.client()
            client.config_resetstat()
            values = await asyncio.gather(*[m.get("ns", i % 100) for i in range(1000)])
            assert values == [i % 100 for i in range(1000)]
            assert calls(client, "mget") == 1 and calls(client, "get") == 0

    run(main())


def test_redis_outage_never_raises_and_strict_does(redis_server: Any, redis_url: str) -> None:
    async def main() -> None:
        async with AsyncCacheManager(redis_url, env="test", config={"ns": BIG}) as m, \
                AsyncCacheManager(redis_url, env="test", config={"ns": BIG}, strict=True, invalidation=False) as s:
            await m.set("ns", "held", 1)
            redis_server.kill()
            try:
                async def worker(i: int) -> None:
                    await m.set("ns", f"w{i}", i)
                    assert await m.get("ns", "held") == 1  # L1
                    await m.get("ns", f"absent{i}")
                    await m.delete("ns", f"w{i}")
                    await m.get_many("ns", [f"x{i}", "held"])

                await asyncio.gather(*[worker(i) for i in range(100)])  # no exception reaches a caller
                assert m.circuit.state == "open"
                with pytest.raises((L2Error, CircuitOpenError)):
                    await s.get("ns", "k")
            finally:
                redis_server.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (await m.ping() and await m.set("ns", "after", 2)
                                                       and m.circuit.state == "closed"):
                await asyncio.sleep(0.05)
            assert m.circuit.state == "closed"
            assert redis_server.client().exists(m._l2_key("ns", "after")) == 1

    run(main())


def test_invalidation_reaches_another_manager(redis_url: str) -> None:
    async def main() -> None:
        async with AsyncCacheManager(redis_url, env="test", config={"ns": BIG}) as a:
            with CacheManager(redis_url, env="test", config={"ns": BIG}) as b:
                assert b._listener is not None and b._listener.connected.wait(10)
                await asyncio.wait_for(a.listener_connected.wait(), 10)  # type: ignore[union-attr]
                await a.set("ns", "k", "v1")
                assert b.get("ns", "k") == "v1"  # now in b's L1
                await a.set("ns", "k", "v2")  # a publishes; b drops its copy
                deadline = time.monotonic() + 5
                while "k" in b.l1("ns") and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert b.get("ns", "k") == "v2"
                b.set("ns", "k", "v3")  # and the other way round: a's listener task
                while "k" in a.l1("ns") and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert await a.get("ns", "k") == "v3"
                assert a.stats()["invalidations_received"] >= 1

    run(main())


def test_cached_decorator_on_async_functions(tmp_path: Any) -> None:
    async def main() -> None:
        async with AsyncCacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config={"reports": BIG}) as m:
            runs: List[Any] = []

            @m.cached("reports", ttl=60)
            async def build(day: str, *, rows: int = 1) -> dict:
                runs.append((day, rows))
                return {"day": day, "rows": rows}

            assert await build("mon") == {"day": "mon", "rows": 1}
            assert await build("mon") == {"day": "mon", "rows": 1}
            assert await build("mon", rows=2) == {"day": "mon", "rows": 2}
            assert runs == [("mon", 1), ("mon", 2)]
            assert build.__name__ == "build"
            with pytest.raises(TypeError, match="async def"):
                m.cached("reports")(lambda: 1)

    run(main())


def test_aclose_leaves_no_tasks_and_refuses_later_calls(redis_url: str, caplog: Any) -> None:
    async def main() -> None:
        m = AsyncCacheManager(redis_url, env="test", config={"ns": BIG})
        await m.start()
        await m.set("ns", "k", 1)
        await asyncio.wait_for(m.listener_connected.wait(), 10)  # type: ignore[union-attr]
        await m.aclose()
        await m.aclose()  # idempotent
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        with pytest.raises(RuntimeError, match="closed"):
            await m.get("ns", "k")
        with pytest.raises(RuntimeError, match="closed"):
            await m.set("ns", "k", 2)

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "Task was destroyed" not in caplog.text and "never awaited" not in caplog.text


def test_backends_chosen_by_url(tmp_path: Any, monkeypatch: Any) -> None:
    from tiercache.l2 import aio

    async def main() -> None:  # (in a running loop, as a service makes them: redis.asyncio's pool needs one
        # before Python 3.10)
        assert isinstance(aio.from_url("redis://127.0.0.1:1/0"), AsyncRedisL2)
        assert isinstance(aio.from_url(f"sqlite:///{tmp_path}/x.db"), ThreadedL2)
        monkeypatch.setenv("TIERCACHE_L2_URL", "redis://127.0.0.1:1/0")
        assert isinstance(aio.from_url(None), AsyncRedisL2)
        with pytest.raises(ValueError, match="unknown scheme"):
            aio.from_url("memcached://x")
        with pytest.raises(TypeError):
            aio.from_url(42)  # type: ignore[arg-type]

    asyncio.run(main())


def test_redis_cluster_backend(redis_cluster_url: str) -> None:
    async def main() -> None:
        async with AsyncCacheManager(redis_cluster_url, env="test", config={"ns": BIG}) as m:
            assert m.l2.kind == "redis-cluster"
            await m.set_many("ns", {f"k{i}": i for i in range(50)})  # keys across many slots
            m.l1("ns").clear()
            assert await m.get_many("ns", [f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
            m.l1("ns").clear()
            assert await asyncio.gather(*[m.get("ns", f"k{i}") for i in range(50)]) == list(range(50))
            assert await m.clear("ns") == 50
            assert await m.get("ns", "k1") is None and await m.ping() is True

    run(main())


def read_path(impl: Any) -> Any:
    """A ReadPath over one plain namespace "ns" (its HashCache returned beside it); misses answer the default."""

    async def amiss(namespace: str, key: Any, default: Any, checked: bool) -> Any:
        return default

    l1 = impl.HashCache()
    spaces = {"ns": impl.module.NamespaceState("ns", l1, NamespaceConfig(), lambda data, start, key: data[start:], True, "p:ns:")}
    return impl.module.ReadPath(spaces, None, amiss, None, None, time.monotonic), l1


def test_an_awaited_hit_cannot_be_awaited_again(impl: Any) -> None:
    """Like a coroutine: a second await of the same L1-hit result is an error, not a silent None."""

    core, l1 = read_path(impl)
    l1.set("k", "v")

    async def main() -> None:
        hit = core.aget("ns", "k")
        assert await hit == "v"
        with pytest.raises(RuntimeError, match="already awaited"):
            await hit
        assert await core.aget("ns", "k") == "v"  # (a fresh result each call)
        a, b = core.aget("ns", "k"), core.aget("ns", "k")
        assert a is not b and (await b, await a) == ("v", "v")

    run(main())


def test_an_l1_hit_result_keeps_no_value_alive(impl: Any) -> None:
    """An awaited result lets go of its value at once; a result dropped unawaited, by the next hit."""

    class Value:
        pass

    core, l1 = read_path(impl)
    first, second = Value(), Value()
    l1.set("a", first, size=1)
    l1.set("b", second, size=1)
    refs = weakref.ref(first), weakref.ref(second)
    del first, second

    async def main() -> None:
        assert isinstance(await core.aget("ns", "a"), Value)
        l1.delete("a")
        assert refs[0]() is None  # the awaited result held no reference
        core.aget("ns", "b")  # dropped without an await
        assert await core.aget("ns", "missing", "d") == "d"  # a miss takes no hit result
        l1.set("c", "v")
        assert await core.aget("ns", "c") == "v"
        l1.delete("b")
        assert refs[1]() is None

    run(main())


@pytest.mark.parametrize("where", ["sqlite", "redis", "redis-cluster"])
def test_async_delete_many(request: pytest.FixtureRequest, tmp_path: Any, where: str) -> None:
    from tiercache.l2 import aio

    url = {"sqlite": lambda: f"sqlite:///{tmp_path}/l2.db", "redis": lambda: request.getfixturevalue("redis_url"),
           "redis-cluster": lambda: request.getfixturevalue("redis_cluster_url")}[where]()

    async def main() -> None:
        l2 = aio.from_url(url)
        try:
            keys = [f"t:adm:{i}" for i in range(1500)]
            await l2.set_many({k: b"v" for k in keys[:1200]})
            assert len(await l2.keys("t:adm:", 2000)) == 1200 and len(await l2.keys("t:adm:", 10)) == 10
            assert await l2.delete_many(keys) == 1200
            assert await l2.get_many(keys) == [None] * len(keys)
        finally:
            await l2.aclose()

    run(main())


def test_async_manager_delete_many(l2_url: str) -> None:
    async def main() -> None:
        async with AsyncCacheManager(l2_url, env="test", config={"ns": BIG}) as m:
            await m.set_many("ns", {i: i for i in range(5)})
            assert await m.delete_many("ns", [0, 1, 9]) == 2
            assert await m.get_many("ns", list(range(5))) == {2: 2, 3: 3, 4: 4}

    run(main())


def test_async_invalidations_queued_during_a_round_are_sent(redis_url: str) -> None:
    """A write queued while a round of messages is in flight is sent without another write to wake the
    publisher, and flush_invalidations() returns only once rounds begun before it (the publisher's or
    another flush's) are done."""
    async def main() -> None:
        async with AsyncCacheManager(redis_url, env="test") as a:
            real = a.l2.publish
            gate = asyncio.Event()
            started: List[bytes] = []
            sent: List[bytes] = []

            async def held_publish(channel: str, message: bytes) -> Any:
                started.append(message)
                await gate.wait()
                sent.append(message)
                return await real(channel, message)

            a.l2.publish = held_publish  # type: ignore[method-assign]
            await a.set("ns", "k1", 1)
            while not started:  # the publisher's round has taken k1's message and waits on the gate
                await asyncio.sleep(0.001)
            await a.set("ns", "k2", 2)  # queued while that round is in flight
            gate.set()
            for _ in range(5000):
                if any(b"k2" in m for m in sent):
                    break
                await asyncio.sleep(0.001)
            assert any(b"k2" in m for m in sent)
            gate.clear()
            await a.set("ns", "k3", 3)
            first = asyncio.ensure_future(a.flush_invalidations())
            await asyncio.sleep(0)
            second = asyncio.ensure_future(a.flush_invalidations())
            await asyncio.sleep(0.01)
            assert not second.done()  # the first round's message is not sent yet
            gate.set()
            await asyncio.gather(first, second)
            assert any(b"k3" in m for m in sent)

    run(main())
