"""pytest-benchmark suites for HashCache, over both implementations.

    pytest bench/ --benchmark-only [--benchmark-group-by=group]

Each round runs one batch of OPS operations, so the reported time per round in microseconds reads as
nanoseconds per operation. The side-by-side comparison with other libraries is bench/compare.py.
"""

from __future__ import annotations

import random
from typing import Any, List

import pytest

OPS = 1000  # operations per benchmark round
ENTRIES = 10_000  # cache size for every suite
MAX_BYTES = 2**40  # byte accounting on, never the binding limit
TTL = 3600.0  # long enough that nothing expires during a run


def shuffled(keys: List[Any], seed: int = 0) -> List[Any]:
    keys = list(keys)
    random.Random(seed).shuffle(keys)
    return keys


def filled(HashCache: type, keys: List[Any], **kw: Any) -> Any:
    cache = HashCache(max_bytes=MAX_BYTES, max_entries=ENTRIES, **kw)
    for k in keys:
        cache.set(k, k)
    return cache


def run_gets(benchmark: Any, cache: Any, lookups: List[Any], expect_hits: bool) -> None:
    get = cache.get

    def batch() -> None:
        for k in lookups:
            get(k)

    benchmark.extra_info["ops_per_round"] = len(lookups)
    benchmark(batch)
    assert (get(lookups[0]) is not None) is expect_hits


@pytest.mark.benchmark(group="get-hit int")
def test_get_hit_int(benchmark: Any, HashCache: type) -> None:
    keys = list(range(ENTRIES))
    run_gets(benchmark, filled(HashCache, keys), shuffled(keys)[:OPS], expect_hits=True)


@pytest.mark.benchmark(group="get-hit str")
def test_get_hit_str(benchmark: Any, HashCache: type) -> None:
    keys = [f"user:{i}:profile" for i in range(ENTRIES)]
    run_gets(benchmark, filled(HashCache, keys), shuffled(keys)[:OPS], expect_hits=True)


@pytest.mark.benchmark(group="get-miss")
def test_get_miss(benchmark: Any, HashCache: type) -> None:
    keys = list(range(ENTRIES))
    absent = shuffled(range(ENTRIES, 2 * ENTRIES))[:OPS]
    run_gets(benchmark, filled(HashCache, keys), absent, expect_hits=False)


@pytest.mark.benchmark(group="get-hit with ttl")
def test_get_hit_ttl_entries(benchmark: Any, HashCache: type) -> None:
    """Every entry carries an expiry, so each hit also reads the clock."""
    keys = list(range(ENTRIES))
    run_gets(benchmark, filled(HashCache, keys, default_ttl=TTL), shuffled(keys)[:OPS], expect_hits=True)


@pytest.mark.benchmark(group="set with eviction")
def test_set_with_eviction(benchmark: Any, HashCache: type) -> None:
    """Keys cycle through a pool of 2 * ENTRIES, so every set inserts a new key into a full cache and evicts."""
    pool = shuffled(range(2 * ENTRIES))
    cache = filled(HashCache, pool[ENTRIES:])
    batches = [pool[i:i + OPS] for i in range(0, len(pool), OPS)]
    state = {"next": 0}
    s = cache.set

    def batch() -> None:
        i = state["next"]
        state["next"] = (i + 1) % len(batches)
        for k in batches[i]:
            s(k, k)

    benchmark.extra_info["ops_per_round"] = OPS
    benchmark(batch)
    stats = cache.stats()
    assert stats["entries"] == ENTRIES
    assert stats["evictions"] == stats["sets"] - ENTRIES  # every set after the fill evicted one entry
