"""The managers: namespaces over L1 and L2. Data flows one way, API -> manager -> L1 / promotion / L2:

    sync.CacheManager ─┐                      ┌─> _readpath (ReadPath: L1 step, L2 bytes -> L1; compiled)
                       ├─> base.BaseManager ──┼─> promotion (which L2 hits enter L1)
    aio.AsyncCacheManager┘   (every operation  ├─> gate (circuit breaker, L2 timings, repair after outages)
                              written once as  ├─> invalidation (cross-process L1 drops)
                              steps: steps.py) └─> tiercache.l2 backends

`CacheManager` runs the steps with plain calls, `AsyncCacheManager` awaits them.
"""

from typing import TYPE_CHECKING, Any

from ..wire import decode_key, encode_key

if TYPE_CHECKING:  # (at run time imported on first use: see __getattr__)
    from .aio import AsyncCacheManager
    from .sync import CacheManager

__all__ = ["AsyncCacheManager", "CacheManager", "decode_key", "encode_key"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the pure twin of the compiled core imports _readpath_py from this package
    # while tiercache._compat is still choosing, before CacheManager can be built.
    if name == "CacheManager":
        from .sync import CacheManager

        return CacheManager
    if name == "AsyncCacheManager":
        from .aio import AsyncCacheManager

        return AsyncCacheManager
    raise AttributeError(f"module 'tiercache.manager' has no attribute {name!r}")
