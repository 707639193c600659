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
    tiercache_health_score                               0-100, as perform_health_assessment (once scored)
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

from .families import BOUNDS, collect

__all__ = ["TierCacheCollector", "exposition", "registry_for", "serve", "start_http_server"]

_POW2 = frozenset(i for i in range(len(BOUNDS)) if i % 4 == 0)  # the bounds that are powers of two
_KINDS = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}


class TierCacheCollector(Collector):
    """The families of tiercache.observability.families, named tiercache_<family>; histograms with their
    buckets at each power of two."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Any]:
        for family in collect(self._manager):
            name = f"tiercache_{family.name}" + ("_seconds" if family.kind == "histogram" else "")
            if family.kind == "histogram":
                metric = HistogramMetricFamily(name, family.help, labels=list(family.labels))
                for labels, h in family.samples:
                    buckets = [(repr(BOUNDS[i]), n) for i, n in enumerate(h.cumulative) if i in _POW2]
                    metric.add_metric(list(labels), buckets + [("+Inf", h.count)], h.sum)
            else:
                metric = _KINDS[family.kind](name, family.help, labels=list(family.labels))
                for labels, value in family.samples:
                    metric.add_metric(list(labels), value)
            yield metric


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
