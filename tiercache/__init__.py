"""tiercache: a two-tier cache engine for Python services.

`CacheManager` runs namespaces over both tiers; `AsyncCacheManager` is the same for asyncio. `HashCache` is the in-process L1 tier: an LRU cache with per-entry TTLs and exact byte accounting, compiled
(Cython) when the extension is built, pure Python otherwise; `IMPLEMENTATION` tells which.
"""

from typing import TYPE_CHECKING

from . import _moved
from ._compat import IMPLEMENTATION, HashCache, deep_sizer, default_sizer
from .config import NamespaceConfig
from .errors import (CircuitOpenError, ConfigError, IntegrityError, L2Error, MissingExtraError, SerializationError,
                     TierCacheError)
from .manager import CacheManager

if TYPE_CHECKING:  # (at run time imported on first use: see __getattr__)
    from .manager.aio import AsyncCacheManager

_moved.install()  # the modules that moved keep their old names, with a DeprecationWarning

__version__ = "0.1.0"  # (the one place: pyproject.toml reads it)


def __getattr__(name: str) -> object:
    # AsyncCacheManager pulls in redis.asyncio: imported on first use, so `import tiercache` stays light.
    if name == "AsyncCacheManager":
        from .manager.aio import AsyncCacheManager

        return AsyncCacheManager
    raise AttributeError(f"module 'tiercache' has no attribute {name!r}")

__all__ = [
    "AsyncCacheManager", "CacheManager", "HashCache", "NamespaceConfig", "IMPLEMENTATION", "deep_sizer", "default_sizer", "__version__",
    "TierCacheError", "ConfigError", "SerializationError", "IntegrityError", "L2Error", "CircuitOpenError",
    "MissingExtraError",
]
