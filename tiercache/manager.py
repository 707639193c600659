"""CacheManager: namespaced two-tier caching, L1 (HashCache per namespace) over a shared L2.

    get(ns, key) ──> L1 hit? ──yes──> value
                       │ no
                       └──> L2 (through the circuit breaker) ──hit──> decode ──> copy into L1 ──> value
                                   │ miss                    │ failed / circuit open
                                   └──> default              └──> stale L1 copy within grace, else default
    set(ns, key, v) ──> encode ──> L2 (write-through, counted as dropped on failure) ──> L1 ──> invalidate
                                                                                         other processes

Keys in L2 are `tiercache:v1:{env}:{namespace}:{key}`; the version segment means a future format change
never misreads old data. Keys are str, bytes or int; ints and bytes get a `#i:`/`#b:` marker (and a str
starting with `#` gets `#s:`) so that 1, "1" and b"1" stay distinct in L2 as they are in L1.

Failures of the L2 tier never raise out of the data calls unless `strict=True`: reads fall back to L1,
writes are counted as dropped, and the circuit breaker stops calling a dead server until a probe succeeds.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import inspect
import json
import logging
import os
import random
import struct
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import health
from . import l2 as l2_backends
from ._compat import HashCache, ManagerCore, SampleHistogram
from .circuit import CLOSED, CircuitBreaker
from .config import (
    DEFAULT_NAMESPACE,
    CacheConfig,
    NamespaceConfig,
    apply_env_overrides,
    build_namespaces,
    check_namespace,
    resolve_env,
)
from .errors import CircuitOpenError, L2Error, SerializationError
from .metrics import Counters, Metrics
from .promotion import PromotionManager, resolve_strategy
from .serialization import Codec
from .singleflight import SingleFlight

__all__ = ["CacheManager"]

log = logging.getLogger("tiercache")

_MISS: Any = object()
_perf_counter = time.perf_counter
_EXPIRED: Any = object()
_FAILED: Any = object()
_KEY_VERSION = "v1"
_MAX_TTL = 10 * 365 * 24 * 3600.0
_KEY_TYPES = frozenset((str, int, bytes))
_MAX_DROPPED = 10_000  # keys remembered for repair after an outage; beyond that, whole namespaces


def encode_key(key: Any) -> str:
    """The L2 form of a user key (reversible: see decode_key)."""
    tp = type(key)
    if tp is str:
        if not key.isascii():  # (ASCII, the common case, is always valid UTF-8)
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"key must be encodable as UTF-8, got {key!r}") from None
        return "#s:" + key if key[:1] == "#" else key
    if tp is int:
        return "#i:%d" % key
    if tp is bytes:
        return "#b:" + key.hex()
    raise TypeError(f"key must be str, bytes or int, got {tp.__name__} {key!r}")


def decode_key(part: str) -> Any:
    if part.startswith("#"):
        marker, rest = part[:3], part[3:]
        if marker == "#i:":
            return int(rest)
        if marker == "#b:":
            return bytes.fromhex(rest)
        if marker == "#s:":
            return rest
    return part


class CacheManager(ManagerCore):
    """Namespaced two-tier cache: a compiled L1 per namespace over Redis, Redis Cluster or SQLite.

    `l2`: None (TIERCACHE_L2_URL, else the embedded SQLite store in the user's cache directory), a URL
    (`redis://host:port/db`, `rediss://…`, `redis+cluster://host:port`, `sqlite:///path.db`) or an L2 object.
    `env`: development | production | test (default TIERCACHE_ENV, else development).
    `config`: None (the shipped profile for `env`, with TIERCACHE_* overrides), a CacheConfig, the path of a
    TOML file (also with overrides), or {namespace: NamespaceConfig or dict} (other namespaces then get
    `default_config`).
    Thread-safe. Use as a context manager, or call close().
    """

    def __init__(
        self,
        l2: Union[None, str, Any] = None,
        env: Optional[str] = None,
        config: Union[None, CacheConfig, str, "os.PathLike[str]",
                      Mapping[str, Union[NamespaceConfig, Mapping[str, Any]]]] = None,
        *,
        default_config: NamespaceConfig = DEFAULT_NAMESPACE,
        strict: bool = False,
        hmac_key: Union[None, str, bytes] = None,
        invalidation: bool = True,
        circuit: Optional[CircuitBreaker] = None,
        timer: Optional[Callable[[], float]] = None,
        enable_metrics: bool = True,
        metrics_interval: Optional[float] = 10.0,
        metrics_history: int = 360,
        l1_sample_every: int = 64,
        health_thresholds: Optional[Mapping[str, float]] = None,
    ) -> None:
        super().__init__()  # ManagerCore: the compiled L1-hit path behind get()
        # arguments checked before anything is opened or started
        self.health_thresholds = health.thresholds(health_thresholds)
        if (isinstance(l1_sample_every, bool) or not isinstance(l1_sample_every, int) or l1_sample_every < 1
                or l1_sample_every & (l1_sample_every - 1)):
            raise ValueError(f"l1_sample_every must be a power of two >= 1, got {l1_sample_every!r}")
        if config is None:
            cache_config = apply_env_overrides(CacheConfig.default(env))
        elif isinstance(config, CacheConfig):
            cache_config = config
        elif isinstance(config, (str, os.PathLike)):
            cache_config = apply_env_overrides(CacheConfig.from_toml(config, env))
        else:
            cache_config = CacheConfig(env=resolve_env(env), namespaces=build_namespaces(config),
                                       default_namespace=default_config)
        self.config: CacheConfig = cache_config
        self.env = cache_config.env
        self.strict = bool(strict)
        self._hmac_key = hmac_key
        self._timer = timer or time.monotonic
        self.counters = Counters()  # slow-path counters: always on
        # Metrics (latency histograms, history) are optional and cost the L1 hit path nothing when off.
        self.metrics: Optional[Metrics] = None
        if enable_metrics:
            self.metrics = Metrics(self._metrics_state, interval=metrics_interval, history=metrics_history,
                                   timer=self._timer, counters=self.counters, l1_samples=self._l1_samples,
                                   histogram=SampleHistogram)
            self._set_sampling(l1_sample_every)  # (ManagerCore: timed L1 lookups, counted in compiled code)
        self._sample_every = l1_sample_every if enable_metrics else 0
        self._slow_tick = 0
        self._owns_l2 = l2 is None or isinstance(l2, str)
        self.l2 = l2_backends.from_url(l2) if self._owns_l2 else l2
        self.circuit = circuit or CircuitBreaker(name=getattr(self.l2, "kind", "l2"))
        self._flights = SingleFlight()
        self._promotion = PromotionManager(timer=self._timer)
        self._refreshing: set = set()  # (namespace, key) being reloaded by refresh-ahead
        self._refresher: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._lock = threading.RLock()
        # self._fast (ManagerCore): namespace -> HashCache, for namespaces without a grace period
        self._l1: Dict[str, Any] = {}  # every namespace -> HashCache
        self._codecs: Dict[Tuple[str, Optional[str], int], Codec] = {}
        self._id = uuid.uuid4().hex
        self._prefix = f"tiercache:{_KEY_VERSION}:{self.env}:"
        self._channel = f"tiercache:{_KEY_VERSION}:{self.env}:invalidate"
        self._closed = False
        self._dropped_keys: set = set()
        self._dropped_namespaces: set = set()
        self._repairing = False
        self._versions: Dict[str, int] = {}  # bumped by every write and invalidation of a namespace
        self._set_l2_path(True)  # (ManagerCore: an L1 miss of a plain namespace may read L2 in compiled code)
        for name, cfg in self.config.namespaces.items():
            try:
                self._codec(cfg)  # a pickle namespace without an HMAC key fails here, not on first use
            except Exception as exc:
                raise type(exc)(f"namespace {name!r}: {exc}") from None
        self._listener: Optional[_InvalidationListener] = None
        if invalidation and hasattr(self.l2, "subscribe") and hasattr(self.l2, "publish"):
            self._listener = _InvalidationListener(self)
            self._listener.start()
        if self.metrics is not None:
            self.metrics.start()

    # ------------------------------------------------------------------ namespaces

    def namespace_config(self, namespace: str) -> NamespaceConfig:
        """The settings in force for `namespace` (ConfigError for an unknown one under strict_namespaces)."""
        cfg = self.config.namespaces.get(namespace)
        return cfg if cfg is not None else self.config.namespace(namespace)

    def update_namespace(self, namespace: str, **changes: Any) -> NamespaceConfig:
        """Validate `changes` and apply them at once; a rejected update (ConfigError listing every problem)
        changes nothing. A smaller L1 budget evicts down to it; other processes are not told."""
        with self._lock:
            new_config = self.config.updated(namespace, **changes)
            new, old = new_config.namespace(namespace), self.namespace_config(namespace)
            self._codec(new)  # e.g. pickle without an HMAC key: refuse before applying anything
            self.config = new_config
            l1 = self._l1.get(namespace)
            if l1 is not None:
                if bool(new.l1_grace_period) != bool(old.l1_grace_period):
                    # L1 values are stored differently with and without a grace period: start afresh
                    self._unregister_fast(namespace)
                    del self._l1[namespace]
                    l1.close()
                    l1.clear()
                else:
                    l1.set_limits(max_bytes=new.l1_max_bytes, max_entries=new.l1_max_entries)
            self._bump(namespace)
            return new

    def config_summary(self) -> Dict[str, Any]:
        """The configuration in force, JSON-serializable, with each live namespace's L1 use."""
        summary = self.config.summary()
        summary["l1_usage"] = {ns: {"entries": st["entries"], "bytes": st["bytes"]}
                               for ns, st in ((ns, l1.stats()) for ns, l1 in list(self._l1.items()))}
        return summary

    def _l1_for(self, namespace: str) -> Any:
        l1 = self._l1.get(namespace)
        if l1 is not None:
            return l1
        check_namespace(namespace)
        with self._lock:
            l1 = self._l1.get(namespace)
            if l1 is None:
                cfg = self.namespace_config(namespace)
                # A gated promotion strategy needs L1's own frequency sketch (it counts L1 hits too): W-TinyLFU.
                gated = resolve_strategy(cfg.promotion, cfg.priority) != "immediate"
                l1 = HashCache(max_bytes=cfg.l1_max_bytes, max_entries=cfg.l1_max_entries, timer=self._timer,
                               policy="tinylfu" if gated else "lru")
                self._l1[namespace] = l1
                if not cfg.l1_grace_period:
                    self._register_fast(namespace, l1)
        return l1

    def _codec(self, cfg: NamespaceConfig) -> Codec:
        k = (cfg.serializer, cfg.compression, cfg.compress_threshold)
        codec = self._codecs.get(k)
        if codec is None:
            codec = Codec(cfg.serializer, compression=cfg.compression, compress_threshold=cfg.compress_threshold,
                          hmac_key=self._hmac_key)
            self._codecs[k] = codec
        return codec

    def _l2_key(self, namespace: str, key: Any) -> str:
        return self._l2_key_of(namespace, encode_key(key))

    def _l2_key_of(self, namespace: str, part: str) -> str:
        """The L2 key for an already encoded key (see encode_key)."""
        return f"{self._prefix}{namespace}:{part}"

    # ------------------------------------------------------------------ L2 through the circuit breaker

    def _l2_call(self, fn: Callable[..., Any], *args: Any, namespace: str = "", op: Optional[str] = None,
                 written: Iterable[str] = ()) -> Any:
        """fn(*args), or _FAILED when L2 failed or the circuit is open (raises instead when strict).

        Counted for `namespace`; with metrics on, timed into the `op` histogram (l2_get / l2_set)."""
        if not self.circuit.allow():
            self.counters.add("l2_short_circuited", 1, namespace)
            if self.strict:
                raise CircuitOpenError("L2 circuit is open")
            return _FAILED
        t0 = _perf_counter() if self.metrics is not None and op is not None else 0.0
        try:
            result = fn(*args)
        except Exception as exc:
            return self._l2_failed(exc, namespace)
        except BaseException:
            self.circuit.failure()  # (KeyboardInterrupt and the like): never leave a probe unanswered
            raise
        if t0:
            self.metrics.histogram(namespace, op).record(_perf_counter() - t0)  # type: ignore[union-attr, arg-type]
        self.circuit.success()
        if self._dropped_keys or self._dropped_namespaces:
            self._written(written)
            self._repair()
        return result

    def _l2_failed(self, exc: Exception, namespace: str) -> Any:
        """An L2 call raised `exc`: count it against the circuit and the namespace; _FAILED (or raise when
        strict). Backends wrap their client's errors in L2Error; anything else is unexpected, but an L2 call
        must still not break the caller (nor leave a half-open probe unanswered): count, log, go on."""
        self.circuit.failure()
        self.counters.add("l2_errors", 1, namespace)
        if not isinstance(exc, (L2Error, OSError)):
            log.error("tiercache: unexpected error from the L2 backend", exc_info=exc)
        if self.strict:
            if isinstance(exc, L2Error):
                raise exc
            raise L2Error(f"{type(exc).__name__}: {exc}") from exc
        return _FAILED

    def _written(self, l2_keys: Iterable[str]) -> None:
        """Keys just written to L2 are no longer owed a repair (it would delete the new value)."""
        if l2_keys and self._dropped_keys:
            with self._lock:
                self._dropped_keys.difference_update(l2_keys)

    # Writes dropped during an outage leave L2 older than this process's view: a deleted key or the value
    # before a set would come back once L1 lets go. Remember them, and remove them from L2 as soon as it
    # answers again (other processes then miss and reload instead of reading the old value).

    def _remember_dropped(self, namespace: str, l2_keys: Iterable[str]) -> None:
        with self._lock:
            if namespace in self._dropped_namespaces:
                return
            self._dropped_keys.update(l2_keys)
            if len(self._dropped_keys) > _MAX_DROPPED:
                prefix = self._l2_key_of(namespace, "")
                self._dropped_keys = {k for k in self._dropped_keys if not k.startswith(prefix)}
                self._dropped_namespaces.add(namespace)

    def _repair(self) -> None:
        with self._lock:
            if self._repairing:
                return
            keys, namespaces = self._dropped_keys, self._dropped_namespaces
            self._dropped_keys, self._dropped_namespaces = set(), set()
            self._repairing = True
        try:
            for key in keys:
                self.l2.delete(key)
            for namespace in namespaces:
                self.l2.clear_namespace(self._l2_key_of(namespace, ""))
            self.counters.add("repaired_after_outage", len(keys) + len(namespaces))
        except Exception:  # still failing: keep what is left for the next success
            with self._lock:
                self._dropped_keys |= keys
                self._dropped_namespaces |= namespaces
        finally:
            self._repairing = False

    # ------------------------------------------------------------------ L1 helpers

    def _l1_store(self, namespace: str, key: Any, value: Any, size: int, ttl: Optional[float],
                  cfg: Optional[NamespaceConfig] = None, l1: Any = None, promoted: bool = False) -> None:
        cfg = cfg or self.namespace_config(namespace)
        l1 = l1 if l1 is not None else self._l1_for(namespace)
        base = _jittered(cfg.l1_ttl, cfg.ttl_jitter)
        l1_ttl = base if ttl is None else (ttl if base is None else min(ttl, base))
        if cfg.l1_grace_period:
            fresh_until = self._timer() + l1_ttl if l1_ttl is not None else None
            ttl_total = None if l1_ttl is None else l1_ttl + cfg.l1_grace_period
            (l1._promote if promoted else l1.set)(key, (value, fresh_until), ttl=ttl_total, size=size)
        else:
            (l1._promote if promoted else l1.set)(key, value, ttl=l1_ttl, size=size)
        if self.config.l1_max_bytes is not None:
            self._enforce_global_cap()

    def _enforce_global_cap(self) -> None:
        """Keep all namespaces' L1 within the config's global l1_max_bytes: evict from low-priority
        namespaces first, then medium, then high (within a priority, the largest holder first)."""
        cap = self.config.l1_max_bytes
        if cap is None:
            return
        caches = list(self._l1.items())
        total = sum(l1._held_bytes() for _, l1 in caches)
        if total <= cap:
            return
        rank = {"low": 0, "medium": 1, "high": 2}
        caches.sort(key=lambda item: (rank.get(self.namespace_config(item[0]).priority, 1), -item[1]._held_bytes()))
        evicted = 0
        for _, l1 in caches:
            while total > cap:
                freed = l1._evict_one()
                if freed is None:
                    break
                total -= freed
                evicted += 1
            if total <= cap:
                break
        if evicted:
            self.counters.add("global_cap_evictions", evicted)

    def _l1_lookup(self, namespace: str, key: Any, count: bool = True) -> Tuple[Any, Any]:
        """(fresh value or _MISS, stale value or _MISS) from L1; `count=False` peeks (no hit/miss counted)."""
        l1 = self._l1_for(namespace)
        if not count:
            entry = l1.peek(key, _MISS)
        elif self._sample_every:  # (the compiled get() samples its own lookups and never comes here after one)
            self._slow_tick += 1
            if not self._slow_tick % self._sample_every:
                t0 = time.perf_counter()
                entry = l1.get(key, _MISS)
                self._record_l1_sample(namespace, time.perf_counter() - t0)
            else:
                entry = l1.get(key, _MISS)
        else:
            entry = l1.get(key, _MISS)
        if entry is _MISS or namespace in self._fast:
            return entry, _MISS
        value, fresh_until = entry
        if fresh_until is None or self._timer() < fresh_until:
            return value, _MISS
        return _MISS, value

    def _decode(self, namespace: str, data: bytes, l2_key: str,
                cfg: Optional[NamespaceConfig] = None) -> Tuple[Any, Optional[float]]:
        """(value, seconds it has left in L2 or None); (_EXPIRED, None) for data past its expiry (L2's own
        expiry is lazy or coarser), (_MISS, None) for unreadable data, which is counted and logged."""
        try:
            payload, remaining = _unseal(data)
            if remaining is not None and remaining <= 0:
                return _EXPIRED, None
            return self._codec(cfg or self.namespace_config(namespace)).loads(payload), remaining
        except SerializationError as exc:
            self.counters.add("corrupt_values", 1, namespace)
            log.warning("tiercache: unreadable L2 value for %s: %s", l2_key, exc)
            return _MISS, None

    # ------------------------------------------------------------------ public API

    # get(namespace, key, default=None) is ManagerCore.get: an L1 hit returns there; the rest comes here.

    def _get_slow(self, namespace: str, key: Any, default: Any = None, l1_missed: bool = False) -> Any:
        """get() past L1; `l1_missed`: the compiled path already looked in (and counted a miss in) L1."""
        if l1_missed and not self._closed and self.circuit.state == CLOSED:
            return self._get_l2(namespace, key, default)
        self._check_open()
        value, stale = self._lookup(namespace, key, l1_missed)
        if value is not _MISS:
            return value
        if stale is _MISS:
            return default
        self.counters.add("stale_served", 1, namespace)
        return stale

    def _get_l2(self, namespace: str, key: Any, default: Any) -> Any:
        """_lookup's L2 part for the common case: a plain namespace (no grace period) whose L1 missed, with
        the circuit closed. The same steps, checks and counts as _lookup, _l2_call, _decode and _promote,
        spelled out, because an L2 hit is the path where their calls add up (see compare_l2.py). The
        compiled ManagerCore.get does the same in C (_core_c.pyx: _l2_plain) and comes here only for what
        it leaves to Python; the pure-Python core always comes here."""
        part = key if type(key) is str and key.isascii() and key[:1] != "#" else encode_key(key)
        cfg = self.config.namespaces.get(namespace) or self.namespace_config(namespace)
        if not cfg.persist_to_l2:
            return default
        l2_key = f"{self._prefix}{namespace}:{part}"
        version = self._versions.get(namespace, 0)
        metrics = self.metrics
        t0 = _perf_counter() if metrics is not None else 0.0
        try:
            data = self.l2.get(l2_key)
        except Exception as exc:
            self._l2_failed(exc, namespace)
            return default
        except BaseException:
            self.circuit.failure()
            raise
        if t0:
            metrics.histogram(namespace, "l2_get").record(_perf_counter() - t0)  # type: ignore[union-attr]
        circuit = self.circuit
        if circuit._failures or circuit.state != CLOSED:
            circuit.success()
        if self._dropped_keys or self._dropped_namespaces:
            self._repair()
        if data is None:
            self.counters.add("l2_misses", 1, namespace)
            return default
        return self._l2_found(namespace, key, default, cfg, data, l2_key, version)

    def _l2_found(self, namespace: str, key: Any, default: Any, cfg: NamespaceConfig, data: bytes, l2_key: str,
                  version: int) -> Any:
        """_get_l2 past the GET, which answered `data` (the compiled get() hands over the unusual cases)."""
        # (_decode and _unseal, spelled out)
        if data[:1] != _SEALED:
            payload, remaining = data, None
        elif len(data) >= _SEALED_HEADER:
            remaining = _EXPIRY.unpack_from(data, 1)[0] - time.time()
            if remaining <= 0:
                return default
            payload = data[_SEALED_HEADER:]
        else:
            self._decode(namespace, data, l2_key, cfg)  # (counts and logs the truncated header)
            return default
        try:
            value = self._codec(cfg).loads(payload)
        except SerializationError as exc:
            self.counters.add("corrupt_values", 1, namespace)
            log.warning("tiercache: unreadable L2 value for %s: %s", l2_key, exc)
            return default
        counters = self.counters
        if self._versions.get(namespace, 0) != version:  # a write or invalidation came in while L2 answered
            counters.add_pair(namespace, "l2_hits", "promotions_skipped_stale")
            return value
        l1 = self._l1.get(namespace)
        if l1 is None or namespace not in self._fast:  # (dropped or reconfigured meanwhile): the general way
            self._promote(namespace, key, value, len(data), remaining, cfg, counted=("l2_hits",))
            return value
        if not self._promotion.decide(namespace, cfg, l1, key, len(data), remaining):
            counters.add_pair(namespace, "l2_hits", "promotions_declined")
            return value
        base = _jittered(cfg.l1_ttl, cfg.ttl_jitter) if cfg.ttl_jitter else cfg.l1_ttl
        l1._promote(key, value, ttl=base if remaining is None else (remaining if base is None else min(remaining, base)),
                    size=len(data))
        if self.config.l1_max_bytes is not None:
            self._enforce_global_cap()
        counters.add_pair(namespace, "l2_hits", "promotions")
        return value

    def _lookup(self, namespace: str, key: Any, l1_missed: bool = False) -> Tuple[Any, Any]:
        """(value or _MISS, stale value to serve on failure or _MISS)."""
        part = encode_key(key)  # (the type check, before anything happens)
        value, stale = (_MISS, _MISS) if l1_missed else self._l1_lookup(namespace, key)
        if value is not _MISS:
            return value, _MISS
        cfg = self.namespace_config(namespace)
        if not cfg.persist_to_l2:
            return _MISS, _MISS
        l2_key = self._l2_key_of(namespace, part)
        version = self._versions.get(namespace, 0)
        data = self._l2_call(self.l2.get, l2_key, namespace=namespace, op="l2_get")
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
        else:  # a write or invalidation came in while L2 answered: this value may already be old
            self.counters.add_many(namespace, l2_hits=1, promotions_skipped_stale=1)
        return value, _MISS

    def _promote(self, namespace: str, key: Any, value: Any, size: int, remaining: Optional[float],
                 cfg: Optional[NamespaceConfig] = None, counted: Tuple[str, ...] = ()) -> None:
        """Copy an L2 hit into L1 (for no longer than it has left in L2) if the promotion policy says so.
        `counted`: other counters to add one to, in the same update."""
        cfg = cfg or self.namespace_config(namespace)
        l1 = self._l1_for(namespace)
        if not self._promotion.decide(namespace, cfg, l1, key, size, remaining):
            self.counters.add_many(namespace, promotions_declined=1, **dict.fromkeys(counted, 1))
            return
        self._l1_store(namespace, key, value, size, remaining, cfg, l1, promoted=True)
        self.counters.add_many(namespace, promotions=1, **dict.fromkeys(counted, 1))

    def promotion_stats(self) -> Dict[str, Dict[str, Any]]:
        """Per namespace: strategy, candidates, promoted, skipped by the strategy, rejected by the gate,
        promoted-then-hit and precision, time spent deciding (see tiercache.promotion)."""
        return self._promotion.stats({ns: l1.stats() for ns, l1 in list(self._l1.items())})

    def set(self, namespace: str, key: Any, value: Any, ttl: Optional[float] = None) -> bool:
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
            if self._l2_call(self.l2.set, l2_key, _seal(data, l2_ttl), l2_ttl,
                             namespace=namespace, op="l2_set", written=(l2_key,)) is _FAILED:
                self.counters.add("l2_writes_dropped", 1, namespace)
                self._remember_dropped(namespace, [l2_key])
        self._l1_store(namespace, key, value, len(data), ttl)
        self.counters.add("sets", 1, namespace)
        if cfg.persist_to_l2:
            self._publish(namespace, [part])
        return True

    def delete(self, namespace: str, key: Any) -> bool:
        """Remove from L1 and L2; True when either held it."""
        self._check_open()
        part = encode_key(key)
        l2_key = self._l2_key_of(namespace, part)
        self._bump(namespace)
        found = bool(self._l1_for(namespace).delete(key))
        self.counters.add("deletes", 1, namespace)
        if self.namespace_config(namespace).persist_to_l2:
            result = self._l2_call(self.l2.delete, l2_key, namespace=namespace, op="l2_set")
            if result is _FAILED:
                self.counters.add("l2_writes_dropped", 1, namespace)
                self._remember_dropped(namespace, [l2_key])
            else:
                found = found or bool(result)
            self._publish(namespace, [part])
        return found

    # get_many (ManagerCore): the common case compiled (a plain namespace with immediate promotion, ASCII
    # or int keys), everything else here
    def _get_many_slow(self, namespace: str, keys: Iterable[Any]) -> Dict[Any, Any]:
        """get_many's general way: any namespace, any keys."""
        plan = self._many_from_l1(namespace, keys)
        if plan.l2_keys is None:
            return plan.found
        datas = self._l2_call(self.l2.get_many, plan.l2_keys, namespace=namespace, op="l2_get")
        return self._many_from_l2(plan, datas)

    def _many_from_l1(self, namespace: str, keys: Iterable[Any]) -> "_ManyPlan":
        """get_many up to the L2 round trip (shared with AsyncCacheManager): the keys checked, L1's hits
        in `found`; `l2_keys` None when L2 has nothing to add."""
        self._check_open()
        keys = list(keys)
        if len(set(keys)) != len(keys):
            keys = list(dict.fromkeys(keys))  # each key once, in order
        if not set(map(type, keys)) <= _KEY_TYPES:
            for key in keys:
                encode_key(key)  # raises for the first bad key, before anything happens
        l1 = self._l1_for(namespace)
        found: Dict[Any, Any] = {}
        missing: List[Any] = []
        stale: Dict[Any, Any] = {}
        if namespace in self._fast:
            missing = self._split_l1(l1, keys, found)
        else:
            for key in keys:
                value, old = self._l1_lookup(namespace, key)
                if old is not _MISS:
                    stale[key] = old
                if value is _MISS:
                    missing.append(key)
                else:
                    found[key] = value
        cfg = self.namespace_config(namespace)
        plan = _ManyPlan(namespace, cfg, l1, found, missing, stale)
        if missing and cfg.persist_to_l2:
            # (encode_key also rejects non-UTF-8 str keys)
            plan.l2_keys = self._l2_keys(self._l2_key_of(namespace, ""), missing, encode_key)
            plan.version = self._versions.get(namespace, 0)
        return plan

    def _many_loads(self, cfg: NamespaceConfig) -> Optional[Callable[[bytes], Any]]:
        """For the compiled get_many (ManagerCore.get_many): the namespace's Codec.loads when its
        get_many is the common case — immediate promotion, no TTL jitter, persisted to L2 — else None."""
        if cfg.ttl_jitter or not cfg.persist_to_l2 or resolve_strategy(cfg.promotion, cfg.priority) != "immediate":
            return None
        return self._codec(cfg).loads

    def _many_rest(self, namespace: str, cfg: NamespaceConfig, l1: Any, found: Dict[Any, Any], missing: List[Any],
                   l2_keys: List[str], version: int, datas: Any, todo: Optional[List[int]], hits: int,
                   misses: int) -> Dict[Any, Any]:
        """The compiled get_many's way back after the round trip: finish as _many_from_l2 does, with the
        answers at `todo` still to read and the hits and misses counted so far (todo None: all of them)."""
        plan = _ManyPlan(namespace, cfg, l1, found, missing, {})
        plan.l2_keys, plan.version = l2_keys, version
        return self._many_from_l2(plan, datas, todo, hits, misses)

    def _many_from_l2(self, plan: "_ManyPlan", datas: Any, todo: Optional[Iterable[int]] = None, hits: int = 0,
                      misses: int = 0) -> Dict[Any, Any]:
        """get_many after the L2 round trip answered `datas` (or _FAILED): decode, promote, count."""
        namespace, cfg, l1, found, missing, l2_keys = (plan.namespace, plan.cfg, plan.l1, plan.found,
                                                         plan.missing, plan.l2_keys)
        assert l2_keys is not None
        if datas is _FAILED:
            if plan.stale:
                self.counters.add("stale_served", len(plan.stale), namespace)
            found.update(plan.stale)
            return found
        # a write or invalidation that landed while L2 answered: these values may already be old
        overtaken = self._versions.get(namespace, 0) != plan.version
        loads = self._codec(cfg).loads
        l1_ttl = cfg.l1_ttl
        immediate = resolve_strategy(cfg.promotion, cfg.priority) == "immediate"
        store = l1._promote if namespace in self._fast and not cfg.ttl_jitter and immediate else None
        skipped = declined = 0
        if todo is None:
            todo = range(len(missing))
            if store is not None and not overtaken and type(l1) is HashCache and type(datas) is list:
                # the common case, compiled: plain values into a plain namespace; the rest comes back
                hits, misses, todo = self._promote_plain(l1, missing, datas, loads, l1_ttl, found)
        for i in todo:
            key, l2_key, data = missing[i], l2_keys[i], datas[i]
            if data is None:
                misses += 1
                continue
            value, remaining = self._decode(namespace, data, l2_key)
            if value is _EXPIRED:
                misses += 1
                continue
            if value is _MISS:
                continue
            hits += 1
            if overtaken:
                skipped += 1
            elif store is not None and remaining is None:
                store(key, value, l1_ttl, len(data))
            elif immediate or self._promotion.decide(namespace, cfg, l1, key, len(data), remaining):
                self._l1_store(namespace, key, value, len(data), remaining, cfg, l1, promoted=True)
            else:
                declined += 1
            found[key] = value
        self.counters.add_many(namespace, l2_hits=hits, l2_misses=misses, promotions=hits - skipped - declined,
                               promotions_skipped_stale=skipped, promotions_declined=declined)
        if self.config.l1_max_bytes is not None:
            self._enforce_global_cap()  # (the compiled promotion loop stores without _l1_store)
        return found

    def set_many(self, namespace: str, mapping: Mapping[Any, Any], ttl: Optional[float] = None) -> int:
        """Write every item (encoded first: one bad value stores nothing); the L2 part is one round trip."""
        self._check_open()
        self._check_ttl(ttl)
        cfg = self.namespace_config(namespace)
        codec = self._codec(cfg)
        items = list(mapping.items())
        encoded = [(key, encode_key(key), value, codec.dumps(value)) for key, value in items]
        self._l1_for(namespace)
        self._bump(namespace)
        if cfg.persist_to_l2 and encoded:
            l2_ttl = _cap(ttl, _jittered(cfg.l2_ttl, cfg.ttl_jitter))
            l2_items = {self._l2_key_of(namespace, part): _seal(data, l2_ttl) for _, part, _, data in encoded}
            if self._l2_call(self.l2.set_many, l2_items, l2_ttl, namespace=namespace, op="l2_set",
                             written=l2_items) is _FAILED:
                self.counters.add("l2_writes_dropped", len(encoded), namespace)
                self._remember_dropped(namespace, list(l2_items))
        for key, _, value, data in encoded:
            self._l1_store(namespace, key, value, len(data), ttl)
        self.counters.add("sets", len(encoded), namespace)
        if cfg.persist_to_l2 and encoded:
            self._publish(namespace, [part for _, part, _, _ in encoded])  # one message
        return len(encoded)

    def clear(self, namespace: str) -> int:
        """Empty the namespace in L1 and L2 (SCAN + UNLINK in batches on Redis); returns L2 keys removed."""
        self._check_open()
        l1 = self._l1_for(namespace)
        self._bump(namespace)
        l1.clear()
        removed = 0
        if self.namespace_config(namespace).persist_to_l2:
            result = self._l2_call(self.l2.clear_namespace, self._l2_key_of(namespace, ""), namespace=namespace)
            if result is _FAILED:
                self.counters.add("l2_writes_dropped", 1, namespace)
                with self._lock:
                    self._dropped_namespaces.add(namespace)
            else:
                removed = int(result)
            self._publish(namespace, None)
        return removed

    def get_or_set(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float] = None) -> Any:
        """The cached value, else loader()'s result, cached. Concurrent misses on one key run loader once;
        the others get its result or its exception. When the loader fails, a stale copy within the
        namespace's grace period is served instead."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, got {type(loader).__name__}")
        self._check_open()
        value, stale = self._lookup(namespace, key)
        if value is not _MISS:
            if self._refresh_due(namespace, key):
                self._refresh_in_background(namespace, key, loader, ttl)
            return value

        def load() -> Any:
            again, _ = self._l1_lookup(namespace, key, count=False)  # another leader may have just filled it
            if again is not _MISS:
                return again
            self.counters.add("loader_calls", 1, namespace)
            t0 = time.perf_counter()
            try:
                result = loader()
            except Exception:
                self.counters.add("loader_errors", 1, namespace)
                raise
            finally:
                if self.metrics is not None:
                    self.metrics.record(namespace, "loader", time.perf_counter() - t0)
            self.set(namespace, key, result, ttl)
            return result

        try:
            result, _ = self._flights.do((namespace, key), load)
        except Exception:
            if stale is not _MISS:
                self.counters.add("stale_served", 1, namespace)
                return stale
            raise
        return result

    # Refresh-ahead: get_or_set on an entry older than its namespace's refresh_threshold serves it and reloads
    # it in the background (once per key at a time), when the namespace has background_refresh on. The age is
    # read from L1: the namespace's L1 TTL (plus grace period) minus the time the entry has left.

    def _refresh_due(self, namespace: str, key: Any) -> bool:
        cfg = self.namespace_config(namespace)
        if not cfg.background_refresh or cfg.l1_ttl is None:
            return False
        try:
            remaining = self._l1_for(namespace).ttl(key)
        except KeyError:
            return False
        if remaining is None:
            return False
        age = cfg.l1_ttl + (cfg.l1_grace_period or 0.0) - remaining
        return age >= cfg.refresh_threshold and (namespace, key) not in self._refreshing

    def _refresh_in_background(self, namespace: str, key: Any, loader: Callable[[], Any],
                               ttl: Optional[float]) -> None:
        with self._lock:
            if (namespace, key) in self._refreshing or self._closed:
                return
            self._refreshing.add((namespace, key))
            if self._refresher is None:
                self._refresher = concurrent.futures.ThreadPoolExecutor(max_workers=2,
                                                                         thread_name_prefix="tiercache-refresh")
        self._refresher.submit(self._refresh, namespace, key, loader, ttl)

    def _refresh(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float]) -> None:
        try:
            self.counters.add("loader_calls", 1, namespace)
            t0 = time.perf_counter()
            try:
                result = loader()
            finally:
                if self.metrics is not None:
                    self.metrics.record(namespace, "loader", time.perf_counter() - t0)
            if not self._closed:
                self.set(namespace, key, result, ttl)
                self.counters.add("refreshes", 1, namespace)
        except Exception:  # the old value stays (and is served until it expires): count, log, go on
            self.counters.add("loader_errors", 1, namespace)
            log.warning("tiercache: background refresh of %s:%r failed", namespace, key, exc_info=True)
        finally:
            with self._lock:
                self._refreshing.discard((namespace, key))

    def cached(self, namespace: str, ttl: Optional[float] = None,
               key: Optional[Callable[..., Any]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: cache a function's results in `namespace` through get_or_set.

        The key is `key(*args, **kwargs)` when given, else the function's qualified name and a digest of
        the arguments' repr (arguments must have a stable repr).
        """
        check_namespace(namespace)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.iscoroutinefunction(fn):
                raise TypeError("CacheManager.cached wraps plain functions, not async def ones")
            name = f"{fn.__module__}.{fn.__qualname__}"

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                k = key(*args, **kwargs) if key is not None else _call_key(name, args, kwargs)
                return self.get_or_set(namespace, k, lambda: fn(*args, **kwargs), ttl)

            return wrapper

        return decorate

    def warmup(self, namespace: str, items: Union[Mapping[Any, Any], Iterable[Tuple[Any, Any]]],
               ttl: Optional[float] = None) -> int:
        """Load items into both tiers; returns how many."""
        mapping = dict(items.items() if isinstance(items, Mapping) else items)
        return self.set_many(namespace, mapping, ttl)

    def stats(self) -> Dict[str, Any]:
        """Manager counters, the circuit state and each namespace's L1 stats."""
        return {
            **self.counters.totals(),
            "circuit": self.circuit.snapshot(),
            "l2": getattr(self.l2, "kind", type(self.l2).__name__),
            "env": self.env,
            "namespaces": {ns: l1.stats() for ns, l1 in list(self._l1.items())},
        }

    # ------------------------------------------------------------------ observability

    def _metrics_state(self) -> Dict[str, Any]:
        return {"namespaces": {ns: l1.stats() for ns, l1 in list(self._l1.items())},
                "circuit": self.circuit.snapshot()}

    def _require_metrics(self) -> Metrics:
        if self.metrics is None:
            raise RuntimeError("metrics are off for this manager (enable_metrics=False)")
        return self.metrics

    def metrics_snapshot(self) -> Dict[str, Any]:
        """Counters, L1 stats and latency summaries (p50/p90/p99/max, seconds) per namespace, now."""
        from .metrics import summarize

        snap = self._require_metrics().snapshot(keep=False)
        latency: Dict[str, Dict[str, Any]] = {}
        for (ns, op), state in snap["histograms"].items():
            latency.setdefault(ns, {})[op] = summarize(state)
        l1 = [entry["l1"] for entry in snap["namespaces"].values() if entry.get("l1")]
        return {
            "uptime_seconds": snap["time"] - snap["started"],
            "l1_entries": sum(s["entries"] for s in l1),
            "l1_bytes": sum(s["bytes"] for s in l1),
            "totals": snap["totals"],
            "circuit": snap["circuit"],
            "l1_sample_every": self._sample_every,
            "namespaces": {ns: {**entry, "latency": latency.get(ns, {})} for ns, entry in snap["namespaces"].items()},
        }

    def perform_health_assessment(self, window: Optional[float] = None) -> Dict[str, Any]:
        """Status, 0-100 score, components, issues, recommendations and insights over the last `window`
        seconds of history (default the `window` threshold, 300 s; since the start while history is shorter)."""
        metrics = self._require_metrics()
        seconds = self.health_thresholds["window"] if window is None else window
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        now, base = metrics.window(seconds)
        configs = {ns: self.namespace_config(ns) for ns in now["namespaces"]}
        result = health.assess(now, base, self.health_thresholds, configs)
        result["l2"] = getattr(self.l2, "kind", type(self.l2).__name__)
        result["env"] = self.env
        return result

    def performance_trends(self, minutes: float = 60) -> Dict[str, Any]:
        """Series of hit rates, throughput and latency percentiles over the kept snapshots of the last
        `minutes`, each labelled improving / stable / degrading."""
        return self._require_metrics().performance_trends(minutes)

    def ping(self) -> bool:
        try:
            return bool(self.l2.ping())
        except (L2Error, OSError):
            return False

    def close(self) -> None:
        """Stop the invalidation listener and close L2 (when the manager opened it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unregister_fast()  # the compiled get() fast path then defers to _get_slow, which refuses
        if self.metrics is not None:
            self.metrics.stop()
        if self._listener is not None:
            self._listener.stop()
        if self._refresher is not None:
            self._refresher.shutdown(wait=True)
        for l1 in list(self._l1.values()):
            l1.close()
            l1.clear()
        if self._owns_l2:
            try:
                self.l2.close()
            except (L2Error, OSError):
                pass

    def __enter__(self) -> "CacheManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ invalidation

    def _publish(self, namespace: str, key_parts: Optional[List[str]]) -> None:
        """Tell other processes to drop `key_parts` of `namespace` from L1 (None: the whole namespace)."""
        if self._listener is None:
            return
        message = json.dumps({"o": self._id, "n": namespace, "k": key_parts}, separators=(",", ":")).encode()
        if self._l2_call(self.l2.publish, self._channel, message, namespace=namespace) is not _FAILED:
            self.counters.add("invalidations_sent", 1, namespace)

    def _on_invalidation(self, message: bytes) -> None:
        try:
            data = json.loads(message)
            if data.get("o") == self._id:
                return
            namespace, parts = data["n"], data.get("k")
            if not isinstance(namespace, str) or not (parts is None or isinstance(parts, list)):
                raise TypeError("bad field types")
            keys = None if parts is None else [decode_key(p) for p in parts]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("tiercache: ignoring a malformed invalidation message")
            return
        self.counters.add("invalidations_received", 1, namespace)
        self._bump(namespace)
        l1 = self._l1.get(namespace)
        if l1 is None:
            return
        if keys is None:
            l1.clear()
        else:
            for key in keys:
                l1.delete(key)

    def _flush_l1(self) -> None:
        """After the listener lost its connection: any L1 copy may have missed an invalidation."""
        for l1 in list(self._l1.values()):
            l1.clear()
        self.counters.add("invalidation_flushes")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("CacheManager is closed")

    def _bump(self, namespace: str) -> None:
        with self._lock:
            self._versions[namespace] = self._versions.get(namespace, 0) + 1

    @staticmethod
    def _check_ttl(ttl: Any) -> None:
        if ttl is None:
            return
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not (0 < ttl <= _MAX_TTL):
            raise ValueError(f"ttl must be a number of seconds in (0, {_MAX_TTL:.0f}] (10 years) or None, "
                             f"got {ttl!r}")


# Values stored with a TTL carry their expiry (wall-clock seconds) in front of the serialized bytes, so a
# process copying one into L1 keeps it no longer than L2 does: b"X" + little-endian double + payload. The
# serializer's own tags (M, J, P) never start with X.
_SEALED = b"X"
_EXPIRY = struct.Struct("<d")
_SEALED_HEADER = 1 + _EXPIRY.size


def _seal(data: bytes, l2_ttl: Optional[float]) -> bytes:
    if l2_ttl is None:
        return data
    return _SEALED + _EXPIRY.pack(time.time() + l2_ttl) + data


def _unseal(data: bytes) -> Tuple[bytes, Optional[float]]:
    """(payload, seconds left or None); SerializationError when the header is cut short."""
    if data[:1] != _SEALED:
        return data, None
    if len(data) < 1 + _EXPIRY.size:
        raise SerializationError("truncated expiry header")
    return data[1 + _EXPIRY.size:], _EXPIRY.unpack_from(data, 1)[0] - time.time()


def _jittered(seconds: Optional[float], jitter: float) -> Optional[float]:
    """`seconds` spread by ± `jitter` (a fraction), so entries written together do not expire together."""
    if seconds is None or not jitter:
        return seconds
    return seconds * (1.0 + jitter * (2.0 * random.random() - 1.0))


def _cap(ttl: Optional[float], namespace_ttl: Optional[float]) -> Optional[float]:
    """A per-call ttl caps the namespace's TTL; it never extends it."""
    if ttl is None:
        return namespace_ttl
    return ttl if namespace_ttl is None else min(ttl, namespace_ttl)


