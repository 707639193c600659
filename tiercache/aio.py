"""AsyncCacheManager: CacheManager for asyncio services, on redis.asyncio (SQLite on worker threads).

    await get(ns, key) ──> L1 hit? ──yes──> value  (compiled; a ready awaitable: no coroutine, no I/O)
                             │ no
                             └──> L2 batcher: the misses of one loop iteration go out as one MGET per
                                  namespace ──> decode ──> copy into L1 ──> value

Everything else is CacheManager's: the same L1 (per namespace, compiled), configuration, serialization,
counters, metrics and health, circuit breaker, dropped-write repair, stale serving and cross-process
invalidation (the listener is a task here). Single-flight of get_or_set spans coroutines and threads: the
loader runs once per key in a task of its own, so cancelling one waiter never cancels it for the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import json
import threading
import time
import weakref
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ._compat import ManagerCore
from .config import check_namespace
from .errors import CircuitOpenError, L2Error
from .manager import (
    _EXPIRED,
    _FAILED,
    _MISS,
    CacheManager,
    _call_key,
    _cap,
    _jittered,
    _seal,
    encode_key,
    log,
)

__all__ = ["AsyncCacheManager"]

_perf_counter = time.perf_counter


class AsyncCacheManager(CacheManager):
    """CacheManager with awaitables: `await cache.get(ns, key)` and the rest, for asyncio.

    `l2`: None ($TIERCACHE_L2_URL, else the embedded SQLite store, run on worker threads), a URL
    (`redis://`, `rediss://`, `redis+cluster://` on redis.asyncio; `sqlite:///path` on worker threads) or an
    async L2 object (tiercache.l2.aio). Other arguments as CacheManager. Use `async with`, or call
    `await start()` and `await aclose()`: the invalidation listener is a task of the running loop.
    `get` returns an awaitable (on an L1 hit, one that is already done); wrap it in
    `asyncio.ensure_future` rather than `create_task` if you need a task.
    """

    def __init__(self, l2: Union[None, str, Any] = None, env: Optional[str] = None, config: Any = None,
                 *, invalidation: bool = True, **kwargs: Any) -> None:
        from .l2 import aio as aio_backends  # (redis.asyncio: imported when an async manager is made)

        owns = l2 is None or isinstance(l2, str)
        backend = aio_backends.from_url(l2) if owns else l2
        super().__init__(backend, env, config, invalidation=False, **kwargs)
        self._set_l2_path(False)  # (its L2 answers awaitables: every read past L1 goes through _aget_slow)
        self._owns_l2 = owns
        self._want_listener = invalidation and hasattr(backend, "subscribe") and hasattr(backend, "publish")
        self._listener_task: Optional[asyncio.Task] = None
        self.listener_connected: Optional[asyncio.Event] = None  # created in start(), on the running loop
        self._batchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GetBatcher]" = weakref.WeakKeyDictionary()
        self._aflights: Dict[Tuple[str, Any], concurrent.futures.Future] = {}
        self._aflights_lock = threading.Lock()
        self._tasks: set = set()
        self._arepairing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> "AsyncCacheManager":
        """Start the invalidation listener task on the running loop (idempotent)."""
        self._check_open()
        if self._want_listener and self._listener_task is None:
            self.listener_connected = asyncio.Event()
            self._listener_task = asyncio.ensure_future(self._listen())
        return self

    async def __aenter__(self) -> "AsyncCacheManager":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the listener and any loader still running, close L2 (when opened here). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unregister_fast()
        if self.metrics is not None:
            self.metrics.stop()
        tasks = [t for t in (self._listener_task, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for l1 in list(self._l1.values()):
            l1.close()
            l1.clear()
        if self._owns_l2:
            try:
                await self.l2.aclose()
            except (L2Error, OSError):
                pass

    def close(self) -> None:  # the sync close cannot await the backend
        raise TypeError("AsyncCacheManager: use `await cache.aclose()` or `async with`")

    def __enter__(self) -> "CacheManager":
        raise TypeError("AsyncCacheManager: use `async with`")

    # ------------------------------------------------------------------ L2 through the circuit breaker

    async def _al2_call(self, fn: Callable[..., Awaitable[Any]], *args: Any, namespace: str = "",
                        op: Optional[str] = None, written: Iterable[str] = ()) -> Any:
        """await fn(*args), or _FAILED when L2 failed or the circuit is open (raises instead when strict)."""
        if not self.circuit.allow():
            self.counters.add("l2_short_circuited", 1, namespace)
            if self.strict:
                raise CircuitOpenError("L2 circuit is open")
            return _FAILED
        t0 = _perf_counter() if self.metrics is not None and op is not None else 0.0
        try:
            result = await fn(*args)
        except asyncio.CancelledError:
            if self.circuit.state != "closed":
                self.circuit.failure()  # never leave a half-open probe unanswered
            raise
        except Exception as exc:
            return self._l2_failed(exc, namespace)
        if t0:
            self.metrics.histogram(namespace, op).record(_perf_counter() - t0)  # type: ignore[union-attr, arg-type]
        self.circuit.success()
        if (self._dropped_keys or self._dropped_namespaces) and not self._arepairing:
            self._written(written)
            await self._arepair()
        return result

    async def _arepair(self) -> None:
        with self._lock:
            keys, namespaces = self._dropped_keys, self._dropped_namespaces
            self._dropped_keys, self._dropped_namespaces = set(), set()
        self._arepairing = True
        try:
            for key in keys:
                await self.l2.delete(key)
            for namespace in namespaces:
                await self.l2.clear_namespace(self._l2_key_of(namespace, ""))
            self.counters.add("repaired_after_outage", len(keys) + len(namespaces))
        except Exception:
            with self._lock:
                self._dropped_keys |= keys
                self._dropped_namespaces |= namespaces
        finally:
            self._arepairing = False

    # ------------------------------------------------------------------ reads

    # get(namespace, key, default=None) is ManagerCore._aget: an L1 hit is answered there.
    get = ManagerCore._aget

    async def _aget_slow(self, namespace: str, key: Any, default: Any = None, l1_missed: bool = False) -> Any:
        self._check_open()
        value, stale = await self._alookup(namespace, key, l1_missed)
        if value is not _MISS:
            return value
        if stale is _MISS:
            return default
        self.counters.add("stale_served", 1, namespace)
        return stale

    async def _alookup(self, namespace: str, key: Any, l1_missed: bool = False) -> Tuple[Any, Any]:
        part = encode_key(key)
        value, stale = (_MISS, _MISS) if l1_missed else self._l1_lookup(namespace, key)
        if value is not _MISS:
            return value, _MISS
        cfg = self.namespace_config(namespace)
        if not cfg.persist_to_l2:
            return _MISS, _MISS
        l2_key = self._l2_key_of(namespace, part)
        version = self._versions.get(namespace, 0)
        data = await self._batcher().get(namespace, l2_key)
        if data is _FAILED:
            return _MISS, stale
        if data is None:
            self.counters.add("l2_misses", 1, namespace)
            return _MISS, _MISS
        value, remaining = self._decode(namespace, data, l2_key, cfg)
        if value is _MISS or value is _EXPIRED:
            return _MISS, _MISS
        if self._versions.get(namespace, 0) == version:
            self._promote(namespace, key, value, len(data), remaining, cfg, counted=("l2_hits",))
        else:
            self.counters.add_many(namespace, l2_hits=1, promotions_skipped_stale=1)
        return value, _MISS

    def _batcher(self) -> "_GetBatcher":
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _GetBatcher(self, loop)
        return batcher

    async def get_many(self, namespace: str, keys: Iterable[Any]) -> Dict[Any, Any]:  # type: ignore[override]
        """{key: value} for the keys found in L1 or L2; the L2 part is one round trip."""
        plan = self._many_from_l1(namespace, keys)
        if plan.l2_keys is None:
            return plan.found
        datas = await self._al2_call(self.l2.get_many, plan.l2_keys, namespace=namespace, op="l2_get")
        return self._many_from_l2(plan, datas)

    # ------------------------------------------------------------------ writes

    async def set(self, namespace: str, key: Any, value: Any, ttl: Optional[float] = None) -> bool:  # type: ignore[override]
        """Write through to L2 and L1 (ttl caps the namespace's TTLs); other processes drop their copy."""
        self._check_open()
        self._check_ttl(ttl)
        part = encode_key(key)
        l2_key = self._l2_key_of(namespace, part)
        cfg = self.namespace_config(namespace)
        data = self._codec(cfg).dumps(value)
        self._l1_for(namespace)
        self._bump(namespace)
        if cfg.persist_to_l2:
            l2_ttl = _cap(ttl, _jittered(cfg.l2_ttl, cfg.ttl_jitter))
            if await self._al2_call(self.l2.set, l2_key, _seal(data, l2_ttl), l2_ttl,
                                    namespace=namespace, op="l2_set", written=(l2_key,)) is _FAILED:
                self.counters.add("l2_writes_dropped", 1, namespace)
                self._remember_dropped(namespace, [l2_key])
        self._l1_store(namespace, key, value, len(data), ttl)
        self.counters.add("sets", 1, namespace)
        if cfg.persist_to_l2:
            await self._apublish(namespace, [part])
        return True

    async def delete(self, namespace: str, key: Any) -> bool:  # type: ignore[override]
        """Remove from L1 and L2; True when either held it."""
        self._check_open()
        part = encode_key(key)
        l2_key = self._l2_key_of(namespace, part)
        self._bump(namespace)
        found = bool(self._l1_for(namespace).delete(key))
        self.counters.add("deletes", 1, namespace)
        if self.namespace_config(namespace).persist_to_l2:
            result = await self._al2_call(self.l2.delete, l2_key, namespace=namespace, op="l2_set")
            if result is _FAILED:
                self.counters.add("l2_writes_dropped", 1, namespace)
                self._remember_dropped(namespace, [l2_key])
            else:
                found = found or bool(result)
            await self._apublish(namespace, [part])
        return found

    async def set_many(self, namespace: str, mapping: Mapping[Any, Any], ttl: Optional[float] = None) -> int:  # type: ignore[override]
        """Write every item (encoded first: one bad value stores nothing); the L2 part is one round trip."""
        self._check_open()
        self._check_ttl(ttl)
        cfg = self.namespace_config(namespace)
        codec = self._codec(cfg)
        encoded = [(key, encode_key(key), value, codec.dumps(value)) for key, value in mapping.items()]
        self._l1_for(namespace)
        self._bump(namespace)
        if cfg.persist_to_l2 and encoded:
            l2_ttl = _cap(ttl, _jittered(cfg.l2_ttl, cfg.ttl_jitter))
            l2_items = {self._l2_key_of(namespace, part): _seal(data, l2_ttl) for _, part, _, data in encoded}
            if await self._al2_call(self.l2.set_many, l2_items, l2_ttl, namespace=namespace,
                                    op="l2_set", written=l2_items) is _FAILED:
                self.counters.add("l2_writes_dropped", len(encoded), namespace)
                self._remember_dropped(namespace, list(l2_items))
        for key, _, value, data in encoded:
            self._l1_store(namespace, key, value, len(data), ttl)
        self.counters.add("sets", len(encoded), namespace)
        if cfg.persist_to_l2 and encoded:
            await self._apublish(namespace, [part for _, part, _, _ in encoded])
        return len(encoded)

    async def clear(self, namespace: str) -> int:  # type: ignore[override]
        """Empty the namespace in L1 and L2 (SCAN + UNLINK in batches on Redis); returns L2 keys removed."""
        self._check_open()
        l1 = self._l1_for(namespace)
        self._bump(namespace)
        l1.clear()
        removed = 0
        if self.namespace_config(namespace).persist_to_l2:
            result = await self._al2_call(self.l2.clear_namespace, self._l2_key_of(namespace, ""),
                                          namespace=namespace)
            if result is _FAILED:
                self.counters.add("l2_writes_dropped", 1, namespace)
                with self._lock:
                    self._dropped_namespaces.add(namespace)
            else:
                removed = int(result)
            await self._apublish(namespace, None)
        return removed

    async def warmup(self, namespace: str, items: Union[Mapping[Any, Any], Iterable[Tuple[Any, Any]]],  # type: ignore[override]
                     ttl: Optional[float] = None) -> int:
        """Load items into both tiers; returns how many."""
        return await self.set_many(namespace, dict(items.items() if isinstance(items, Mapping) else items), ttl)

    # ------------------------------------------------------------------ loads

    async def get_or_set(self, namespace: str, key: Any, loader: Callable[[], Any],  # type: ignore[override]
                         ttl: Optional[float] = None) -> Any:
        """The cached value, else the loader's result (loader may be async), cached. Concurrent misses on one
        key — in any coroutine or thread — run the loader once; cancelling one waiter does not cancel it."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, got {type(loader).__name__}")
        self._check_open()
        value, stale = await self._alookup(namespace, key)
        if value is not _MISS:
            if self._refresh_due(namespace, key):
                self._refreshing.add((namespace, key))
                task = asyncio.ensure_future(self._arefresh(namespace, key, loader, ttl))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return value
        flight_key = (namespace, key)
        with self._aflights_lock:
            shared = self._aflights.get(flight_key)
            leader = shared is None
            if leader:
                shared = self._aflights[flight_key] = concurrent.futures.Future()
        if leader:
            task = asyncio.ensure_future(self._load(namespace, key, loader, ttl, shared, flight_key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(asyncio.wrap_future(shared))
        except asyncio.CancelledError:
            raise
        except Exception:
            if stale is not _MISS:
                self.counters.add("stale_served", 1, namespace)
                return stale
            raise

    async def _arefresh(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float]) -> None:
        """Refresh-ahead (see CacheManager._refresh_due), as a task."""
        try:
            self.counters.add("loader_calls", 1, namespace)
            result = loader()
            if inspect.isawaitable(result):
                result = await result
            if not self._closed:
                await self.set(namespace, key, result, ttl)
                self.counters.add("refreshes", 1, namespace)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters.add("loader_errors", 1, namespace)
            log.warning("tiercache: background refresh of %s:%r failed", namespace, key, exc_info=True)
        finally:
            self._refreshing.discard((namespace, key))

    async def _load(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float],
                    shared: concurrent.futures.Future, flight_key: Tuple[str, Any]) -> None:
        try:
            again, _ = self._l1_lookup(namespace, key, count=False)  # another leader may have just filled it
            if again is not _MISS:
                shared.set_result(again)
                return
            self.counters.add("loader_calls", 1, namespace)
            t0 = _perf_counter()
            try:
                result = loader()
                if inspect.isawaitable(result):
                    result = await result
            except BaseException:
                self.counters.add("loader_errors", 1, namespace)
                raise
            finally:
                if self.metrics is not None:
                    self.metrics.record(namespace, "loader", _perf_counter() - t0)
            await self.set(namespace, key, result, ttl)
            shared.set_result(result)
        except BaseException as exc:
            if not shared.done():
                if isinstance(exc, asyncio.CancelledError):
                    shared.cancel()
                else:
                    shared.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._aflights_lock:
                if self._aflights.get(flight_key) is shared:
                    del self._aflights[flight_key]

    def cached(self, namespace: str, ttl: Optional[float] = None,
               key: Optional[Callable[..., Any]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator for `async def` functions: results cached in `namespace` through get_or_set, with the
        sync decorator's key rules (`key(*args, **kwargs)`, else the qualified name and a digest of the
        arguments' repr)."""
        check_namespace(namespace)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not inspect.iscoroutinefunction(fn):
                raise TypeError("AsyncCacheManager.cached wraps async def functions")
            name = f"{fn.__module__}.{fn.__qualname__}"

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                k = key(*args, **kwargs) if key is not None else _call_key(name, args, kwargs)
                return await self.get_or_set(namespace, k, lambda: fn(*args, **kwargs), ttl)

            return wrapper

        return decorate

    # ------------------------------------------------------------------ observability (CPU only)

    async def perform_health_assessment(self, window: Optional[float] = None) -> Dict[str, Any]:  # type: ignore[override]
        """CacheManager.perform_health_assessment, awaitable (it does no I/O: metrics are in memory)."""
        return CacheManager.perform_health_assessment(self, window)

    async def ping(self) -> bool:  # type: ignore[override]
        try:
            return bool(await self.l2.ping())
        except (L2Error, OSError):
            return False

    # ------------------------------------------------------------------ invalidation

    async def _apublish(self, namespace: str, key_parts: Optional[List[str]]) -> None:
        if not self._want_listener:
            return
        message = json.dumps({"o": self._id, "n": namespace, "k": key_parts}, separators=(",", ":")).encode()
        if await self._al2_call(self.l2.publish, self._channel, message, namespace=namespace) is not _FAILED:
            self.counters.add("invalidations_sent", 1, namespace)

    async def _listen(self) -> None:
        backoff = 0.05
        lost = False
        while not self._closed:
            sub = None
            try:
                sub = await self.l2.subscribe(self._channel)
                if lost:
                    self._flush_l1()
                    lost = False
                assert self.listener_connected is not None
                self.listener_connected.set()
                backoff = 0.05
                while not self._closed:
                    message = await sub.get_message(timeout=0.2)
                    if message is not None:
                        try:
                            self._on_invalidation(message)
                        except Exception:
                            log.exception("tiercache: failed to apply an invalidation message")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("tiercache: invalidation listener lost its connection (%s); L1 will be "
                                "flushed once it is back", exc)
                lost = True
                if self.listener_connected is not None:
                    self.listener_connected.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if sub is not None:
                    await asyncio.shield(sub.aclose())


class _GetBatcher:
    """Coalesces the L2 reads of one event-loop iteration: one MGET per namespace for every key missed in
    L1 meanwhile (each key fetched once however many coroutines wait on it)."""

    def __init__(self, manager: AsyncCacheManager, loop: asyncio.AbstractEventLoop) -> None:
        self._manager = manager
        self._loop = loop
        self._pending: Dict[str, Dict[str, List[asyncio.Future]]] = {}
        self._scheduled = False

    def get(self, namespace: str, l2_key: str) -> "asyncio.Future[Any]":
        fut = self._loop.create_future()
        keys = self._pending.get(namespace)
        if keys is None:
            keys = self._pending[namespace] = {}
        waiters = keys.get(l2_key)
        if waiters is None:
            keys[l2_key] = [fut]
        else:
            waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for namespace, keys in pending.items():
            task = self._loop.create_task(self._fetch(namespace, keys))
            self._manager._tasks.add(task)
            task.add_done_callback(self._manager._tasks.discard)

    async def _fetch(self, namespace: str, keys: Dict[str, List[asyncio.Future]]) -> None:
        m = self._manager
        names = list(keys)
        try:
            if len(names) == 1:
                result = await m._al2_call(m.l2.get, names[0], namespace=namespace, op="l2_get")
                datas = result if result is _FAILED else [result]
            else:
                datas = await m._al2_call(m.l2.get_many, names, namespace=namespace, op="l2_get")
        except BaseException as exc:  # strict mode, or cancelled at close
            for waiters in keys.values():
                for fut in waiters:
                    if not fut.done():
                        if isinstance(exc, asyncio.CancelledError):
                            fut.cancel()
                        else:
                            fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for i, name in enumerate(names):
            data = _FAILED if datas is _FAILED else datas[i]
            for fut in keys[name]:
                if not fut.done():
                    fut.set_result(data)
