"""tiercache: a two-tier cache engine for Python services.

`HashCache` is the in-process L1 tier: an LRU cache with per-entry TTLs and exact byte accounting, compiled
(Cython) when the extension is built, pure Python otherwise; `IMPLEMENTATION` tells which.
"""

from ._compat import IMPLEMENTATION, HashCache, default_sizer

__version__ = "0.1.0"

__all__ = ["HashCache", "IMPLEMENTATION", "default_sizer", "__version__"]
