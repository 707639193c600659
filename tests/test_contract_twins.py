"""The HashCache contract, continued: both implementations agree step for step; metrics counters; W-TinyLFU.

Every test runs once per implementation through the `impl` fixture family in conftest.py. Time comes from
a FakeTimer (`fake_timer`, which `make_cache` installs by default), so nothing here sleeps.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Tuple

import pytest

from contract_helpers import Key



# ---------------------------------------------------------------------------------------------- the two agree


class Colliding:
    """A key with Python-level __eq__ whose hash collides with every other instance's."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return 42

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Colliding) and other.n == self.n

    def __repr__(self) -> str:
        return f"Colliding({self.n})"


def random_ops(seed: int, n_ops: int, max_bytes: Any, width: int) -> List[Tuple[Any, ...]]:
    rng = random.Random(seed)
    keys: List[Any] = list(range(width)) + [f"s{i}" for i in range(width // 2)]
    keys += [Colliding(i) for i in range(10)] + [1.0, True, b"bytes-key", (1, 2)]
    ops: List[Tuple[Any, ...]] = []

    def ttl() -> Any:
        return rng.choice([None, None, 0.5, 1, 2.5, 10])

    for _ in range(n_ops):
        k = rng.choice(keys)
        r = rng.random()
        if r < 0.30:
            value = b"v" * rng.randrange(40)
            size = rng.choice([None, None, None, rng.randrange(50)])
            if max_bytes is not None and rng.random() < 0.02:
                size = max_bytes + rng.randrange(1, 5)
            ops.append(("set", k, value, ttl(), size))
        elif r < 0.50:
            ops.append(("get", k))
        elif r < 0.55:
            ops.append(("peek", k))
        elif r < 0.58:
            ops.append(("in", k))
        elif r < 0.62:
            ops.append(("delete", k))
        elif r < 0.66:
            ops.append(("pop", k, rng.choice([True, False])))
        elif r < 0.71:
            ops.append(("touch", k, ttl()))
        elif r < 0.74:
            ops.append(("ttl", k))
        elif r < 0.77:
            ops.append(("get_many", tuple(rng.choice(keys) for _ in range(rng.randrange(5)))))
        elif r < 0.80:
            items = tuple((rng.choice(keys), b"m" * rng.randrange(30)) for _ in range(rng.randrange(5)))
            ops.append(("set_many", items, ttl()))
        elif r < 0.88:
            ops.append(("advance", rng.choice([0.25, 0.5, 1.0, 3.0])))
        elif r < 0.91:
            ops.append(("expire",))
        elif r < 0.94:
            ops.append(("len",))
        elif r < 0.97:
            ops.append(("iter",))
        elif r < 0.995:
            ops.append(("stats",))
        else:
            ops.append(("clear",))
    return ops


def apply(cache: Any, timer: Any, op: Tuple[Any, ...]) -> Any:
    name = op[0]
    if name == "set":
        _, k, value, ttl, size = op
        return cache.set(k, value, ttl=ttl, size=size)
    if name == "get":
        return cache.get(op[1], "<default>")
    if name == "peek":
        return cache.peek(op[1], "<default>")
    if name == "in":
        return op[1] in cache
    if name == "delete":
        return cache.delete(op[1])
    if name == "pop":
        return cache.pop(op[1], "<default>") if op[2] else cache.pop(op[1])
    if name == "touch":
        return cache.touch(op[1], ttl=op[2])
    if name == "ttl":
        return cache.ttl(op[1])
    if name == "get_many":
        return list(cache.get_many(op[1]).items())
    if name == "set_many":
        return cache.set_many(list(op[1]), ttl=op[2])
    if name == "advance":
        return timer.advance(op[1])
    if name == "expire":
        return cache.expire()
    if name == "len":
        return len(cache)
    if name == "iter":
        return list(cache)
    if name == "stats":
        return cache.stats()
    if name == "clear":
        return cache.clear()
    raise AssertionError(name)


def trace(cache: Any, timer: Any, ops: List[Tuple[Any, ...]]) -> List[Tuple[Any, ...]]:
    """Per operation: its outcome (result, or exception type and args) and how often it read the timer."""
    out = []
    for op in ops:
        reads = timer.calls
        try:
            outcome: Tuple[Any, ...] = ("returned", apply(cache, timer, op))
        except Exception as exc:  # the exception type and arguments are part of the contract
            outcome = ("raised", type(exc).__name__, exc.args)
        out.append((outcome, timer.calls - reads))
    return out


@pytest.mark.c_extension
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "config",
    [
        {"max_bytes": 400},
        {"max_bytes": 300, "max_entries": 12, "default_ttl": 4.0},
        {"max_bytes": None, "max_entries": 25},
        {"max_bytes": 5000, "max_entries": 40},
        {"max_bytes": None, "max_entries": 400, "width": 600},  # tables and heaps that grow and shrink
        {"max_bytes": 400, "policy": "tinylfu"},
        {"max_bytes": 300, "max_entries": 12, "default_ttl": 4.0, "policy": "tinylfu"},
        {"max_bytes": None, "max_entries": 25, "policy": "tinylfu"},
        {"max_bytes": None, "max_entries": 400, "width": 600, "policy": "tinylfu"},
        {"max_bytes": 30000, "width": 600, "policy": "tinylfu"},  # bytes only: the sketch grows
    ],
    ids=["bytes", "bytes-entries-default_ttl", "entries", "roomy", "wide", "tinylfu-bytes",
         "tinylfu-bytes-entries-default_ttl", "tinylfu-entries", "tinylfu-wide", "tinylfu-growing"],
)
def test_implementations_agree(both_impls: Any, make_timer: Any, config: Dict[str, Any], seed: int) -> None:
    config = dict(config)
    width = config.pop("width", 30)
    ops = random_ops(seed, 4000 if width <= 30 else 20000, config.get("max_bytes"), width)
    results = []
    for impl in both_impls:
        timer = make_timer()
        cache = impl.HashCache(**config, timer=timer)
        steps = trace(cache, timer, ops)
        cache._check()
        results.append((steps, list(cache), cache.stats(), timer.calls))
    (c_steps, c_keys, c_stats, c_reads), (p_steps, p_keys, p_stats, p_reads) = results
    # Outcomes first: a difference there matters more than one in timer reads, and would hide behind it.
    for i, ((c, _), (p, _)) in enumerate(zip(c_steps, p_steps)):
        assert c == p, f"op #{i} {ops[i]!r}: compiled gave {c!r}, python gave {p!r}"
    assert c_keys == p_keys
    assert c_stats == p_stats
    for i, ((_, c), (_, p)) in enumerate(zip(c_steps, p_steps)):
        assert c == p, f"op #{i} {ops[i]!r}: compiled read the timer {c}x, python {p}x"
    assert c_reads == p_reads


def test_set_limits_shrinks_and_grows(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(max_bytes=100, max_entries=10)
    for i in range(10):
        cache.set(i, b"x" * 10)
    assert cache.set_limits(max_bytes=50, max_entries=10) == 5
    assert list(cache) == [5, 6, 7, 8, 9]
    assert cache.stats()["bytes"] == 50 and cache.max_bytes == 50
    assert cache.set_limits(max_bytes=None, max_entries=3) == 2
    assert list(cache) == [7, 8, 9] and cache.max_bytes is None and cache.max_entries == 3
    assert cache.set_limits(max_bytes=1000, max_entries=None) == 0
    for i in range(20):
        cache.set(100 + i, b"y")
    assert len(cache) == 23
    cache._check()


def test_set_limits_drops_expired_first(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(max_bytes=None, max_entries=4)
    cache.set("old", 1, ttl=1)
    for k in "abc":
        cache.set(k, 1)
    fake_timer.advance(2)
    assert cache.set_limits(max_bytes=None, max_entries=3) == 1
    assert list(cache) == ["a", "b", "c"]
    assert cache.stats()["expirations"] == 1 and cache.stats()["evictions"] == 0


@pytest.mark.parametrize("bad", [0, -1, "10"])
def test_set_limits_rejects_bad_values_and_changes_nothing(make_cache: Any, bad: Any) -> None:
    cache = make_cache(max_bytes=100)
    cache.set("k", b"v")
    with pytest.raises((TypeError, ValueError), match="max_bytes"):
        cache.set_limits(max_bytes=bad)
    assert cache.max_bytes == 100 and list(cache) == ["k"]


# ---------------------------------------------------------------------------------------------- metrics counters


def test_evictions_by_cause(HashCache: Any) -> None:
    cache = HashCache(max_bytes=100, max_entries=3)
    for k in range(5):  # 5 entries of 10 bytes under max_entries=3: two evicted for the count
        cache.set(k, "x", size=10)
    cache.set("big", "x", size=95)  # over max_bytes: the three others go for the size
    stats = cache.stats()
    assert (stats["evictions"], stats["evictions_by_count"], stats["evictions_by_size"]) == (5, 2, 3)
    assert list(cache) == ["big"]


def test_promoted_entries_and_their_first_hits(HashCache: Any) -> None:
    cache = HashCache()
    cache.promote("a", 1)
    cache.promote("b", 2, size=5)
    cache.set("c", 3)
    assert cache.get("a") == 1 and cache.get("a") == 1  # two hits, one promoted entry hit
    cache.get("c")  # a plain entry: not a promotion
    assert cache.peek("b") == 2 and "b" in cache  # neither is a use
    stats = cache.stats()
    assert (stats["promoted"], stats["promoted_hits"], stats["sets"]) == (2, 1, 3)
    cache.set("a", 10)  # a plain write replaces the promoted entry: later hits are not the promotion's
    cache.get("a")
    cache.promote("b", 20)  # promoted again: a new entry history
    cache.get("b")
    stats = cache.stats()
    assert (stats["promoted"], stats["promoted_hits"], stats["bytes"]) == (3, 2, cache.stats()["bytes"])
    assert cache.stats()["promoted_hits"] == 2


def test_promote_rejects_bad_input_like_set(HashCache: Any) -> None:
    cache = HashCache(max_bytes=10)
    with pytest.raises(TypeError):
        cache.promote([], 1)
    with pytest.raises(ValueError, match="ttl"):
        cache.promote("k", 1, ttl=-1)
    assert cache.promote("k", b"x" * 11) is False
    assert cache.stats()["promoted"] == 0 and len(cache) == 0


# ---------------------------------------------------------------------------------------------- W-TinyLFU


def test_policy_argument(HashCache: Any) -> None:
    assert HashCache().policy == "lru"
    assert HashCache(max_entries=10, policy="tinylfu").policy == "tinylfu"
    with pytest.raises(ValueError, match="policy must be one of 'lru', 'tinylfu', got 'lfu'"):
        HashCache(policy="lfu")
    with pytest.raises(TypeError, match="policy must be a str"):
        HashCache(policy=1)


def test_tinylfu_keeps_frequent_keys_through_a_scan(HashCache: Any) -> None:
    """LRU loses a hot set to a one-off scan; W-TinyLFU's admission keeps it."""
    results = {}
    for policy in ("lru", "tinylfu"):
        cache = HashCache(max_bytes=None, max_entries=100, policy=policy)
        hot = list(range(50))
        for _ in range(20):
            for k in hot:
                if cache.get(k) is None:
                    cache.set(k, k)
        for k in range(1000, 3000):  # a scan of 2000 keys seen once
            if cache.get(k) is None:
                cache.set(k, k)
        results[policy] = sum(k in cache for k in hot)
        cache._check()
    assert results["lru"] == 0 and results["tinylfu"] >= 45


def test_tinylfu_contract_limits_bytes_and_stats(HashCache: Any) -> None:
    cache = HashCache(max_bytes=1000, max_entries=30, policy="tinylfu")
    for i in range(500):
        if cache.get(i % 90) is None:
            cache.set(i % 90, b"x" * (i % 40))
        assert len(cache) <= 30 and cache.stats()["bytes"] <= 1000
    cache._check()
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == 500
    assert stats["bytes"] == sum(len(cache.peek(k)) for k in cache)
    assert cache.set("big", b"x" * 1001) is False and stats["rejections"] == 0
    cache.clear()
    assert len(cache) == 0 and list(cache) == []
    cache._check()
    cache.set("a", 1)
    assert cache.get("a") == 1
    assert cache.set_limits(max_bytes=None, max_entries=5) == 0
    cache._check()


def test_tinylfu_judges_a_held_key_by_its_own_uses(HashCache: Any) -> None:
    # "cold" shares its hash with "hot", which is used all along: the sketch rates them alike, but a held
    # key's frequency is its own count, so "cold" at the end of probation loses its first duel
    cache = HashCache(max_bytes=None, max_entries=50, policy="tinylfu")
    cold, hot = Key(12345, bucket=10**6), Key(10**6 + 12345, bucket=10**6)  # one hash, two keys
    cache.set(cold, 0)
    for i in range(49):
        cache.set(("filler", i), i)
    for _ in range(40):
        cache.record_use(hot)  # uses served elsewhere (an L2 hit): counted in the sketch, not stored
    assert cache.frequency(cold) == 1 and cache.frequency(hot) == 16
    for i in range(3):
        cache.set(("warm", i), i)
        for _ in range(7):
            cache.get(("warm", i))  # hits in the window: the candidate is warm when it is pushed out
    assert cold not in cache
    cache.set(cold, 0)  # back, it starts from what the sketch holds for its hash
    assert cache.frequency(cold) == 16
    cache._check()


def test_tinylfu_counts_go_back_to_the_sketch(HashCache: Any) -> None:
    cache = HashCache(max_bytes=None, max_entries=100, policy="tinylfu")
    cache.set("a", 1)
    for _ in range(5):
        cache.get("a")
    assert cache.frequency("a") == 6  # its own count: the set, then five hits
    cache.delete("a")
    assert cache.frequency("a") == 6  # the sketch holds it now
    cache.set("a", 1)
    assert cache.frequency("a") == 7
    cache.clear()
    assert cache.frequency("a") == 7
    cache._check()


def test_tinylfu_adapts_to_a_recency_loop(HashCache: Any) -> None:
    """A loop slightly larger than the cache defeats LRU entirely; W-TinyLFU keeps part of it."""
    cache = HashCache(max_bytes=None, max_entries=100, policy="tinylfu")
    hits = 0
    for _ in range(100):
        for k in range(120):
            if cache.get(k) is None:
                cache.set(k, k)
            else:
                hits += 1
    assert hits / 12000 > 0.5
    cache._check()


def test_frequency_sketch(impl: Any) -> None:
    sketch = impl.module.FrequencySketch(100)
    assert sketch.frequency("a") == 0
    sketch.increment("a")  # the doorkeeper takes the first sighting
    assert sketch.frequency("a") == 1
    for _ in range(5):
        sketch.increment("a")
    assert sketch.frequency("a") == 6 and sketch.frequency("b") == 0
    for _ in range(100):
        sketch.increment("a")
    assert sketch.frequency("a") == 16  # 4-bit counters saturate at 15, +1 for the doorkeeper
    sketch.reset()
    assert sketch.frequency("a") == 7  # aging halves the counters and clears the doorkeeper
    with pytest.raises(TypeError):
        sketch.increment([])
    with pytest.raises(TypeError):
        impl.module.FrequencySketch("100")


def test_frequency_sketch_grows_keeping_its_counts(impl: Any) -> None:
    sketch = impl.module.FrequencySketch(100)
    keys = [f"k{i}" for i in range(300)]
    for i, k in enumerate(keys):
        for _ in range(i % 9):
            sketch.increment(k)
    before, size, words = [sketch.frequency(k) for k in keys], sketch.size, sketch.words
    sketch.grow(50)  # smaller: nothing changes
    assert sketch.capacity == 100 and sketch.words == words
    sketch.grow(1000)
    assert sketch.capacity == 1000 and sketch.words == 2048 and sketch.sample == 10_000
    assert [sketch.frequency(k) for k in keys] == before and sketch.size == size
    sketch.increment("k1")  # and goes on counting
    assert sketch.frequency("k1") == before[1] + 1
    sketch.reset()  # aging counts each tile's odd counters: the additions count stays >= 0
    assert sketch.size >= 0
    with pytest.raises(TypeError):
        sketch.grow(2.0)


def test_frequency_sketch_duel(impl: Any) -> None:
    sketch = impl.module.FrequencySketch(100)
    for _ in range(20):
        sketch.increment("hot")
    for _ in range(3):
        sketch.increment("cool")
    assert sketch.admits("hot", "cool") and not sketch.admits("cool", "hot")
    assert not sketch.admits("cool", "cool")  # a tie keeps the victim
    # a warm candidate that loses still wins one duel in 128, at random; a cold one never does
    assert 2 <= sum(sketch.admits("hot", "hot") for _ in range(128 * 8)) <= 30
    assert not any(sketch.admits("cool", "hot") for _ in range(2000))


def test_frequency_sketch_twins_draw_alike(both_impls: Any) -> None:
    sketches = [impl.module.FrequencySketch(100) for impl in both_impls]
    for s in sketches:
        for _ in range(10):
            s.increment("a")
    draws = [[s.admits("a", "a") for _ in range(3000)] for s in sketches]
    assert draws[0] == draws[1] and any(draws[0])


def test_frequency_sketch_twins_agree(both_impls: Any) -> None:
    import random as _random

    rng = _random.Random(5)
    keys = [rng.randrange(5000) for _ in range(30000)] + [f"k{rng.randrange(300)}" for _ in range(5000)]
    sketches = [impl.module.FrequencySketch(256) for impl in both_impls]
    for i, k in enumerate(keys):
        for s in sketches:
            s.increment(k)
            if i == 20000:
                s.grow(1024)
    probe = list(range(0, 5000, 7)) + [f"k{i}" for i in range(300)]
    assert [sketches[0].frequency(k) for k in probe] == [sketches[1].frequency(k) for k in probe]
    assert sketches[0].size == sketches[1].size
