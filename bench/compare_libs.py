"""The caches bench/compare.py times: each library's constructor, getter and setter forms, and what it supports."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple



BASELINE = "cachebox.LRUCache"  # every figure is also shown as a ratio to this one
COMPILED = "tiercache.HashCache"  # the compiled core, tiercache._core_c.HashCache
PURE = "tiercache._core_py.HashCache"
MAX_BYTES = 2**40  # byte accounting on, never the binding limit
TTL = 365 * 24 * 3600.0  # the "large ttl" of TTL-style caches: nothing expires during a run



@dataclass
class Lib:
    """One cache under test: how to build one of a given capacity (in entries) and how to call it."""

    name: str
    make: Callable[[int], Any]
    kind: str = "cache"  # "cache"; "dict" (never evicts); "function" (an lru_cache-wrapped function)
    set_style: str = "item"  # "method": cache.set(k, v); "item": cache[k] = v
    slow: bool = False  # pure Python: timed in the first SLOW_REPEAT repetitions only
    note: str = ""
    only: Tuple[str, ...] = ()  # when set, the only workloads this entry runs

    def supports(self, workload: str) -> bool:
        if self.only:
            return workload in self.only
        if self.kind == "dict":  # unbounded: a set never evicts, a read-through never misses twice
            return workload in ("get_hit_int", "get_hit_str", "get_miss", "memory")
        if self.kind == "function":  # a call that misses stores the result: no plain get-miss or set
            return workload in ("get_hit_int", "get_hit_str", "zipf", "memory")
        return True


def _identity(key: Any) -> Any:
    return key


def _hashcache(ttl: bool, policy: str = "lru") -> Callable[[Any], Callable[[int], Any]]:
    kw: Dict[str, Any] = {"default_ttl": TTL} if ttl else {}
    if policy != "lru":
        kw["policy"] = policy
    return lambda mod: lambda cap: mod.HashCache(max_bytes=MAX_BYTES, max_entries=cap, **kw)


_HC_NOTE = "HashCache(max_entries=capacity, max_bytes=2**40{}); byte accounting on, not binding"

# name, module to import, factory(module) -> make(capacity), Lib options
SPECS: List[Tuple[str, str, Callable[[Any], Callable[[int], Any]], Dict[str, Any]]] = [
    # tiercache's rows set with cache[k] = v, the form every other library's row uses; the `.set()` row
    # times the method call (cache.set(k, v)) on the workloads that set
    (COMPILED, "tiercache._core_c", _hashcache(False),
     dict(note="tiercache._core_c." + _HC_NOTE.format(""))),
    (COMPILED + " .set()", "tiercache._core_c", _hashcache(False),
     dict(set_style="method", only=("set_evict", "zipf"), note="the same, set with the method: cache.set(k, v)")),
    (COMPILED + " +ttl", "tiercache._core_c", _hashcache(True),
     dict(note="the same with default_ttl=1 year, so every entry has an expiry")),
    (COMPILED + " tinylfu", "tiercache._core_c", _hashcache(False, "tinylfu"),
     dict(note="the same with policy=\"tinylfu\" (W-TinyLFU: its hit ratio is not LRU's)")),
    (PURE, "tiercache._core_py", _hashcache(False),
     dict(slow=True, note="tiercache._core_py." + _HC_NOTE.format(""))),
    (PURE + " +ttl", "tiercache._core_py", _hashcache(True),
     dict(slow=True, note="the same with default_ttl=1 year")),
    ("dict", "builtins", lambda mod: lambda cap: {},
     dict(kind="dict", note="d.get(k); unbounded, so get-hit and get-miss only")),
    ("functools.lru_cache", "functools", lambda mod: lambda cap: mod.lru_cache(maxsize=cap)(_identity),
     dict(kind="function", note="lru_cache(maxsize=capacity) over an identity function; get = calling it; "
                                "no get-miss or set rows, since a miss stores the result")),
    ("cachetools.LRUCache", "cachetools", lambda mod: mod.LRUCache, dict(slow=True)),
    ("cachetools.TTLCache", "cachetools", lambda mod: functools.partial(mod.TTLCache, ttl=TTL),
     dict(slow=True, note="ttl=1 year")),
    ("lru.LRU", "lru", lambda mod: mod.LRU, dict(note="lru-dict")),
    (BASELINE, "cachebox", lambda mod: mod.LRUCache, dict(note="the baseline of every ratio")),
    ("cachebox.TTLCache", "cachebox", lambda mod: lambda cap: mod.TTLCache(cap, TTL),
     dict(note="global_ttl=1 year; evicts in insertion (FIFO) order, so its hit ratio is FIFO's")),
]

INSTALL_HINT = {
    "tiercache._core_c": "build it with `python setup.py build_ext --inplace`",
    "tiercache._core_py": "run from the repository",
    "cachetools": "pip install cachetools",
    "lru": "pip install lru-dict",
    "cachebox": "pip install cachebox",
}


def build_libs(only: Optional[Sequence[str]] = None, exact: bool = False) -> Tuple[List[Lib], List[str]]:
    """The libraries to compare (filtered by `only`), and a note for each one that cannot be imported."""
    libs: List[Lib] = []
    skipped: List[str] = []
    for name, module, factory, options in SPECS:
        if only and not any((o == name) if exact else (o.lower() in name.lower()) for o in only):
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            skipped.append(f"{name}: skipped, {module} not importable ({exc}); {INSTALL_HINT.get(module, '')}")
            continue
        libs.append(Lib(name, factory(mod), **options))
    return libs, skipped


def fill(lib: Lib, cache: Any, keys: Sequence[Any], values: Optional[Sequence[Any]] = None) -> None:
    """Insert `keys` (untimed); each value is the key itself unless `values` is given."""
    if lib.kind == "function":  # calling the cached identity function stores key -> key
        for k in keys:
            cache(k)
        return
    values = keys if values is None else values
    if lib.set_style == "method":
        s = cache.set
        for k, v in zip(keys, values):
            s(k, v)
    else:
        for k, v in zip(keys, values):
            cache[k] = v


def entries(lib: Lib, cache: Any) -> int:
    return cache.cache_info().currsize if lib.kind == "function" else len(cache)
