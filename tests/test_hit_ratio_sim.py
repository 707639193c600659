"""The simulators behind bench/hit_ratio.py: exact LRU, Belady's OPT with bypass, and the HashCache replay.

Hand-worked traces pin the hit counts; a brute-force OPT checks the heap version on random traces; HashCache
"lru" (both implementations) must equal the LRU simulator; and, when the shared traces are present, the
published glimpse figures must reproduce.
"""

from __future__ import annotations

import gzip
import os
import random
import sys
from typing import Any, Sequence

import pytest

np = pytest.importorskip("numpy")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import hit_ratio  # noqa: E402

from hit_ratio import hashcache_hits, lru_hits, next_use, opt_hits  # noqa: E402


def brute_opt_hits(keys: Sequence[Any], size: int) -> int:
    """Belady with bypass the slow, obvious way: scan ahead for every resident key on every eviction."""
    keys = list(keys)
    cache: set = set()
    hits = 0

    def next_pos(key: Any, i: int) -> float:
        for j in range(i + 1, len(keys)):
            if keys[j] == key:
                return j
        return float("inf")

    for i, k in enumerate(keys):
        if k in cache:
            hits += 1
        elif len(cache) < size:
            cache.add(k)
        elif size > 0:
            victim = max(cache, key=lambda r: next_pos(r, i))
            if next_pos(victim, i) > next_pos(k, i):
                cache.remove(victim)
                cache.add(k)
    return hits


# --------------------------------------------------------------------------- hand-worked traces

def test_lru_hand_worked() -> None:
    # size 2: 1 m [1]; 2 m [1 2]; 1 h [2 1]; 3 m, evicts 2 [1 3]; 2 m, evicts 1 [3 2]; 1 m, evicts 3 [2 1]
    assert lru_hits([1, 2, 1, 3, 2, 1], 2) == 1
    # size 3 holds the whole key set: only the three cold misses
    assert lru_hits([1, 2, 1, 3, 2, 1], 3) == 3
    # a loop one key larger than the cache never hits under LRU
    assert lru_hits([1, 2, 3] * 3, 2) == 0
    assert lru_hits([1, 1, 1], 1) == 2
    assert lru_hits([1, 2, 1], 0) == 0


def test_next_use() -> None:
    # position -> next request for the same key; n + i when there is none (n = 5)
    assert next_use([5, 7, 5, 5, 7]).tolist() == [2, 4, 3, 8, 9]
    assert next_use(np.array([], dtype=np.int64)).tolist() == []
    assert next_use([4]).tolist() == [1]


def test_opt_hand_worked() -> None:
    # size 1, 1 2 1: at 2 the cache holds 1 (next use at 2) and 2 is never used again -> bypass 2; 1 hits.
    # LRU (or OPT without bypass) would admit 2 and miss 1.
    assert opt_hits([1, 2, 1], 1) == 1
    assert lru_hits([1, 2, 1], 1) == 0
    # size 2, 1 2 1 3 2 1: 1 h (t2); 3 is never used again -> bypass; 2 h (t4); 1 h (t5). 3 hits.
    # Forced admission would evict 1 (next at t5) for 3 and hit only at t2 and t4.
    assert opt_hits([1, 2, 1, 3, 2, 1], 2) == 3
    # size 2, loop 1 2 3 x3: keep {1, 2}; 3 always has the furthest next use, so it is bypassed each time;
    # 1 and 2 hit in rounds two and three: 4 hits (forced admission manages 3, LRU 0).
    assert opt_hits([1, 2, 3] * 3, 2) == 4
    # size 2: 1 2 3 1 -> at 3 (never again) bypass; 1 hits. 1 2 3 2 3 -> at 3 evict 1 (never again); 2, 3 hit.
    assert opt_hits([1, 2, 3, 1], 2) == 1
    assert opt_hits([1, 2, 3, 2, 3], 2) == 2
    assert opt_hits([1, 2, 1], 0) == 0
    assert opt_hits([], 3) == 0


def test_opt_matches_brute_force_on_random_traces() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        n_keys = rnd.randint(1, 12)
        trace = [rnd.randrange(n_keys) for _ in range(rnd.randint(0, 60))]
        size = rnd.randint(1, 8)
        opt = opt_hits(trace, size)
        assert opt == brute_opt_hits(trace, size), (trace, size)
        assert opt >= lru_hits(trace, size)


def test_opt_heap_rebuild_on_long_trace() -> None:
    # Many hits on a small cache push stale heap entries past the rebuild limit; the count must not change.
    rnd = random.Random(3)
    trace = [rnd.randrange(6) for _ in range(3000)]
    assert opt_hits(trace, 3) == brute_opt_hits(trace, 3)


# --------------------------------------------------------------------------- HashCache replay

def test_hashcache_lru_equals_lru_simulator(impl: Any) -> None:
    rng = np.random.default_rng(11)
    trace = rng.integers(0, 400, size=20_000, dtype=np.int64)
    for size in (1, 37, 200, 400):
        assert hashcache_hits(trace, size, "lru", impl.HashCache) == lru_hits(trace, size), size


def test_hashcache_policies_include_lru(impl: Any) -> None:
    policies = hit_ratio.hashcache_policies(cls=impl.HashCache)
    assert policies[0] == "lru"
    assert "no-such-policy" not in hit_ratio.hashcache_policies(("lru", "no-such-policy"), cls=impl.HashCache)


# --------------------------------------------------------------------------- readers and Zipf

