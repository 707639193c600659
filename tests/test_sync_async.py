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
                      enable_metrics=False) as m:
        results["sync"] = asyncio.run(story(m, clock))

    async def main() -> Any:
        async with AsyncCacheManager(f"sqlite:///{tmp_path}/async.db", env="test", config=CONFIG, timer=clock,
                                     enable_metrics=False) as am:
            return await story(am, clock)

    results["async"] = asyncio.run(main())
    assert results["sync"] == results["async"]
    assert results["sync"][2] == {"v": 1} and results["sync"][-4]["l2_hits"] > 0
