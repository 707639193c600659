"""The `tiercache` command. Today: `tiercache bench`, L1 and two-tier workloads that need no server
(the embedded SQLite L2 by default, or any L2 URL with --l2)."""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from typing import Callable, List, Optional, Sequence, Tuple

from . import IMPLEMENTATION, HashCache, __version__


def _rate(run: Callable[[], int], seconds: float) -> float:
    """Operations per second of `run` (which returns how many it did), best of repeated runs."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        ops = run()
        elapsed = time.perf_counter() - start
        best = max(best, ops / elapsed)
        if time.perf_counter() >= deadline:
            return best


def bench(quick: bool) -> List[tuple]:
    n = 20_000 if quick else 100_000
    seconds = 0.3 if quick else 1.5
    rng = random.Random(42)
    keys = list(range(n))
    rng.shuffle(keys)
    misses = list(range(n, 2 * n))
    inserts = list(range(n, 5 * n))
    values = [b"x" * 100] * n

    rows = []
    cache = HashCache(max_bytes=1 << 40, max_entries=n)
    for k, v in zip(keys, values):
        cache.set(k, v)

    def get_hit() -> int:
        get = cache.get
        for k in keys:
            get(k)
        return len(keys)

    def get_miss() -> int:
        get = cache.get
        for k in misses:
            get(k)
        return len(misses)

    def set_evict() -> int:
        c = HashCache(max_bytes=1 << 40, max_entries=n)
        s = c.set
        for k in inserts:
            s(k, k)
        return len(inserts)

    ttl_cache = HashCache(max_bytes=1 << 40, max_entries=n, default_ttl=3600)
    for k in keys:
        ttl_cache.set(k, k)

    def get_hit_ttl() -> int:
        get = ttl_cache.get
        for k in keys:
            get(k)
        return len(keys)

    byte_cache = HashCache(max_bytes=n * 100 // 2)  # room for half the values: evicts by bytes

    def set_bytes() -> int:
        s = byte_cache.set
        for k, v in zip(keys, values):
            s(k, v)
        return len(keys)

    for name, fn in [
        ("HashCache.get, hit", get_hit),
        ("HashCache.get, miss", get_miss),
        ("HashCache.get, hit, entry with TTL", get_hit_ttl),
        ("HashCache.set, evicting by count", set_evict),
        ("HashCache.set 100 B, evicting by bytes", set_bytes),
    ]:
        rows.append((name, _rate(fn, seconds)))
    return rows


def bench_two_tier(quick: bool, l2_url: Optional[str]) -> Tuple[str, List[tuple]]:
    """CacheManager on the given L2 (default: the embedded SQLite store): L1 hits, L2 hits, writes."""
    from .config import NamespaceConfig
    from .manager import CacheManager

    n = 500 if quick else 2000
    seconds = 0.3 if quick else 1.5
    namespace = "tiercache-bench"
    config = {namespace: NamespaceConfig(l1_ttl=None), namespace + "-thin": NamespaceConfig(l1_max_entries=1)}
    value = {"symbol": "ACME", "prices": [101.5, 101.75, 102.0], "volume": 12345}
    rows = []
    with CacheManager(l2_url, env="test", config=config, invalidation=False) as m:
        kind = getattr(m.l2, "kind", "?")
        keys = [f"item:{i}" for i in range(n)]
        try:
            m.set_many(namespace, {k: value for k in keys})
            m.set_many(namespace + "-thin", {k: value for k in keys})

            def l1_hit() -> int:
                get = m.get
                for k in keys:
                    get(namespace, k)
                return n

            def l2_hit() -> int:  # L1 holds one entry: every get reads L2 and decodes
                get = m.get
                for k in keys:
                    get(namespace + "-thin", k)
                return n

            def get_many() -> int:
                thin = m._l1_for(namespace + "-thin")
                for i in range(0, n, 100):
                    thin.clear()
                    m.get_many(namespace + "-thin", keys[i:i + 100])
                return n

            def write_through() -> int:
                put = m.set
                for k in keys[:200]:
                    put(namespace, k, value)
                return 200

            for name, fn in [
                ("manager.get, L1 hit", l1_hit),
                (f"manager.get, L2 hit ({kind})", l2_hit),
                (f"manager.get_many from L2 ({kind}), per key", get_many),
                (f"manager.set, write-through to {kind}", write_through),
            ]:
                rows.append((name, _rate(fn, seconds)))
            stats = m.stats()
        finally:
            m.clear(namespace)
            m.clear(namespace + "-thin")
    where = str(getattr(m.l2, "path", "") or l2_url or "")
    return f"{kind} {where}".strip() + f"; circuit {stats['circuit']['state']}, l2 errors {stats['l2_errors']}", rows


def _print_table(title: str, rows: Sequence[tuple]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        for name, rate in rows:
            print(f"  {name:<40} {rate / 1e6:8.2f} M ops/s  {1e9 / rate:8.1f} ns/op")
        return
    table = Table(title=title)
    table.add_column("operation")
    table.add_column("M ops/s", justify="right")
    table.add_column("ns/op", justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate / 1e6:.2f}", f"{1e9 / rate:.1f}")
    Console().print(table)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="tiercache", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tiercache {__version__} ({IMPLEMENTATION})")
    sub = parser.add_subparsers(dest="command", required=True)
    p_bench = sub.add_parser("bench", help="measure L1 and both tiers (ops/sec); needs no server")
    p_bench.add_argument("--quick", action="store_true", help="a few seconds instead of ~20")
    p_bench.add_argument("--l2", metavar="URL", default=None,
                         help="L2 for the two-tier workload (default: $TIERCACHE_L2_URL, else embedded SQLite)")
    args = parser.parse_args(argv)
    if args.command == "bench":
        title = (
            f"tiercache {__version__} HashCache ({IMPLEMENTATION}), Python {platform.python_version()}, "
            f"{platform.machine()}"
        )
        _print_table(title, bench(args.quick))
        where, rows = bench_two_tier(args.quick, args.l2)
        _print_table(f"CacheManager, two tiers: L2 = {where}", rows)
        if IMPLEMENTATION != "compiled":
            print("note: running the pure-Python twin (extension not built or TIERCACHE_NO_EXTENSIONS set)")
        print("Side-by-side with other libraries: python bench/compare.py (in the source tree)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
