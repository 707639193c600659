"""Promotion strategies and the memory-aware gate (tiercache.manager.promotion), through CacheManager on SQLite."""

from __future__ import annotations

from typing import Any, Dict, Iterator

import pytest

from tiercache import CacheManager, NamespaceConfig
from tiercache.manager.promotion import PromotionManager, resolve_strategy


def ns(strategy: str, priority: str = "medium", entries: int = 10) -> NamespaceConfig:
    return NamespaceConfig(l1_ttl=None, l2_ttl=None, l1_max_entries=entries, l1_max_bytes=1 << 20,
                           priority=priority, promotion=strategy)


@pytest.fixture
def make(tmp_path: Any, clock: Any) -> Iterator[Any]:
    managers = []

    def factory(config: Dict[str, NamespaceConfig]) -> CacheManager:
        m = CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config=config, timer=clock,
                         invalidation=False, metrics_interval=None)
        m._promotion = PromotionManager(timer=clock)  # (the same policy, on the test's clock)
        managers.append(m)
        return m

    yield factory
    for m in managers:
        m.close()


def fill(m: CacheManager, namespace: str, n: int) -> None:
    m.set_many(namespace, {i: i for i in range(n)})
    m.l1(namespace).clear()


def test_auto_resolves_by_priority() -> None:
    assert [resolve_strategy("auto", p) for p in ("high", "medium", "low")] == ["immediate", "conditional", "lazy"]
    assert resolve_strategy("predictive", "high") == "predictive"


def test_with_room_every_l2_hit_is_promoted(make: Any) -> None:
    m = make({"c": ns("conditional")})
    fill(m, "c", 5)
    for i in range(5):
        assert m.get("c", i) == i
    stats = m.promotion_stats()["c"]
    assert stats["promoted"] == stats["promoted_with_room"] == 5
    assert all(i in m.l1("c") for i in range(5))


def test_immediate_promotes_everything_and_lru_evicts(make: Any) -> None:
    m = make({"i": ns("immediate")})
    fill(m, "i", 30)
    for i in range(30):
        m.get("i", i)
    assert m.l1("i").policy == "lru"
    assert list(m.l1("i")) == list(range(20, 30))
    assert m.promotion_stats()["i"]["promoted"] == 30


def test_conditional_needs_repeated_hits_when_l1_is_full(make: Any) -> None:
    m = make({"c": ns("conditional")})
    fill(m, "c", 100)
    for i in range(10):  # L1 fills with room
        m.get("c", i)
    for _ in range(3):  # the residents are used a lot
        for i in range(10):
            m.get("c", i)
    m.get("c", 50)  # one L2 hit: not a candidate yet
    stats = m.promotion_stats()["c"]
    assert stats["skipped_by_strategy"] == 1 and 50 not in m.l1("c")
    for _ in range(3):
        m.get("c", 60)  # a candidate from its second hit on, but colder than every resident: the gate says no
    stats = m.promotion_stats()["c"]
    assert stats["rejected_by_gate"] >= 1 and 60 not in m.l1("c")
    for _ in range(12):
        m.get("c", 70)  # hotter than the coldest resident: admitted
    assert 70 in m.l1("c")
    stats = m.promotion_stats()["c"]
    assert m.stats()["promotions_declined"] == stats["skipped_by_strategy"] + stats["rejected_by_gate"]
    assert stats["candidates"] == stats["promoted"] + stats["skipped_by_strategy"] + stats["rejected_by_gate"]


def test_high_priority_bypasses_the_gate(make: Any) -> None:
    m = make({"h": ns("conditional", priority="high")})
    fill(m, "h", 100)
    for i in range(10):
        m.get("h", i)
    for _ in range(5):
        for i in range(10):
            m.get("h", i)
    m.get("h", 60)
    m.get("h", 60)  # second hit: a candidate, colder than the residents, but high priority skips the gate
    assert 60 in m.l1("h") and m.promotion_stats()["h"]["gate_bypassed"] == 1


def test_lazy_wants_hits_spread_over_time(make: Any, clock: Any) -> None:
    m = make({"z": ns("lazy")})
    fill(m, "z", 100)
    for i in range(10):
        m.get("z", i)
    for _ in range(5):
        m.get("z", 50)  # a burst within one bucket: not consistent access
    assert 50 not in m.l1("z") and m.promotion_stats()["z"]["skipped_by_strategy"] == 5
    clock.advance(16)  # the next 15 s bucket
    m.get("z", 50)  # seen in two buckets now: a candidate (and, hit 6 times, hotter than a resident)
    assert 50 in m.l1("z")


def test_predictive_learns_from_outcomes(make: Any, clock: Any) -> None:
    m = make({"p": ns("predictive")})
    fill(m, "p", 200)
    for i in range(10):
        m.get("p", i)
    for rnd in range(30):
        for k in (100 + rnd, 100 + rnd):  # keys read twice from L2 once promoted, never again
            m.get("p", k)
        clock.advance(5)
    stats = m.promotion_stats()["p"]
    assert stats["strategy"] == "predictive"
    assert stats["model"]["updates"] > 0  # outcomes older than the horizon were read back
    assert stats["candidates"] == stats["promoted"] + stats["skipped_by_strategy"] + stats["rejected_by_gate"]


