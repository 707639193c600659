"""OpenTelemetry metrics: `tiercache.otel.instrument(manager, meter_provider=None)`
(tiercache.observability.otel, which documents the instruments)."""

from .observability.otel import Instrumented, instrument

__all__ = ["Instrumented", "instrument"]
