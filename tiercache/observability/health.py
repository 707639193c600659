"""The 0-100 health assessment: weighted components over a recent window of measured figures.

    score = Σ weight_i · component_i / Σ weight_i      over the components that have data in the window

    component          measured as (in the window)                       100 when            0 when
    l1_hit_rate        L1 hits / lookups                                  >= threshold        no hits
    overall_hit_rate   (L1 hits + L2 hits) / lookups                      >= threshold        no hits
    l2                 L2 errors / L2 calls, and the circuit's state      no errors, closed   open, or >= 2x threshold
    latency            p99 of L1 get and of L2 get against thresholds     <= threshold        (100·threshold/p99 above)
    memory             L1 evictions / L1 writes, worst namespace          none                >= 2x threshold
    promotion          promoted entries hit again / promoted              >= threshold        none hit again

One rule for status, score and issues:
- The traffic components (hit rates, memory, promotion) and their issues need at least `min_requests` lookups
  in the window; with fewer they are left out (score None), as is any component without data — never assumed.
  The L2 and latency components count whenever they have data.
- score: the weighted mean of the components left in; 100.0 when none is (nothing measured is wrong).
- status: `idle` when there are fewer than `min_requests` lookups and no issue; otherwise the score's band
  (healthy >= 80 > degraded >= 60 > unhealthy >= 40 > critical), made no better than the worst issue allows
  (a low issue: healthy; medium: degraded; high: unhealthy; critical: critical). So `healthy` never stands
  beside an issue above low, and an open circuit (a critical issue) makes the status critical.
- An L1 hit rate below `l1_hit_rate_floor` (30 %) is an issue; below `l1_hit_rate` (70 %) it lowers the score.
- Per-minute rates are given only over windows of at least `rate_window` seconds (60); over shorter ones the
  figures are counts, never extrapolated.
The manager reports `disabled` (score None) when its metrics are off.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional

from .metrics import delta, summarize

__all__ = ["DEFAULT_THRESHOLDS", "STATUS_RANK", "WEIGHTS", "assess", "thresholds"]

DEFAULT_THRESHOLDS: Dict[str, float] = {
    "l1_hit_rate": 0.7,
    "overall_hit_rate": 0.6,
    "l2_error_rate": 0.05,
    "l1_latency_p99": 0.001,  # s
    "l2_latency_p99": 0.05,  # s
    "eviction_ratio": 0.5,  # evictions per L1 write
    "promotion_precision": 0.3,
    "min_requests": 100,  # lookups in the window below which the status is idle
    "window": 300.0,  # s of history assessed
    "l1_hit_rate_floor": 0.3,  # an L1 hit rate below it is an issue
    "rate_window": 60.0,  # s: the shortest window over which a per-minute rate is given
}

WEIGHTS: Dict[str, float] = {
    "l1_hit_rate": 0.25, "overall_hit_rate": 0.20, "l2": 0.20, "latency": 0.15, "memory": 0.10,
    "promotion": 0.10,
}

_STATUSES = ((80.0, "healthy"), (60.0, "degraded"), (40.0, "unhealthy"), (-1.0, "critical"))
STATUS_RANK = {name: rank for rank, (_, name) in enumerate(_STATUSES)}  # healthy 0 ... critical 3
_SEVERITY_CAP = {"low": "healthy", "medium": "degraded", "high": "unhealthy", "critical": "critical"}


def thresholds(overrides: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
    """DEFAULT_THRESHOLDS with `overrides` applied; unknown names and bad values raise ValueError."""
    out = dict(DEFAULT_THRESHOLDS)
    for name, value in (overrides or {}).items():
        if name not in out:
            raise ValueError(f"unknown health threshold {name!r} (known: {', '.join(sorted(out))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"health threshold {name!r} must be a positive number, got {value!r}")
        out[name] = float(value)
    return out


def _fmt(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}" if n >= 10 or n == int(n) else f"{n:.1f}"


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{n:.0f} B"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _rate_score(rate: float, threshold: float) -> float:
    return 100.0 * min(1.0, rate / threshold)


BUDGET_ADVICE_GAIN = 0.05  # a doubled L1 budget worth advising: 5 points of hit rate more
BUDGET_ADVICE_LOOKUPS = 500  # sampled lookups an estimate needs


def budget_advice(curves: Mapping[str, Mapping[str, Any]], adaptive: bool) -> List[str]:
    """Recommendations from the L1s' estimated hit-ratio curves (CacheManager.l1_curves): where twice the
    bytes would raise a namespace's L1 hit rate by BUDGET_ADVICE_GAIN or more."""
    out = []
    for ns, c in sorted(curves.items()):
        if c["lookups"] < BUDGET_ADVICE_LOOKUPS or c["bytes"] * 8 < c["budget"] * 7:
            continue  # (too few samples; or it does not fill its budget, so more would not help)
        (_, _), (size, now), (bigger, then) = c["points"]
        if then - now < BUDGET_ADVICE_GAIN:
            continue
        where = "the global l1_max_bytes (shared adaptively)" if adaptive else "its l1_max_bytes"
        out.append(f"{ns}: giving it {_fmt_bytes(bigger - size)} more L1 would raise its L1 hit rate from "
                   f"{now:.0%} to {then:.0%} (estimated by its simulations) — raise {where}")
    return out


