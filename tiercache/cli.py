"""The `tiercache` command. Today: `tiercache bench`, a short L1 benchmark that needs nothing running."""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from typing import Callable, List, Optional, Sequence

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
        ("get, hit", get_hit),
        ("get, miss", get_miss),
        ("get, hit, entry with TTL", get_hit_ttl),
        ("set, evicting by count", set_evict),
        ("set 100 B values, evicting by bytes", set_bytes),
    ]:
        rows.append((name, _rate(fn, seconds)))
    return rows


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
    p_bench = sub.add_parser("bench", help="measure the L1 cache (ops/sec); needs no server")
    p_bench.add_argument("--quick", action="store_true", help="a few seconds instead of ~10")
    args = parser.parse_args(argv)
    if args.command == "bench":
        title = (
            f"tiercache {__version__} HashCache ({IMPLEMENTATION}), Python {platform.python_version()}, "
            f"{platform.machine()}"
        )
        _print_table(title, bench(args.quick))
        if IMPLEMENTATION != "compiled":
            print("note: running the pure-Python twin (extension not built or TIERCACHE_NO_EXTENSIONS set)")
        print("Side-by-side with other libraries: python bench/compare.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
