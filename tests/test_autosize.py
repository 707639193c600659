"""Adaptive L1 budgets: the Autosizer's moves on given curves, the manager keeping its L1s at their shares,
the configuration's checks, and the L1's size curve (both implementations)."""

from __future__ import annotations

import asyncio
import random
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tiercache import CacheManager, NamespaceConfig
from tiercache.config import CacheConfig, ConfigError, apply_env_overrides
from tiercache.manager.autosize import MIN_SIMULATED, Autosizer
from tiercache.observability.health import budget_advice

KB = 1024


class FakeL1s:
    """L1s the test describes: each fills its share (unless `idle`), with entries of `entry_size` bytes, and
    a size curve whose counts grow by `rates` (hit ratio at half / one / twice the size) per `feed`."""

    def __init__(self) -> None:
        self.auto: Optional[Autosizer] = None
        self.entry_size: Dict[str, int] = {}
        self.idle: Dict[str, int] = {}  # namespace -> bytes it holds, whatever its share
        self.counts: Dict[str, List[int]] = {}
        self.curves: Dict[str, Dict[str, Any]] = {}
        self.resized: List[Tuple[str, int]] = []

    def figures(self, ns: str) -> Tuple[int, int, int, int, Optional[Dict[str, Any]]]:
        assert self.auto is not None
        hits, misses = self.counts.get(ns, [0, 0])
        held = self.idle.get(ns, self.auto.share(ns) or 0)
        return hits, misses, held, held // self.entry_size.get(ns, 100), self.curves.get(ns)

    def resize(self, ns: str, share: int) -> None:
        self.resized.append((ns, share))

    def feed(self, ns: str, lookups: int, rates: Tuple[float, float, float]) -> None:
        counts = self.counts.setdefault(ns, [0, 0])
        counts[0] += int(lookups * rates[1])
        counts[1] += lookups - int(lookups * rates[1])
        c = self.curves.setdefault(ns, {"entries": 1000, "lookups": 0, "hits": (0, 0, 0)})
        c["lookups"] += lookups // 16
        c["hits"] = tuple(h + int(lookups // 16 * r) for h, r in zip(c["hits"], rates))


def sizer(total: int = 640 * KB) -> Tuple[Autosizer, FakeL1s]:
    l1s = FakeL1s()
    l1s.auto = Autosizer(total, l1s.figures, l1s.resize, period=100)
    return l1s.auto, l1s


def test_shares_split_the_total_by_configured_budget() -> None:
    auto, l1s = sizer()
    assert auto.add("a", 8 * KB, 0, "medium", None) == 640 * KB  # alone: all of it
    assert auto.add("b", 24 * KB, 0, "medium", None) == 480 * KB  # 24 of 32 KB configured
    assert auto.shares() == {"a": 160 * KB, "b": 480 * KB}
    assert l1s.resized == [("a", 160 * KB)]


def test_budget_moves_to_where_a_byte_buys_more() -> None:
    auto, l1s = sizer()
    for ns in ("flat", "steep"):
        auto.add(ns, 1, 0, "medium", None)
    start = auto.shares()
    for _ in range(20):
        l1s.feed("flat", 1000, (0.70, 0.71, 0.72))  # doubling buys 1 point
        l1s.feed("steep", 1000, (0.20, 0.40, 0.60))  # doubling buys 20
        auto.missed(100)
    shares = auto.shares()
    assert shares["steep"] > start["steep"] and shares["flat"] < start["flat"]
    assert sum(shares.values()) == 640 * KB
    assert l1s.resized[-1][1] in shares.values()


def test_floors_and_the_smallest_simulated_l1_are_kept() -> None:
    for floor, entry_size, least in ((200 * KB, 100, 200 * KB), (0, 1000, MIN_SIMULATED * 1000)):
        auto, l1s = sizer()
        l1s.entry_size["flat"] = entry_size
        auto.add("flat", 1, floor, "medium", None)
        auto.add("steep", 1, 0, "medium", None)
        for _ in range(200):
            l1s.feed("flat", 1000, (0.70, 0.70, 0.70))
            l1s.feed("steep", 1000, (0.10, 0.40, 0.80))
            auto.missed(100)
        # its l1_min_bytes; or room for MIN_SIMULATED entries, below which its L1 would have no curve
        assert least <= auto.shares()["flat"] < least + 2 * auto.step


def test_unused_budget_goes_first() -> None:
    auto, l1s = sizer()
    l1s.idle["small"] = 20 * KB  # holds 20 KB of its share, whatever it is
    auto.add("small", 1, 0, "medium", None)
    auto.add("big", 1, 0, "medium", None)
    for _ in range(40):
        l1s.feed("small", 1000, (0.95, 0.99, 0.99))  # (a curve for a size it does not use)
        l1s.feed("big", 1000, (0.50, 0.51, 0.52))
        auto.missed(100)
    assert auto.shares()["small"] < 100 * KB


def test_a_filling_l1_keeps_its_share() -> None:
    # a cold start: "cold" still fills its share (it has had no chance to use it), "warm" has a curve
    # that wants more; the unused bytes of a namespace that is still growing are not given away
    auto, l1s = sizer()
    auto.add("cold", 1, 0, "medium", None)
    auto.add("warm", 1, 0, "medium", None)
    for step in range(1, 20):
        l1s.idle["cold"] = step * 10 * KB
        l1s.feed("warm", 1000, (0.20, 0.40, 0.60))
        auto.missed(100)
        assert auto.shares()["cold"] == 320 * KB
    for _ in range(10):  # it stopped growing, below its share: the rest is unused
        auto.missed(100)
    assert auto.shares()["cold"] < 320 * KB


def a_gains_from_b() -> Tuple[Autosizer, FakeL1s, Dict[str, int]]:
    """Two namespaces after `a`, whose curve wants more, took budget from `b`, and the shares then."""
    auto, l1s = sizer()
    auto.add("a", 1, 0, "medium", None)
    auto.add("b", 1, 0, "medium", None)
    for _ in range(3):
        l1s.feed("a", 1000, (0.20, 0.40, 0.60))
        l1s.feed("b", 1000, (0.50, 0.51, 0.52))
        auto.missed(100)
    moved = auto.shares()
    assert moved["a"] > 320 * KB
    return auto, l1s, moved


@pytest.mark.parametrize("change", ["new copies", "new L1"])
def test_a_curve_counts_only_for_the_copies_that_made_it(change: str) -> None:
    # what copies made for another size (or another L1) saw is not evidence for these: until the new ones
    # count, the namespace neither gives nor receives
    auto, l1s, moved = a_gains_from_b()
    if change == "new copies":  # made again for other entries, warming up
        l1s.curves["a"] = {"entries": 1500, "lookups": 0, "hits": (0, 0, 0)}
    else:  # reconfigured: its counts restart, its copies not made yet
        del l1s.curves["a"]
        l1s.counts["a"] = [0, 0]
    for _ in range(6):
        l1s.counts["a"][0] += 400
        l1s.counts["a"][1] += 600
        l1s.feed("b", 1000, (0.50, 0.51, 0.52))
        auto.missed(100)
        assert auto.shares() == moved


def test_priority_weighs_hits() -> None:
    auto, l1s = sizer()
    for ns, priority in (("low", "low"), ("high", "high")):
        auto.add(ns, 1, 0, priority, None)
    for _ in range(20):  # the same curves: the high-priority namespace's hits count four times more
        for ns in ("low", "high"):
            l1s.feed(ns, 1000, (0.30, 0.40, 0.50))
        auto.missed(100)
    assert auto.shares()["high"] > auto.shares()["low"]


def test_a_namespace_at_its_entry_limit_receives_nothing() -> None:
    auto, l1s = sizer()
    auto.add("capped", 1, 0, "medium", 1000)  # 320 KB of 100-byte entries: 3,276 entries, above its limit
    auto.add("other", 1, 0, "medium", None)
    for _ in range(20):
        l1s.feed("capped", 1000, (0.10, 0.40, 0.90))
        l1s.feed("other", 1000, (0.50, 0.51, 0.52))
        auto.missed(100)
    assert auto.shares()["capped"] <= 320 * KB


def test_a_raised_floor_takes_effect_at_once() -> None:
    auto, l1s = sizer()
    for ns in ("a", "b"):
        auto.add(ns, 1, 0, "medium", None)
    assert auto.update("a", 500 * KB, "medium", None) == 500 * KB
    assert auto.shares() == {"a": 500 * KB, "b": 140 * KB} and l1s.resized[-1] == ("b", 140 * KB)


def adaptive_config(total: int) -> CacheConfig:
    ns = NamespaceConfig(l1_ttl=None, persist_to_l2=False, l1_max_bytes=total // 2)
    return CacheConfig(env="test", namespaces={"wide": ns, "narrow": ns}, l1_max_bytes=total,
                       l1_allocation="adaptive")


def two_workloads() -> List[Tuple[str, int]]:
    rnd = random.Random(7)
    weights = [1.0 / (i + 1) for i in range(20_000)]
    wide = rnd.choices(range(20_000), weights, k=120_000)
    return [pair for i, k in enumerate(wide) for pair in (("wide", k), ("narrow", i % 300))]


def check_budgets(m: Any, total: int) -> None:
    """`wide` read Zipf over 20,000 keys, `narrow` a loop over 300: the budget went to `wide`, each L1
    stays at its share, and the shares add up to the global budget."""
    budgets = m.l1_budgets()
    assert sum(budgets.values()) == total
    assert budgets["wide"] > budgets["narrow"]
    for ns, share in budgets.items():
        assert m.l1(ns).stats()["max_bytes"] == share and m.l1(ns).held_bytes() <= share
    curves = m.l1_curves()
    (_, half), (_, one), (_, double) = curves["wide"]["points"]
    assert half <= one <= double and curves["wide"]["lookups"] > 0


def test_manager_moves_budget_to_the_namespace_that_needs_it() -> None:
    total = 4000 * 100
    value = b"x" * 40
    with CacheManager(config=adaptive_config(total), invalidation=False, enable_metrics=False) as m:
        for ns, key in two_workloads():
            if m.get(ns, key) is None:
                m.set(ns, key, value)
        check_budgets(m, total)


def test_async_manager_moves_budget_alike() -> None:
    from tiercache import AsyncCacheManager

    total = 4000 * 100
    value = b"x" * 40

    async def run() -> None:
        async with AsyncCacheManager(config=adaptive_config(total), invalidation=False,
                                     enable_metrics=False) as m:
            for ns, key in two_workloads():
                if await m.get(ns, key) is None:
                    await m.set(ns, key, value)
            check_budgets(m, total)

    asyncio.run(run())


def test_static_is_the_default_and_keeps_configured_budgets() -> None:
    ns = NamespaceConfig(l1_max_bytes=300 * KB)
    with CacheManager(config=CacheConfig(env="test", namespaces={"a": ns}, l1_max_bytes=10**6),
                      invalidation=False, enable_metrics=False) as m:
        m.set("a", 1, 1)
        assert m.config.l1_allocation == "static" and m.l1_budgets() == {"a": 300 * KB}


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="l1_allocation: must be one of 'static', 'adaptive'"):
        CacheConfig(l1_allocation="auto")
    with pytest.raises(ConfigError, match="shares the global l1_max_bytes: set it"):
        CacheConfig(l1_allocation="adaptive")
    with pytest.raises(ConfigError, match="l1_min_bytes add up to 2000, more than l1_max_bytes"):
        CacheConfig(l1_allocation="adaptive", l1_max_bytes=1000,
                    namespaces={"a": NamespaceConfig(l1_min_bytes=1000), "b": NamespaceConfig(l1_min_bytes=1000)},
                    default_namespace=NamespaceConfig(l1_min_bytes=0))
    with pytest.raises(ConfigError, match="l1_min_bytes: must be >= 0"):
        CacheConfig(namespaces={"a": NamespaceConfig(l1_min_bytes=-1)})
    config = CacheConfig.from_dict({"l1_max_bytes": 10**6, "l1_allocation": "adaptive",
                                    "namespaces": {"a": {"l1_min_bytes": 1000}}})
    assert config.l1_allocation == "adaptive" and config.namespace("a").l1_min_bytes == 1000
    assert CacheConfig.from_dict(config.summary()).l1_allocation == "adaptive"
    assert apply_env_overrides(CacheConfig(l1_max_bytes=10**6),
                               {"TIERCACHE_L1_ALLOCATION": "adaptive"}).l1_allocation == "adaptive"
    with pytest.raises(ConfigError, match="from TIERCACHE_L1_ALLOCATION"):
        apply_env_overrides(CacheConfig(l1_max_bytes=10**6), {"TIERCACHE_L1_ALLOCATION": "dynamic"})


def test_budget_advice() -> None:
    curves = {"market_data": {"budget": 2 << 20, "bytes": 2 << 20, "lookups": 5000,
                              "points": [(1 << 20, 0.40), (2 << 20, 0.61), (4 << 20, 0.70)]},
              "flat": {"budget": 2 << 20, "bytes": 2 << 20, "lookups": 5000,
                       "points": [(1 << 20, 0.60), (2 << 20, 0.61), (4 << 20, 0.62)]}}
    assert budget_advice(curves, False) == [
        "market_data: giving it 2 MB more L1 would raise its L1 hit rate from 61% to 70% (estimated by its "
        "simulations) — raise its l1_max_bytes"]


def test_size_curve_in_both_implementations(both_impls: Any) -> None:
    results = []
    for impl in both_impls:
        cache = impl.HashCache(max_entries=2000, policy="tinylfu")
        assert impl.HashCache(max_entries=2000).size_curve() is None  # lru: no simulations
        rnd = random.Random(3)
        for k in rnd.choices(range(50_000), [1.0 / (i + 1) for i in range(50_000)], k=60_000):
            if cache.get(k) is None:
                cache.set(k, k)
        curve = cache.size_curve()
        half, one, double = curve["hits"]
        # (keys are sampled, not lookups: a few hot keys decide how many lookups the copies see)
        assert curve["entries"] == 2000 and curve["lookups"] > 500 and half < one < double <= curve["lookups"]
        fresh = impl.HashCache(max_entries=2000, policy="tinylfu")  # the copies fill before they count:
        for k in range(4 * 125 << 4):  # 4 x 125 entries per copy, sampled 1 in 16
            fresh.set(k, k)
            fresh.get(k)
        assert fresh.size_curve()["lookups"] < 4 * 125 // 2
        window = cache._window()
        cache.set_limits(max_bytes=10**6, max_entries=2000)  # bytes alone: sketch and simulations stay
        assert cache._window() == window and cache.size_curve() == curve
        cache.set_limits(max_bytes=10**6, max_entries=1000)  # a new entry limit restarts them
        assert cache.size_curve()["lookups"] == 0 and cache._window() == (10, 1000)
        results.append(curve)
    assert results[0] == results[1]
