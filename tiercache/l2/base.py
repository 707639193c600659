"""The protocol every shared (L2) tier implements.

Keys are already fully qualified strings (`tiercache:v1:{env}:{namespace}:{key}`, built by the manager) and
values are bytes (already serialized by tiercache.wire.serialization). A backend knows nothing of namespaces
beyond `clear_namespace(prefix)`, and nothing of Python objects. Every method may raise L2Error (wrapping
the client's own exception); the manager's circuit breaker decides what a failure means.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Protocol, runtime_checkable


@runtime_checkable
class L2(Protocol):
    kind: str  # "redis", "redis-cluster", "sqlite"

    def get(self, key: str) -> Optional[bytes]:
        """The bytes stored under `key`, or None."""

    def get_many(self, keys: List[str]) -> List[Optional[bytes]]:
        """Bytes for each key, in order (None where absent), in one round trip."""

    def set(self, key: str, data: bytes, ttl: Optional[float] = None) -> None:
        """Store `data`; `ttl` in seconds (None: kept until deleted)."""

    def set_many(self, items: Mapping[str, bytes], ttl: Optional[float] = None) -> None:
        """Store every item with the same ttl, in one round trip."""

    def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed."""

    def keys(self, prefix: str, limit: int) -> List[str]:
        """Up to `limit` keys starting with `prefix` (incremental, never KEYS), the most recent first: SQLite
        the most recently written, Redis the most recently used of a sample (OBJECT IDLETIME)."""

    def delete_many(self, keys: List[str]) -> int:
        """Remove every key in `keys` (a batch: one round trip per thousand); returns how many existed."""

    def clear_namespace(self, prefix: str) -> int:
        """Remove every key starting with `prefix` (incremental, never KEYS/FLUSHDB); returns how many."""

    def ping(self) -> bool:
        """True when the backend answers."""

    def close(self) -> None:
        """Release connections/files. Idempotent."""


class Writes(Protocol):
    """Optional, for CacheManager.add, tags and get_or_set(lock="distributed") (every backend here has them)."""

    def add(self, key: str, data: bytes, ttl: Optional[float] = None) -> bool:
        """Store `data` unless `key` holds a live value, atomically: whether it was stored."""

    def lock(self, key: str, token: bytes, ttl: float) -> bool:
        """add(key, token, ttl): take a lock that expires."""

    def unlock(self, key: str, token: bytes) -> bool:
        """Delete `key` if it still holds `token`, atomically: whether it did."""

    def incr(self, key: str, delta: int) -> object:
        """Add `delta` to the plain msgpack int under `key`, atomically, keeping its expiry: the new int; None
        when `key` holds no value; NotImplemented for any other value."""

    def swap(self, key: str, old: bytes, new: bytes) -> bool:
        """Store `new` under `key` if it still holds `old`, keeping its expiry, atomically: whether it did."""

    def set_tagged(self, items: Mapping[str, bytes], ttl: Optional[float], tag_keys: List[str]) -> None:
        """set_many, and each key recorded in the index of every tag of `tag_keys`, in one round trip."""

    def pop_tagged(self, tag_key: str, count: int) -> List[str]:
        """Remove up to `count` keys from a tag's index and return them (two callers never get one key)."""


class Invalidations(Protocol):
    """Optional: backends that can broadcast invalidations to other processes (Redis pub/sub)."""

    def publish(self, channel: str, message: bytes) -> None:
        ...

    def listen(self, channel: str, on_message: Callable[[bytes], None], on_reconnect: Callable[[], None],
               stop: threading.Event) -> None:
        ...


def chunked(items: Iterable[str], size: int) -> Iterable[List[str]]:
    batch: List[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


__all__ = ["L2", "Writes", "Invalidations", "chunked", "Dict"]
