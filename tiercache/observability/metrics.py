"""Metrics: per-namespace counters, latency histograms, a history of snapshots, trends, Prometheus.

    CacheManager ──add()/record()──> Metrics ──snapshot every `interval` s──> history (bounded ring)
          │                            │                                          │
          └── state(): L1 stats,       ├── snapshot(): counters + L1 + circuit     └── performance_trends()
              circuit, histograms      └── tiercache.observability.health.assess(window)

Counters (tiercache.observability.counters) live per namespace (slow paths: L2 calls, loads, invalidations). L1 hits,
misses and evictions are counted by each namespace's HashCache and read from its stats(); the L1 get latency
is sampled on the hit path (one call in `l1_sample_every`, default 64, is timed), every L2 call and loader
call is timed into a histogram (tiercache.observability.histogram). The timed L1 lookups are counted by the read path
and read at snapshot time.

Metrics observe; the manager never reads them back to make a decision.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple

from .counters import COUNTERS, GLOBAL_COUNTERS, OPERATIONS, Counters
from .histogram import NBUCKETS, Histogram, bucket_of, diff_histogram, percentile, summarize

__all__ = [  # (the counter and histogram names are defined in tiercache.observability.counters and tiercache.observability.histogram)
    "COUNTERS", "GLOBAL_COUNTERS", "OPERATIONS", "Counters", "Histogram", "Metrics", "bucket_of", "delta",
    "diff_histogram", "fit_trend", "percentile", "start_http_server", "summarize",
]


def fit_trend(times: Sequence[float], values: Sequence[Optional[float]], *, higher_is_better: bool,
              min_change: float) -> Dict[str, Any]:
    """Least-squares slope of `values` over `times` and a label: improving / stable / degrading.

    Noise guard: the change over the window (slope x span) must exceed `min_change` and the slope must
    stand out from the scatter around the line (|t| >= 3). Fewer than 3 points is always "stable".
    """
    pts = [(t, v) for t, v in zip(times, values) if v is not None and math.isfinite(v)]
    n = len(pts)
    out: Dict[str, Any] = {"label": "stable", "slope_per_min": 0.0, "change": 0.0, "points": n}
    if n < 3:
        return out
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    sxx = sum((t - mt) ** 2 for t, _ in pts)
    if sxx == 0:
        return out
    slope = sum((t - mt) * (v - mv) for t, v in pts) / sxx
    ssr = sum((v - (mv + slope * (t - mt))) ** 2 for t, v in pts)
    se = math.sqrt(ssr / (n - 2) / sxx) if n > 2 else math.inf
    span = pts[-1][0] - pts[0][0]
    change = slope * span
    out.update(slope_per_min=slope * 60.0, change=change)
    significant = abs(change) >= min_change and (se == 0 or abs(slope) / se >= 3.0)
    if significant:
        better = change > 0 if higher_is_better else change < 0
        out["label"] = "improving" if better else "degrading"
    return out


# ----------------------------------------------------------------------------------------------- Metrics


class Metrics:
    """Counters, histograms and history for one CacheManager.

    `state` returns the manager's current raw figures ({"namespaces": {ns: L1 stats}, "circuit": {...}});
    `interval` seconds between history snapshots (None: only when snapshot() is called), `history` snapshots
    kept (default one hour at 10 s). `timer` is the clock for snapshot times (tests inject one).
    """

    def __init__(self, state: Callable[[], Dict[str, Any]], *, interval: Optional[float] = 10.0,
                 history: int = 360, timer: Optional[Callable[[], float]] = None,
                 counters: Optional[Counters] = None,
                 l1_samples: Optional[Callable[[], Dict[str, Dict[str, Any]]]] = None,
                 histogram: Callable[[], Any] = Histogram) -> None:
        if interval is not None and not (isinstance(interval, (int, float)) and interval > 0):
            raise ValueError(f"metrics interval must be a positive number of seconds or None, got {interval!r}")
        if not isinstance(history, int) or history < 2:
            raise ValueError(f"metrics history must be an int >= 2, got {history!r}")
        self._state = state
        self._l1_samples = l1_samples  # {namespace: histogram state} of timed L1 lookups, kept by the core
        self._new_histogram = histogram  # Histogram, or the compiled core's SampleHistogram (same buckets)
        self._timer = timer or time.monotonic
        self.counters = counters if counters is not None else Counters()
        self._hist_lock = threading.Lock()
        self._histograms: Dict[Tuple[str, str], Any] = {}
        self.history: Deque[Dict[str, Any]] = deque(maxlen=history)
        self._dropped = False  # whether the ring has let snapshots go
        self.interval = interval
        self.started = self._timer()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- recording

    def histogram(self, namespace: str, operation: str) -> Any:
        h = self._histograms.get((namespace, operation))
        if h is None:
            if operation not in OPERATIONS:
                raise ValueError(f"unknown operation {operation!r}")
            with self._hist_lock:
                h = self._histograms.setdefault((namespace, operation), self._new_histogram())
        return h

    def record(self, namespace: str, operation: str, seconds: float) -> None:
        self.histogram(namespace, operation).record(seconds)

    # -- reading

    def snapshot(self, keep: bool = True) -> Dict[str, Any]:
        """Everything now: time, per-namespace counters and L1 stats, circuit, histogram states.

        With `keep`, it is also appended to the history ring.
        """
        state = self._state()
        counters = self.counters.by_namespace()
        namespaces: Dict[str, Dict[str, Any]] = {}
        for ns in set(state.get("namespaces", {})) | set(counters):
            entry = dict.fromkeys(COUNTERS, 0)
            entry.update(counters.get(ns, {}))
            entry["l1"] = state.get("namespaces", {}).get(ns)
            namespaces[ns] = entry
        with self._hist_lock:
            items = list(self._histograms.items())
        histograms = {key: h.state(keep) for key, h in items}  # (a kept snapshot closes a max window)
        if self._l1_samples is not None:
            for ns, state_ in self._l1_samples(keep).items():
                histograms[(ns, "l1_get")] = state_
        snap = {
            "time": self._timer(),
            "started": self.started,
            "namespaces": namespaces,
            "totals": self.counters.totals(),
            "circuit": state.get("circuit", {}),
            "histograms": histograms,
        }
        if keep:
            if len(self.history) == self.history.maxlen:
                self._dropped = True
            self.history.append(snap)
        return snap

    def window(self, seconds: float = 300.0, now: Optional[Dict[str, Any]] = None) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
        """(current snapshot, the latest kept snapshot at least `seconds` older; None when the window reaches
        back past the kept history, meaning since the start: counters start at zero)."""
        now = now or self.snapshot(keep=False)
        base = None
        for snap in self.history:
            if snap["time"] > now["time"] - seconds:
                break
            base = snap
        if base is None and self._dropped and self.history:
            base = self.history[0]  # older snapshots were dropped from the ring: as far back as we can see
        return now, base

    def performance_trends(self, minutes: float = 60.0) -> Dict[str, Any]:
        """Series over the kept snapshots of the last `minutes`: hit rates, throughput, latency
        percentiles, L2 and overall error rates, L1 memory (bytes, entries, share of the budgets), each with
        a trend label (improving / stable / degrading); and `memory`: each namespace's L1 bytes and entries
        against its budget."""
        if not (isinstance(minutes, (int, float)) and minutes > 0):
            raise ValueError(f"minutes must be a positive number, got {minutes!r}")
        snaps = list(self.history)
        if snaps:
            cutoff = snaps[-1]["time"] - minutes * 60.0
            snaps = [s for s in snaps if s["time"] >= cutoff]
        times: List[float] = []
        series: Dict[str, List[Optional[float]]] = {
            "l1_hit_rate": [], "overall_hit_rate": [], "throughput_ops": [],
            "l1_get_p50": [], "l1_get_p90": [], "l1_get_p99": [], "l1_get_max": [], "l2_get_p50": [],
            "l2_get_p90": [], "l2_get_p99": [], "l2_get_max": [], "loader_p99": [], "l2_error_rate": [],
            "error_rate": [], "l1_bytes": [], "l1_entries": [], "l1_budget_used": [],
        }
        memory: Dict[str, Dict[str, Any]] = {}
        for old, new in zip(snaps, snaps[1:]):
            dt = new["time"] - old["time"]
            if dt <= 0:
                continue
            d = delta(new, old, adjacent=True)
            times.append(new["time"] - snaps[0]["time"])
            series["l1_hit_rate"].append(d["l1_hit_rate"])
            series["overall_hit_rate"].append(d["overall_hit_rate"])
            series["throughput_ops"].append(d["operations"] / dt)
            series["l2_error_rate"].append(d["l2_error_rate"])
            c = d["counters"]
            errors = c["l2_errors"] + c["loader_errors"] + c["corrupt_values"]
            series["error_rate"].append(errors / d["operations"] if d["operations"] else None)
            held = used = budget = entries = 0
            for ns, entry in new["namespaces"].items():
                l1 = entry.get("l1") or {}
                if not l1:
                    continue
                m = memory.setdefault(ns, {"bytes": [None] * (len(times) - 1), "entries": [None] * (len(times) - 1)})
                m["bytes"].append(l1.get("bytes"))
                m["entries"].append(l1.get("entries"))
                m["max_bytes"], m["max_entries"] = l1.get("max_bytes"), l1.get("max_entries")
                held += l1.get("bytes") or 0
                entries += l1.get("entries") or 0
                if l1.get("max_bytes"):
                    used += l1.get("bytes") or 0
                    budget += l1["max_bytes"]
            for m in memory.values():  # (a namespace missing from this snapshot)
                for key in ("bytes", "entries"):
                    if len(m[key]) < len(times):
                        m[key].append(None)
            series["l1_bytes"].append(held)
            series["l1_entries"].append(entries)
            series["l1_budget_used"].append(used / budget if budget else None)
            for op in ("l1_get", "l2_get", "loader"):
                s = summarize(d["latency"][op])
                for q in ("p50", "p90", "p99", "max"):
                    if f"{op}_{q}" in series:
                        series[f"{op}_{q}"].append(s[q])
        rules = {  # (higher is better, smallest change that counts)
            "l1_hit_rate": (True, 0.02), "overall_hit_rate": (True, 0.02), "l2_error_rate": (False, 0.01),
            "error_rate": (False, 0.01), "l1_budget_used": (False, 0.05),
        }
        trends = {}
        for name, values in series.items():
            if name in rules:
                higher, floor = rules[name]
            else:
                known = [v for v in values if v is not None]
                mean = sum(known) / len(known) if known else 0.0
                higher, floor = name == "throughput_ops", max(abs(mean) * 0.10, 1e-12)
            trends[name] = fit_trend(times, values, higher_is_better=higher, min_change=floor)
        return {"minutes": minutes, "points": len(times), "seconds": times, "series": series, "trends": trends,
                "memory": memory}

    # -- background snapshots

    def start(self) -> None:
        if self.interval is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="tiercache-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            try:
                self.snapshot()
            except Exception:  # a closing manager: stop quietly
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _sum_l1(snap: Dict[str, Any], namespaces: Optional[Iterable[str]] = None) -> Dict[str, int]:
    out = {"hits": 0, "misses": 0, "evictions": 0, "evictions_by_size": 0, "evictions_by_count": 0,
           "expirations": 0, "promoted": 0, "promoted_hits": 0, "sets": 0}
    for ns, entry in snap["namespaces"].items():
        if namespaces is not None and ns not in namespaces:
            continue
        l1 = entry.get("l1") or {}
        for k in out:
            out[k] += l1.get(k, 0)
    return out


def delta(new: Dict[str, Any], old: Optional[Dict[str, Any]], namespace: Optional[str] = None,
          adjacent: bool = False) -> Dict[str, Any]:
    """What happened between two snapshots (old None: since the start), for one namespace or all.
    `adjacent`: `old` is the kept snapshot just before `new`, so latency maxima are the window's."""
    names = None if namespace is None else {namespace}

    def counter(snap: Optional[Dict[str, Any]], name: str) -> int:
        if snap is None:
            return 0
        if namespace is None:
            return sum(e.get(name, 0) for e in snap["namespaces"].values())
        return snap["namespaces"].get(namespace, {}).get(name, 0)

    l1_new = _sum_l1(new, names)
    l1_old = _sum_l1(old, names) if old is not None else dict.fromkeys(l1_new, 0)
    l1 = {k: max(0, l1_new[k] - l1_old[k]) for k in l1_new}  # (a namespace recreated: never negative)
    c = {name: counter(new, name) - counter(old, name) for name in COUNTERS}
    lookups = l1["hits"] + l1["misses"]
    l2_calls = c["l2_hits"] + c["l2_misses"] + c["l2_errors"]
    latency: Dict[str, Dict[str, Any]] = {}
    for op in OPERATIONS:
        merged: Optional[Dict[str, Any]] = None
        for (ns, o), state in new["histograms"].items():
            if o != op or (namespace is not None and ns != namespace):
                continue
            before = old["histograms"].get((ns, o)) if old is not None else None
            part = diff_histogram(state, before, adjacent)
            if merged is None:
                merged = {"counts": list(part["counts"]), "count": part["count"], "sum": part["sum"],
                          "max": part["max"]}
            else:
                merged["counts"] = [a + b for a, b in zip(merged["counts"], part["counts"])]
                merged["count"] += part["count"]
                merged["sum"] += part["sum"]
                merged["max"] = None if merged["max"] is None or part["max"] is None else max(merged["max"], part["max"])
        latency[op] = merged or {"counts": [0] * NBUCKETS, "count": 0, "sum": 0.0, "max": None}
    return {
        "seconds": new["time"] - (old["time"] if old is not None else new.get("started", new["time"])),
        "l1": l1, "counters": c, "lookups": lookups,
        "operations": lookups + c["sets"] + c["deletes"],
        "l1_hit_rate": l1["hits"] / lookups if lookups else None,
        "overall_hit_rate": (l1["hits"] + c["l2_hits"]) / lookups if lookups else None,
        "l2_calls": l2_calls,
        "l2_error_rate": c["l2_errors"] / l2_calls if l2_calls else None,
        "latency": latency,
    }


def start_http_server(port: int, manager: Any, addr: str = "127.0.0.1") -> Any:
    """tiercache.observability.prometheus.start_http_server (needs prometheus_client)."""
    from .prometheus import start_http_server

    return start_http_server(port, manager, addr)
