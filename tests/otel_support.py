"""The OpenTelemetry SDK wired to in-memory readers, and helpers to read what was recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from logto_guard import telemetry


@dataclass
class Recorded:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) of every data point of metric `name`."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return found

    def counts(self, name: str) -> dict[tuple[tuple[str, Any], ...], int]:
        """Counter values keyed by their sorted attribute items."""
        return {tuple(sorted(a.items())): p.value for a, p in self.points(name) if p.value}

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]


def recorder(**options: Any) -> Iterator[Recorded]:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.configure(meter_provider=meter_provider, tracer_provider=tracer_provider, **options)
    try:
        yield Recorded(reader, exporter)
    finally:
        telemetry.configure()
        meter_provider.shutdown()
        tracer_provider.shutdown()


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """Metrics and spans of this test (verification spans on), back to the default after."""
    yield from recorder(trace_verifications=True)


def key(**attributes: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attributes.items()))
