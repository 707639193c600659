"""OpenTelemetry metrics of a CacheManager or AsyncCacheManager (`pip install "pytiercache[otel]"`).

    handle = instrument(manager, meter_provider=None)   # None: the global MeterProvider
    ...
    handle.close()                                       # the instruments report nothing more

The families of tiercache.observability.families, as OpenTelemetry instruments read when the provider's
readers collect: `tiercache.<family>` with dots for underscores in the name (`tiercache.requests`,
`tiercache.promoted.hits`, `tiercache.l2.circuit.open`), attributes `tiercache.namespace`, `tiercache.tier`,
`tiercache.result`, `tiercache.cause`, `tiercache.direction`, `tiercache.to` and `tiercache.operation`,
units in UCUM. Counters are observable counters (cumulative since the manager started), entries, bytes,
budgets, the circuit state and the health score observable gauges.

Latency is the histogram `tiercache.latency` (seconds, bucket bounds at each power of two). OpenTelemetry
has no observable histogram, so at each collection the samples the manager's own histograms gained since
the last one are recorded into it, each at the upper bound of the tiercache bucket it fell in (those are
a quarter of an octave apart: within 25 % of the true value). The counts are exact; the sum is that of
the bounds.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .._extras import missing

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, Observation
except ImportError as exc:
    raise missing(exc, "otel", "tiercache.observability.otel") from exc

from .families import BOUNDS, Family, LatencySample, collect

__all__ = ["Instrumented", "instrument"]

_POW2 = [BOUNDS[i] for i in range(len(BOUNDS)) if i % 4 == 0]  # the histogram's bucket bounds


def _otel_name(family: str) -> str:
    return "tiercache." + family.replace("_", ".")


class Instrumented:
    """The instruments registered for one manager. close() makes them report nothing more (OpenTelemetry
    has no way to remove an instrument)."""

    def __init__(self, manager: Any, meter: Any) -> None:
        self._manager = manager
        self._lock = threading.Lock()
        self._families: Dict[str, Family] = {}
        self._seen: Dict[Tuple[str, ...], List[int]] = {}  # each histogram's counts at the last collection
        self._closed = False
        first = collect(manager, health=False)
        self._latency = meter.create_histogram(
            "tiercache.latency", unit="s", description="Operation latency (L1 get sampled)",
            explicit_bucket_boundaries_advisory=_POW2)
        # the first instrument's callback reads every family once per collection (callbacks run in the
        # order the instruments were created); the others read what it found
        self._instruments = [
            self._create(meter, f, refresh=(i == 0)) for i, f in enumerate(
                [f for f in first if f.kind != "histogram"]
                + [Family("health_score", "gauge", "Health score, 0-100 (perform_health_assessment)", "1")])
        ]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._families = {}

    def _create(self, meter: Any, family: Family, refresh: bool) -> Any:
        make = meter.create_observable_counter if family.kind == "counter" else meter.create_observable_gauge
        keys = tuple(f"tiercache.{label}" for label in family.labels)

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if refresh:
                self._refresh()
            with self._lock:
                found = self._families.get(family.name)
            if found is None:
                return []
            return [Observation(value, dict(zip(keys, labels))) for labels, value in found.samples]

        return make(_otel_name(family.name), callbacks=[observe], unit=family.unit, description=family.help)

    def _refresh(self) -> None:
        with self._lock:
            if self._closed:
                return
        families = {f.name: f for f in collect(self._manager)}
        latency = families.pop("latency", None)
        with self._lock:
            if self._closed:
                return
            self._families = families
            if latency is not None:
                self._record(latency)

    def _record(self, latency: Family) -> None:
        """Record into the histogram the samples each manager histogram gained since the last collection."""
        for labels, h in latency.samples:
            assert isinstance(h, LatencySample)
            before = self._seen.get(labels)
            self._seen[labels] = h.cumulative
            attributes = dict(zip(("tiercache.namespace", "tiercache.tier", "tiercache.operation"), labels))
            previous = 0
            for i, total in enumerate(h.cumulative):
                gained = (total - previous) - ((before[i] - (before[i - 1] if i else 0)) if before else 0)
                previous = total
                for _ in range(max(0, gained)):
                    self._latency.record(BOUNDS[i], attributes)


def instrument(manager: Any, meter_provider: Optional[Any] = None) -> Instrumented:
    """Register OpenTelemetry instruments for `manager` (CacheManager or AsyncCacheManager) with
    `meter_provider` (default: the global one); returns the handle whose close() silences them."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    from .. import __version__

    return Instrumented(manager, provider.get_meter("tiercache", __version__))
