"""Type-checked by tests/test_typing.py (mypy --strict): what users write keeps its types."""

from __future__ import annotations

from typing import Dict, List

from typing_extensions import assert_type

from tiercache import AsyncCacheManager, CacheManager, HashCache, NamespaceConfig


def sync_usage(cache: CacheManager) -> None:
    @cache.cached("reports", ttl=600)
    def build_report(day: str, rows: int = 10) -> Dict[str, int]:
        return {day: rows}

    assert_type(build_report("2026-12-05"), Dict[str, int])
    assert_type(build_report(day="2026-12-05", rows=3), Dict[str, int])
    build_report(1)  # type: ignore[arg-type]
    build_report("d", nope=1)  # type: ignore[call-arg]
    cache.set("ns", "k", {"v": 1}, ttl=5)
    cache.get_or_set("ns", "k", lambda: 1)
    cache.flush_invalidations()


async def async_usage(cache: AsyncCacheManager) -> None:
    @cache.cached("reports")
    async def load(ids: List[int]) -> List[str]:
        return [str(i) for i in ids]

    assert_type(await load([1, 2]), List[str])
    await load("x")  # type: ignore[arg-type]
    assert await cache.set("ns", "k", 1) in (True, False)


def l1_usage() -> None:
    cache = HashCache(max_bytes=1 << 20)
    cache.set("k", 1)
    NamespaceConfig(l1_ttl=30)
