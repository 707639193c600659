"""What CacheManager and AsyncCacheManager share: namespaces, and every operation written once as steps.

    get(ns, key) ──> ReadPath (compiled): L1 hit? ──yes──> value
                       │ no
                       └──> _read_steps: L2 through the gate ──hit──> ReadPath.finish: decode, promote ──> value
                                   │ miss                    │ failed / circuit open
                                   └──> default              └──> stale L1 copy within grace, else default
    set(ns, key, v) ──> _set_steps: encode ──> L2 (write-through; dropped writes remembered) ──> L1 ──>
                        invalidate other processes

Each `_*_steps` method is a generator that yields the I/O it needs (tiercache.manager.steps): the sync manager runs
it with plain calls, the async one awaits. The L2 wire format is tiercache.wire's; the gate (circuit
breaker, counting, repair) is tiercache.manager.gate's; the I/O-free read steps are the ReadPath's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

from ..observability import health
from .. import wire
from .._compat import MISSING, HashCache, NamespaceState, ReadPath, SampleHistogram, deep_sizer, jittered
from .autosize import Autosizer, Figures, bytes_of
from .circuit import CircuitBreaker
from ..config import (
    DEFAULT_NAMESPACE,
    SELFTEST_NAMESPACE,
    CacheConfig,
    NamespaceConfig,
    apply_env_overrides,
    build_namespaces,
    check_namespace,
    resolve_env,
)
from ..errors import SerializationError
from .gate import FAILED, L2Gate
from .invalidation import Outbox, decode_message, encode_message, message_key
from ..observability.alerts import Alerts
from ..observability.counters import Counters
from ..observability.hotkeys import HotKeys
from ..observability.metrics import Metrics
from .promotion import PromotionManager, resolve_strategy
from ..wire.serialization import Codec, resolve_hmac_key
from .steps import Steps

__all__ = ["BaseManager", "MAX_TTL", "check_tag", "check_tags"]

log = logging.getLogger("tiercache")

MAX_TTL = 10 * 365 * 24 * 3600.0
REPAIR_BATCH = 1000  # keys removed from L2 per call when repairing after an outage
LOCK_POLL = 0.05  # seconds between a waiter's checks of another process's single-flight lock
LOCKS = ("local", "distributed")
TAG_BATCH = 500  # keys invalidate_tag takes from L2's index, removes and announces per round
SWAP_ATTEMPTS = 100  # incr reads and swaps again, at most this often, when other writes keep coming between
LOCAL_TAGS_MIN = 4096  # members the index of an unpersisted namespace's tags holds before it is pruned


def check_tag(tag: Any) -> str:
    if not isinstance(tag, str):
        raise TypeError(f"a tag must be a str, got {type(tag).__name__} {tag!r}")
    if not tag:
        raise ValueError("a tag must be a non-empty str")
    if not tag.isascii():
        try:
            tag.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"a tag must be encodable as UTF-8, got {tag!r}") from None
    return tag


def check_tags(tags: Any) -> Tuple[str, ...]:
    """A write's tags, checked and without repeats: a collection of non-empty str (a lone str is refused,
    as it would be read as its characters); None is none."""
    if tags is None or type(tags) is tuple and not tags:
        return ()
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise TypeError(f"tags must be a collection of str, e.g. tags=('user:42',), got {type(tags).__name__} "
                        f"{tags!r}")
    return tuple(dict.fromkeys([check_tag(tag) for tag in tags]))


def check_lock(lock: Any, lock_timeout: Any, name: str = "lock_timeout") -> None:
    """ValueError naming the argument (`name`: how the caller calls the timeout) for a bad lock or timeout."""
    if lock not in LOCKS:
        raise ValueError(f"lock must be 'local' or 'distributed', got {lock!r}")
    if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or not 0 < lock_timeout <= 3600:
        raise ValueError(f"{name} must be a number of seconds in (0, 3600], got {lock_timeout!r}")
_perf_counter = time.perf_counter


def _cap(ttl: Optional[float], namespace_ttl: Optional[float]) -> Optional[float]:
    """A per-call ttl caps the namespace's TTL; it never extends it."""
    if ttl is None:
        return namespace_ttl
    return ttl if namespace_ttl is None else min(ttl, namespace_ttl)


def check_ttl(ttl: Any) -> None:
    if ttl is None:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not (0 < ttl <= MAX_TTL):
        raise ValueError(f"ttl must be a number of seconds in (0, {MAX_TTL:.0f}] (10 years) or None, got {ttl!r}")


def check_arguments(l1_sample_every: Any, health_thresholds: Optional[Mapping[str, float]]) -> Dict[str, float]:
    """The managers' arguments that are checked before anything is opened; the health thresholds in force."""
    if (isinstance(l1_sample_every, bool) or not isinstance(l1_sample_every, int) or l1_sample_every < 1
            or l1_sample_every & (l1_sample_every - 1)):
        raise ValueError(f"l1_sample_every must be a power of two >= 1, got {l1_sample_every!r}")
    return health.thresholds(health_thresholds)


def _without(snap: Optional[Dict[str, Any]], names: Iterable[str]) -> Optional[Dict[str, Any]]:
    """A metrics snapshot without some namespaces (the reserved one of synthetic traffic, those with
    enable_stats off)."""
    names = set(names)
    if snap is None or not names & set(snap["namespaces"]):
        return snap
    return {**snap, "namespaces": {ns: v for ns, v in snap["namespaces"].items() if ns not in names},
            "histograms": {k: v for k, v in snap["histograms"].items() if k[0] not in names}}


