"""Prometheus exposition of a CacheManager's metrics (prometheus_client).

Families (labels in braces):
    tiercache_requests_total{namespace,tier,result}      tier l1: hit/miss; tier l2: hit/miss/error
    tiercache_evictions_total{namespace,tier,cause}      cause size / count / expired (L1)
    tiercache_<counter>_total{namespace}                 sets, deletes, promotions, promoted_hits, loader_calls,
                                                         loader_errors, stale_served, l2_writes_dropped, ...
    tiercache_invalidations_total{namespace,direction}   sent / received / dropped
    tiercache_circuit_transitions_total{to}              opened / half_opened / closed
    tiercache_entries{namespace,tier}, tiercache_bytes{namespace,tier}, tiercache_max_bytes{namespace,tier}
    tiercache_l1_entries_all, tiercache_l1_bytes_all       the same over every namespace
    tiercache_l2_circuit_open                            1 open, 0.5 half-open, 0 closed
    tiercache_latency_seconds{namespace,tier,operation}  histograms; buckets at each power of two
Every value is read from the same sources as CacheManager.stats() at scrape time.
"""

from __future__ import annotations

from typing import Any, Iterator

from .._extras import missing

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client import start_http_server as _start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:
    raise missing(exc, "prometheus", "tiercache.observability.prometheus") from exc

from .counters import COUNTERS, OPERATIONS
from .histogram import Histogram

__all__ = ["TierCacheCollector", "exposition", "registry_for", "serve", "start_http_server"]

# Counters exported one family each (the others are folded into requests / invalidations).
_PLAIN = tuple(c for c in COUNTERS if c not in (
    "l2_hits", "l2_misses", "l2_errors", "invalidations_sent", "invalidations_received", "invalidations_dropped"))
_POW2 = [i for i, b in enumerate(Histogram.BOUNDS[:-1]) if i % 4 == 0]  # bounds that are powers of two


class TierCacheCollector(Collector):
    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Any]:
        m = self._manager
        stats = m.stats()
        per_ns = m.counters.by_namespace()
        l1_stats = stats["namespaces"]
        namespaces = sorted(set(per_ns) | set(l1_stats))

        requests = CounterMetricFamily("tiercache_requests", "Lookups by tier and result",
                                       labels=["namespace", "tier", "result"])
        evictions = CounterMetricFamily("tiercache_evictions", "L1 entries removed, by cause",
                                        labels=["namespace", "tier", "cause"])
        invalidations = CounterMetricFamily("tiercache_invalidations", "Cross-process invalidation messages",
                                            labels=["namespace", "direction"])
        plain = {name: CounterMetricFamily(f"tiercache_{name}", f"{name.replace('_', ' ')}", labels=["namespace"])
                 for name in _PLAIN}
        promoted_hits = CounterMetricFamily("tiercache_promoted_hits", "Promoted L1 entries read again in L1",
                                            labels=["namespace"])
        entries = GaugeMetricFamily("tiercache_entries", "Entries held", labels=["namespace", "tier"])
        nbytes = GaugeMetricFamily("tiercache_bytes", "Bytes held (entry weights)", labels=["namespace", "tier"])
        max_bytes = GaugeMetricFamily("tiercache_max_bytes", "Byte budget", labels=["namespace", "tier"])
        for ns in namespaces:
            c = per_ns.get(ns, {})
            l1 = l1_stats.get(ns)
            if l1 is not None:
                requests.add_metric([ns, "l1", "hit"], l1["hits"])
                requests.add_metric([ns, "l1", "miss"], l1["misses"])
                evictions.add_metric([ns, "l1", "size"], l1["evictions_by_size"])
                evictions.add_metric([ns, "l1", "count"], l1["evictions_by_count"])
                evictions.add_metric([ns, "l1", "expired"], l1["expirations"])
                promoted_hits.add_metric([ns], l1["promoted_hits"])
                entries.add_metric([ns, "l1"], l1["entries"])
                nbytes.add_metric([ns, "l1"], l1["bytes"])
                if l1["max_bytes"] is not None:
                    max_bytes.add_metric([ns, "l1"], l1["max_bytes"])
            requests.add_metric([ns, "l2", "hit"], c.get("l2_hits", 0))
            requests.add_metric([ns, "l2", "miss"], c.get("l2_misses", 0))
            requests.add_metric([ns, "l2", "error"], c.get("l2_errors", 0))
            invalidations.add_metric([ns, "sent"], c.get("invalidations_sent", 0))
            invalidations.add_metric([ns, "received"], c.get("invalidations_received", 0))
            invalidations.add_metric([ns, "dropped"], c.get("invalidations_dropped", 0))
            for name, family in plain.items():
                family.add_metric([ns], c.get(name, 0))
        yield from (requests, evictions, invalidations, promoted_hits, *plain.values(), entries, nbytes, max_bytes)
        for name, field, text in (("tiercache_l1_entries_all", "entries", "Entries held in L1, all namespaces"),
                                  ("tiercache_l1_bytes_all", "bytes", "Bytes held in L1, all namespaces")):
            total = GaugeMetricFamily(name, text)
            total.add_metric([], sum(v[field] for v in l1_stats.values()))
            yield total

        circuit = stats["circuit"]
        transitions = CounterMetricFamily("tiercache_circuit_transitions", "L2 circuit breaker transitions",
                                          labels=["to"])
        for to in ("opened", "half_opened", "closed"):
            transitions.add_metric([to], circuit[f"transitions_{to}"])
        yield transitions
        state = GaugeMetricFamily("tiercache_l2_circuit_open", "L2 circuit: 1 open, 0.5 half-open, 0 closed")
        state.add_metric([], {"open": 1.0, "half-open": 0.5}.get(circuit["state"], 0.0))
        yield state
        for name in ("invalidation_flushes", "repaired_after_outage"):
            family = CounterMetricFamily(f"tiercache_{name}", name.replace("_", " "))
            family.add_metric([], stats.get(name, 0))
            yield family

        if m.metrics is not None:
            latency = HistogramMetricFamily("tiercache_latency_seconds", "Operation latency (L1 get sampled)",
                                            labels=["namespace", "tier", "operation"])
            for (ns, op), h in sorted(m.metrics.snapshot(keep=False)["histograms"].items()):
                counts, running, buckets = h["counts"], 0, []
                for i, n in enumerate(counts[:-1]):
                    running += n
                    if i in _POW2_SET:
                        buckets.append((repr(Histogram.BOUNDS[i]), running))
                buckets.append(("+Inf", h["count"]))
                latency.add_metric([ns, OPERATIONS[op], op], buckets, h["sum"])
            yield latency


_POW2_SET = frozenset(_POW2)


def registry_for(manager: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TierCacheCollector(manager))
    return registry


def exposition(manager: Any) -> bytes:
    """The Prometheus text format of `manager`'s metrics now."""
    return generate_latest(registry_for(manager))


def start_http_server(port: int, manager: Any, addr: str = "127.0.0.1") -> Any:
    """Serve `manager`'s metrics in the Prometheus text format on http://addr:port/ (a daemon thread).

    For services without the admin API. Returns what prometheus_client returns (the server and its thread
    in current versions): call `server.shutdown()` to stop it."""
    return _start_http_server(port, addr=addr, registry=registry_for(manager))


serve = start_http_server  # (the same function)
