"""OpenTelemetry: metrics and span attributes from the pool's events, off until asked for."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import keyrouter
from tests.transports.mock_openai import RATE_LIMITED, MockOpenAI, chat, ok

LIMITED = "sk-otel-limited-000000000000000000001"
GOOD = "sk-otel-good-0000000000000000000000002"


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    stop = keyrouter.instrument_otel(meter_provider=MeterProvider(metric_readers=[reader]))
    yield reader
    stop()


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    data = reader.get_metrics_data()
    found: dict[str, list[tuple[dict[str, Any], float]]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = [
                    (dict(p.attributes or {}), getattr(p, "value", None) or getattr(p, "sum", 0))
                    for p in metric.data.data_points
                ]
    return found


def failing_over_client() -> Any:
    mock = MockOpenAI({LIMITED: RATE_LIMITED, GOOD: ok()})
    return keyrouter.KeyRoutedOpenAI(
        keys=[keyrouter.Key(LIMITED, name="limited"), keyrouter.Key(GOOD, name="good")],
        http_client=mock.client(),
        objective="round_robin",
        max_retries=0,
    )


def test_calls_failovers_and_absorbed_429s_are_counted(reader: InMemoryMetricReader) -> None:
    chat(failing_over_client())
    found = points(reader)
    assert found["keyrouter.calls"] == [
        ({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"}, 1)
    ]
    attempts = {attrs["keyrouter.key"]: value for attrs, value in found["keyrouter.attempts"]}
    assert attempts == {"limited": 1, "good": 1}
    assert [(a["keyrouter.key"], a["error.type"], v) for a, v in found["keyrouter.failovers"]] == [
        ("limited", "rate_limited", 1)
    ]
    assert [v for _, v in found["keyrouter.rate_limits_absorbed"]] == [1]


def test_capacity_gauges_read_the_global_pools(reader: InMemoryMetricReader) -> None:
    import openai

    mock = MockOpenAI({LIMITED: RATE_LIMITED, GOOD: ok()})
    keyrouter.patch(
        openai=[keyrouter.Key(LIMITED, name="limited"), keyrouter.Key(GOOD, name="good")]
    )
    chat(openai.OpenAI(http_client=mock.client(), max_retries=0))
    available = {a["keyrouter.key"]: v for a, v in points(reader)["keyrouter.key.available"]}
    assert available == {"limited": 0.0, "good": 1.0}


def test_the_current_span_gets_genai_and_keyrouter_attributes(
    reader: InMemoryMetricReader,
) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracer_provider.get_tracer("test").start_as_current_span("chat gpt-4o-mini"):
        chat(failing_over_client())
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert (attrs["keyrouter.key"], attrs["keyrouter.attempt"]) == ("good", 2)
    (event,) = [e for e in span.events if e.name == "keyrouter.failover"]
    assert dict(event.attributes or {})["keyrouter.from_key"] == "limited"
    for value in attrs.values():
        assert str(value) not in (LIMITED, GOOD)


def test_stopping_stops_counting_and_instrumenting_twice_counts_once() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    keyrouter.instrument_otel(meter_provider=provider)
    stop = keyrouter.instrument_otel(meter_provider=provider)
    client = failing_over_client()
    chat(client)
    stop()
    chat(client)
    assert [v for _, v in points(reader)["keyrouter.calls"]] == [1]


def test_without_opentelemetry_it_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    stop = keyrouter.instrument_otel()
    chat(failing_over_client())
    stop()


def test_tokens_and_cost_of_metered_calls(reader: InMemoryMetricReader) -> None:
    import openai

    keyrouter.patch(openai=[keyrouter.Key(GOOD, name="good")], usage=True)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = openai.OpenAI(http_client=MockOpenAI({GOOD: ok()}).client(), max_retries=0)
    with tracer_provider.get_tracer("test").start_as_current_span("chat"):
        chat(client)
    found = points(reader)
    tokens = {a["gen_ai.token.type"]: v for a, v in found["keyrouter.tokens"]}
    assert tokens == {"input": 3, "output": 1}  # the mock's usage block
    ((attrs, cost),) = found["keyrouter.cost"]
    assert attrs["keyrouter.key"] == "good"
    assert cost > 0
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {})["gen_ai.usage.input_tokens"] == 3


def test_quota_gauges_report_what_was_learned(reader: InMemoryMetricReader) -> None:
    import openai

    headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59"}
    keyrouter.patch(openai=[keyrouter.Key(GOOD, name="good")])
    chat(openai.OpenAI(http_client=MockOpenAI({GOOD: ok(headers)}).client(), max_retries=0))
    found = points(reader)
    remaining = {a["keyrouter.dimension"]: v for a, v in found["keyrouter.quota.remaining"]}
    assert 58 <= remaining["requests"] <= 60
    ((attrs, headroom),) = found["keyrouter.quota.headroom"]
    assert attrs["keyrouter.scope"] == "good"
    assert 0.9 < headroom <= 1.0


def test_budget_crossings_and_store_outages_are_counted(reader: InMemoryMetricReader) -> None:
    from keyrouter.core.events import BudgetThresholdCrossed, StoreDegraded
    from keyrouter.core.registry import default_book

    default_book().listeners.emit(
        [
            BudgetThresholdCrossed("pool:openai", "month:2026-12", 0.8, 8.0, 10.0, 0.0, 0.0),
            StoreDegraded("redis://127.0.0.1:6379/0", "ConnectionError", 0.0),
        ]
    )
    found = points(reader)
    assert found["keyrouter.budget.thresholds_crossed"] == [
        ({"keyrouter.budget": "pool:openai", "keyrouter.threshold": 0.8}, 1)
    ]
    assert [v for _, v in found["keyrouter.store.outages"]] == [1]
