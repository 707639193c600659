"""Metrics, health assessment, trends and Prometheus exposition (tiercache.observability.metrics / health / prometheus)."""

from __future__ import annotations

import math
import random
import time
import socket
import urllib.request
from typing import Any, Dict, Iterator, List

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tiercache.observability import health
from tiercache.manager import CacheManager
from tiercache.observability.metrics import Histogram, Metrics, bucket_of, fit_trend, percentile, start_http_server, summarize
from tiercache.observability.prometheus import exposition


BIG = {"l1_max_entries": 10_000, "l1_max_bytes": 1 << 24, "l1_ttl": 3600, "l2_ttl": None}


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/l2.db"


@pytest.fixture
def manager(sqlite_url: str, clock: Any) -> Iterator[CacheManager]:
    config = {"hot": BIG, "thrash": {**BIG, "l1_max_entries": 10, "promotion": "immediate"}}  # (no gate: it thrashes)
    with CacheManager(sqlite_url, config=config, timer=clock, metrics_interval=None, l1_sample_every=1) as m:
        yield m


# ---------------------------------------------------------------------------------------------- histograms


def test_every_value_lands_in_the_bucket_whose_bounds_hold_it() -> None:
    bounds = Histogram.BOUNDS
    assert all(a < b for a, b in zip(bounds, bounds[1:]))
    rng = random.Random(7)
    values = [2.0 ** -24, 2.0 ** -20, 3e-7, 1e-6, 1.5e-3, 0.2, 7.0, 2.0 ** 8] + [10 ** rng.uniform(-8, 2.5) for _ in range(2000)]
    for v in values:
        i = bucket_of(v)
        assert v <= bounds[i] and (i == 0 or v > bounds[i - 1]), v
        assert i in (0, len(bounds) - 1) or bounds[i] <= v * 1.25  # within 25 % (4 linear sub-buckets per octave)
    assert bucket_of(0.0) == 0 and bucket_of(float("nan")) == 0 and bucket_of(1e9) == len(bounds) - 1


def test_percentiles_of_a_known_distribution() -> None:
    h = Histogram()
    for i in range(1, 1001):  # 1 ms .. 1000 ms
        h.record(i / 1000)
    s = summarize(h.state())
    assert s["count"] == 1000 and s["max"] == 1.0
    assert s["mean"] == pytest.approx(0.5005)
    for q, key in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
        assert q <= s[key] <= q * 1.25
    assert percentile([0] * len(Histogram.BOUNDS), 0.5) is None


# ---------------------------------------------------------------------------------------------- counting


def test_counters_per_namespace_and_l1_misses_counted_once(manager: CacheManager) -> None:
    manager.set("hot", "a", 1)
    manager.set("hot", "b", 2)
    manager.delete("hot", "b")
    assert manager.get("hot", "a") == 1  # L1 hit
    assert manager.get("hot", "zz") is None  # L1 miss, L2 miss
    manager.set("thrash", "x", 1)
    ns = manager.counters.by_namespace()
    assert (ns["hot"]["sets"], ns["hot"]["deletes"], ns["hot"]["l2_misses"]) == (2, 1, 1)
    assert ns["thrash"]["sets"] == 1
    l1 = manager.stats()["namespaces"]["hot"]
    assert (l1["hits"], l1["misses"]) == (1, 1)  # one lookup, one miss: not counted again past L1
    assert manager.stats()["sets"] == 3


def test_latency_is_recorded_per_namespace_and_operation(manager: CacheManager) -> None:
    for i in range(20):
        manager.set("hot", i, i)
    for i in range(40):
        manager.get("hot", i)  # 20 L1 hits, 20 misses going to L2
    manager.get_or_set("hot", "loaded", lambda: 42)
    lat = manager.metrics_snapshot()["namespaces"]["hot"]["latency"]
    assert lat["l1_get"]["count"] == 41  # every L1 lookup sampled here (l1_sample_every=1), get_or_set's too
    assert lat["l2_get"]["count"] == 21 and lat["l2_set"]["count"] == 21 and lat["loader"]["count"] == 1
    assert all(0 < lat[op]["p50"] <= lat[op]["p99"] for op in lat)


