"""The admin API's answers in the shape of the Enhanced Cache System v1.0 it re-creates.

Every answer carries `success` and `timestamp` (ISO 8601, as JavaScript's toISOString); the original's fields
(camelCase) come first, tiercache's own detail beside them. The models below document the shapes in the
OpenAPI schema (extra fields allowed); the functions build them from a manager.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from pydantic import BaseModel, ConfigDict

from ..config import SELFTEST_NAMESPACE
from ..observability.hotkeys import iso_time

class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Envelope(_Open):
    success: bool
    timestamp: str


class ErrorBody(Envelope):
    """Every error response: what went wrong, and the particulars."""

    error: str
    detail: Any = None


class HealthBody(Envelope):
    status: str
    message: str


class Assessment(_Open):
    status: str
    overallScore: Optional[float]
    l1Metrics: Dict[str, Any]
    l2Metrics: Dict[str, Any]
    promotionMetrics: Dict[str, Any]
    performanceInsights: List[Any]
    recommendations: List[Any]
    issues: List[Any]
    lastAssessment: str


class CacheHealthBody(Envelope):
    assessment: Assessment


class ConfigSummary(_Open):
    environment: str
    namespaces: int
    avgL1TTL: Optional[float]
    avgL2TTL: Optional[float]
    totalMemoryMB: float


class ConfigBody(Envelope):
    environment: str
    summary: ConfigSummary
    configurations: Dict[str, Any]


class CacheStats(_Open):
    totalRequests: int
    l1Hits: int
    l2Hits: int
    misses: int
    l1HitRate: float
    l2HitRate: float
    overallHitRate: float
    evictions: int
    errors: int


class MetricsBody(Envelope):
    cacheStats: CacheStats
    l1Stats: Dict[str, Any]
    promotionStats: Dict[str, Any]
    trends: Optional[Dict[str, Any]]


class PromotionBody(Envelope):
    enabled: bool
    stats: Dict[str, Any]
    accessPatterns: List[Dict[str, Any]]


class SystemBody(Envelope):
    system: Dict[str, Any]


class WarmupBody(Envelope):
    message: str
    results: List[Dict[str, Any]]
    cacheStats: CacheStats


class LoadTest(_Open):
    operations: int
    successful: int
    failed: int
    totalTime: str
    opsPerSecond: int


class LoadTestBody(Envelope):
    test: LoadTest
    cacheStats: CacheStats


def ok(**fields: Any) -> Dict[str, Any]:
    """A successful answer: `success`, the fields, `timestamp`."""
    return {"success": True, **fields, "timestamp": iso_time()}


def failure(error: str, detail: Any) -> Dict[str, Any]:
    return {"success": False, "error": error, "detail": detail, "timestamp": iso_time()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.upper() if part in ("l1", "l2", "ttl") else part.title() for part in rest)


def camel_config(cfg: Any) -> Dict[str, Any]:
    """A NamespaceConfig's fields in camelCase (l1_ttl -> l1TTL, l1_max_bytes -> l1MaxBytes)."""
    return {_camel(k): v for k, v in dataclasses.asdict(cfg).items()}


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def cache_stats(manager: Any, stats: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The original's cacheStats over the user namespaces (the reserved one of synthetic traffic, and those
    with enable_stats off, left out)."""
    stats = manager.stats() if stats is None else stats
    counters = manager.counters.by_namespace()
    quiet = manager.unreported_namespaces()
    l1_hits = l1_misses = l2_hits = evictions = errors = 0
    for ns, st in stats["namespaces"].items():
        if ns in quiet:
            continue
        c = counters.get(ns, {})
        l1_hits += st.get("hits", 0)
        l1_misses += st.get("misses", 0)
        l2_hits += c.get("l2_hits", 0)
        evictions += st.get("evictions", 0)
        errors += c.get("l2_errors", 0) + c.get("loader_errors", 0) + c.get("corrupt_values", 0)
    total = l1_hits + l1_misses
    return {
        "totalRequests": total, "l1Hits": l1_hits, "l2Hits": l2_hits, "misses": max(0, l1_misses - l2_hits),
        "l1HitRate": _rate(l1_hits, total), "l2HitRate": _rate(l2_hits, total),
        "overallHitRate": _rate(l1_hits + l2_hits, total), "evictions": evictions, "errors": errors,
        "sets": sum(c.get("sets", 0) for ns, c in counters.items() if ns not in quiet),
        "circuit": stats["circuit"]["state"],
    }


def l1_stats(stats: Dict[str, Any], counters: Optional[Dict[str, Dict[str, int]]] = None,
             ops: Optional[Dict[str, Optional[float]]] = None) -> Dict[str, Any]:
    """Each namespace's L1 figures from `stats` (a manager's stats()), with its L2 hits and the hit rates
    over both tiers from `counters` (Counters.by_namespace()), and its operations per second from `ops`."""
    out = {}
    for ns, st in stats["namespaces"].items():
        hits = st.get("hits", 0)
        lookups = hits + st.get("misses", 0)
        l2_hits = (counters or {}).get(ns, {}).get("l2_hits", 0)
        out[ns] = {"entries": st.get("entries"), "bytes": st.get("bytes"), "maxBytes": st.get("max_bytes"),
                   "maxEntries": st.get("max_entries"), "hits": hits, "misses": st.get("misses", 0),
                   "hitRate": _rate(hits, lookups), "evictions": st.get("evictions", 0),
                   "evictionsBySize": st.get("evictions_by_size", 0),
                   "evictionsByCount": st.get("evictions_by_count", 0), "expirations": st.get("expirations", 0),
                   "l2Hits": l2_hits, "l2HitRate": _rate(l2_hits, lookups),
                   "overallHitRate": _rate(hits + l2_hits, lookups),
                   "opsPerSecond": None if ops is None else ops.get(ns),
                   "selfTest": ns == SELFTEST_NAMESPACE}
    return out


def throughput(metrics: Any) -> Dict[str, Optional[float]]:
    """Each namespace's operations (lookups, sets, deletes) per second since the latest metrics snapshot
    at least one interval old (over the time since the start until there is one)."""
    from ..observability.metrics import delta

    now, base = metrics.window(metrics.interval or 10.0)
    out: Dict[str, Optional[float]] = {}
    for ns in now["namespaces"]:
        d = delta(now, base, ns)
        out[ns] = round(d["operations"] / d["seconds"], 1) if d["seconds"] > 0 else None
    return out


def assessment(report: Dict[str, Any]) -> Dict[str, Any]:
    """The health report in the original's shape, tiercache's components and figures beside."""
    comp = report.get("components", {})

    def part(name: str) -> Dict[str, Any]:
        c = comp.get(name) or {}
        return {"score": c.get("score"), "value": c.get("value"), "threshold": c.get("threshold")}

    return {
        "status": report["status"],
        "overallScore": report["overall_score"],  # (None only when the manager's metrics are off)
        "l1Metrics": {**part("l1_hit_rate"), "latency": part("latency"), "memory": part("memory")},
        "l2Metrics": {**part("l2"), "overallHitRate": part("overall_hit_rate"), "kind": report.get("l2")},
        "promotionMetrics": part("promotion"),
        "performanceInsights": report.get("insights", []),
        "recommendations": report.get("recommendations", []),
        "issues": report.get("issues", []),
        "lastAssessment": iso_time(),
        "components": comp, "namespaces": report.get("namespaces", {}), "thresholds": report.get("thresholds", {}),
        "windowSeconds": report.get("window_seconds"), "lookups": report.get("lookups"),
        "environment": report.get("env"),
    }


def config_document(manager: Any) -> Dict[str, Any]:
    cfg = manager.config
    f = cfg.figures()
    summary = {"environment": cfg.env, "namespaces": f["namespaces"], "avgL1TTL": f["avg_l1_ttl"],
               "avgL2TTL": f["avg_l2_ttl"], "totalMemoryMB": f["total_memory_mb"],
               "globalMemoryMB": f["global_memory_mb"], "namespacesWithoutL2TTL": f["without_l2_ttl"],
               "strictNamespaces": cfg.strict_namespaces}
    return {"environment": cfg.env, "summary": summary,
            "configurations": {ns: camel_config(c) for ns, c in sorted(cfg.namespaces.items())},
            "defaultConfiguration": camel_config(cfg.default_namespace)}
