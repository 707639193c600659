"""tiercache.otel: the OpenTelemetry instruments, read through the SDK's in-memory reader, agree with
metrics_snapshot() and stats(), for both managers."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Tuple

import pytest

pytest.importorskip("opentelemetry.sdk.metrics", reason="opentelemetry-sdk is in the [test] extra")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

from tiercache import AsyncCacheManager, CacheManager  # noqa: E402
from tiercache.observability.counters import OPERATIONS  # noqa: E402
from tiercache.observability.histogram import summarize  # noqa: E402
from tiercache.otel import instrument  # noqa: E402


def read(reader: InMemoryMetricReader) -> Dict[str, Dict[Tuple[Tuple[str, Any], ...], Any]]:
    """{metric name: {sorted attributes: data point}} of one collection."""
    out: Dict[str, Dict[Tuple[Tuple[str, Any], ...], Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name.startswith("tiercache."):  # (newer SDKs add metrics of their own)
                    out[metric.name] = {tuple(sorted(p.attributes.items())): p for p in metric.data.data_points}
    return out


def traffic(manager: Any) -> None:
    for i in range(300):
        manager.set("reports", i, {"i": i})
        manager.get("reports", i)
    for i in range(50):
        manager.get("reports", 10_000 + i)  # misses in both tiers


def check(points: Dict[str, Any], manager: Any) -> None:
    stats = manager.stats()
    l1 = stats["namespaces"]["reports"]
    counters = manager.counters.by_namespace()["reports"]
    ns = ("tiercache.namespace", "reports")

    def value(name: str, **attrs: str) -> Any:
        key = tuple(sorted([ns] + [(f"tiercache.{k}", v) for k, v in attrs.items()]))
        return points[name][key].value

    assert value("tiercache.requests", tier="l1", result="hit") == l1["hits"]
    assert value("tiercache.requests", tier="l1", result="miss") == l1["misses"]
    assert value("tiercache.requests", tier="l2", result="miss") == counters["l2_misses"] > 0
    assert value("tiercache.sets") == counters["sets"] > 0
    assert value("tiercache.entries", tier="l1") == l1["entries"]
    assert value("tiercache.bytes", tier="l1") == l1["bytes"]
    assert value("tiercache.evictions", tier="l1", cause="size") == l1["evictions_by_size"]
    assert points["tiercache.l2_circuit_open"][()].value == 0.0
    assert points["tiercache.circuit_transitions"][(("tiercache.to", "opened"),)].value == 0
    assert points["tiercache.health_score"][()].value == manager.assess_health()["overall_score"]
    histograms = manager.metrics.snapshot(keep=False)["histograms"]
    checked = 0
    for (hns, op), h in histograms.items():
        if hns != "reports" or not h["count"]:
            continue
        key = tuple(sorted([ns, ("tiercache.operation", op), ("tiercache.tier", OPERATIONS[op])]))
        assert points["tiercache.latency.count"][key].value == h["count"]
        assert points["tiercache.latency.sum"][key].value == pytest.approx(h["sum"])
        summary = summarize(h)
        for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (1.0, "max")):
            assert points["tiercache.latency"][tuple(sorted(key + (("tiercache.quantile", str(q)),)))].value \
                == pytest.approx(summary[name])
        checked += 1
    assert checked >= 2  # (L2 gets and sets at least)


PROVIDERS: Dict[int, Any] = {}


def handle_provider(handle: Any) -> Any:
    return PROVIDERS[id(handle)]


def test_sync_manager(tmp_path: Any) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test") as manager:
        handle = instrument(manager, provider)
        PROVIDERS[id(handle)] = provider
        traffic(manager)
        check(read(reader), manager)
        traffic(manager)  # a second collection: cumulative counters grown
        check(read(reader), manager)
        with pytest.raises(ValueError, match="already exports a tiercache manager"):
            instrument(manager, handle_provider(handle))
        handle.close()
        assert not any(read(reader).values())  # nothing reported once closed
        with CacheManager(f"sqlite:///{tmp_path}/other.db", env="test") as other:
            assert instrument(other, handle_provider(handle)) is handle  # the provider's instruments, reused
            traffic(other)
            check(read(reader), other)
        handle.close()


def test_a_provider_per_manager(tmp_path: Any) -> None:
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    managers = [CacheManager(f"sqlite:///{tmp_path}/{i}.db", env="test") for i in range(2)]
    try:
        for manager, reader in zip(managers, readers):
            instrument(manager, MeterProvider(metric_readers=[reader]))
        managers[0].set("reports", "a", 1)
        for manager, reader in zip(managers, readers):
            traffic(manager)
            check(read(reader), manager)
    finally:
        for manager in managers:
            manager.close()


def test_async_manager(tmp_path: Any) -> None:
    reader = InMemoryMetricReader()

    async def main() -> None:
        async with AsyncCacheManager(f"sqlite:///{tmp_path}/l2.db", env="test") as manager:
            instrument(manager, MeterProvider(metric_readers=[reader]))
            for i in range(300):
                await manager.set("reports", i, {"i": i})
                await manager.get("reports", i)
            for i in range(50):
                await manager.get("reports", 10_000 + i)
            check(read(reader), manager)

    asyncio.run(main())


def test_missing_extra_is_named(monkeypatch: Any) -> None:
    import importlib
    import sys

    from tiercache import MissingExtraError

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "tiercache.observability.otel", raising=False)
    with pytest.raises(MissingExtraError, match=r'pip install "pytiercache\[otel\]"'):
        importlib.import_module("tiercache.observability.otel")