def test_metrics_off_costs_nothing_and_says_so(sqlite_url: str) -> None:
    with CacheManager(sqlite_url, enable_metrics=False) as m:
        assert m.metrics is None
        m.set("ns", "k", 1)
        assert m.get("ns", "k") == 1
        assert m.stats()["sets"] == 1  # counters still run
        h = m.perform_health_assessment()
        assert h["status"] == "disabled" and h["overall_score"] is None and h["issues"] == []
        with pytest.raises(RuntimeError, match="enable_metrics=False"):
            m.performance_trends()
        assert b"tiercache_requests_total" in exposition(m)


@pytest.mark.parametrize("kwargs, message", [
    ({"health_thresholds": {"l1_hit_rate": -1}}, "l1_hit_rate"),
    ({"health_thresholds": {"nope": 1}}, "unknown health threshold 'nope'"),
    ({"health_thresholds": {"l2_error_rate": float("nan")}}, "l2_error_rate"),
    ({"l1_sample_every": 3}, "l1_sample_every"),
    ({"metrics_interval": 0}, "metrics interval"),
    ({"metrics_history": 1}, "metrics history"),
])
def test_bad_metrics_arguments_are_rejected(sqlite_url: str, kwargs: Dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CacheManager(sqlite_url, **kwargs)


# ---------------------------------------------------------------------------------------------- health


def test_idle_deployment_is_idle_not_critical(manager: CacheManager) -> None:
    h = manager.perform_health_assessment()
    assert h["status"] == "idle" and h["overall_score"] == 100.0
    assert h["lookups"] == 0 and h["issues"] == []
    assert set(h["components"]) == set(health.WEIGHTS)


def test_a_few_lookups_raise_no_traffic_issue(manager: CacheManager) -> None:
    """Two lookups, one a miss: too few to judge hit rates, so no low_hit_rate issue beside an idle status
    (one rule for status, score and issues)."""
    manager.set("hot", "a", 1)
    manager.get("hot", "a")
    manager.get("hot", "b")
    h = manager.perform_health_assessment()
    assert h["status"] == "idle" and h["issues"] == [] and h["overall_score"] == 100.0
    assert h["components"]["l1_hit_rate"]["score"] is None


def test_status_is_never_better_than_the_worst_issue(manager: CacheManager, clock: Any) -> None:
    """A low L1 hit rate (below 30 %) is an issue, and an issue above low rules out `healthy`; per-minute
    rates are not extrapolated from a window under a minute."""
    for i in range(300):
        manager.get("hot", f"absent{i}")  # misses everywhere
    h = manager.perform_health_assessment()
    kinds = {i["type"]: i["severity"] for i in h["issues"]}
    assert "low_l1_hit_rate" in kinds and "low_hit_rate" in kinds
    assert h["status"] in ("degraded", "unhealthy", "critical") and h["status"] != "healthy"
    assert all(v["evictions_per_min"] is None for v in h["namespaces"].values())  # (window < 60 s)
    clock.advance(120)
    h = manager.perform_health_assessment()
    assert all(v["evictions_per_min"] is not None for v in h["namespaces"].values())


def test_thresholds_come_from_the_config_file(tmp_path: Any, sqlite_url: str) -> None:
    from tiercache.config import CacheConfig
    from tiercache.errors import ConfigError

    toml = tmp_path / "cache.toml"
    toml.write_text('env = "test"\n[health]\nl1_hit_rate = 0.9\nmin_requests = 10\n', encoding="utf-8")
    with CacheManager(sqlite_url, config=str(toml), enable_metrics=True) as m:
        assert m.health_thresholds["l1_hit_rate"] == 0.9 and m.health_thresholds["min_requests"] == 10
    with CacheManager(sqlite_url, config=str(toml), health_thresholds={"l1_hit_rate": 0.5}) as m:
        assert m.health_thresholds["l1_hit_rate"] == 0.5  # the argument wins
    with pytest.raises(ConfigError, match="health.nope"):
        CacheConfig.from_dict({"health": {"nope": 1}})
    with pytest.raises(ConfigError, match="health.window"):
        CacheConfig.from_dict({"health": {"window": -1}})


def test_healthy_traffic(manager: CacheManager, clock: Any) -> None:
    for i in range(100):
        manager.set("hot", i, {"v": i})
    for _ in range(10):
        for i in range(100):
            assert manager.get("hot", i) == {"v": i}
    clock.advance(60)
    h = manager.perform_health_assessment()
    assert h["status"] == "healthy" and h["overall_score"] >= 95
    assert h["components"]["l1_hit_rate"]["value"] == 1.0
    assert h["components"]["promotion"]["score"] is None  # no promotions: not scored, not assumed
    assert h["issues"] == [] and h["recommendations"] == []


def test_a_thrashing_namespace_is_named_with_its_figures(manager: CacheManager, clock: Any) -> None:
    for i in range(100):
        manager.set("hot", i, i)
        manager.set("thrash", i, i)
    for _ in range(5):
        for i in range(100):
            manager.get("hot", i)
            manager.get("thrash", i)  # a loop over 100 keys through a 10-entry L1: every read evicts
    clock.advance(60)
    h = manager.perform_health_assessment()
    thrash = [r for r in h["recommendations"] if r.startswith("thrash:")]
    assert len(thrash) == 1 and "evictions/min" in thrash[0] and "raise l1_max_entries to ~20" in thrash[0]
    assert not any(r.startswith("hot:") for r in h["recommendations"])
    assert any(i["type"] == "thrashing" and i["namespace"] == "thrash" for i in h["issues"])
    assert h["components"]["memory"]["score"] < 50
    assert h["components"]["promotion"]["value"] == 0.0  # 500 promotions, none read again before eviction
    assert h["status"] in ("degraded", "unhealthy") and h["overall_score"] < 80


def test_redis_down_is_reported(redis_server: Any, redis_url: str, clock: Any) -> None:
    with CacheManager(redis_url, env="test", config={"ns": BIG}, timer=clock, invalidation=False,
                      metrics_interval=None) as m:
        for i in range(200):
            m.set("ns", i, i)
        redis_server.kill()
        try:
            for i in range(200, 400):
                m.get("ns", i)  # not in L1: goes to the dead L2 until the circuit opens
            h = m.perform_health_assessment()
        finally:
            redis_server.start()
    assert m.circuit.transitions["opened"] >= 1
    assert h["status"] in ("unhealthy", "critical")
    assert h["components"]["l2"]["score"] in (0.0, 25.0)
    assert any(i["type"] == "l2_unavailable" and i["severity"] == "critical" for i in h["issues"])


def test_assessment_window_uses_history(manager: CacheManager, clock: Any) -> None:
    for i in range(200):
        manager.set("hot", i, i)
    for i in range(200, 400):
        manager.get("hot", i)  # a bad first period: 200 misses
    manager.metrics.snapshot()  # type: ignore[union-attr]
    clock.advance(600)
    manager.metrics.snapshot()  # type: ignore[union-attr]
    for _ in range(5):
        for i in range(200):
            manager.get("hot", i)  # then only hits
    clock.advance(60)
    since_start = manager.perform_health_assessment(window=10_000)
    recent = manager.perform_health_assessment(window=300)
    assert since_start["components"]["l1_hit_rate"]["value"] == round(1000 / 1200, 4)
    assert recent["components"]["l1_hit_rate"]["value"] == 1.0 and recent["lookups"] == 1000


# ---------------------------------------------------------------------------------------------- trends


def _l1(hits: int, misses: int) -> Dict[str, Any]:
    return {"hits": hits, "misses": misses, "sets": 0, "evictions": 0, "evictions_by_size": 0,
            "evictions_by_count": 0, "expirations": 0, "promoted": 0, "promoted_hits": 0, "entries": 0,
            "bytes": 0, "max_bytes": 100, "max_entries": None}


def _replay(timer_class: Any, rates: List[float]) -> Dict[str, Any]:
    clock = timer_class()
    totals = {"hits": 0, "misses": 0}
    metrics = Metrics(lambda: {"namespaces": {"ns": _l1(totals["hits"], totals["misses"])},
                               "circuit": {"state": "closed"}}, interval=None, timer=clock)
    metrics.snapshot()
    for rate in rates:
        totals["hits"] += round(1000 * rate)
        totals["misses"] += 1000 - round(1000 * rate)
        clock.advance(60)
        metrics.snapshot()
    return metrics.performance_trends(minutes=60)


def test_trend_labels(make_timer: Any) -> None:
    rng = random.Random(3)
    rising = _replay(make_timer, [0.5 + 0.02 * i for i in range(20)])
    falling = _replay(make_timer, [0.9 - 0.02 * i for i in range(20)])
    flat = _replay(make_timer, [0.8 + rng.uniform(-0.01, 0.01) for _ in range(20)])
    noisy = _replay(make_timer, [0.8 + rng.uniform(-0.2, 0.2) for _ in range(20)])
    assert rising["trends"]["l1_hit_rate"]["label"] == "improving"
    assert falling["trends"]["l1_hit_rate"]["label"] == "degrading"
    assert flat["trends"]["l1_hit_rate"]["label"] == "stable"
    assert noisy["trends"]["l1_hit_rate"]["label"] == "stable"
    assert rising["points"] == 20 and len(rising["series"]["l1_hit_rate"]) == 20
    assert rising["series"]["throughput_ops"][0] == pytest.approx(1000 / 60)
    assert _replay(make_timer, [0.5, 0.9])["trends"]["l1_hit_rate"]["label"] == "stable"  # too few points to judge


def test_fit_trend_direction_for_lower_is_better() -> None:
    t = [float(i) for i in range(10)]
    up = fit_trend(t, [0.010 + 0.001 * i for i in t], higher_is_better=False, min_change=0.001)
    down = fit_trend(t, [0.020 - 0.001 * i for i in t], higher_is_better=False, min_change=0.001)
    assert (up["label"], down["label"]) == ("degrading", "improving")
    assert fit_trend(t, [None] * 10, higher_is_better=True, min_change=0.1)["label"] == "stable"
    assert math.isclose(up["slope_per_min"], 0.06)


def test_history_is_bounded(clock: Any) -> None:
    metrics = Metrics(lambda: {"namespaces": {}, "circuit": {}}, interval=None, history=5, timer=clock)
    for _ in range(12):
        metrics.snapshot()
        clock.advance(10)
    assert len(metrics.history) == 5


# ---------------------------------------------------------------------------------------------- Prometheus


def _samples(text: str) -> Dict[Any, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_text_parses_and_equals_stats(manager: CacheManager) -> None:
    for i in range(50):
        manager.set("thrash", i, "x" * i)
    for i in range(60):
        manager.get("thrash", i)
        manager.get("hot", i)
    stats = manager.stats()
    samples = _samples(exposition(manager).decode())
    by_ns = manager.counters.by_namespace()
    for ns in ("hot", "thrash"):
        l1 = stats["namespaces"][ns]
        assert samples[("tiercache_requests_total", (("namespace", ns), ("result", "hit"), ("tier", "l1")))] == l1["hits"]
        assert samples[("tiercache_requests_total", (("namespace", ns), ("result", "miss"), ("tier", "l1")))] == l1["misses"]
        assert samples[("tiercache_requests_total", (("namespace", ns), ("result", "hit"), ("tier", "l2")))] == by_ns[ns]["l2_hits"]
        assert samples[("tiercache_evictions_total", (("cause", "count"), ("namespace", ns), ("tier", "l1")))] == l1["evictions_by_count"]
        assert samples[("tiercache_entries", (("namespace", ns), ("tier", "l1")))] == l1["entries"]
        assert samples[("tiercache_bytes", (("namespace", ns), ("tier", "l1")))] == l1["bytes"]
        assert samples[("tiercache_sets_total", (("namespace", ns),))] == by_ns[ns]["sets"]
        assert samples[("tiercache_promotions_total", (("namespace", ns),))] == by_ns[ns]["promotions"]
    assert stats["namespaces"]["thrash"]["evictions_by_count"] > 0
    lat = manager.metrics_snapshot()["namespaces"]["thrash"]["latency"]
    key = ("tiercache_latency_seconds_count", (("namespace", "thrash"), ("operation", "l2_get"), ("tier", "l2")))
    assert samples[key] == lat["l2_get"]["count"] > 0
    assert samples[("tiercache_l2_circuit_open", ())] == 0.0
    assert samples[("tiercache_l1_entries_all", ())] == sum(v["entries"] for v in stats["namespaces"].values())
    assert samples[("tiercache_l1_bytes_all", ())] == manager.metrics_snapshot()["l1_bytes"] > 0


def test_start_http_server_serves_the_metrics(manager: CacheManager) -> None:
    manager.set("hot", "k", 1)
    manager.get("hot", "k")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = start_http_server(port, manager)
    server = result[0] if isinstance(result, tuple) else None
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        samples = _samples(body)
        assert samples[("tiercache_requests_total", (("namespace", "hot"), ("result", "hit"), ("tier", "l1")))] == 1
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def test_the_cores_l1_histograms_bucket_as_the_python_code(impl: Any) -> None:
    """The compiled core counts timed L1 lookups in C: its buckets must be tiercache.observability.metrics' buckets."""
    core = impl.module.ReadPath({}, None, None, None, None, time.monotonic)
    rng = random.Random(11)
    values = [2.0 ** e for e in range(-30, 12)] + [10 ** rng.uniform(-9, 3) for _ in range(3000)] + [0.0]
    for v in values:
        core.record_l1_sample("ns", v)
    expected = [0] * len(Histogram.BOUNDS)
    for v in values:
        expected[bucket_of(v)] += 1
    state = core.l1_samples()["ns"]
    assert state["counts"] == expected and state["count"] == len(values)
    assert state["sum"] == pytest.approx(sum(values)) and state["max"] == max(values)


def test_latency_maximum_per_window(impl: Any, clock: Any) -> None:
    """Each kept snapshot closes a window: the trend series carry each window's own maximum."""
    core = impl.module.ReadPath({}, None, None, None, None, time.monotonic)
    metrics = Metrics(lambda: {"namespaces": {"ns": _l1(0, 0)}, "circuit": {"state": "closed"}}, interval=None,
                      timer=clock, l1_samples=core.l1_samples, histogram=impl.module.SampleHistogram)
    metrics.snapshot()
    for window_max in (0.004, 0.001, 0.002):
        for seconds in (0.0005, window_max, 0.0007):
            metrics.record("ns", "l2_get", seconds)
            core.record_l1_sample("ns", seconds / 1000)
        clock.advance(60)
        metrics.snapshot()
    series = metrics.performance_trends(minutes=60)["series"]
    assert series["l2_get_max"] == [0.004, 0.001, 0.002]
    assert series["l1_get_max"] == pytest.approx([0.000004, 0.000001, 0.000002])
    assert all(p99 <= m for p99, m in zip(series["l2_get_p99"], series["l2_get_max"]))


def test_trends_carry_memory_and_error_rates(manager: CacheManager, clock: Any) -> None:
    """performance_trends: L1 bytes and entries per namespace against budget, their totals and share of the
    budgets, and an overall error rate (L2 errors, loader errors, corrupt values per operation)."""
    metrics = manager.metrics
    assert metrics is not None
    metrics.snapshot()
    for step in range(3):
        for i in range(20 * (step + 1)):
            manager.set("hot", f"k{step}-{i}", "x" * 100)
        manager.l2.set(manager._l2_key("hot", f"bad{step}"), b"\x00garbage")
        manager.get("hot", f"bad{step}")  # (a corrupt value: one error)
        clock.advance(60)
        metrics.snapshot()
    t = manager.performance_trends(60)
    hot = t["memory"]["hot"]
    assert len(hot["bytes"]) == len(hot["entries"]) == t["points"] == 3
    assert hot["bytes"][0] < hot["bytes"][1] < hot["bytes"][2] and hot["max_bytes"] > 0
    assert t["series"]["l1_bytes"] == hot["bytes"] and t["series"]["l1_entries"] == hot["entries"]
    assert all(0 < u < 1 for u in t["series"]["l1_budget_used"])
    assert all(0 < r < 1 for r in t["series"]["error_rate"])
    assert t["trends"]["l1_budget_used"]["label"] in ("improving", "stable", "degrading")
