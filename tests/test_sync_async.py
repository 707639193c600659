"""CacheManager and AsyncCacheManager run the same operation steps: the same story leaves the same results,
counters, L1 contents and promotion stats behind in both."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Dict, List

from tiercache import AsyncCacheManager, CacheManager, NamespaceConfig

CONFIG = {"hot": NamespaceConfig(promotion="immediate", l1_max_entries=8),
          "gated": NamespaceConfig(promotion="conditional", l1_max_entries=2),
          "grace": NamespaceConfig(l1_ttl=10, l1_grace_period=30)}


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def story(m: Any, clock: Any) -> List[Any]:
    out: List[Any] = []
    out.append(await _maybe(m.set_many("hot", {f"k{i}": {"v": i} for i in range(12)})))
    out.append(await _maybe(m.get("hot", "k11")))  # an L1 hit
    m.l1("hot").clear()
    out.append(await _maybe(m.get("hot", "k1")))  # an L2 hit, promoted
    out.append(await _maybe(m.get("hot", "absent", "d")))  # an L2 miss
    out.append(await _maybe(m.get_many("hot", ["k1", "k2", "k3", "nope", "k2"])))
    out.append(await _maybe(m.delete("hot", "k2")))
    out.append(await _maybe(m.get("hot", "k2", "gone")))
    for i in range(4):
        await _maybe(m.set("gated", f"g{i}", i))
    m.l1("gated").clear()
    for _ in range(3):
        out.append(await _maybe(m.get_many("gated", ["g0", "g1", "g2", "g3"])))
    out.append(await _maybe(m.get_or_set("grace", "x", lambda: "loaded")))
    out.append(await _maybe(m.get_or_set("grace", "x", lambda: "again")))
    clock.advance(15)  # past l1_ttl, within the grace period: a stale copy, L2 still answers
    out.append(await _maybe(m.get("grace", "x")))
    out.append(await _maybe(m.clear("gated")))
    stats = m.stats()
    counters = {k: v for k, v in stats.items() if isinstance(v, int)}
    l1 = {ns: sorted(map(repr, m.l1(ns))) for ns in ("hot", "gated", "grace")}
    promotion = {ns: {k: v for k, v in s.items() if k != "seconds"} for ns, s in m.promotion_stats().items()}
    return out + [counters, l1, promotion, m.counters.by_namespace()]


def test_the_managers_agree(tmp_path: Any, clock: Any) -> None:
    results: Dict[str, Any] = {}
    with CacheManager(f"sqlite:///{tmp_path}/sync.db", env="test", config=CONFIG, timer=clock,
                      enable_metrics=False, invalidation=False) as m:  # (its messages go out when they may)
        results["sync"] = asyncio.run(story(m, clock))

    async def main() -> Any:
        async with AsyncCacheManager(f"sqlite:///{tmp_path}/async.db", env="test", config=CONFIG, timer=clock,
                                     enable_metrics=False, invalidation=False) as am:
            return await story(am, clock)

    results["async"] = asyncio.run(main())
    assert results["sync"] == results["async"]
    assert results["sync"][2] == {"v": 1} and results["sync"][-4]["l2_hits"] > 0


# ---------------------------------------------------------------------------------------------------------
# The same failure stories against a real redis-server: reconnect backoff, cancellation, loader timing.

class _Flaky:
    """A backend that delegates to `inner` except for what a test scripts: `subscribe` fails `fail_subscribe`
    times; `set` runs `on_set` first (raise, or wait forever) while it is not None."""

    def __init__(self, inner: Any, fail_subscribe: int = 0) -> None:
        self.inner = inner
        self.fail_subscribe = fail_subscribe
        self.on_set: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def subscribe(self, channel: str) -> Any:
        if self.fail_subscribe:
            self.fail_subscribe -= 1
            raise OSError("connection refused")
        return self.inner.subscribe(channel)

    def set(self, *args: Any) -> Any:
        if self.on_set is not None:
            return self.on_set(lambda: self.inner.set(*args))
        return self.inner.set(*args)


def _record_backoff(monkeypatch: Any) -> List[float]:
    """Every reconnect delay the listeners ask Backoff for, then waited as 0 s (no sleeping in tests)."""
    from tiercache.manager.invalidation import Backoff

    delays: List[float] = []
    failed = Backoff.failed

    def record(self: Any, exc: BaseException) -> float:
        delays.append(failed(self, exc))
        return 0.0

    monkeypatch.setattr(Backoff, "failed", record)
    return delays


def test_reconnect_backoff_and_flush_agree(redis_url: str, monkeypatch: Any) -> None:
    from tiercache import l2 as l2_sync
    from tiercache.l2 import aio as l2_async

    delays = _record_backoff(monkeypatch)
    results: Dict[str, Any] = {}
    backend = _Flaky(l2_sync.from_url(redis_url), fail_subscribe=5)
    with CacheManager(backend, env="test", enable_metrics=False) as m:
        assert m.listener_connected is not None and m.listener_connected.wait(10)
        results["sync"] = (list(delays), m.stats()["invalidation_flushes"])
    backend.close()
    delays.clear()

    async def main() -> Any:
        backend = _Flaky(l2_async.from_url(redis_url), fail_subscribe=5)
        async with AsyncCacheManager(backend, env="test", enable_metrics=False) as am:
            assert am.listener_connected is not None
            await asyncio.wait_for(am.listener_connected.wait(), 10)
            out = (list(delays), am.stats()["invalidation_flushes"])
        await backend.aclose()
        return out

    results["async"] = asyncio.run(main())
    assert results["sync"] == results["async"] == ([0.05, 0.1, 0.2, 0.4, 0.8], 1)


def _interrupted_set_story_sync(m: CacheManager, backend: _Flaky, clock: Any) -> List[Any]:
    out: List[Any] = []

    def interrupt(call: Any) -> Any:
        raise KeyboardInterrupt

    def fail(call: Any) -> Any:
        from tiercache.errors import L2Error

        raise L2Error("down")

    backend.on_set = interrupt  # circuit closed: an interruption is not the server's fault
    try:
        m.set("ns", "a", 1)
    except KeyboardInterrupt:
        out.append("interrupted")
    out.append(m.circuit.snapshot())
    backend.on_set = fail  # one failure opens the circuit (failure_threshold=1)
    out.append(m.set("ns", "b", 2))
    out.append(m.circuit.snapshot())
    clock.advance(1.5)  # past the backoff: the next call is the half-open probe
    backend.on_set = interrupt
    try:
        m.set("ns", "c", 3)
    except KeyboardInterrupt:
        out.append("interrupted")
    out.append(m.circuit.snapshot())  # an unanswered probe counts: open again, backoff doubled
    return out + [m.counters.by_namespace()]


async def _interrupted_set_story_async(am: Any, backend: _Flaky, clock: Any) -> List[Any]:
    out: List[Any] = []
    entered = asyncio.Event()

    async def hang(call: Any) -> Any:
        entered.set()
        await asyncio.Event().wait()

    async def fail(call: Any) -> Any:
        from tiercache.errors import L2Error

        raise L2Error("down")

    async def cancelled_set(key: str, value: Any) -> None:
        entered.clear()
        task = asyncio.ensure_future(am.set("ns", key, value))
        await entered.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            out.append("interrupted")

    backend.on_set = hang
    await cancelled_set("a", 1)
    out.append(am.circuit.snapshot())
    backend.on_set = fail
    out.append(await am.set("ns", "b", 2))
    out.append(am.circuit.snapshot())
    clock.advance(1.5)
    backend.on_set = hang
    await cancelled_set("c", 3)
    out.append(am.circuit.snapshot())
    return out + [am.counters.by_namespace()]


def test_an_interrupted_l2_call_is_counted_alike(redis_url: str, clock: Any) -> None:
    from tiercache.l2 import aio as l2_async
    from tiercache import l2 as l2_sync
    from tiercache.manager.circuit import CircuitBreaker

    results: Dict[str, Any] = {}
    backend = _Flaky(l2_sync.from_url(redis_url))
    with CacheManager(backend, env="test", invalidation=False, enable_metrics=False,
                      circuit=CircuitBreaker(failure_threshold=1, backoff=1.0, timer=clock)) as m:
        results["sync"] = _interrupted_set_story_sync(m, backend, clock)
    backend.close()

    async def main() -> Any:
        backend = _Flaky(l2_async.from_url(redis_url))
        async with AsyncCacheManager(backend, env="test", invalidation=False, enable_metrics=False,
                                     circuit=CircuitBreaker(failure_threshold=1, backoff=1.0, timer=clock)) as am:
            out = await _interrupted_set_story_async(am, backend, clock)
        await backend.aclose()
        return out

    results["async"] = asyncio.run(main())
    assert results["sync"] == results["async"]
    closed, opened, reopened = results["sync"][1], results["sync"][3], results["sync"][5]
    assert closed["state"] == "closed" and closed["consecutive_failures"] == 0
    assert opened["state"] == "open" and reopened["state"] == "open" and reopened["backoff"] == 2.0


def test_loaders_are_timed_alike(tmp_path: Any, clock: Any) -> None:
    def boom() -> Any:
        raise ValueError("no")

    async def story_of(m: Any) -> Any:
        await _maybe(m.get_or_set("ns", "k", lambda: "v"))
        await _maybe(m.get_or_set("ns", "k", lambda: "other"))  # a hit: no loader
        try:
            await _maybe(m.get_or_set("ns", "bad", boom))
        except ValueError:
            pass
        return m.metrics.histogram("ns", "loader").state()["count"], m.counters.by_namespace()

    with CacheManager(f"sqlite:///{tmp_path}/s.db", env="test", timer=clock, metrics_interval=None,
                      invalidation=False) as m:
        sync = asyncio.run(story_of(m))

    async def main() -> Any:
        async with AsyncCacheManager(f"sqlite:///{tmp_path}/a.db", env="test", timer=clock, invalidation=False,
                                     metrics_interval=None) as am:
            return await story_of(am)

    assert sync == asyncio.run(main())
    assert sync[0] == 2 and sync[1]["ns"]["loader_calls"] == 2 and sync[1]["ns"]["loader_errors"] == 1


def test_repair_after_an_outage_runs_in_the_background_alike(tmp_path: Any) -> None:
    """Deletes dropped while L2 was down: the next successful call starts the repair off the caller's path
    (a worker thread, a task), the keys read as misses until it is done, and both end repaired."""
    from outage_helpers import Flaky
    from tiercache.l2 import SQLiteL2
    from tiercache.l2.aio import ThreadedL2

    async def story(m: Any, l2: Any) -> List[Any]:
        await _maybe(m.set_many("ns", {f"k{i}": i for i in range(5)}))
        l2.down = True
        for i in range(3):
            await _maybe(m.delete("ns", f"k{i}"))
        l2.down = False
        got = [await _maybe(m.get_many("ns", [f"k{i}" for i in range(5)]))]
        for _ in range(1000):  # (the repair, in the background)
            if m.stats()["repaired_after_outage"] == 3:
                break
            await asyncio.sleep(0.005)
        got.append(m.stats()["repaired_after_outage"])
        got.append([d is None for d in l2.inner.get_many([m._l2_key("ns", f"k{i}") for i in range(5)])])
        return got

    sync_l2 = Flaky(SQLiteL2(tmp_path / "sync.db"))
    with CacheManager(sync_l2, env="test", invalidation=False) as m:
        sync = asyncio.run(story(m, sync_l2))

    async def main() -> Any:
        flaky = Flaky(SQLiteL2(tmp_path / "async.db"))
        async with AsyncCacheManager(ThreadedL2(flaky), env="test", invalidation=False) as am:
            return await story(am, flaky)

    assert sync == asyncio.run(main())
    assert sync[0] == {"k3": 3, "k4": 4} and sync[1] == 3 and sync[2] == [True] * 3 + [False] * 2
