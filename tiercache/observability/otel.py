"""OpenTelemetry metrics of a CacheManager or AsyncCacheManager (`pip install "pytiercache[otel]"`).

    handle = instrument(manager, meter_provider=None)   # None: the global MeterProvider
    ...
    handle.close()                                       # its instruments report nothing more

The families of tiercache.observability.families, as asynchronous instruments that read the manager when the
provider's readers collect, named `tiercache.<family>` (`tiercache.requests`, `tiercache.max_bytes`,
`tiercache.l2_circuit_open`), with attributes `tiercache.namespace`, `tiercache.tier`, `tiercache.result`,
`tiercache.cause`, `tiercache.direction`, `tiercache.to` and `tiercache.operation`, units in UCUM.
Counters are observable counters (cumulative since the manager started); entries, bytes, budgets, the
circuit state and the health score are observable gauges.

Latency, in the manner of a summary: `tiercache.latency.count` and `tiercache.latency.sum` (observable
counters, exact) and `tiercache.latency` (an observable gauge per `tiercache.quantile`: 0.5, 0.9, 0.99 and
1, the largest), read from the manager's own histograms, whose buckets are a quarter of an octave wide (a
quantile is its bucket's upper bound: within 25 %). OpenTelemetry has no asynchronous histogram, and
replaying each sample into a synchronous one costs microseconds per sample at every collection.

One manager per MeterProvider: the instruments' names are fixed, and a provider gives back the instrument
it already has. Use a provider per manager, or close() the handle before instrumenting another manager.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .._extras import missing

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, Observation
except ImportError as exc:
    raise missing(exc, "otel", "tiercache.observability.otel") from exc

from .families import Family, LatencySample, collect

__all__ = ["Instrumented", "instrument"]

QUANTILES = (0.5, 0.9, 0.99, 1.0)
_LATENCY_LABELS = ("tiercache.namespace", "tiercache.tier", "tiercache.operation")


class Instrumented:
    """The instruments registered with one MeterProvider, and the manager they read. close() makes them
    report nothing more and lets the manager go (OpenTelemetry has no way to remove an instrument)."""

    def __init__(self, meter: Any, manager: Any) -> None:
        self._lock = threading.Lock()
        self._manager: Optional[Any] = None
        self._families: Dict[str, Family] = {}
        # (every manager has the same families, whatever it holds: `manager`'s name them)
        families = [f for f in collect(manager, health=False) if f.kind != "histogram"]
        families.append(Family("health_score", "gauge", "Health score, 0-100 (perform_health_assessment)", "1"))
        # the first instrument's callback reads the manager once per collection (callbacks run in the order
        # the instruments were created); the others use what it read
        self._instruments = [self._create(meter, f, refresh=(i == 0)) for i, f in enumerate(families)]
        self._instruments += [
            meter.create_observable_counter("tiercache.latency.count", callbacks=[self._latency_count],
                                            unit="{operation}", description="Operations timed"),
            meter.create_observable_counter("tiercache.latency.sum", callbacks=[self._latency_sum], unit="s",
                                            description="Time the timed operations took"),
            meter.create_observable_gauge("tiercache.latency", callbacks=[self._latency_quantiles], unit="s",
                                          description="Operation latency quantiles (L1 get sampled)"),
        ]

    @property
    def closed(self) -> bool:
        return self._manager is None

    def close(self) -> None:
        with self._lock:
            self._manager = None
            self._families = {}

    def _open(self, manager: Any) -> None:
        with self._lock:
            if self._manager is not None:
                raise ValueError("this MeterProvider already exports a tiercache manager: give each manager "
                                 "a MeterProvider of its own, or close() the first handle")
            self._manager = manager

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

        return make(f"tiercache.{family.name}", callbacks=[observe], unit=family.unit, description=family.help)

    def _refresh(self) -> None:
        manager = self._manager
        families = {f.name: f for f in collect(manager)} if manager is not None else {}
        with self._lock:
            if self._manager is manager:
                self._families = families

    def _latency(self) -> List[Tuple[Dict[str, str], LatencySample]]:
        with self._lock:
            found = self._families.get("latency")
        return [] if found is None else [(dict(zip(_LATENCY_LABELS, labels)), h) for labels, h in found.samples]

    def _latency_count(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(h.count, attributes) for attributes, h in self._latency()]

    def _latency_sum(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(h.sum, attributes) for attributes, h in self._latency()]

    def _latency_quantiles(self, options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for attributes, h in self._latency():
            for q in QUANTILES:
                value = h.quantile(q)
                if value is not None:
                    out.append(Observation(value, {**attributes, "tiercache.quantile": str(q)}))
        return out


_HANDLES: "weakref.WeakKeyDictionary[Any, Instrumented]" = weakref.WeakKeyDictionary()
_HANDLES_LOCK = threading.Lock()


def instrument(manager: Any, meter_provider: Optional[Any] = None) -> Instrumented:
    """Register OpenTelemetry instruments for `manager` (CacheManager or AsyncCacheManager) with
    `meter_provider` (default: the global one); returns the handle whose close() silences them. A provider
    exports one manager at a time (ValueError while another one's handle is open)."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    from .. import __version__

    with _HANDLES_LOCK:
        handle = _HANDLES.get(provider)
        if handle is None:
            handle = _HANDLES[provider] = Instrumented(provider.get_meter("tiercache", __version__), manager)
    handle._open(manager)
    return handle
