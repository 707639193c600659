"""A manager's metrics as families of samples, read at collection time: what the Prometheus collector
(tiercache.observability.prometheus) and the OpenTelemetry instruments (tiercache.observability.otel)
both export, each in its own naming.

Families (labels in brackets): requests [namespace, tier, result] (tier l1: hit/miss; l2: hit/miss/error),
evictions [namespace, tier, cause] (size / count / expired), invalidations [namespace, direction]
(sent / received / dropped), promoted_hits and every other counter [namespace], entries / bytes /
max_bytes [namespace, tier], l1_entries_all and l1_bytes_all, circuit_transitions [to], l2_circuit_open
(1 open, 0.5 half-open, 0 closed), invalidation_flushes, repaired_after_outage, health_score (0-100; absent
while the manager has no score), and latency [namespace, tier, operation], histograms in seconds. Every
value comes from the same sources as CacheManager.stats() and metrics_snapshot().
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from .counters import COUNTERS, OPERATIONS
from .histogram import Histogram, percentile

__all__ = ["BOUNDS", "Family", "LatencySample", "collect"]

BOUNDS = Histogram.BOUNDS[:-1]  # the finite upper bounds of LatencySample.cumulative

# Counters exported one family each (the others are folded into requests / invalidations).
PLAIN = tuple(c for c in COUNTERS if c not in (
    "l2_hits", "l2_misses", "l2_errors", "invalidations_sent", "invalidations_received", "invalidations_dropped"))


@dataclass
class LatencySample:
    """One latency histogram: its counts per bucket of Histogram.BOUNDS (the last one the overflow), their
    total, the sum and the largest sample, in seconds."""

    counts: List[int]
    count: int
    sum: float
    max: float

    @property
    def cumulative(self) -> List[int]:
        """The counts at or below each finite bound."""
        return list(itertools.accumulate(self.counts[:-1]))

    def quantile(self, q: float) -> Optional[float]:
        """The q-quantile (0 < q <= 1), as histogram.percentile; None when empty."""
        return percentile(self.counts, q, self.max or math.inf)


@dataclass
class Family:
    """One metric: `kind` "counter" (monotonic), "gauge" or "histogram"; `unit` in UCUM ("By", "s",
    "{request}", "1"); samples of (label values, value), a LatencySample for a histogram."""

    name: str
    kind: str
    help: str
    unit: str
    labels: Tuple[str, ...] = ()
    samples: List[Tuple[Tuple[str, ...], Any]] = field(default_factory=list)

    def add(self, labels: Tuple[str, ...], value: Any) -> None:
        self.samples.append((labels, value))


def collect(manager: Any, health: bool = True) -> List[Family]:
    """Every family of `manager` (a CacheManager or AsyncCacheManager) now; with `health`, the health score
    too (an assessment over the default window: the cost of one perform_health_assessment)."""
    stats = manager.stats()
    per_ns = manager.counters.by_namespace()
    l1_stats = stats["namespaces"]
    namespaces = sorted(set(per_ns) | set(l1_stats))

    requests = Family("requests", "counter", "Lookups by tier and result", "{request}", ("namespace", "tier", "result"))
    evictions = Family("evictions", "counter", "L1 entries removed, by cause", "{entry}", ("namespace", "tier", "cause"))
    invalidations = Family("invalidations", "counter", "Cross-process invalidation messages", "{message}",
                           ("namespace", "direction"))
    promoted_hits = Family("promoted_hits", "counter", "Promoted L1 entries read again in L1", "{hit}", ("namespace",))
    plain = [Family(name, "counter", name.replace("_", " "), "1", ("namespace",)) for name in PLAIN]
    entries = Family("entries", "gauge", "Entries held", "{entry}", ("namespace", "tier"))
    nbytes = Family("bytes", "gauge", "Bytes held (entry weights)", "By", ("namespace", "tier"))
    max_bytes = Family("max_bytes", "gauge", "Byte budget", "By", ("namespace", "tier"))
    for ns in namespaces:
        c = per_ns.get(ns, {})
        l1 = l1_stats.get(ns)
        if l1 is not None:
            requests.add((ns, "l1", "hit"), l1["hits"])
            requests.add((ns, "l1", "miss"), l1["misses"])
            evictions.add((ns, "l1", "size"), l1["evictions_by_size"])
            evictions.add((ns, "l1", "count"), l1["evictions_by_count"])
            evictions.add((ns, "l1", "expired"), l1["expirations"])
            promoted_hits.add((ns,), l1["promoted_hits"])
            entries.add((ns, "l1"), l1["entries"])
            nbytes.add((ns, "l1"), l1["bytes"])
            if l1["max_bytes"] is not None:
                max_bytes.add((ns, "l1"), l1["max_bytes"])
        requests.add((ns, "l2", "hit"), c.get("l2_hits", 0))
        requests.add((ns, "l2", "miss"), c.get("l2_misses", 0))
        requests.add((ns, "l2", "error"), c.get("l2_errors", 0))
        invalidations.add((ns, "sent"), c.get("invalidations_sent", 0))
        invalidations.add((ns, "received"), c.get("invalidations_received", 0))
        invalidations.add((ns, "dropped"), c.get("invalidations_dropped", 0))
        for family in plain:
            family.add((ns,), c.get(family.name, 0))
    out = [requests, evictions, invalidations, promoted_hits, *plain, entries, nbytes, max_bytes]
    for name, key, text in (("l1_entries_all", "entries", "Entries held in L1, all namespaces"),
                            ("l1_bytes_all", "bytes", "Bytes held in L1, all namespaces")):
        out.append(Family(name, "gauge", text, "By" if key == "bytes" else "{entry}",
                          samples=[((), sum(v[key] for v in l1_stats.values()))]))

    circuit = stats["circuit"]
    transitions = Family("circuit_transitions", "counter", "L2 circuit breaker transitions", "{transition}", ("to",))
    for to in ("opened", "half_opened", "closed"):
        transitions.add((to,), circuit[f"transitions_{to}"])
    out.append(transitions)
    out.append(Family("l2_circuit_open", "gauge", "L2 circuit: 1 open, 0.5 half-open, 0 closed", "1",
                      samples=[((), {"open": 1.0, "half-open": 0.5}.get(circuit["state"], 0.0))]))
    for name in ("invalidation_flushes", "repaired_after_outage"):
        out.append(Family(name, "counter", name.replace("_", " "), "1", samples=[((), stats.get(name, 0))]))
    if health:
        score: Optional[float] = manager.assess_health().get("overall_score")
        if score is not None:
            out.append(Family("health_score", "gauge", "Health score, 0-100 (perform_health_assessment)", "1",
                              samples=[((), score)]))

    if manager.metrics is not None:
        latency = Family("latency", "histogram", "Operation latency (L1 get sampled)", "s",
                         ("namespace", "tier", "operation"))
        for (ns, op), h in sorted(manager.metrics.snapshot(keep=False)["histograms"].items()):
            latency.add((ns, OPERATIONS[op], op), LatencySample(h["counts"], h["count"], h["sum"], h.get("max") or 0.0))
        out.append(latency)
    return out
