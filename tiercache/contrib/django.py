"""A Django cache backend on CacheManager: L1 in the worker process, L2 shared (Redis or SQLite).

    CACHES = {
        "default": {
            "BACKEND": "tiercache.contrib.django.TierCacheBackend",
            "LOCATION": "redis://127.0.0.1:6379/0",     # or "sqlite:///…", or "" for the embedded store
            "TIMEOUT": 300,                              # Django's: None = forever, 0 = don't cache
            "KEY_PREFIX": "site", "VERSION": 1,
            "OPTIONS": {"NAMESPACE": "django", "L1_MAX_ENTRIES": 10_000, "L1_MAX_BYTES": 64 << 20},
        }
    }

Keys are Django's (`make_and_validate_key`: KEY_PREFIX, VERSION, KEY_FUNCTION), all in one tiercache
namespace (OPTIONS NAMESPACE, default "django"). Values are pickled, as Django's own backends do, and
HMAC-signed with a key derived from SECRET_KEY (OPTIONS HMAC_KEY to set one), so a value written to L2 by
anything else is rejected, never unpickled. `timeout` caps both tiers; None keeps an entry until deleted or
evicted; 0 or less deletes the key instead of storing it.

Django makes a backend object per thread and alias; all those of one process with the same LOCATION and
OPTIONS share one CacheManager (one L1, one pool of connections, one invalidation listener), as
django-redis shares its connection pools, so a write through one is read at once through the others.
`close()`, which Django calls after every request, costs nothing; the shared managers close when the
process exits.

Atomic across processes: add is CacheManager.add (Redis SET NX, one SQLite statement); incr/decr are
CacheManager.incr (ints are stored as msgpack, which L2 adds to itself: a Redis script, one SQLite
transaction; other values by compare-and-set); touch reads L2 itself, not an L1 copy that may lag, and
writes under the key's lock (`CacheManager.locked`: Redis `SET NX PX` or a row of the SQLite file). The
async methods (aget, aset, …) are Django's, running the sync ones in a thread.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import pickle
import threading
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from .._extras import missing

try:
    from django.conf import settings
    from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
except ImportError as exc:
    raise missing(exc, "django", "tiercache.contrib.django (the Django cache backend)") from exc

from ..config import NamespaceConfig
from ..errors import SerializationError
from ..manager.sync import CacheManager

__all__ = ["TierCacheBackend", "close_shared"]

_MISSING: Any = object()


# (LOCATION, ENV, namespace, its config, HMAC key, strict) -> the process's manager
_SHARED: Dict[Tuple[Any, ...], CacheManager] = {}
_SHARED_LOCK = threading.Lock()


def _shared_manager(settings_key: Tuple[Any, ...]) -> CacheManager:
    with _SHARED_LOCK:
        manager = _SHARED.get(settings_key)
        if manager is None or manager.closed:
            location, env, namespace, ns, hmac_key, strict = settings_key
            manager = _SHARED[settings_key] = CacheManager(location, env=env, config={namespace: ns},
                                                           hmac_key=hmac_key, strict=strict, metrics_interval=None)
        return manager


@contextlib.contextmanager
def _pickle_errors() -> Iterator[None]:
    """A value pickle refused raises pickle.PickleError, as with Django's own backends (not the
    SerializationError wrapping it)."""
    try:
        yield
    except SerializationError as exc:
        if isinstance(exc.__cause__, pickle.PickleError):
            raise exc.__cause__ from None
        raise


@atexit.register
def close_shared() -> None:
    """Close the managers this process's backends share (at exit, where it runs by itself: the queued
    invalidations are sent, the connections closed); backends made afterwards get new ones."""
    with _SHARED_LOCK:
        managers = list(_SHARED.values())
        _SHARED.clear()
    for manager in managers:
        manager.close()


class TierCacheBackend(BaseCache):
    def __init__(self, location: str, params: Dict[str, Any]) -> None:
        super().__init__(params)
        options = {str(k).upper(): v for k, v in (params.get("OPTIONS") or {}).items()}
        known = {"NAMESPACE", "ENV", "L1_MAX_ENTRIES", "L1_MAX_BYTES", "HMAC_KEY", "STRICT", "COMPRESSION"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"TierCacheBackend: unknown OPTIONS {sorted(unknown)} (known: {sorted(known)})")
        self.namespace = options.get("NAMESPACE", "django")
        hmac_key = options.get("HMAC_KEY") or hashlib.sha256(
            b"tiercache.contrib.django:" + str(settings.SECRET_KEY).encode()).hexdigest()
        ns = NamespaceConfig(
            l1_ttl=None, l2_ttl=None, l1_grace_period=0.0, serializer="pickle",
            l1_max_entries=options.get("L1_MAX_ENTRIES", 10_000), l1_max_bytes=options.get("L1_MAX_BYTES", 64 << 20),
            compression=options.get("COMPRESSION"),
        )
        self._manager = _shared_manager(
            (location or None, options.get("ENV"), self.namespace, ns, hmac_key, bool(options.get("STRICT", False))))

    @property
    def manager(self) -> CacheManager:
        return self._manager

    def _ttl(self, timeout: Any) -> Optional[float]:
        """Django's timeout as seconds to keep (None: forever); <= 0 means do not store."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        return float(timeout)

    # ------------------------------------------------------------------ the cache API

    def get(self, key: Any, default: Any = None, version: Optional[int] = None) -> Any:
        return self._manager.get(self.namespace, self.make_and_validate_key(key, version), default)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> None:
        k = self.make_and_validate_key(key, version)
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            self._manager.delete(self.namespace, k)
            return
        self._store(k, value, ttl)

    def _store(self, k: str, value: Any, ttl: Optional[float]) -> None:
        with _pickle_errors():
            self._manager.set(self.namespace, k, value, ttl)

    def _current(self, k: str, shared: bool) -> Any:
        """The key's value: as L2 has it when the L2 lock is held (`shared`: this process's L1 copy may lag
        another process's write), else as this process has it (L2 is failing: an L1 copy beats none)."""
        if shared:
            self._manager.l1(self.namespace).delete(k)
        return self._manager.get(self.namespace, k, _MISSING)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        k = self.make_and_validate_key(key, version)
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:  # stored and expired at once, as Django's other backends behave
            return self._manager.get(self.namespace, k, _MISSING) is _MISSING
        with _pickle_errors():
            return self._manager.add(self.namespace, k, value, ttl)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        k = self.make_and_validate_key(key, version)
        with self._manager.locked(self.namespace, k) as shared:
            value = self._current(k, shared)
            if value is _MISSING:
                return False
            ttl = self._ttl(timeout)
            if ttl is not None and ttl <= 0:
                self._manager.delete(self.namespace, k)
            else:
                self._manager.set(self.namespace, k, value, ttl)
            return True

    def delete(self, key: Any, version: Optional[int] = None) -> bool:
        return self._manager.delete(self.namespace, self.make_and_validate_key(key, version))

    def has_key(self, key: Any, version: Optional[int] = None) -> bool:
        return self._manager.get(self.namespace, self.make_and_validate_key(key, version), _MISSING) is not _MISSING

    def get_many(self, keys: Iterable[Any], version: Optional[int] = None) -> Dict[Any, Any]:
        mapped = {self.make_and_validate_key(key, version): key for key in keys}
        found = self._manager.get_many(self.namespace, list(mapped))
        return {mapped[k]: v for k, v in found.items()}

    def set_many(self, data: Dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT,
                 version: Optional[int] = None) -> List[Any]:
        items = {self.make_and_validate_key(key, version): value for key, value in data.items()}
        ttl = self._ttl(timeout)
        if ttl is not None and ttl <= 0:
            self._manager.delete_many(self.namespace, list(items))
            return []
        with _pickle_errors():
            self._manager.set_many(self.namespace, items, ttl)
        return []  # keys that failed to store: none (L2 failures are counted and repaired, not raised)

    def delete_many(self, keys: Iterable[Any], version: Optional[int] = None) -> None:
        self._manager.delete_many(self.namespace, [self.make_and_validate_key(key, version) for key in keys])

    def incr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> Any:
        k = self.make_and_validate_key(key, version)
        try:
            with _pickle_errors():
                return self._manager.incr(self.namespace, k, delta)
        except KeyError:
            raise ValueError(f"Key '{key}' not found") from None

    def clear(self) -> None:
        self._manager.clear(self.namespace)

    def close(self, **kwargs: Any) -> None:
        """Django calls this at the end of every request: the shared manager (L1, connections) lives on."""