def _call_key(name: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> str:
    digest = hashlib.blake2b(repr((args, sorted(kwargs.items()))).encode(), digest_size=16).hexdigest()
    return f"{name}:{digest}"


class _ManyPlan:
    """One get_many between its L1 part and its L2 round trip (CacheManager._many_from_l1)."""

    __slots__ = ("namespace", "cfg", "l1", "found", "missing", "stale", "l2_keys", "version")

    def __init__(self, namespace: str, cfg: NamespaceConfig, l1: Any, found: Dict[Any, Any], missing: List[Any],
                 stale: Dict[Any, Any]) -> None:
        self.namespace, self.cfg, self.l1 = namespace, cfg, l1
        self.found, self.missing, self.stale = found, missing, stale
        self.l2_keys: Optional[List[str]] = None  # None: L2 has nothing to add
        self.version = 0


class _InvalidationListener:
    """A daemon thread subscribed to the manager's invalidation channel; reconnects with backoff and
    flushes L1 after every reconnect, since invalidations sent meanwhile were lost."""

    def __init__(self, manager: CacheManager) -> None:
        self._manager = manager
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tiercache-invalidation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        m = self._manager
        backoff = 0.05
        lost = False
        while not self._stop.is_set():
            sub = None
            try:
                sub = m.l2.subscribe(m._channel)
                if lost:
                    m._flush_l1()
                    lost = False
                self.connected.set()
                backoff = 0.05
                while not self._stop.is_set():
                    message = sub.get_message(timeout=0.2)
                    if isinstance(message, dict):  # a raw redis-py PubSub message
                        message = message.get("data") if message.get("type") == "message" else None
                    if message is not None:
                        try:
                            m._on_invalidation(message)
                        except Exception:  # a bug handling one message is not a lost connection
                            log.exception("tiercache: failed to apply an invalidation message")
            except Exception as exc:  # connection lost: any exception from the client
                if not lost:
                    log.warning("tiercache: invalidation listener lost its connection: %s", exc)
                lost = True
                self.connected.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                if sub is not None:
                    try:
                        sub.close()
                    except Exception:  # closing a broken connection may fail too; nothing to do
                        pass
