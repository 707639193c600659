"""CacheManager: namespaced two-tier caching, L1 (a HashCache per namespace) over a shared L2.

Every operation is written once in tiercache.manager.base as steps; this class runs them with plain calls (threads
for the invalidation listener and refresh-ahead). Failures of L2 never raise out of the data calls unless
`strict=True`: reads fall back to L1, writes are counted as dropped and repaired once L2 answers again, and
the circuit breaker stops calling a dead server until a probe succeeds.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import inspect
import os
import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple, TypeVar, Union

from .. import l2 as l2_backends
from .._compat import MISSING
from .base import BaseManager, check_lock, check_tags
from .callkey import key_maker
from ..config import check_namespace
from ..errors import L2Error
from .invalidation import InvalidationListener, Outbox, Publisher
from .singleflight import SingleFlight
from .steps import Steps, run
from ..wire import decode_key, encode_key

__all__ = ["CacheManager", "decode_key", "encode_key"]

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    P = ParamSpec("P")
R = TypeVar("R")


def _at_fork(ref: "weakref.ref[CacheManager]", when: str) -> None:
    manager = ref()
    if manager is not None:
        manager._at_fork(when)


class CacheManager(BaseManager):
    """Namespaced two-tier cache: a compiled L1 per namespace over Redis, Redis Cluster or SQLite.

    `l2`: None (TIERCACHE_L2_URL, else the embedded SQLite store in the user's cache directory), a URL
    (`redis://host:port/db`, `rediss://…`, `redis+cluster://host:port`, `sqlite:///path.db`) or an L2 object.
    `env`: development | production | test (default TIERCACHE_ENV, else development).
    `config`: None (the shipped profile for `env`, with TIERCACHE_* overrides), a CacheConfig, the path of a
    TOML file (also with overrides), or {namespace: NamespaceConfig or dict} (other namespaces then get
    `default_config`).
    Thread-safe. Use as a context manager, or call close().
    """

    _open_l2 = staticmethod(l2_backends.from_url)

    def _start(self) -> None:
        # An L1 hit goes from the caller straight into the compiled ReadPath (no Python frame): the bound
        # method shadows `get` below, which documents it and is what a subclass overrides.
        if type(self).get is CacheManager.get:
            self.get = self._read.get  # type: ignore[method-assign]
        self._flights = SingleFlight()
        self._key_locks: "weakref.WeakValueDictionary[Tuple[str, Any], threading.Lock]" = weakref.WeakValueDictionary()
        self._worker: Optional[concurrent.futures.ThreadPoolExecutor] = None  # refresh-ahead, repair
        self._listener: Optional[InvalidationListener] = None
        self.listener_connected: Optional[threading.Event] = None  # set while invalidations are received
        self._publisher: Optional[Publisher] = None
        # Held by the publisher while it sends and by the listener while it applies a message, and by a fork
        # while it happens: a forked child never inherits the counters' or the circuit's lock held by one.
        self._background = threading.Lock()
        self._flushing = threading.Lock()  # one round of invalidation messages at a time
        self._start_invalidation()
        if self.metrics is not None:
            self.metrics.start()
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(before=functools.partial(_at_fork, ref, "before"),
                                after_in_parent=functools.partial(_at_fork, ref, "parent"),
                                after_in_child=functools.partial(_at_fork, ref, "child"))

    def _start_invalidation(self) -> None:
        if self._invalidation:
            self._publisher = Publisher(self._publish_in_background)
            self._publisher.start()
            self._listener = InvalidationListener(self.l2.subscribe, self._channel, self._apply_in_background,
                                                  self._flush_l1)
            self.listener_connected = self._listener.connected
            self._listener.start()

    def _publish_in_background(self) -> None:
        with self._background:
            self.flush_invalidations()

    def _apply_in_background(self, message: bytes) -> None:
        with self._background:
            self._on_invalidation(message)

    def _at_fork(self, when: str) -> None:
        if when == "before":
            self._background.acquire()
        elif when == "parent":
            self._background.release()
        else:
            self._background = threading.Lock()
            self._flushing = threading.Lock()
            self._forked()

    def _forked(self) -> None:
        """In a child process forked from this one (a pre-forking server, say): the child takes an id of its
        own (messages from the parent's id are ignored as one's own), empties its L1, and since the parent's
        threads did not come along, drops their loads and locks and starts its own publisher and listener
        (and a fresh outbox: what is queued there is the parent's to send); the worker pool is made anew
        when needed."""
        if self._closed:
            return
        self._id = uuid.uuid4().hex  # (the parent's id would make every process ignore the others' messages)
        self._outbox = Outbox()
        self._worker = None
        # what the parent's other threads were doing did not come along: their loads, refreshes and locks
        self._lock = threading.RLock()
        self._flights = SingleFlight()
        self._key_locks = weakref.WeakValueDictionary()
        self._refreshing = set()
        self._watchers = {}
        # invalidations the parent had not applied yet, or sent before this listener subscribes, are lost to
        # the child: its L1 starts empty, as after a lost connection
        self._flush_l1()
        self._start_invalidation()

    # ------------------------------------------------------------------ reads

    def get(self, namespace: str, key: Any, default: Any = None) -> Any:
        """The value from L1, else L2 (copied into L1 as the namespace's promotion strategy decides), else
        `default`."""
        return self._read.get(namespace, key, default)

    def _get_missed(self, namespace: str, key: Any, default: Any, l1_missed: bool) -> Any:
        value, stale = run(self._lookup_steps(namespace, key, l1_missed))
        return value if value is not MISSING else self._served(namespace, stale, default)

    def get_many(self, namespace: str, keys: Iterable[Any]) -> Dict[Any, Any]:
        """{key: value} for the keys found in L1 or L2; the L2 part is one round trip."""
        return run(self._get_many_steps(namespace, keys))  # type: ignore[no-any-return]

    def preload(self, namespace: str, keys: Iterable[Any] = (), count: int = 100) -> Dict[Any, bool]:
        """Warm L1 from L2 (after a restart, say): `keys`, then the namespace's `warmup_keys`, then the most
        read ones, then the most recent keys L2 holds (SQLite: written; Redis: used, from a sample), `count` at
        most, copied into L1 whatever the promotion strategy; {key: found}. Writes nothing."""
        return run(self._preload_steps(namespace, keys, count))  # type: ignore[no-any-return]

    def get_or_set(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float] = None, *,
                   lock: str = "local", lock_timeout: float = 10.0, tags: Iterable[str] = ()) -> Any:
        """The cached value, else loader()'s result, cached. Concurrent misses on one key run loader once;
        the others get its result or its exception. When the loader fails, a stale copy within the
        namespace's grace period is served instead. lock="distributed": once across every process on the
        L2, through a lock in L2 that waiters respect for at most `lock_timeout` seconds. `tags`: as set's."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, got {type(loader).__name__}")
        check_lock(lock, lock_timeout)
        tags = check_tags(tags)
        self._check_open()
        value, stale = run(self._lookup_steps(namespace, key))
        if value is not MISSING:
            if self._claim_refresh(namespace, key):
                self._refresh_in_background(namespace, key, loader, ttl, tags)
            return value
        try:
            if lock == "distributed":
                load = self._distributed_load_steps(namespace, key, loader, ttl, lock_timeout, tags)
            else:
                load = self._load_steps(namespace, key, loader, ttl, tags=tags)
            result, _ = self._flights.do((namespace, key), lambda: run(load))
        except Exception:
            if stale is MISSING:
                raise
            self.counters.add("stale_served", 1, namespace)
            return stale
        return result

    @contextlib.contextmanager
    def locked(self, namespace: str, key: Any, timeout: float = 10.0) -> Iterator[bool]:
        """Hold the key's lock across every process on the L2 (and within this one) for a read-modify-write:
        `with cache.locked(ns, key): cache.set(ns, key, cache.get(ns, key) + 1)`. The lock expires after
        `timeout` seconds should its holder die. Yields whether the L2 lock is held: False when L2 cannot
        lock (it fails, or the namespace is not persisted), and only this process's lock is. What other
        processes hold in L1 may lag: with the L2 lock, read the key with `l1(ns).delete(key)` first."""
        check_lock("distributed", timeout, "timeout")
        self._check_open()
        with self._key_lock(namespace, key):
            token = run(self._lock_steps(namespace, key, timeout))
            try:
                yield token is not None
            finally:
                run(self._unlock_steps(namespace, key, token))

    def _key_lock(self, namespace: str, key: Any) -> threading.Lock:
        with self._lock:
            lock = self._key_locks.get((namespace, key))
            if lock is None:
                lock = self._key_locks[(namespace, key)] = threading.Lock()
            return lock

    def _pause(self, namespace: str, key: Any, seconds: float) -> None:
        woken = threading.Event()
        self._watch(namespace, key, woken.set)
        try:
            woken.wait(seconds)
        finally:
            self._unwatch(namespace, key, woken.set)

    def _workers(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._worker is None:
                self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="tiercache")
            return self._worker

    def _refresh_in_background(self, namespace: str, key: Any, loader: Callable[[], Any],
                               ttl: Optional[float], tags: Tuple[str, ...]) -> None:
        self._workers().submit(self._refresh, namespace, key, loader, ttl, tags)

    def _in_background(self, steps: Steps) -> bool:
        try:
            self._workers().submit(run, steps)
        except RuntimeError:  # shut down: the manager is closing
            steps.close()
            return False
        return True

    def _refresh(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float],
                 tags: Tuple[str, ...]) -> None:
        try:
            run(self._load_steps(namespace, key, loader, ttl, refresh=True, tags=tags))
        finally:
            self._refreshed(namespace, key)

    def cached(self, namespace: str, ttl: Optional[float] = None, key: Optional[Callable[..., Any]] = None, *,
               ignore: Iterable[str] = (), tags: Iterable[str] = ()) -> "Callable[[Callable[P, R]], Callable[P, R]]":
        """Decorator: cache a function's results in `namespace` through get_or_set.

        The key is `key(*args, **kwargs)` when given, else the function's qualified name and a digest of
        its arguments bound to its signature (defaults applied), encoded the same in every process
        (tiercache.manager.callkey: an argument of a type without a canonical encoding is a TypeError
        naming it); `ignore` leaves arguments out of that key. The wrapper keeps the function's signature
        for type checkers. `tags`: given to every result written (as set's).
        """
        check_namespace(namespace)
        tags = check_tags(tags)

        def decorate(fn: "Callable[P, R]") -> "Callable[P, R]":
            if inspect.iscoroutinefunction(fn):
                raise TypeError("CacheManager.cached wraps plain functions, not async def ones")
            make_key = key_maker(fn, key, ignore)

            @functools.wraps(fn)
            def wrapper(*args: "P.args", **kwargs: "P.kwargs") -> "R":
                return self.get_or_set(namespace, make_key(args, kwargs),  # type: ignore[no-any-return]
                                       lambda: fn(*args, **kwargs), ttl, tags=tags)

            return wrapper

        return decorate

    # ------------------------------------------------------------------ writes

    def set(self, namespace: str, key: Any, value: Any, ttl: Optional[float] = None, *,
            tags: Iterable[str] = ()) -> bool:
        """Write through to L2 and L1 (ttl caps the namespace's TTLs); other processes drop their copy.
        `tags` (str): invalidate_tag(namespace, tag) removes the entry, in every process."""
        return bool(run(self._set_steps(namespace, key, value, ttl, tags)))

    def set_many(self, namespace: str, mapping: Mapping[Any, Any], ttl: Optional[float] = None, *,
                 tags: Iterable[str] = ()) -> int:
        """Write every item (encoded first: one bad value stores nothing); the L2 part is one round trip."""
        return run(self._set_many_steps(namespace, mapping, ttl, tags=tags))  # type: ignore[no-any-return]

    def add(self, namespace: str, key: Any, value: Any, ttl: Optional[float] = None) -> bool:
        """set, only when L2 holds no live value for the key, atomically across processes (Redis SET NX; one
        SQLite statement): whether it was stored. While L2 fails, this process's L1 decides."""
        return bool(run(self._add_steps(namespace, key, value, ttl)))

    def incr(self, namespace: str, key: Any, delta: int = 1) -> Any:
        """Add `delta` to the key's value, atomically across processes, keeping its expiry: the new value.
        An int is added to by L2 itself (one round trip: a script on Redis, a transaction on SQLite); other
        values that take an int (float, Decimal) are read and swapped in if unchanged meanwhile (else read
        again). KeyError when the key holds no value; TypeError when its value takes no int."""
        return run(self._incr_steps(namespace, key, delta))

    def invalidate_tag(self, namespace: str, tag: str) -> int:
        """Remove every entry of the namespace written with `tag` from L2 and from the L1 of every process
        (in rounds of a few hundred keys, however many carry it); how many entries were removed."""
        return run(self._invalidate_tag_steps(namespace, tag))  # type: ignore[no-any-return]

    def delete(self, namespace: str, key: Any) -> bool:
        """Remove from L1 and L2; True when either held it."""
        return run(self._delete_steps(namespace, key))  # type: ignore[no-any-return]

    def delete_many(self, namespace: str, keys: Iterable[Any]) -> int:
        """Remove every key from L1 and L2 (the L2 part one round trip); how many keys a tier held (the
        larger of L1's and L2's counts)."""
        return run(self._delete_many_steps(namespace, keys))  # type: ignore[no-any-return]

    def clear(self, namespace: str) -> int:
        """Empty the namespace in L1 and L2 (SCAN + UNLINK in batches on Redis); returns L2 keys removed."""
        return run(self._clear_steps(namespace))  # type: ignore[no-any-return]

    def warmup(self, namespace: str, items: Union[Mapping[Any, Any], Iterable[Tuple[Any, Any]]],
               ttl: Optional[float] = None) -> int:
        """Load items into both tiers; returns how many."""
        return self.set_many(namespace, dict(items.items() if isinstance(items, Mapping) else items), ttl)

    def flush_invalidations(self) -> int:
        """Send the invalidations queued by recent writes now (the publisher sends them within a few
        milliseconds anyway): when it returns, every write before the call has had its message sent (or
        counted as dropped). Returns how many messages this call sent."""
        with self._flushing:  # (a round the publisher has begun finishes first)
            return run(self._publish_steps())  # type: ignore[no-any-return]

    def _wake_publisher(self, was_empty: bool) -> None:
        if was_empty and self._publisher is not None:
            self._publisher.wake()

    # ------------------------------------------------------------------ health and lifecycle

    def perform_health_assessment(self, window: Optional[float] = None) -> Dict[str, Any]:
        """Status, 0-100 score, components, issues, recommendations and insights over the last `window`
        seconds of history (default the `window` threshold, 300 s; since the start while history is shorter)."""
        return self._assess(window)

    def ping(self) -> bool:
        try:
            return bool(self.l2.ping())
        except (L2Error, OSError):
            return False

    def close(self) -> None:
        """Send the queued invalidations, stop the listener and close L2 (when the manager opened it).
        Idempotent."""
        if not self._close_l1():
            return
        if self._publisher is not None:
            self._publisher.stop()
        if self._listener is not None:
            self._listener.stop()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
        self._release_l1()
        if self._owns_l2:
            try:
                self.l2.close()
            except (L2Error, OSError):
                pass

    def __enter__(self) -> "CacheManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