def test_readers(tmp_path: Any) -> None:
    lis = tmp_path / "t.lis.gz"
    with gzip.open(lis, "wt") as f:
        f.write("10 3 0 0\n5 1 0 1\n20 2 0 2\n")
    assert hit_ratio.read_lis(str(lis)).tolist() == [10, 11, 12, 5, 20, 21]
    lirs = tmp_path / "t.trc.gz"
    with gzip.open(lirs, "wt") as f:
        f.write("3\n\n*\n4\n3\n*\n")
    assert hit_ratio.read_lirs(str(lirs)).tolist() == [3, 4, 3]


def test_mixed_trace(tmp_path: Any) -> None:
    with gzip.open(tmp_path / "oltp.lis.gz", "wt") as f:
        f.write("1 1 0 0\n2 1 0 1\n1 1 0 2\n3 1 0 3\n")
    with gzip.open(tmp_path / "loop.trc.gz", "wt") as f:
        f.write("1\n2\n1\n2\n1\n2\n")
    merged = hit_ratio.mixed_trace(str(tmp_path), ("oltp", "loop"), "merged", seed=5)
    oltp, loop = merged[merged < 2 * 10**12], merged[merged >= 2 * 10**12]
    assert (oltp - 10**12).tolist() == [1, 2, 1, 3]  # each trace in its own order, its keys apart
    assert (loop - 2 * 10**12).tolist() == [1, 2, 1, 2, 1, 2]
    assert merged.tolist() == hit_ratio.mixed_trace(str(tmp_path), ("oltp", "loop"), "merged", seed=5).tolist()
    after = hit_ratio.mixed_trace(str(tmp_path), ("oltp", "loop"), "one after another", limit=3)
    assert after.tolist() == [10**12 + k for k in (1, 2, 1)] + [2 * 10**12 + k for k in (1, 2, 1)]


def test_zipf_keys() -> None:
    a = hit_ratio.zipf_keys(1000, 50_000, seed=1)
    assert a.tolist() == hit_ratio.zipf_keys(1000, 50_000, seed=1).tolist()
    assert a.min() >= 0 and a.max() < 1000
    counts = np.sort(np.bincount(a, minlength=1000))[::-1]
    # rank 1 has probability 1/H(1000, 0.99), about 13 %; rank 2 about half of that
    assert 0.11 < counts[0] / a.size < 0.15
    assert 1.6 < counts[0] / counts[1] < 2.4


# --------------------------------------------------------------------------- published figures

TRACES = os.environ.get("TIERCACHE_TRACES") or hit_ratio.DEFAULT_TRACES


@pytest.mark.skipif(not os.path.exists(os.path.join(TRACES, "glimpse.trc.gz")),
                    reason=f"shared traces not found in {TRACES}")
def test_glimpse_reproduces_published_figures() -> None:
    keys = hit_ratio.read_trace(TRACES, "glimpse")
    assert len(keys) == 6015
    assert len(np.unique(keys)) == 2529

    def pct(hits: int) -> float:
        return round(100.0 * hits / len(keys), 2)

    assert pct(lru_hits(keys, 500)) == 0.95
    assert pct(lru_hits(keys, 1000)) == 11.21
    assert pct(opt_hits(keys, 1000)) == 53.15


@pytest.mark.skipif(not os.path.exists(os.path.join(TRACES, "glimpse.trc.gz")),
                    reason=f"shared traces not found in {TRACES}")
def test_tinylfu_on_glimpse(impl: Any) -> None:
    """W-TinyLFU on the loop-like glimpse trace: far above LRU (0.95 %, 11.21 %), near the published
    W-TinyLFU figures (≈32.7 %, ≈50.2 %); both implementations give the same hits (they run the same steps)."""
    keys = hit_ratio.read_trace(TRACES, "glimpse")
    hits = {size: hashcache_hits(keys, size, "tinylfu", impl.HashCache) for size in (500, 1000)}
    assert round(100.0 * hits[500] / len(keys), 2) == 33.07
    assert round(100.0 * hits[1000] / len(keys), 2) == 50.64


def test_the_phase_benchmark_replays_hit_for_hit() -> None:
    """bench/hit_ratio_phases.py: exact LRU and HashCache lru hit on the same requests; every column gives
    a hit or a miss per request."""
    import hit_ratio_phases

    keys = [i % 7 for i in range(200)] + list(range(100, 140)) * 3
    runs = {name: run(keys) for name, run in hit_ratio_phases.policies(5).items() if name != "theine"}
    assert all(len(h) == len(keys) and set(h.tolist()) <= {0, 1} for h in runs.values())
    assert runs["exact LRU"].tolist() == runs["HashCache lru"].tolist()
    assert runs["HashCache tinylfu"].sum() > runs["exact LRU"].sum()  # a loop over 7 keys in 5 entries


def test_a_repeated_column_is_its_mean_with_its_range() -> None:
    # theine draws random numbers: its column is the mean of several runs, and the check compares with that.
    draws = iter([90, 100, 95])
    keys = np.arange(200)
    sims = {"exact LRU": lru_hits, "HashCache tinylfu": lambda k, n: 96, "theine": lambda k, n: next(draws)}
    row = hit_ratio.run_row("t", keys, 10, sims, 200, {"theine": 3})
    assert row.hits["theine"] == 95 and row.ratio("theine") == 47.5
    assert row.spread == {"theine": (45.0, 50.0)}
    (ok_lru, _), (ok_theine, text) = hit_ratio.check_tinylfu([row])
    assert ok_theine and "theine's mean" in text and "+0.50 points" in text