def assess(now: Dict[str, Any], base: Optional[Dict[str, Any]], limits: Mapping[str, float],
           configs: Mapping[str, Any]) -> Dict[str, Any]:
    """The assessment of what happened between snapshot `base` (None: since the start) and `now`.

    `configs` maps namespace -> its NamespaceConfig (for the recommendations' figures).
    """
    d = delta(now, base)
    minutes = max(d["seconds"], 1e-9) / 60.0
    circuit = now.get("circuit", {}) or {}
    state = circuit.get("state", "closed")
    components: Dict[str, Dict[str, Any]] = {}
    issues: List[Dict[str, Any]] = []
    recommendations: List[str] = []
    insights: List[str] = []

    def component(name: str, score: Optional[float], value: Any, threshold: Any) -> None:
        components[name] = {"score": None if score is None else round(max(0.0, min(100.0, score)), 1),
                            "weight": WEIGHTS[name], "value": value, "threshold": threshold}

    def issue(severity: str, kind: str, description: str, impact: str, solution: str,
              namespace: Optional[str] = None) -> None:
        item = {"severity": severity, "type": kind, "description": description, "impact": impact,
                "solution": solution}
        if namespace is not None:
            item["namespace"] = namespace
        issues.append(item)

    lookups = d["lookups"]
    busy = lookups >= limits["min_requests"]  # enough traffic to judge the traffic components
    rated_minutes = d["seconds"] >= limits["rate_window"]
    # -- hit rates
    if busy:
        l1r, allr = d["l1_hit_rate"], d["overall_hit_rate"]
        component("l1_hit_rate", _rate_score(l1r, limits["l1_hit_rate"]), round(l1r, 4), limits["l1_hit_rate"])
        component("overall_hit_rate", _rate_score(allr, limits["overall_hit_rate"]), round(allr, 4),
                  limits["overall_hit_rate"])
        if allr < limits["overall_hit_rate"]:
            issue("high" if allr < limits["overall_hit_rate"] / 2 else "medium", "low_hit_rate",
                  f"overall hit rate {allr:.1%} over {lookups} lookups, below {limits['overall_hit_rate']:.0%}",
                  "most reads go to the loader or the caller's source of truth",
                  "check key design and TTLs; warm the cache after deployments")
        if l1r < limits["l1_hit_rate_floor"]:
            issue("medium", "low_l1_hit_rate",
                  f"L1 hit rate {l1r:.1%} over {lookups} lookups, below {limits['l1_hit_rate_floor']:.0%}",
                  "most reads pay an L2 round trip or a load",
                  "raise l1_ttl or the L1 budgets of the busiest namespaces; check promotion settings")
    else:
        component("l1_hit_rate", None, None, limits["l1_hit_rate"])
        component("overall_hit_rate", None, None, limits["overall_hit_rate"])

    # -- L2: errors and the circuit
    calls, errors = d["l2_calls"], d["counters"]["l2_errors"]
    short = d["counters"]["l2_short_circuited"]
    if state != "closed":
        component("l2", 0.0 if state == "open" else 25.0,
                  {"circuit": state, "errors": errors, "short_circuited": short}, limits["l2_error_rate"])
        issue("critical", "l2_unavailable",
              f"L2 circuit {state} after {circuit.get('consecutive_failures', 0)} consecutive failures; "
              f"{short} calls short-circuited in the window",
              "reads are served from L1 only and writes to L2 are dropped (repaired when it answers)",
              "check the L2 server and the network to it; the circuit closes by itself once a probe succeeds")
    elif calls:
        er = errors / calls
        component("l2", 100.0 * max(0.0, 1.0 - er / (2 * limits["l2_error_rate"])), round(er, 4),
                  limits["l2_error_rate"])
        if er > limits["l2_error_rate"]:
            issue("high", "l2_errors", f"L2 error rate {er:.1%} ({errors} of {calls} calls)",
                  "failed reads fall back to L1 or the loader",
                  "check the L2 server's load, timeouts and connection limits")
    else:
        component("l2", None, None, limits["l2_error_rate"])

    # -- latency
    lat_scores = []
    lat_value: Dict[str, Any] = {}
    for op, limit_name in (("l1_get", "l1_latency_p99"), ("l2_get", "l2_latency_p99")):
        s = summarize(d["latency"][op])
        if s["count"]:
            p99 = s["p99"]
            lat_value[f"{op}_p99"] = p99
            limit = limits[limit_name]
            lat_scores.append(100.0 if p99 <= limit else 100.0 * limit / p99)
            if p99 > limit:
                issue("medium", "slow_" + op, f"{op} p99 {_ms(p99)} over {s['count']} timed calls, above "
                      f"{_ms(limit)}", "tail latency reaches callers", "look at L2 server load and value sizes"
                      if op == "l2_get" else "look for expensive key __eq__/__hash__ or a starved CPU")
    component("latency", min(lat_scores) if lat_scores else None, lat_value or None,
              {"l1_get_p99": limits["l1_latency_p99"], "l2_get_p99": limits["l2_latency_p99"]})

    # -- memory pressure: the worst namespace's evictions per write into L1 (one thrashing namespace counts)
    ratios = {}
    for ns in now["namespaces"]:
        l1d = delta(now, base, ns)["l1"]
        w = l1d["sets"] + l1d["promoted"]
        if w >= 10 and busy:
            ratios[ns] = l1d["evictions"] / w
    if ratios:
        worst = max(ratios, key=ratios.__getitem__)
        ratio = ratios[worst]
        component("memory", 100.0 * max(0.0, 1.0 - ratio / (2 * limits["eviction_ratio"])),
                  {"evictions_per_write": round(ratio, 4), "namespace": worst}, limits["eviction_ratio"])
    else:
        component("memory", None, None, limits["eviction_ratio"])

    # -- promotion precision
    promoted, promoted_hits = d["l1"]["promoted"], d["l1"]["promoted_hits"]
    if promoted >= 20 and busy:
        p = promoted_hits / promoted
        component("promotion", _rate_score(p, limits["promotion_precision"]), round(p, 4),
                  limits["promotion_precision"])
        if p < limits["promotion_precision"]:
            issue("low", "promotion_precision", f"{p:.0%} of {promoted} entries copied from L2 into L1 were read "
                  "again there", "L1 space goes to entries read once", "promote on repeated access (promotion "
                  "strategy 'conditional') or lower l1_ttl for one-off reads")
    else:
        component("promotion", None, {"promoted": promoted}, limits["promotion_precision"])

    # -- per namespace: recommendations with the figures
    per_ns: Dict[str, Dict[str, Any]] = {}
    for ns in sorted(now["namespaces"]):
        nd = delta(now, base, ns)
        l1 = (now["namespaces"][ns].get("l1") or {})
        ev, writes_ns = nd["l1"]["evictions"], nd["l1"]["sets"] + nd["l1"]["promoted"]
        ev_min = ev / minutes
        rate = nd["l1_hit_rate"]
        per_ns[ns] = {"lookups": nd["lookups"], "l1_hit_rate": rate, "overall_hit_rate": nd["overall_hit_rate"],
                      "evictions": ev, "evictions_per_min": round(ev_min, 2) if rated_minutes else None,
                      "bytes": l1.get("bytes"),
                      "max_bytes": l1.get("max_bytes"), "entries": l1.get("entries"),
                      "max_entries": l1.get("max_entries")}
        if busy and writes_ns >= 10 and ev / writes_ns > limits["eviction_ratio"]:
            by_size = nd["l1"]["evictions_by_size"] >= nd["l1"]["evictions_by_count"]
            if by_size and l1.get("max_bytes"):
                fill = (l1.get("bytes") or 0) / l1["max_bytes"]
                budget = f"{fill:.0%} of its {_fmt_bytes(l1['max_bytes'])} budget"
                fix = f"raise l1_max_bytes to ~{_fmt_bytes(2 * l1['max_bytes'])}"
            else:
                cap = l1.get("max_entries") or l1.get("entries") or 0
                budget = f"{(l1.get('entries') or 0) / cap:.0%} of its {cap}-entry budget" if cap else "full"
                fix = f"raise l1_max_entries to ~{2 * cap}" if cap else "raise l1_max_entries"
            pace = f"{_fmt(ev_min)} evictions/min" if rated_minutes else f"{ev} evictions in {d['seconds']:.1f} s"
            text = f"{ns}: {pace} at {budget} — {fix}"
            recommendations.append(text)
            issue("high" if ev / writes_ns > 2 * limits["eviction_ratio"] else "medium", "thrashing",
                  f"{ns}: {ev} evictions for {writes_ns} writes into L1 in {minutes:.1f} min",
                  "entries are evicted before they are read again, so reads go to L2", fix, ns)
        cfg = configs.get(ns)
        exp = nd["l1"]["expirations"]
        if (busy and rate is not None and nd["lookups"] >= 50 and rate < limits["l1_hit_rate"] and exp > ev
                and cfg is not None and getattr(cfg, "l1_ttl", None)):
            pace = f"{_fmt(exp / minutes)} expirations/min" if rated_minutes else f"{exp} expirations"
            recommendations.append(
                f"{ns}: L1 hit rate {rate:.0%} with {pace} — raise l1_ttl above {cfg.l1_ttl:g} s if the data "
                "allows")
    if state != "closed":
        recommendations.append(f"L2: circuit {state} — L1 serves alone; check the L2 server")

    # -- insights
    busiest = sorted(per_ns.items(), key=lambda kv: -kv[1]["lookups"])
    if busiest and busiest[0][1]["lookups"]:
        ns, v = busiest[0]
        share = v["lookups"] / lookups if lookups else 0.0
        insights.append(f"{ns} takes {share:.0%} of lookups ({v['lookups']} in {minutes:.1f} min)")
    rated = [(ns, v["l1_hit_rate"]) for ns, v in per_ns.items() if v["l1_hit_rate"] is not None and v["lookups"] >= 50]
    if len(rated) >= 2:
        best, worst = max(rated, key=lambda x: x[1]), min(rated, key=lambda x: x[1])
        insights.append(f"L1 hit rate ranges from {worst[1]:.0%} ({worst[0]}) to {best[1]:.0%} ({best[0]})")
    if promoted:
        insights.append(f"{promoted} L2 hits promoted into L1, {promoted_hits} of them read again there")

    scored = [c for c in components.values() if c["score"] is not None]
    score = (round(sum(c["score"] * c["weight"] for c in scored) / sum(c["weight"] for c in scored), 1)
             if scored else 100.0)
    if not busy and not issues:
        status = "idle"
    else:
        status = next(name for floor, name in _STATUSES if score >= floor)
        for item in issues:
            cap = _SEVERITY_CAP[item["severity"]]
            if STATUS_RANK[cap] > STATUS_RANK[status]:
                status = cap
    return {
        "status": status,
        "overall_score": score,
        "window_seconds": round(d["seconds"], 3),
        "lookups": lookups,
        "components": components,
        "issues": issues,
        "recommendations": recommendations,
        "insights": insights,
        "namespaces": per_ns,
        "thresholds": dict(limits),
    }
