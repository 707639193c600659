"""AsyncCacheManager against the sync manager and raw redis.asyncio, in one process and run.

    python bench/compare_async.py [--quick] [--redis-url redis://127.0.0.1:6379/0]

Without --redis-url it starts its own `redis-server` on a free loopback port (bench/compare_l2.py's).

  L1 hit:      `await cache.get(ns, k)` on keys held in L1, in a coroutine loop     vs  the sync
               `cache.get(ns, k)` in a plain loop (both net of their empty loop)
  concurrent:  1000 coroutines, each reading keys from Redis (the namespace's L1 holds one entry, so every
               read goes to L2): reads/s of AsyncCacheManager.get  vs  raw redis.asyncio `await r.get(k)` +
               msgpack decode by the same 1000 coroutines (same values, same pool size)

Limits checked: L1 hit <= 1.5x the sync get; concurrent throughput >= 1.0x raw redis.asyncio.
Segments of the two sides alternate; medians are reported. The machine is shared: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import redis.asyncio as aioredis  # noqa: E402

import tiercache  # noqa: E402
from compare_l2 import VALUE, LocalRedis  # noqa: E402
from tiercache import AsyncCacheManager, CacheManager  # noqa: E402
from tiercache.config import NamespaceConfig  # noqa: E402


async def l1_hit_ratio(url: str, rounds: int) -> Dict[str, float]:
    cfg = {"hot": NamespaceConfig(l1_ttl=None, l1_max_entries=10_000)}
    keys = [f"hot:{i}" for i in range(1000)]
    samples: Dict[str, List[float]] = {"async": [], "sync": [], "loop": []}
    async with AsyncCacheManager(url, env="test", config=cfg, invalidation=False) as am:
        with CacheManager(url, env="test", config=cfg, invalidation=False) as sm:
            await am.set_many("hot", {k: i for i, k in enumerate(keys)})
            sm.set_many("hot", {k: i for i, k in enumerate(keys)})
            aget, sget = am.get, sm.get
            for _ in range(rounds):
                t = time.perf_counter_ns()
                for k in keys:
                    await aget("hot", k)
                samples["async"].append((time.perf_counter_ns() - t) / len(keys))
                t = time.perf_counter_ns()
                for k in keys:
                    sget("hot", k)
                samples["sync"].append((time.perf_counter_ns() - t) / len(keys))
                t = time.perf_counter_ns()
                for k in keys:
                    pass
                samples["loop"].append((time.perf_counter_ns() - t) / len(keys))
    return {name: statistics.median(v) for name, v in samples.items()}


async def concurrent_reads(url: str, rounds: int, coroutines: int, reads_each: int) -> Dict[str, List[float]]:
    cfg = {"thin": NamespaceConfig(l1_ttl=None, l1_max_entries=1)}
    n_keys = 5000
    keys = [f"item:{i}" for i in range(n_keys)]
    samples: Dict[str, List[float]] = {"tiercache": [], "redis.asyncio": []}
    async with AsyncCacheManager(url, env="test", config=cfg, invalidation=False) as am:
        await am.set_many("thin", {k: VALUE for k in keys})
        raw_keys = [am._l2_key("thin", k) for k in keys]
        loads = am._codec(am.namespace_config("thin")).loads
        raw = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(url, max_connections=64))
        assert loads(await raw.get(raw_keys[0])) == VALUE

        async def ours(worker: int) -> None:
            get = am.get
            for j in range(reads_each):
                await get("thin", keys[(worker * 7919 + j * 104729) % n_keys])

        async def theirs(worker: int) -> None:
            get = raw.get
            for j in range(reads_each):
                loads(await get(raw_keys[(worker * 7919 + j * 104729) % n_keys]))

        sides: Dict[str, Callable[[int], Any]] = {"tiercache": ours, "redis.asyncio": theirs}
        names = list(sides)
        for r in range(rounds):
            for name in names[r % 2:] + names[:r % 2]:
                t = time.perf_counter()
                await asyncio.gather(*[sides[name](w) for w in range(coroutines)])
                samples[name].append(coroutines * reads_each / (time.perf_counter() - t))
        await raw.aclose()
    return samples


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis-url")
    args = parser.parse_args(argv)
    server = None if args.redis_url else LocalRedis()
    url = args.redis_url or server.url  # type: ignore[union-attr]
    try:
        l1 = asyncio.run(l1_hit_ratio(url, 15 if args.quick else 60))
        conc = asyncio.run(concurrent_reads(url, 3 if args.quick else 7, 1000, 5 if args.quick else 20))
    finally:
        if server is not None:
            server.stop()
    ratio_l1 = (l1["async"] - l1["loop"]) / (l1["sync"] - l1["loop"])
    ours, theirs = statistics.median(conc["tiercache"]), statistics.median(conc["redis.asyncio"])
    ratio_conc = ours / theirs
    print(f"command:  python {' '.join(sys.argv)}")
    print(f"machine:  nproc {os.cpu_count()}, tiercache {tiercache.IMPLEMENTATION}, redis-py "
          f"{aioredis.__name__.split('.')[0]} {__import__('redis').__version__}")
    print(f"L1 hit:   async {l1['async'] - l1['loop']:.0f} ns vs sync {l1['sync'] - l1['loop']:.0f} ns per get "
          f"(net of loop) -> {ratio_l1:.2f}x  target <= 1.5x {'PASS' if ratio_l1 <= 1.5 else 'FAIL'}")
    print(f"1000 coroutines reading from Redis: tiercache {ours:,.0f} reads/s vs redis.asyncio GET+decode "
          f"{theirs:,.0f} reads/s -> {ratio_conc:.2f}x  target >= 1.0x {'PASS' if ratio_conc >= 1.0 else 'FAIL'}")
    return 0 if ratio_l1 <= 1.5 and ratio_conc >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
