"""Helpers of the HashCache contract tests (test_contract*.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple


STATS_KEYS = {
    "hits", "misses", "sets", "evictions", "evictions_by_size", "evictions_by_count", "expirations", "rejections",
    "entries", "bytes", "max_bytes", "max_entries", "hit_rate", "promoted", "promoted_hits",
}


def snapshot(cache: Any) -> Tuple[List[Tuple[Any, Any, Any]], Dict[str, Any]]:
    """Everything observable about `cache` (keys in LRU order, values, remaining TTLs, stats).

    Uses only calls that do not count as use or as hits/misses, so taking it twice gives the same answer.
    """
    keys = list(cache)
    return [(k, cache.peek(k), cache.ttl(k)) for k in keys], cache.stats()


def weights(cache: Any, sizes: Dict[Any, int]) -> int:
    return sum(sizes[k] for k in cache)


class Key:
    """A key with Python-level __hash__ and __eq__; every instance with the same `n` is the same key."""

    def __init__(self, n: int, bucket: int = 3) -> None:
        self.n = n
        self.bucket = bucket

    def __hash__(self) -> int:
        return self.n % self.bucket

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.n == self.n

    def __repr__(self) -> str:
        return f"Key({self.n})"