class BaseManager:
    """Namespaces over L1 and L2; the public managers add how I/O is done (see their docstrings)."""

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
        enabled: bool = True,
        enable_promotion: bool = True,
    ) -> None:
        owns_l2 = l2 is None or isinstance(l2, str)
        check_arguments(l1_sample_every, health_thresholds)  # before anything is opened
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
        # the configuration's [health] thresholds, then the argument's
        self.health_thresholds = health.thresholds({**cache_config.health, **(health_thresholds or {})})
        self.strict = bool(strict)
        # the original system's switches: a disabled cache passes every call through (loaders always run,
        # nothing is stored or read); without promotion L2 hits are served but not copied into L1
        self.enabled = bool(enabled)
        self.enable_promotion = bool(enable_promotion)
        self._hmac_key = hmac_key
        self._message_key = message_key(resolve_hmac_key(hmac_key))  # signs invalidation messages
        self._timer = timer or time.monotonic
        self._lock = threading.RLock()
        self._spaces: Dict[str, NamespaceState] = {}  # every live namespace
        # l1_allocation "adaptive": the namespaces' shares of the global L1 budget
        self._autosizer: Optional[Autosizer] = (
            Autosizer(cache_config.l1_max_bytes, self._l1_figures, self._l1_resize)
            if cache_config.l1_allocation == "adaptive" and cache_config.l1_max_bytes is not None else None)
        self._codecs: Dict[Tuple[str, Optional[str], int], Codec] = {}
        for name, cfg in self.config.namespaces.items():
            try:
                self._codec(cfg)  # a pickle namespace without an HMAC key fails here, not on first use
            except Exception as exc:
                raise type(exc)(f"namespace {name!r}: {exc}") from None
        self.counters = Counters(self._read_path_counts)  # always on (the read path counts its own)
        self.hot_keys = HotKeys()  # the most read keys, from a sample of L2 reads
        self._promotion = PromotionManager(timer=self._timer)
        self._read = ReadPath(self._spaces, self._get_missed, self._aget_missed, self._decide, self._corrupt,
                              self._timer)
        # Metrics (latency histograms, history) are optional and cost the L1 hit path nothing when off.
        self.metrics: Optional[Metrics] = None
        self._sample_every = l1_sample_every if enable_metrics else 0
        if enable_metrics:
            self.metrics = Metrics(self._metrics_state, interval=metrics_interval, history=metrics_history,
                                   timer=self._timer, counters=self.counters, l1_samples=self._read.l1_samples,
                                   histogram=SampleHistogram)
            self._read.set_sampling(l1_sample_every)
        # Alert rules ([alerts] in the configuration), evaluated by their own thread over the metrics.
        self.alerts: Optional[Alerts] = None
        if cache_config.alerts.rules:
            if self.metrics is None:
                raise ValueError("the configuration's [alerts] rules need metrics: drop enable_metrics=False")
            self.alerts = Alerts(cache_config.alerts, self._alert_figures, self.assess_health,
                                 global_budget=cache_config.l1_max_bytes, env=self.env)
        if owns_l2:  # (opened once every argument and the configuration passed their checks)
            l2 = self._open_l2(l2)
        self.l2 = l2
        self._owns_l2 = owns_l2
        self.circuit = circuit or CircuitBreaker(name=getattr(l2, "kind", "l2"))
        self._gate = L2Gate(self.circuit, self.counters, self.metrics, self.strict)
        self._refreshing: set = set()  # (namespace, key) being reloaded by refresh-ahead
        self._id = uuid.uuid4().hex
        self._prefix = wire.key_prefix(self.env)
        self._channel = wire.channel(self.env)
        self._closed = False
        self._invalidation = bool(invalidation and hasattr(l2, "subscribe") and hasattr(l2, "publish"))
        self._outbox = Outbox()  # invalidations queued by writes, sent by the publisher
        self._watchers: Dict[Tuple[str, Any], List[Callable[[], None]]] = {}  # waiting for a key's invalidation
        # the tags of unpersisted namespaces' entries ({(namespace, tag): keys}; L2 keeps the others'), pruned
        # of keys gone from L1 once it holds more than _local_tag_limit members
        self._local_tags: Dict[Tuple[str, str], Set[Any]] = {}
        self._local_tagged = 0
        self._local_tag_limit = LOCAL_TAGS_MIN
        self._start()
        if self.alerts is not None:
            self.alerts.start()

    def _start(self) -> None:
        """What the manager starts once it is built (the invalidation listener, the metrics thread)."""

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
            state = self._spaces.get(namespace)
            if state is not None:
                state.bump()  # reads in flight were planned under the old settings: no promotion
                l1 = state.l1
                if bool(new.l1_grace_period) != bool(old.l1_grace_period):
                    l1 = None  # L1 values are stored differently with and without a grace period: start afresh
                    state.l1.close()
                    state.l1.clear()
                else:
                    l1.set_limits(max_bytes=self._l1_budget(namespace, new), max_entries=new.l1_max_entries)
                self._spaces[namespace] = self._new_space(namespace, new, l1, state.version + 1, state)
                self._read.forget()
            return new

    def config_summary(self) -> Dict[str, Any]:
        """The configuration in force, JSON-serializable, with the summary figures (namespace count,
        average TTLs, total L1 memory: CacheConfig.figures) and each live namespace's L1 use."""
        summary = self.config.summary()
        summary["figures"] = self.config.figures()
        summary["l1_usage"] = {ns: {"entries": st["entries"], "bytes": st["bytes"]}
                               for ns, st in self._l1_stats().items()}
        return summary

    def namespaces(self) -> List[str]:
        """The namespaces this manager has used (each has an L1), sorted."""
        return sorted(self._spaces)

    def unreported_namespaces(self) -> Set[str]:
        """The namespaces left out of health assessments and hit-rate totals: the reserved one of synthetic
        traffic, and those with enable_stats off."""
        return {SELFTEST_NAMESPACE} | {ns for ns in self.namespaces() if not self.namespace_config(ns).enable_stats}

    def l1(self, namespace: str) -> Any:
        """The namespace's L1 (a HashCache), for inspection: what is written to it directly bypasses L2 and
        other processes."""
        return self._space(namespace).l1

    def l1_budgets(self) -> Dict[str, int]:
        """Each live namespace's L1 budget in bytes: its l1_max_bytes, or under l1_allocation "adaptive"
        its current share of the global l1_max_bytes."""
        return {ns: st["max_bytes"] for ns, st in self._l1_stats().items()}

    def l1_curves(self) -> Dict[str, Dict[str, Any]]:
        """Per live namespace whose L1 estimates it (policy "tinylfu", 256 entries or more): `budget` (its L1
        max_bytes now), `bytes` (held), `lookups` (lookups its simulations sampled), and `points`: [(bytes,
        hit ratio)] at half, one and twice the size they stand for (HashCache.size_curve: counted since they
        were made and filled)."""
        out: Dict[str, Dict[str, Any]] = {}
        for ns, state in list(self._spaces.items()):
            l1 = state.l1
            curve = l1.size_curve()
            if curve is None or not curve["lookups"]:
                continue
            st = l1.stats()
            size = bytes_of(curve["entries"], st["bytes"], st["entries"])
            n = curve["lookups"]
            half, one, double = curve["hits"]
            out[ns] = {"budget": st["max_bytes"], "bytes": st["bytes"], "lookups": n,
                       "points": [(size // 2, half / n), (size, one / n), (2 * size, double / n)]}
        return out

    @property
    def _l1(self) -> Dict[str, Any]:
        return {ns: st.l1 for ns, st in list(self._spaces.items())}

    def _read_path_counts(self) -> Dict[str, Dict[str, int]]:
        return {ns: st.counts.as_dict() for ns, st in list(self._spaces.items())}

    def _l1_stats(self) -> Dict[str, Dict[str, Any]]:
        return {ns: st.l1.stats() for ns, st in list(self._spaces.items())}

    # -- adaptive L1 budgets (tiercache.manager.autosize)

    def _l1_budget(self, namespace: str, cfg: NamespaceConfig) -> int:
        """The namespace's L1 max_bytes: its configured budget, or under l1_allocation "adaptive" its share."""
        autosizer = self._autosizer
        if autosizer is None:
            return cfg.l1_max_bytes
        if autosizer.share(namespace) is None:
            return autosizer.add(namespace, cfg.l1_max_bytes, cfg.l1_min_bytes, cfg.priority, cfg.l1_max_entries)
        return autosizer.update(namespace, cfg.l1_min_bytes, cfg.priority, cfg.l1_max_entries)

    def _l1_figures(self, namespace: str) -> Figures:
        state = self._spaces.get(namespace)
        if state is None:
            return 0, 0, 0, 0, None
        st = state.l1.stats()
        return st["hits"], st["misses"], st["bytes"], st["entries"], state.l1.size_curve()

    def _l1_resize(self, namespace: str, share: int) -> None:
        state = self._spaces.get(namespace)
        if state is not None:
            state.l1.set_limits(max_bytes=share, max_entries=self.namespace_config(namespace).l1_max_entries)

    def _space(self, namespace: str) -> NamespaceState:
        state = self._spaces.get(namespace)
        if state is not None:
            return state
        check_namespace(namespace)
        with self._lock:
            state = self._spaces.get(namespace)
            if state is None:
                state = self._spaces[namespace] = self._new_space(namespace, self.namespace_config(namespace))
        return state

    def _new_space(self, namespace: str, cfg: NamespaceConfig, l1: Any = None, version: int = 0,
                   previous: Optional[NamespaceState] = None) -> NamespaceState:
        strategy = resolve_strategy(cfg.promotion, cfg.priority)
        if l1 is None:
            # A gated promotion strategy needs L1's own frequency sketch (it counts L1 hits too): W-TinyLFU;
            # so do adaptive budgets (its simulations estimate the hit ratio at other sizes).
            lru = strategy == "immediate" and self._autosizer is None
            l1 = HashCache(max_bytes=self._l1_budget(namespace, cfg), max_entries=cfg.l1_max_entries,
                           timer=self._timer, policy="lru" if lru else "tinylfu", sizer=deep_sizer)
        codec = self._codec(cfg)
        state = NamespaceState(namespace, l1, cfg, codec.read, strategy == "immediate" and self.enable_promotion,
                               self._prefix + namespace + ":", codec)
        state.version = version
        if previous is not None:
            state.inherit(previous)
        return state

    def _codec(self, cfg: NamespaceConfig) -> Codec:
        k = (cfg.serializer, cfg.compression, cfg.compress_threshold, cfg.max_value_bytes)
        codec = self._codecs.get(k)
        if codec is None:
            codec = Codec(cfg.serializer, compression=cfg.compression, compress_threshold=cfg.compress_threshold,
                          hmac_key=self._hmac_key, max_value_bytes=cfg.max_value_bytes)
            self._codecs[k] = codec
        return codec

    def _l2_key(self, namespace: str, key: Any) -> str:
        return f"{self._prefix}{namespace}:{wire.encode_key(key)}"

    @property
    def closed(self) -> bool:
        """Whether close() (or aclose()) was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    # ------------------------------------------------------------------ L2 through the gate

    def _l2_steps(self, fn: Callable[..., Any], args: Tuple[Any, ...], namespace: str, op: Optional[str] = None,
                  written: Iterable[str] = ()) -> Steps:
        """fn(*args) through the gate, counted for `namespace` and timed as `op` (None: not timed): its
        answer, or FAILED (raises instead when strict)."""
        gate = self._gate
        t0 = gate.start(namespace, op)
        if t0 is None:
            return FAILED
        try:
            result = yield fn, args
        except Exception as exc:
            return gate.failed(exc, namespace)
        except BaseException:
            gate.interrupted()
            raise
        if gate.passed(namespace, op, t0, written):
            self._start_repair()
        return result

    # ------------------------------------------------------------------ repair after an outage

    def _start_repair(self) -> None:
        """L2 answers again and writes that never reached it are owed: remove their keys from L2 in the
        background (the call that noticed returns at once). Until that is done their keys read as misses."""
        todo = self._gate.take_repairs()
        if todo is not None and not self._in_background(self._repair_steps(*todo)):
            self._gate.repair_failed(*todo)  # (closing: nobody left to run it)

    def _repair_steps(self, keys: List[str], prefixes: List[str]) -> Steps:
        """Delete `keys` (batched: UNLINK of a thousand per call on Redis) and clear `prefixes` in L2."""
        try:
            for i in range(0, len(keys), REPAIR_BATCH):
                yield self.l2.delete_many, (keys[i:i + REPAIR_BATCH],)
            for prefix in prefixes:
                yield self.l2.clear_namespace, (prefix,)
        except Exception:  # still failing: what is left waits for the next success
            self._gate.repair_failed(keys, prefixes)
            return
        except BaseException:  # (cancelled: the manager is closing)
            self._gate.repair_failed(keys, prefixes)
            raise
        self._gate.repaired(keys, prefixes)

    def _in_background(self, steps: Steps) -> bool:
        """Run `steps` off the caller's path (a worker thread, or a task the manager cancels at close);
        False when the manager is closing."""
        raise NotImplementedError

    def _fetch_steps(self, state: NamespaceState, l2_key: str) -> Steps:
        """One L2 read for get (the async manager batches these)."""
        return self._l2_steps(self.l2.get, (l2_key,), state.name, "l2_get")

    # ------------------------------------------------------------------ reads

    @staticmethod
    def _open_l2(url: Optional[str]) -> Any:
        """The backend for an L2 URL (None: the embedded default) that the manager opens and closes."""
        raise NotImplementedError

    def _get_missed(self, namespace: str, key: Any, default: Any, l1_missed: bool) -> Any:
        """get() past the ReadPath's L1 step."""
        raise NotImplementedError

    def _aget_missed(self, namespace: str, key: Any, default: Any, l1_missed: bool) -> Any:
        """The async manager's get() past the ReadPath's L1 step (its aget)."""
        raise NotImplementedError

    def _lookup_steps(self, namespace: str, key: Any, l1_missed: bool = False) -> Steps:
        """(value or MISSING, stale value to serve on failure or MISSING), from L1, else L2: get's steps,
        whose result `_served` turns into what get returns."""
        if self._closed:
            self._check_open()
        state = self._spaces.get(namespace)
        if state is None:
            wire.encode_key(key)  # (a bad key is rejected before its namespace is created)
            state = self._space(namespace)
        l2_key = self._read.l2_key(state, key)
        if not self.enabled:
            return MISSING, MISSING
        value, stale = (MISSING, MISSING) if l1_missed else self._read.lookup(state, key)
        if value is MISSING and self._autosizer is not None:
            self._autosizer.missed(1)
        if value is not MISSING or not state.persist:
            return value, MISSING
        version = state.version
        l2_keys = [l2_key]
        owed = self._owed(state, l2_keys) if self._gate.owing else None
        data = yield from self._fetch_steps(state, l2_key)
        if data is FAILED:
            return MISSING, stale
        found: Dict[Any, Any] = {}
        self._finish(state, [key], l2_keys, [data], version, found, owed)
        return found.get(key, MISSING), MISSING

    def _served(self, namespace: str, stale: Any, default: Any) -> Any:
        """What get returns when neither tier had a fresh value: the stale copy (counted), else `default`."""
        if stale is MISSING:
            return default
        self.counters.add("stale_served", 1, namespace)
        return stale

    def _get_many_steps(self, namespace: str, keys: Iterable[Any], warm: bool = False) -> Steps:
        """get_many's steps; `warm` (preload): every value read is copied into L1 without asking the promotion
        strategy, and a failed L2 serves no stale copy."""
        if self._closed:
            self._check_open()
        state = self._space(namespace)
        found, missing, stale, l2_keys = self._read.plan_many(state, keys)
        if missing and self._autosizer is not None:
            self._autosizer.missed(len(missing))
        if l2_keys is None or not self.enabled:
            return found
        version = state.version
        owed = self._owed(state, l2_keys) if self._gate.owing else None
        datas = yield from self._l2_steps(self.l2.get_many, (l2_keys,), namespace, "l2_get")
        if datas is FAILED:
            if stale and not warm:
                self.counters.add("stale_served", len(stale), namespace)
                found.update(stale)
            return found
        self._finish(self._eager(state, version) if warm else state, missing, l2_keys, datas, version, found, owed)
        return found

    def _eager(self, state: NamespaceState, version: int) -> NamespaceState:
        """A stand-in for `state` that promotes every L2 hit (for no longer than it has left in L2), sharing its
        L1 and counters; `state` itself when promotion is off or a write overtook the read (`version`)."""
        if not self.enable_promotion or state.immediate or state.version != version:
            return state
        eager = NamespaceState(state.name, state.l1, state.cfg, state.loads, True, state.l2_base, state.codec)
        eager.version = version
        eager.inherit(state)
        return eager

    def _preload_steps(self, namespace: str, keys: Iterable[Any], count: int) -> Steps:
        """Warm the namespace's L1 from L2: `keys`, then its configured warmup_keys, then its most read keys,
        then the most recent keys L2 holds, `count` at most; {key: loaded}."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        state = self._space(namespace)
        wanted = list(dict.fromkeys(keys)) + list(state.cfg.warmup_keys)
        wanted += [h["key"] for h in self.hot_keys.top(count) if h["namespace"] == namespace]
        if len(wanted) < count and state.persist and self.enabled:
            found = yield from self._l2_steps(self.l2.keys, (state.l2_base, count), namespace)
            if found is not FAILED:
                wanted += [wire.decode_key(k[len(state.l2_base):]) for k in found]
        wanted = list(dict.fromkeys(wanted))[:count]
        loaded = yield from self._get_many_steps(namespace, wanted, warm=True)
        return {key: key in loaded for key in wanted}

    def _owed(self, state: NamespaceState, l2_keys: List[str]) -> Optional[List[bool]]:
        """Which of `l2_keys` await the repair of a write that never reached L2, taken before they are read (the
        repair runs after the read's round trip); None when none do."""
        owed = [self._gate.owes(k, state.l2_base) for k in l2_keys]
        return owed if any(owed) else None

    def _finish(self, state: NamespaceState, keys: List[Any], l2_keys: List[str], datas: Any, version: int,
                found: Dict[Any, Any], owed: Optional[List[bool]] = None) -> None:
        """ReadPath.finish, counted; an answer of the wrong shape is an L2 failure. What L2 answered for an
        `owed` key may be the value a lost write replaced: it is read as absent."""
        if type(datas) is not list:
            datas = list(datas)
        if len(datas) != len(keys):
            self._gate.failed(ValueError(f"L2 answered {len(datas)} values for {len(keys)} keys"), state.name)
            return
        if owed is not None:
            datas = [None if o else d for o, d in zip(owed, datas)]
        self.hot_keys.sample(state.name, keys, datas)
        hits, misses, skipped, declined = self._read.finish(state, keys, l2_keys, datas, version, found)
        if hits > skipped + declined and self.config.l1_max_bytes is not None:
            self._enforce_global_cap()

    def _decide(self, namespace: str, cfg: NamespaceConfig, l1: Any, key: Any, size: int,
                remaining: Optional[float]) -> bool:
        if not self.enable_promotion:
            return False
        return self._promotion.decide(namespace, cfg, l1, key, size, remaining)

    def _corrupt(self, namespace: str, l2_key: str, exc: Exception) -> None:
        self.counters.add("corrupt_values", 1, namespace)
        # (the message, not the exception: a record kept by a handler must not keep the value's frames alive)
        log.warning("tiercache: unreadable L2 value for %s: %s", l2_key, str(exc))

    def _enforce_global_cap(self) -> None:
        """Keep all namespaces' L1 within the config's global l1_max_bytes: evict from low-priority
        namespaces first, then medium, then high (within a priority, the largest holder first)."""
        cap = self.config.l1_max_bytes
        if cap is None:
            return
        caches = [(ns, st.l1) for ns, st in list(self._spaces.items())]
        total = sum(l1.held_bytes() for _, l1 in caches)
        if total <= cap:
            return
        rank = {"low": 0, "medium": 1, "high": 2}
        caches.sort(key=lambda item: (rank.get(self.namespace_config(item[0]).priority, 1), -item[1].held_bytes()))
        evicted = 0
        for _, l1 in caches:
            while total > cap:
                freed = l1.evict_one()
                if freed is None:
                    break
                total -= freed
                evicted += 1
            if total <= cap:
                break
        if evicted:
            self.counters.add("global_cap_evictions", evicted)

    # ------------------------------------------------------------------ writes

    def _set_many_steps(self, namespace: str, mapping: Any, ttl: Optional[float], single: bool = False,
                        tags: Tuple[str, ...] = (), only_new: bool = False) -> Steps:
        """Write every item (encoded first: one bad value stores nothing); the L2 part is one round trip,
        recording the keys under each of `tags` (L2's tag index; an unpersisted namespace's in this process).
        `only_new` (add, one item): only when L2 holds no live value for the key (L1, when L2 cannot tell)."""
        if self._closed:
            self._check_open()
        if ttl is not None:
            check_ttl(ttl)
        tags = check_tags(tags)
        state = self._spaces.get(namespace) or self._space(namespace)
        if tags and state.persist and not hasattr(self.l2, "set_tagged"):
            raise TypeError(f"the L2 backend {self.l2!r} cannot keep tags (it has no set_tagged)")
        if only_new and state.persist and not hasattr(self.l2, "add"):
            raise TypeError(f"the L2 backend {self.l2!r} cannot add (it has no add)")
        codec = state.codec
        items = mapping if single else list(mapping.items())
        l2_ttl = _cap(ttl, jittered(state.cfg.l2_ttl, state.cfg.ttl_jitter))
        header = wire.expiry_header(l2_ttl) if state.persist else b""
        base = state.l2_base
        if codec.signs:  # (the signature covers the L2 key and the expiry header)
            encoded = [(key, part, value, header + codec.dumps(value, wire.mac_context(base + part, header)))
                       for key, part, value in ((key, wire.encode_key(key), value) for key, value in items)]
        else:
            encoded = [(key, wire.encode_key(key), value, header + codec.dumps(value)) for key, value in items]
        if not self.enabled:
            return 0  # (checked like any write, stored nowhere)
        self._bump(state)
        if state.persist and encoded:
            l2_items = {base + part: data for _, part, _, data in encoded}
            if only_new:
                ((l2_key, data),) = l2_items.items()
                if self._gate.owing and self._gate.owes(l2_key, base):  # (L2 may hold what a lost write replaced)
                    if self._read.lookup(state, encoded[0][0], False)[0] is not MISSING:
                        return 0
                    result = yield from self._l2_steps(self.l2.set, (l2_key, data, l2_ttl), namespace, "l2_set",
                                                       (l2_key,))
                else:
                    result = yield from self._l2_steps(self.l2.add, (l2_key, data, l2_ttl), namespace, "l2_set")
                    if result is False or (result is FAILED
                                           and self._read.lookup(state, encoded[0][0], False)[0] is not MISSING):
                        return 0
            elif tags:
                tag_keys = [wire.tag_key(self.env, namespace, tag) for tag in tags]
                result = yield from self._l2_steps(self.l2.set_tagged, (l2_items, l2_ttl, tag_keys), namespace,
                                                   "l2_set", l2_items)
            elif single:
                ((l2_key, data),) = l2_items.items()
                result = yield from self._l2_steps(self.l2.set, (l2_key, data, l2_ttl), namespace, "l2_set",
                                                   (l2_key,))
            else:
                result = yield from self._l2_steps(self.l2.set_many, (l2_items, l2_ttl), namespace, "l2_set",
                                                   l2_items)
            if result is FAILED:
                self._gate.dropped(namespace, state.l2_base, l2_items)
        elif only_new and encoded and self._read.lookup(state, encoded[0][0], False)[0] is not MISSING:
            return 0
        for key, _, value, data in encoded:
            self._read.store(state, key, value, None, ttl)  # (weighed by the L1's deep_sizer)
        if tags and not state.persist:
            self._tag_locally(state, [key for key, _, _, _ in encoded], tags)
        if self.config.l1_max_bytes is not None:
            self._enforce_global_cap()
        self.counters.add("sets", len(encoded), namespace)
        if state.persist and encoded:
            self._invalidate(namespace, [part for _, part, _, _ in encoded])
        return len(encoded)

    def _set_steps(self, namespace: str, key: Any, value: Any, ttl: Optional[float],
                   tags: Tuple[str, ...] = ()) -> Steps:
        """set's steps (their result: 1, the number of items written)."""
        return self._set_many_steps(namespace, ((key, value),), ttl, True, tags)

    def _add_steps(self, namespace: str, key: Any, value: Any, ttl: Optional[float]) -> Steps:
        """add's steps (their result: 1 when stored, else 0)."""
        return self._set_many_steps(namespace, ((key, value),), ttl, True, only_new=True)

    def _incr_steps(self, namespace: str, key: Any, delta: int) -> Steps:
        """incr's steps: the new value. L2 adds to a plain int itself, atomically, in one round trip (ints are
        msgpack but in json namespaces); any other value is read, added to and swapped in only if L2 still holds
        what was read (else read again), keeping its expiry. While L2 fails, or owes the key a repair, or for
        an L2 that can neither add nor swap, it is done on this process's copy and written as set() writes."""
        if self._closed:
            self._check_open()
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, got {type(delta).__name__} {delta!r}")
        part = wire.encode_key(key)
        state = self._space(namespace)
        if not self.enabled:
            raise KeyError(key)
        if not state.persist:  # L1 alone: under the manager's lock (no I/O to wait for)
            with self._lock:
                new = self._added_locally(state, key, delta)
                self._read.store(state, key, new, None, self._l1_remaining(state, key))
                self.counters.add("sets", 1, namespace)
                return new
        l2_key = state.l2_base + part
        if not (self._gate.owing and self._gate.owes(l2_key, state.l2_base)):
            self._bump(state)
            result: Any = NotImplemented
            try:
                if hasattr(self.l2, "incr") and -wire.EXACT_INT < delta < wire.EXACT_INT:
                    result = yield from self._l2_steps(self.l2.incr, (l2_key, delta), namespace, "l2_set", (l2_key,))
                if result is NotImplemented and hasattr(self.l2, "swap"):
                    for _ in range(SWAP_ATTEMPTS):
                        result = yield from self._swapped_steps(state, key, l2_key, delta)
                        if result is not NotImplemented:
                            break
                    else:
                        raise RuntimeError(f"incr of {namespace}:{key!r}: its value changed {SWAP_ATTEMPTS} times "
                                           "while it was being added to")
            except BaseException:  # (it may have reached L2: no copy of the old value may stay)
                state.l1.delete(key)
                self._invalidate(namespace, [part])
                raise
            if result is not FAILED and result is not NotImplemented:  # (neither: an L2 that can do neither)
                state.l1.delete(key)  # (read again when next asked: it carries the expiry L2 kept)
                if result is None:
                    raise KeyError(key)
                self.counters.add("sets", 1, namespace)
                self._invalidate(namespace, [part])
                return result
        with self._lock:
            new = self._added_locally(state, key, delta)
        yield from self._set_steps(namespace, key, new, self._l1_remaining(state, key))
        return new

    def _swapped_steps(self, state: NamespaceState, key: Any, l2_key: str, delta: int) -> Steps:
        """One try of incr on a value L2 cannot add to: the new value, None (no live value), FAILED, or
        NotImplemented when another write came between the read and the swap."""
        data = yield from self._l2_steps(self.l2.get, (l2_key,), state.name, "l2_get")
        if data is FAILED or data is None:
            return data
        try:
            start, remaining = wire.open_sealed(data, time.time())
            if remaining is not None and not remaining > 0:
                return None
            value = state.codec.read(data, start, l2_key)
        except (ValueError, SerializationError) as exc:  # (IntegrityError included)
            self._corrupt(state.name, l2_key, exc)
            return None
        new = value + delta  # (TypeError for a value that takes no int)
        header = data[:start]
        codec = state.codec
        encoded = header + (codec.dumps(new, wire.mac_context(l2_key, header)) if codec.signs else codec.dumps(new))
        swapped = yield from self._l2_steps(self.l2.swap, (l2_key, data, encoded), state.name, "l2_set", (l2_key,))
        if swapped is FAILED:
            return FAILED
        return new if swapped else NotImplemented

    def _added_locally(self, state: NamespaceState, key: Any, delta: int) -> Any:
        """incr on this process's copy (the manager's lock held)."""
        value, _ = self._read.lookup(state, key, False)
        if value is MISSING:
            raise KeyError(key)
        return value + delta

    def _l1_remaining(self, state: NamespaceState, key: Any) -> Optional[float]:
        """Seconds L1 keeps the key's value fresh (None: no limit), its grace period not counted."""
        entry = state.l1.peek(key, MISSING)
        if entry is MISSING:
            return None
        if state.plain:
            try:
                return state.l1.ttl(key)  # type: ignore[no-any-return]
            except KeyError:
                return None
        fresh_until = entry[1]
        return None if fresh_until is None else max(fresh_until - self._timer(), 1e-3)

    def _tag_locally(self, state: NamespaceState, keys: List[Any], tags: Tuple[str, ...]) -> None:
        with self._lock:
            for tag in tags:
                self._local_tags.setdefault((state.name, tag), set()).update(keys)
            self._local_tagged += len(keys) * len(tags)
            if self._local_tagged <= self._local_tag_limit:
                return
            total = 0  # prune: keys L1 no longer holds need no invalidation
            for (namespace, tag), members in list(self._local_tags.items()):
                space = self._spaces.get(namespace)
                kept = {key for key in members if space is not None and key in space.l1}
                if kept:
                    self._local_tags[(namespace, tag)] = kept
                    total += len(kept)
                else:
                    del self._local_tags[(namespace, tag)]
            self._local_tagged = total
            self._local_tag_limit = max(LOCAL_TAGS_MIN, 2 * total)

    def _invalidate_tag_steps(self, namespace: str, tag: str) -> Steps:
        """Remove every entry written with `tag` from L2 and from every process's L1: TAG_BATCH keys at a
        time, taken from L2's index of the tag, deleted (one round trip) and announced (one message). When L2
        fails meanwhile, what else carries the tag is unknown: the namespace is emptied instead (L1 here and
        in the other processes now, L2 once it answers). How many entries either tier held."""
        if self._closed:
            self._check_open()
        check_tag(tag)
        state = self._space(namespace)
        if not self.enabled:
            return 0
        with self._lock:
            local = self._local_tags.pop((namespace, tag), ())
            self._local_tagged -= len(local)
        removed = (yield from self._delete_many_steps(namespace, local)) if local else 0
        if state.persist and hasattr(self.l2, "pop_tagged"):
            tag_key = wire.tag_key(self.env, namespace, tag)
            base = state.l2_base
            while True:
                popped = yield from self._l2_steps(self.l2.pop_tagged, (tag_key, TAG_BATCH), namespace, "l2_set")
                if popped is FAILED:
                    self._bump(state)
                    state.l1.clear()
                    self._gate.dropped_namespace(namespace, base)
                    self._invalidate(namespace, None)
                    break
                popped = [k for k in popped if k.startswith(base)]
                keys = [wire.decode_key(k[len(base):]) for k in popped]
                try:
                    if keys:
                        removed += yield from self._delete_many_steps(namespace, keys)
                except BaseException:  # (strict mode's L2Error, a cancellation) the index has let go of them:
                    self._gate.dropped(namespace, base, popped)  # L2 owes their removal,
                    for key in keys:
                        state.l1.delete(key)
                    self._invalidate(namespace, [k[len(base):] for k in popped])  # and so do other processes
                    raise
                if len(popped) < TAG_BATCH:
                    break
        self.counters.add("tag_invalidations", 1, namespace)
        return removed

    def _delete_many_steps(self, namespace: str, keys: Any, single: bool = False) -> Steps:
        """Remove every key from L1 and L2 (the L2 part one round trip; one invalidation message): how many
        keys either tier held (delete: whether it did)."""
        if self._closed:
            self._check_open()
        keys = list(dict.fromkeys(keys))
        parts = [wire.encode_key(key) for key in keys]  # (a bad key raises before anything is removed)
        state = self._space(namespace)
        if not self.enabled or not keys:
            return False if single else 0
        self._bump(state)
        in_l1 = sum(bool(state.l1.delete(key)) for key in keys)
        self.counters.add("deletes", len(keys), namespace)
        found = in_l1
        if state.persist:
            l2_keys = [state.l2_base + part for part in parts]
            if single:
                result = yield from self._l2_steps(self.l2.delete, (l2_keys[0],), namespace, "l2_set")
            else:
                result = yield from self._l2_steps(self.l2.delete_many, (l2_keys,), namespace, "l2_set")
            if result is FAILED:
                self._gate.dropped(namespace, state.l2_base, l2_keys)
            else:
                found = max(found, int(result))
            self._invalidate(namespace, parts)
        return bool(found) if single else found

    def _delete_steps(self, namespace: str, key: Any) -> Steps:
        """delete's steps: whether L1 or L2 held the key."""
        return self._delete_many_steps(namespace, (key,), single=True)

    def _clear_steps(self, namespace: str) -> Steps:
        if self._closed:
            self._check_open()
        state = self._space(namespace)
        if not self.enabled:
            return 0
        self._bump(state)
        state.l1.clear()
        removed = 0
        if state.persist:
            result = yield from self._l2_steps(self.l2.clear_namespace, (state.l2_base,), namespace)
            if result is FAILED:
                self._gate.dropped_namespace(namespace, state.l2_base)
            else:
                removed = int(result)
                # the namespace's tag indexes too (on SQLite a trigger has emptied them already)
                tag_prefix = wire.tag_key(self.env, namespace, "")
                if (yield from self._l2_steps(self.l2.clear_namespace, (tag_prefix,), namespace)) is FAILED:
                    self._gate.dropped_namespace(namespace, tag_prefix)  # (cleared once L2 answers)
            self._invalidate(namespace, None)
        return removed

    def _bump(self, state: NamespaceState) -> None:
        with self._lock:
            state.bump()

    # ------------------------------------------------------------------ loads

    def _load_steps(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float],
                    refresh: bool = False, tags: Tuple[str, ...] = ()) -> Steps:
        """Run the loader (once per call: single-flight is the manager's) and store its result. A refresh
        (refresh-ahead, in the background) reloads a key that is still cached; it never raises."""
        if not refresh:
            again, _ = self._read.lookup(self._space(namespace), key, False)  # another leader may have filled it
            if again is not MISSING:
                return again
        self.counters.add("loader_calls", 1, namespace)
        t0 = _perf_counter()
        try:
            result = yield loader, ()
        except Exception:
            self.counters.add("loader_errors", 1, namespace)
            if not refresh:
                raise
            log.warning("tiercache: background refresh of %s:%r failed", namespace, key, exc_info=True)
            return None
        finally:
            if self.metrics is not None:
                self.metrics.record(namespace, "loader", _perf_counter() - t0)
        if refresh and self._closed:
            return None
        yield from self._set_steps(namespace, key, result, ttl, tags)
        if refresh:
            self.counters.add("refreshes", 1, namespace)
        return result

    def _distributed_load_steps(self, namespace: str, key: Any, loader: Callable[[], Any], ttl: Optional[float],
                                lock_timeout: float, tags: Tuple[str, ...] = ()) -> Steps:
        """get_or_set's load with lock="distributed": across processes, one loads the key while the others
        wait. The loader's process holds an L2 lock (a token, expiring after `lock_timeout`) until its
        value is written; the others check the lock every LOCK_POLL (sooner when the value's invalidation
        wakes them) and read the value once it is gone, or take the lock themselves when it went without
        one (the loader failed). After `lock_timeout` they load anyway, and so does everyone while L2
        fails: the lock never blocks longer than its expiry."""
        lock_key = self._lock_key(namespace, key)
        if lock_key is None:
            return (yield from self._load_steps(namespace, key, loader, ttl, tags=tags))
        token = uuid.uuid4().hex.encode()
        deadline = time.monotonic() + lock_timeout
        while True:
            taken = yield from self._l2_steps(self.l2.lock, (lock_key, token, lock_timeout), namespace)
            if taken is FAILED or taken:
                try:
                    if taken is True:  # (the last holder may have written it since this process missed)
                        value, _ = yield from self._lookup_steps(namespace, key)
                        if value is not MISSING:
                            return value
                    return (yield from self._load_steps(namespace, key, loader, ttl, tags=tags))
                finally:
                    if taken is True:
                        yield from self._l2_steps(self.l2.unlock, (lock_key, token), namespace)
            while True:  # another process is loading it
                left = deadline - time.monotonic()
                if left <= 0:
                    self.counters.add("lock_timeouts", 1, namespace)
                    return (yield from self._load_steps(namespace, key, loader, ttl, tags=tags))
                yield self._pause, (namespace, key, min(LOCK_POLL, left))
                holder = yield from self._l2_steps(self.l2.get, (lock_key,), namespace)
                if holder is FAILED or holder is None:
                    break
            value, _ = yield from self._lookup_steps(namespace, key)
            if value is not MISSING:
                return value

    def _lock_steps(self, namespace: str, key: Any, timeout: float) -> Steps:
        """Take the key's L2 lock (the one lock="distributed" loads take), waiting while another holds it
        (at most its expiry, `timeout`, if its holder died): the token, or None when L2 cannot lock (it
        failed, or the namespace is not persisted), so the caller goes on with its process's lock only."""
        lock_key = self._lock_key(namespace, key)
        if lock_key is None:
            return None
        token = uuid.uuid4().hex.encode()
        deadline = time.monotonic() + 2 * timeout
        wait = 0.001
        while True:
            taken = yield from self._l2_steps(self.l2.lock, (lock_key, token, timeout), namespace)
            if taken is FAILED:
                return None
            if taken:
                return token
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the L2 lock of {namespace}:{key!r} was not released within {2 * timeout} s")
            yield self._pause, (namespace, key, min(wait, left))
            wait = min(wait * 2, LOCK_POLL)

    def _unlock_steps(self, namespace: str, key: Any, token: Optional[bytes]) -> Steps:
        if token is not None:
            yield from self._l2_steps(self.l2.unlock, (self._lock_key(namespace, key), token), namespace)

    def _lock_key(self, namespace: str, key: Any) -> Optional[str]:
        """The L2 key of the key's lock, or None when L2 cannot hold it (a namespace not persisted, a disabled
        cache, an L2 without locks)."""
        state = self._space(namespace)
        if not (state.persist and self.enabled and hasattr(self.l2, "lock")):
            return None
        return wire.lock_key(self.env, namespace, wire.encode_key(key))

    def _pause(self, namespace: str, key: Any, seconds: float) -> Any:
        """Wait up to `seconds`, less if an invalidation of the key arrives (the managers say how)."""
        raise NotImplementedError

    def _watch(self, namespace: str, key: Any, wake: Callable[[], None]) -> None:
        """Have `wake` called when an invalidation of (namespace, key) arrives (until _unwatch)."""
        with self._lock:
            self._watchers.setdefault((namespace, key), []).append(wake)

    def _unwatch(self, namespace: str, key: Any, wake: Callable[[], None]) -> None:
        with self._lock:
            wakers = self._watchers.get((namespace, key))
            if wakers is not None:
                wakers.remove(wake)
                if not wakers:
                    del self._watchers[(namespace, key)]

    # Refresh-ahead: get_or_set on an entry older than its namespace's refresh_threshold serves it and reloads
    # it in the background (once per key at a time), when the namespace has background_refresh on. The age is
    # read from L1: the namespace's L1 TTL (plus grace period) minus the time the entry has left.

    def _claim_refresh(self, namespace: str, key: Any) -> bool:
        """Whether a background refresh of the key is due now (and claimed: release with _refreshed)."""
        cfg = self.namespace_config(namespace)
        if not cfg.background_refresh or cfg.l1_ttl is None:
            return False
        try:
            remaining = self._space(namespace).l1.ttl(key)
        except KeyError:
            return False
        if remaining is None or cfg.l1_ttl + (cfg.l1_grace_period or 0.0) - remaining < cfg.refresh_threshold:
            return False
        with self._lock:
            if (namespace, key) in self._refreshing or self._closed:
                return False
            self._refreshing.add((namespace, key))
            return True

    def _refreshed(self, namespace: str, key: Any) -> None:
        with self._lock:
            self._refreshing.discard((namespace, key))

    # ------------------------------------------------------------------ invalidation

    def _invalidate(self, namespace: str, key_parts: Optional[List[str]]) -> None:
        """Queue the message telling other processes to drop `key_parts` of `namespace` from L1 (None: the
        whole namespace); the publisher sends it within LINGER."""
        if self._invalidation:
            self._wake_publisher(self._outbox.add(namespace, key_parts))

    def _wake_publisher(self, was_empty: bool) -> None:
        """Have the publisher send the outbox within LINGER (the managers say how); `was_empty`: the
        outbox was empty before this message."""

    def _publish_steps(self) -> Steps:
        """Send what the outbox holds, one message per namespace (and per MAX_PARTS keys); returns how many
        messages went out. A message L2 refused is counted as dropped: the L1 copies it was for expire
        with their L1 TTL."""
        sent = 0
        for namespace, key_parts in self._outbox.take():
            message = encode_message(self._id, namespace, key_parts, self._message_key)
            result = yield from self._l2_steps(self.l2.publish, (self._channel, message), namespace)
            if result is FAILED:
                self.counters.add("invalidations_dropped", 1, namespace)
            else:
                self.counters.add("invalidations_sent", 1, namespace)
                sent += 1
        return sent

    def _on_invalidation(self, message: bytes) -> None:
        decoded = decode_message(message, self._id, self._message_key)
        if decoded is None:
            return
        namespace, keys = decoded
        state = self._spaces.get(namespace)
        if state is None:  # (nothing held here: no state is created for a name from the channel)
            return
        self.counters.add("invalidations_received", 1, namespace)
        self._bump(state)
        if keys is None:
            state.l1.clear()
        else:
            for key in keys:
                state.l1.delete(key)
        if self._watchers:
            with self._lock:
                wakers = [w for (ns, k), ws in self._watchers.items()
                          if ns == namespace and (keys is None or k in keys) for w in ws]
            for wake in wakers:
                wake()

    def _flush_l1(self) -> None:
        """After the listener lost its connection: any L1 copy may have missed an invalidation."""
        for state in list(self._spaces.values()):
            state.l1.clear()
        self.counters.add("invalidation_flushes")

    def _close_l1(self) -> bool:
        """The shared part of closing: False when already closed."""
        if self._closed:
            return False
        self._closed = True
        if self.alerts is not None:
            self.alerts.stop()
        if self.metrics is not None:
            self.metrics.stop()
        return True

    def _release_l1(self) -> None:
        for state in list(self._spaces.values()):
            state.l1.close()
            state.l1.clear()

    # ------------------------------------------------------------------ observability

    def promotion_stats(self) -> Dict[str, Dict[str, Any]]:
        """Per namespace: strategy, candidates, promoted, skipped by the strategy, rejected by the gate,
        promoted-then-hit and precision, time spent deciding (see tiercache.manager.promotion)."""
        immediate = {ns: st.counts.promoted for ns, st in list(self._spaces.items())
                     if st.immediate and st.counts.promoted}
        return self._promotion.stats(self._l1_stats(), immediate)

    def stats(self) -> Dict[str, Any]:
        """Manager counters, the circuit state and each namespace's L1 stats."""
        return {
            **self.counters.totals(),
            "circuit": self.circuit.snapshot(),
            "l2": getattr(self.l2, "kind", type(self.l2).__name__),
            "env": self.env,
            "namespaces": self._l1_stats(),
        }

    def _metrics_state(self) -> Dict[str, Any]:
        return {"namespaces": self._l1_stats(), "circuit": self.circuit.snapshot()}

    def _alert_figures(self) -> Dict[str, Any]:
        snap = self._require_metrics().snapshot(keep=False)
        return _without(snap, self.unreported_namespaces()) or snap

    def _require_metrics(self) -> Metrics:
        if self.metrics is None:
            raise RuntimeError("metrics are off for this manager (enable_metrics=False)")
        return self.metrics

    def metrics_snapshot(self) -> Dict[str, Any]:
        """Counters, L1 stats and latency summaries (p50/p90/p99/max, seconds) per namespace, now."""
        from ..observability.metrics import summarize

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

    def assess_health(self, window: Optional[float] = None) -> Dict[str, Any]:
        """perform_health_assessment, called directly in both managers (it does no I/O): for exporters that
        read the health score from threads outside an event loop (tiercache.observability.families)."""
        return self._assess(window)

    def _assess(self, window: Optional[float]) -> Dict[str, Any]:
        if self.metrics is None:
            return {"status": "disabled", "overall_score": None, "window_seconds": None, "lookups": None,
                    "components": {}, "issues": [], "recommendations": [],
                    "insights": ["metrics are off for this manager (enable_metrics=False): nothing to assess"],
                    "namespaces": {}, "thresholds": dict(self.health_thresholds),
                    "l2": getattr(self.l2, "kind", type(self.l2).__name__), "env": self.env}
        metrics = self.metrics
        seconds = self.health_thresholds["window"] if window is None else window
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        now, base = (_without(snap, self.unreported_namespaces()) for snap in metrics.window(seconds))
        configs = {ns: self.namespace_config(ns) for ns in now["namespaces"]}
        result = health.assess(now, base, self.health_thresholds, configs)
        curves = {ns: c for ns, c in self.l1_curves().items() if ns in now["namespaces"]}
        result["recommendations"] += health.budget_advice(curves, self._autosizer is not None)
        result["l2"] = getattr(self.l2, "kind", type(self.l2).__name__)
        result["env"] = self.env
        return result

    def performance_trends(self, minutes: float = 60) -> Dict[str, Any]:
        """Series of hit rates, throughput and latency percentiles over the kept snapshots of the last
        `minutes`, each labelled improving / stable / degrading."""
        return self._require_metrics().performance_trends(minutes)

