"""AsyncCacheManager: the two-tier cache for asyncio services, on redis.asyncio (SQLite on worker threads).

    await get(ns, key) ──> L1 hit? ──yes──> value  (compiled; a ready awaitable: no coroutine, no I/O)
                             │ no
                             └──> L2 batcher: the misses of one loop iteration go out as one MGET per
                                  namespace ──> decode ──> copy into L1 ──> value

Every operation is written once in tiercache.manager.base as steps, and awaited here (the sync CacheManager runs the
same steps with plain calls): the same L1, configuration, counters, circuit breaker, repair, stale serving
and invalidation (the listener is a task here). Single-flight of get_or_set spans coroutines and threads:
the loader runs once per key in a task of its own, so cancelling one waiter never cancels it for the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union

from .._compat import MISSING
from .base import BaseManager, check_lock, check_tags
from .callkey import key_maker
from ..config import check_namespace
from ..errors import L2Error
from .gate import FAILED
from .invalidation import LINGER, Backoff, apply_safely
from .steps import Steps, arun

__all__ = ["AsyncCacheManager"]

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("tiercache")


class AsyncCacheManager(BaseManager):
    """The two-tier cache with awaitables: `await cache.get(ns, key)` and the rest, for asyncio.

    `l2`: None ($TIERCACHE_L2_URL, else the embedded SQLite store, run on worker threads), a URL
    (`redis://`, `rediss://`, `redis+cluster://` on redis.asyncio; `sqlite:///path` on worker threads) or an
    async L2 object (tiercache.l2.aio). Other arguments as CacheManager. Use `async with`, or call
    `await start()` and `await aclose()`: the invalidation listener is a task of the running loop.
    `get` returns an awaitable (on an L1 hit, one that is already done); wrap it in
    `asyncio.ensure_future` rather than `create_task` if you need a task.
    """

    @staticmethod
    def _open_l2(url: Optional[str]) -> Any:
        from ..l2 import aio as aio_backends  # (redis.asyncio: imported when an async manager is made)

        return aio_backends.from_url(url)

    def _start(self) -> None:
        if type(self).get is AsyncCacheManager.get:
            self.get = self._read.aget  # type: ignore[method-assign]  (an L1 hit: no Python frame)
        self._listener_task: Optional[asyncio.Task] = None
        self.listener_connected: Optional[asyncio.Event] = None  # created in start(), on the running loop
        self._batchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GetBatcher]" = weakref.WeakKeyDictionary()
        self._aflights: Dict[Tuple[str, Any], concurrent.futures.Future] = {}
        self._aflights_lock = threading.Lock()
        # locked(): this process's lock of a key, per event loop (an asyncio.Lock serves one loop)
        self._akey_locks: "weakref.WeakValueDictionary[Tuple[Any, str, Any], asyncio.Lock]" = (
            weakref.WeakValueDictionary())
        self._tasks: set = set()
        self._publishing: Optional["asyncio.Future[Any]"] = None  # the publisher's task, while one is due
        self._published = -LINGER  # when it last sent (time.monotonic())
        self._rounds: set = set()  # rounds of invalidation messages in flight
        if self.metrics is not None:
            self.metrics.start()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> "AsyncCacheManager":
        """Start the invalidation listener task on the running loop (idempotent)."""
        self._check_open()
        if self._invalidation and self._listener_task is None:
            self.listener_connected = asyncio.Event()
            self._listener_task = asyncio.ensure_future(self._listen())
        return self

    async def __aenter__(self) -> "AsyncCacheManager":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the listener and any loader still running, close L2 (when opened here). Idempotent."""
        if not self._close_l1():
            return
        loop = asyncio.get_running_loop()
        if self._publishing is not None and not self._publishing.done() and self._publishing.get_loop() is loop:
            await asyncio.gather(self._publishing, return_exceptions=True)
        if self._invalidation:
            try:
                await self.flush_invalidations()
            except Exception:  # (strict mode: L2 failed; the manager closes all the same)
                pass
        # (a task of a loop that has ended since, as asyncio.run ends them, cannot be cancelled or awaited)
        tasks = [t for t in (self._listener_task, *self._tasks)
                 if t is not None and not t.done() and t.get_loop() is loop]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._release_l1()
        if self._owns_l2:
            try:
                await self.l2.aclose()
            except (L2Error, OSError):
                pass

    def _in_background(self, steps: Steps) -> bool:
        self._spawn(arun(steps))
        return True

    def _spawn(self, coro: Any) -> "asyncio.Future[Any]":
        """A task the manager keeps (and cancels at aclose)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ reads

    def get(self, namespace: str, key: Any, default: Any = None) -> Any:
        """An awaitable of the value from L1, else L2 (copied into L1), else `default`."""
        return self._read.aget(namespace, key, default)

    async def _aget_missed(self, namespace: str, key: Any, default: Any, l1_missed: bool) -> Any:
        value, stale = await arun(self._lookup_steps(namespace, key, l1_missed))
        return value if value is not MISSING else self._served(namespace, stale, default)

    def _fetch_steps(self, state: Any, l2_key: str) -> Steps:
        """get's L2 read joins the loop iteration's batch (one MGET per namespace)."""
        return (yield self._batcher().get, (state.name, l2_key))

    def _batch_steps(self, namespace: str, l2_keys: List[str]) -> Steps:
        """The batch's round trip: a GET for one key, an MGET for more."""
        if len(l2_keys) > 1:
            return (yield from self._l2_steps(self.l2.get_many, (l2_keys,), namespace, "l2_get"))
        data = yield from self._l2_steps(self.l2.get, (l2_keys[0],), namespace, "l2_get")
        return data if data is FAILED else [data]

    def _batcher(self) -> "_GetBatcher":
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _GetBatcher(self._spawn, self._batch_steps, loop)
        return batcher

    async def get_many(self, namespace: str, keys: Iterable[Any]) -> Dict[Any, Any]:
        """{key: value} for the keys found in L1 or L2; the L2 part is one round trip."""
        return await arun(self._get_many_steps(namespace, keys))  # type: ignore[no-any-return]

    async def preload(self, namespace: str, keys: Iterable[Any] = (), count: int = 100) -> Dict[Any, bool]:
        """Warm L1 from L2 (as CacheManager.preload)."""
        return await arun(self._preload_steps(namespace, keys, count))  # type: ignore[no-any-return]

    async def get_or_set(self, namespace: str, key: Any, loader: Callable[[], Any],
                         ttl: Optional[float] = None, *, lock: str = "local", lock_timeout: float = 10.0,
                         tags: Iterable[str] = ()) -> Any:
        """The cached value, else the loader's result (loader may be async), cached. Concurrent misses on one
        key — in any coroutine or thread — run the loader once; cancelling one waiter does not cancel it.
        lock="distributed": once across processes (as CacheManager.get_or_set)."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, got {type(loader).__name__}")
        check_lock(lock, lock_timeout)
        tags = check_tags(tags)
        self._check_open()
        value, stale = await arun(self._lookup_steps(namespace, key))
        if value is not MISSING:
            if self._claim_refresh(namespace, key):
                self._spawn(self._refresh(namespace, key, loader, ttl, tags))
            return value
        flight_key = (namespace, key)
        with self._aflights_lock:
            shared = self._aflights.get(flight_key)
            leader = shared is None
            if leader:
                shared = self._aflights[flight_key] = concurrent.futures.Future()
        if leader:
            if lock == "distributed":
                steps = self._distributed_load_steps(namespace, key, loader, ttl, lock_timeout, tags)
            else:
                steps = self._load_steps(namespace, key, loader, ttl, tags=tags)
            self._spawn(self._load(steps, shared, flight_key))
        try:
            return await asyncio.shield(asyncio.wrap_future(shared))
        except asyncio.CancelledError:
            raise
        except Exception:
            if stale is MISSING:
                raise
            self.counters.add("stale_served", 1, namespace)
            return stale

    @contextlib.asynccontextmanager
    async def locked(self, namespace: str, key: Any, timeout: float = 10.0) -> AsyncIterator[bool]:
        """Hold the key's lock across every process on the L2 and every task of this loop, for a
        read-modify-write (as CacheManager.locked): `async with cache.locked(ns, key) as shared: ...`."""
        check_lock("distributed", timeout, "timeout")
        self._check_open()
        loop_key = (asyncio.get_running_loop(), namespace, key)
        with self._aflights_lock:
            lock = self._akey_locks.get(loop_key)
            if lock is None:
                lock = self._akey_locks[loop_key] = asyncio.Lock()
        async with lock:
            token = await arun(self._lock_steps(namespace, key, timeout))
            try:
                yield token is not None
            finally:
                await arun(self._unlock_steps(namespace, key, token))

    async def _refresh(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float],
                       tags: Tuple[str, ...]) -> None:
        try:
            await arun(self._load_steps(namespace, key, loader, ttl, refresh=True, tags=tags))
        finally:
            self._refreshed(namespace, key)

    async def _pause(self, namespace: str, key: Any, seconds: float) -> None:
        woken = asyncio.Event()
        loop = asyncio.get_running_loop()

        def wake() -> None:  # (the listener may be a task of another loop)
            loop.call_soon_threadsafe(woken.set)

        self._watch(namespace, key, wake)
        try:
            await asyncio.wait_for(woken.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            self._unwatch(namespace, key, wake)

    async def _load(self, steps: Steps, shared: concurrent.futures.Future, flight_key: Tuple[str, Any]) -> None:
        try:
            shared.set_result(await arun(steps))
        except BaseException as exc:
            _settle_failed(shared, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._aflights_lock:
                if self._aflights.get(flight_key) is shared:
                    del self._aflights[flight_key]

    def cached(self, namespace: str, ttl: Optional[float] = None, key: Optional[Callable[..., Any]] = None, *,
               ignore: Iterable[str] = (), tags: Iterable[str] = ()
               ) -> "Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]":
        """Decorator for `async def` functions: results cached in `namespace` through get_or_set, with the
        sync decorator's keys and tags (CacheManager.cached)."""
        check_namespace(namespace)
        tags = check_tags(tags)

        def decorate(fn: "Callable[P, Awaitable[R]]") -> "Callable[P, Awaitable[R]]":
            if not inspect.iscoroutinefunction(fn):
                raise TypeError("AsyncCacheManager.cached wraps async def functions")
            make_key = key_maker(fn, key, ignore)

            @functools.wraps(fn)
            async def wrapper(*args: "P.args", **kwargs: "P.kwargs") -> "R":
                return await self.get_or_set(namespace, make_key(args, kwargs),  # type: ignore[no-any-return]
                                             lambda: fn(*args, **kwargs), ttl, tags=tags)

            return wrapper

        return decorate

    # ------------------------------------------------------------------ writes

    async def set(self, namespace: str, key: Any, value: Any, ttl: Optional[float] = None, *,
                  tags: Iterable[str] = ()) -> bool:
        """Write through to L2 and L1 (ttl caps the namespace's TTLs); other processes drop their copy.
        `tags` (str): invalidate_tag(namespace, tag) removes the entry, in every process."""
        return bool(await arun(self._set_steps(namespace, key, value, ttl, tags)))

    async def set_many(self, namespace: str, mapping: Mapping[Any, Any], ttl: Optional[float] = None, *,
                       tags: Iterable[str] = ()) -> int:
        """Write every item (encoded first: one bad value stores nothing); the L2 part is one round trip."""
        return await arun(self._set_many_steps(namespace, mapping, ttl, tags=tags))  # type: ignore[no-any-return]

    async def add(self, namespace: str, key: Any, value: Any, ttl: Optional[float] = None) -> bool:
        """set, only when L2 holds no live value for the key (as CacheManager.add)."""
        return bool(await arun(self._add_steps(namespace, key, value, ttl)))

    async def incr(self, namespace: str, key: Any, delta: int = 1) -> Any:
        """Add `delta` to the key's value, atomically across processes (as CacheManager.incr)."""
        return await arun(self._incr_steps(namespace, key, delta))

    async def invalidate_tag(self, namespace: str, tag: str) -> int:
        """Remove every entry written with `tag` (as CacheManager.invalidate_tag)."""
        return await arun(self._invalidate_tag_steps(namespace, tag))  # type: ignore[no-any-return]

    async def delete(self, namespace: str, key: Any) -> bool:
        """Remove from L1 and L2; True when either held it."""
        return await arun(self._delete_steps(namespace, key))  # type: ignore[no-any-return]

    async def delete_many(self, namespace: str, keys: Iterable[Any]) -> int:
        """Remove every key from L1 and L2 (as CacheManager.delete_many)."""
        return await arun(self._delete_many_steps(namespace, keys))  # type: ignore[no-any-return]

    async def clear(self, namespace: str) -> int:
        """Empty the namespace in L1 and L2 (SCAN + UNLINK in batches on Redis); returns L2 keys removed."""
        return await arun(self._clear_steps(namespace))  # type: ignore[no-any-return]

    async def warmup(self, namespace: str, items: Union[Mapping[Any, Any], Iterable[Tuple[Any, Any]]],
                     ttl: Optional[float] = None) -> int:
        """Load items into both tiers; returns how many."""
        return await self.set_many(namespace, dict(items.items() if isinstance(items, Mapping) else items), ttl)

    # ------------------------------------------------------------------ health

    async def perform_health_assessment(self, window: Optional[float] = None) -> Dict[str, Any]:
        """Status, 0-100 score, components, issues and recommendations (as CacheManager's; no I/O)."""
        return self._assess(window)

    async def ping(self) -> bool:
        try:
            return bool(await self.l2.ping())
        except (L2Error, OSError):
            return False

    # ------------------------------------------------------------------ invalidation

    async def flush_invalidations(self) -> int:
        """Send the invalidations queued by recent writes now (as CacheManager.flush_invalidations)."""
        loop = asyncio.get_running_loop()
        begun = [r for r in self._rounds if r.get_loop() is loop and not r.done()]
        if begun:
            await asyncio.wait(begun)  # (rounds begun earlier, the publisher's or another flush's, finish first)
        round_ = asyncio.ensure_future(arun(self._publish_steps()))
        self._rounds.add(round_)
        round_.add_done_callback(self._rounds.discard)
        return await round_  # type: ignore[no-any-return]

    def _wake_publisher(self, was_empty: bool) -> None:
        # (a publisher task due on another loop, which may have ended since, does not count)
        task = self._publishing
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._publishing = self._spawn(self._publish_soon())

    async def _publish_soon(self) -> None:
        """At once after a quiet spell, at most once per LINGER during a burst (see invalidation.Publisher)."""
        due = self._published + LINGER - time.monotonic()
        await asyncio.sleep(max(due, 0.0))
        try:
            await self.flush_invalidations()
        except Exception:  # (strict mode raises L2 failures; nobody is waiting for this one)
            log.exception("tiercache: failed to publish invalidations")
        self._published = time.monotonic()
        if len(self._outbox) and not self._closed:  # (queued while this round was in flight: no one woke us)
            self._publishing = self._spawn(self._publish_soon())

    async def _listen(self) -> None:
        backoff = Backoff()
        assert self.listener_connected is not None
        while not self._closed:
            sub = None
            try:
                sub = await self.l2.subscribe(self._channel)
                if backoff.connected():
                    self._flush_l1()
                self.listener_connected.set()
                while not self._closed:
                    message = await sub.get_message(timeout=0.2)
                    if message is not None:
                        apply_safely(self._on_invalidation, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listener_connected.clear()
                await asyncio.sleep(backoff.failed(exc))
            finally:
                if sub is not None:
                    await asyncio.shield(sub.aclose())


def _settle_failed(fut: Any, exc: BaseException) -> None:
    """Hand the failure `exc` to a waiter that is still waiting: cancelled as the call was, else the error."""
    if not fut.done():
        if isinstance(exc, asyncio.CancelledError):
            fut.cancel()
        else:
            fut.set_exception(exc)


class _GetBatcher:
    """Coalesces the L2 reads of one event-loop iteration: one MGET per namespace for every key missed in
    L1 meanwhile (each key fetched once however many coroutines wait on it)."""

    def __init__(self, spawn: Callable[[Any], Any], batch_steps: Callable[[str, List[str]], Steps],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._spawn = spawn  # runs a coroutine as a task the manager cancels at close
        self._batch_steps = batch_steps  # the gated MGET of one namespace's keys
        self._loop = loop
        self._pending: Dict[str, Dict[str, List[asyncio.Future]]] = {}
        self._scheduled = False

    def get(self, namespace: str, l2_key: str) -> "asyncio.Future[Any]":
        fut = self._loop.create_future()
        self._pending.setdefault(namespace, {}).setdefault(l2_key, []).append(fut)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for namespace, keys in pending.items():
            self._spawn(self._fetch(namespace, keys))

    async def _fetch(self, namespace: str, keys: Dict[str, List[asyncio.Future]]) -> None:
        names = list(keys)
        try:
            datas = await arun(self._batch_steps(namespace, names))
        except BaseException as exc:  # strict mode, or cancelled at close
            for waiters in keys.values():
                for fut in waiters:
                    _settle_failed(fut, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for i, name in enumerate(names):
            data = FAILED if datas is FAILED else datas[i]
            for fut in keys[name]:
                if not fut.done():
                    fut.set_result(data)