def test_tracking_is_bounded_whatever_the_number_of_keys(make: Any) -> None:
    m = make({"c": ns("conditional")})
    fill(m, "c", 20)
    for i in range(20):
        m.get("c", i)
    tracker = m._promotion._trackers["c"]
    words = tracker.sketch.words
    for i in range(5000):
        m.get("c", f"never-stored-{i}")  # L2 misses are not tracked
        m._promotion._tracker("c", m.namespace_config("c")).touch(i, 1000.0 + i / 100)
    assert tracker.sketch.words == words and len(tracker.buckets) <= 4


def test_get_many_goes_through_the_policy(make: Any) -> None:
    m = make({"c": ns("conditional")})
    fill(m, "c", 100)
    for _ in range(4):
        m.get_many("c", list(range(10)))  # fills L1, then hits
    found = m.get_many("c", [50, 51, 52])
    assert found == {50: 50, 51: 51, 52: 52}
    assert not any(k in m.l1("c") for k in (50, 51, 52))
    assert m.stats()["promotions_declined"] == 3


def test_global_l1_cap_evicts_low_priority_first(tmp_path: Any, clock: Any) -> None:
    from tiercache.config import CacheConfig

    def cfg(priority: str) -> NamespaceConfig:
        return NamespaceConfig(l1_ttl=None, l2_ttl=None, l1_max_entries=100, l1_max_bytes=10_000,
                               priority=priority, promotion="immediate")

    config = CacheConfig(env="test", namespaces={"lo": cfg("low"), "mid": cfg("medium"), "hi": cfg("high")},
                         l1_max_bytes=3000)
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", config=config, timer=clock, invalidation=False,
                      metrics_interval=None) as m:
        for name in ("hi", "mid", "lo"):
            m.set_many(name, {i: "x" * 90 for i in range(10)})  # ~100 bytes each, 1000 per namespace
        held = {name: m.l1(name).held_bytes() for name in ("hi", "mid", "lo")}
        assert sum(held.values()) <= 3000 and held["hi"] >= held["mid"] >= held["lo"]
        m.set("hi", "big", "y" * 1500)  # pressure from a high-priority namespace: low pays first, then medium
        held = {name: m.l1(name).held_bytes() for name in ("hi", "mid", "lo")}
        assert sum(held.values()) <= 3000
        assert held["lo"] == 0 and held["hi"] > held["mid"]
        assert "big" in m.l1("hi") and m.stats()["global_cap_evictions"] > 0
        m.get_many("lo", list(range(10)))  # promotions through get_many respect the cap too
        assert sum(m.l1(n).held_bytes() for n in ("hi", "mid", "lo")) <= 3000


def test_refresh_ahead_serves_the_old_value_and_reloads_in_the_background(tmp_path: Any, clock: Any) -> None:
    import threading

    cfg = NamespaceConfig(l1_ttl=100.0, l2_ttl=None, background_refresh=True, refresh_threshold=30.0)
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config={"r": cfg}, timer=clock,
                      invalidation=False, metrics_interval=None) as m:
        version = {"n": 1}
        started, release = threading.Event(), threading.Event()

        def loader() -> str:
            if version["n"] > 1:
                started.set()
                assert release.wait(10)
            return f"v{version['n']}"

        assert m.get_or_set("r", "k", loader) == "v1"
        clock.advance(10)
        version["n"] = 2
        assert m.get_or_set("r", "k", loader) == "v1"  # 10 s old: fresh enough, no reload
        assert not started.is_set()
        clock.advance(25)  # 35 s old: over the 30 s threshold
        assert m.get_or_set("r", "k", loader) == "v1"  # served at once...
        assert started.wait(10)  # ...while the reload runs in the background
        assert m.get_or_set("r", "k", loader) == "v1"  # one reload at a time per key
        release.set()
        m._worker.shutdown(wait=True)  # type: ignore[union-attr]
        assert m.get("r", "k") == "v2" and m.stats()["refreshes"] == 1


def test_refresh_ahead_off_and_failures(tmp_path: Any, clock: Any) -> None:
    off = NamespaceConfig(l1_ttl=100.0, l2_ttl=None, background_refresh=False, refresh_threshold=30.0)
    on = NamespaceConfig(l1_ttl=100.0, l2_ttl=None, background_refresh=True, refresh_threshold=30.0)
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config={"off": off, "on": on}, timer=clock,
                      invalidation=False, metrics_interval=None) as m:
        m.get_or_set("off", "k", lambda: 1)
        m.get_or_set("on", "k", lambda: 1)
        clock.advance(50)
        assert m.get_or_set("off", "k", lambda: 2) == 1 and m._worker is None

        def broken() -> Any:
            raise RuntimeError("source down")

        assert m.get_or_set("on", "k", broken) == 1
        m._worker.shutdown(wait=True)  # type: ignore[union-attr]
        assert m.get("on", "k") == 1 and m.stats()["loader_errors"] == 1 and m.stats()["refreshes"] == 0
