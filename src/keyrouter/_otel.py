"""`keyrouter.instrument_otel()`: the pool's events as OpenTelemetry metrics and span attributes.

Built on `on_event`: nothing here runs until it is called, and `import keyrouter` never imports
OpenTelemetry. Without `opentelemetry-api` installed (`pip install 'keyrouter[otel]'`) it is a
no-op that says so once in the log.

Metrics (meter `keyrouter`): `keyrouter.calls`, `keyrouter.attempts`, `keyrouter.failovers`,
`keyrouter.rate_limits_absorbed`, `keyrouter.key.state_changes`, `gen_ai.client.token.usage`,
`keyrouter.tokens` and `keyrouter.cost` (pools that keep usage),
`keyrouter.budget.thresholds_crossed`, `keyrouter.store.outages`, and gauges read from the
global pools when the reader collects: `keyrouter.key.available`, `keyrouter.quota.remaining`,
`keyrouter.quota.headroom`. Span attributes go on the span current when a key is granted (the
SDK call's span when the SDK is instrumented): the GenAI semantic conventions'
`gen_ai.provider.name` and `gen_ai.request.model`, and `keyrouter.key`, `keyrouter.scope`,
`keyrouter.attempt`, `keyrouter.objective`, and `gen_ai.usage.input_tokens` /
`output_tokens` when the usage is read while the span is open; each failover adds a
`keyrouter.failover` span event.
Keys appear by label (name, else fingerprint), never by secret.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

from keyrouter._events import on_event
from keyrouter.core.events import (
    BudgetThresholdCrossed,
    Event,
    Failover,
    KeyStateChanged,
    RequestRouted,
    StoreDegraded,
    UsageRecorded,
)
from keyrouter.core.health import KeyState

__all__ = ["instrument_otel"]

_log = logging.getLogger("keyrouter")
_lock = threading.Lock()
_remove: Callable[[], None] | None = None

GENAI_PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "azure": "azure.ai.openai",
}
"""keyrouter's provider names -> `gen_ai.provider.name` values of the GenAI conventions."""


def instrument_otel(*, meter_provider: Any = None) -> Callable[[], None]:
    """Report the pool's events to OpenTelemetry; returns a function that stops it.

    `meter_provider` defaults to the global one (`opentelemetry.metrics.get_meter_provider()`).
    Calling it again replaces the previous instrumentation (no double counting). Returns a
    no-op when OpenTelemetry is not installed.
    """
    global _remove
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        _log.info("keyrouter.instrument_otel: opentelemetry-api is not installed; doing nothing")
        return lambda: None
    with _lock:
        if _remove is not None:
            _remove()
        provider = meter_provider or metrics.get_meter_provider()
        from keyrouter import __version__

        bridge = _Bridge(provider.get_meter("keyrouter", __version__), trace)
        unsubscribe = on_event(bridge)

        def remove() -> None:
            global _remove
            bridge.active = False
            unsubscribe()
            if _remove is remove:
                _remove = None

        _remove = remove
    return remove


class _Bridge:
    """The listener: one event in, counters and span attributes out."""

    def __init__(self, meter: Any, trace: Any) -> None:
        self.active = True
        self._trace = trace
        self._calls = meter.create_counter(
            "keyrouter.calls", unit="{call}", description="Requests keyrouter routed"
        )
        self._attempts = meter.create_counter(
            "keyrouter.attempts", unit="{attempt}", description="Attempts, per key granted"
        )
        self._failovers = meter.create_counter(
            "keyrouter.failovers",
            unit="{failover}",
            description="Attempts that failed and went on to another key",
        )
        self._absorbed = meter.create_counter(
            "keyrouter.rate_limits_absorbed",
            unit="{response}",
            description="429s from the provider that the caller never saw",
        )
        self._changes = meter.create_counter(
            "keyrouter.key.state_changes", unit="{change}", description="Key state transitions"
        )
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per call"
        )
        self._tokens = meter.create_counter(
            "keyrouter.tokens", unit="{token}", description="Tokens used, per key"
        )
        self._budget = meter.create_counter(
            "keyrouter.budget.thresholds_crossed",
            unit="{crossing}",
            description="Budget thresholds reached (once per budget, period and threshold)",
        )
        self._outages = meter.create_counter(
            "keyrouter.store.outages", unit="{outage}", description="Shared store outages"
        )
        self._cost = meter.create_counter(
            "keyrouter.cost", unit="USD", description="What calls cost (calls with a known price)"
        )
        meter.create_observable_gauge(
            "keyrouter.key.available",
            callbacks=[self._available],
            unit="1",
            description="1 when the key can serve now, else 0 (global pools)",
        )
        meter.create_observable_gauge(
            "keyrouter.quota.remaining",
            callbacks=[self._remaining],
            unit="1",
            description="Units left per scope and dimension, as predicted (global pools)",
        )
        meter.create_observable_gauge(
            "keyrouter.quota.headroom",
            callbacks=[self._headroom],
            unit="1",
            description="Fraction of the scope's tightest limit left, 0..1 (global pools)",
        )

    def __call__(self, event: Event) -> None:
        if not self.active:
            return
        if isinstance(event, RequestRouted):
            self._routed(event)
        elif isinstance(event, Failover):
            self._failover(event)
        elif isinstance(event, UsageRecorded):
            self._usage(event)
        elif isinstance(event, KeyStateChanged):
            attrs = {"keyrouter.key": event.key, "keyrouter.state": event.new.value}
            self._changes.add(1, attrs)
        elif isinstance(event, BudgetThresholdCrossed):
            self._budget.add(
                1, {"keyrouter.budget": event.budget, "keyrouter.threshold": event.threshold}
            )
        elif isinstance(event, StoreDegraded):
            self._outages.add(1, {"keyrouter.store": event.store})

    def _routed(self, event: RequestRouted) -> None:
        provider = GENAI_PROVIDER.get(event.provider, event.provider)
        base: dict[str, str] = {"gen_ai.provider.name": provider}
        if event.model:
            base["gen_ai.request.model"] = event.model
        if event.attempt == 1:
            self._calls.add(1, base)
        self._attempts.add(1, {**base, "keyrouter.key": event.key, "keyrouter.scope": event.scope})
        span = self._trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    **base,
                    "keyrouter.key": event.key,
                    "keyrouter.scope": event.scope,
                    "keyrouter.attempt": event.attempt,
                    "keyrouter.objective": event.decision.objective,
                }
            )

    def _failover(self, event: Failover) -> None:
        provider = GENAI_PROVIDER.get(event.provider, event.provider)
        attrs = {
            "gen_ai.provider.name": provider,
            "keyrouter.key": event.from_key,
            "error.type": event.kind,
        }
        self._failovers.add(1, attrs)
        if event.kind == "rate_limited":
            self._absorbed.add(
                1, {"gen_ai.provider.name": provider, "keyrouter.key": event.from_key}
            )
        span = self._trace.get_current_span()
        if span.is_recording():
            details: dict[str, str | int] = {
                "keyrouter.from_key": event.from_key,
                "keyrouter.to_key": event.to_key,
                "error.type": event.kind,
            }
            if event.status is not None:
                details["http.response.status_code"] = event.status
            span.add_event("keyrouter.failover", details)

    def _usage(self, event: UsageRecorded) -> None:
        base = {"gen_ai.provider.name": GENAI_PROVIDER.get(event.provider, event.provider)}
        if event.model:
            base["gen_ai.request.model"] = event.model
        per_key = {**base, "keyrouter.key": event.key}
        for kind, count in (
            ("input", event.usage.input_tokens),
            ("output", event.usage.output_tokens),
        ):
            self._token_usage.record(count, {**base, "gen_ai.token.type": kind})
            self._tokens.add(count, {**per_key, "gen_ai.token.type": kind})
        if event.cost_usd is not None:
            self._cost.add(event.cost_usd, per_key)
        span = self._trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": event.usage.input_tokens,
                    "gen_ai.usage.output_tokens": event.usage.output_tokens,
                }
            )

    # -- gauges, read when the metric reader collects -------------------------------------

    def _observe(self, pick: Callable[[str, Any], Iterable[tuple[float, dict[str, str]]]]) -> Any:
        from opentelemetry.metrics import Observation

        from keyrouter._snapshot import snapshot

        if not self.active:
            return []
        observations = []
        for provider, keys in snapshot().items():
            for key in keys:
                for value, attrs in pick(provider, key):
                    labels = {"gen_ai.provider.name": GENAI_PROVIDER.get(provider, provider)}
                    observations.append(Observation(value, {**labels, **attrs}))
        return observations

    def _available(self, options: Any) -> Any:
        return self._observe(
            lambda provider, key: [
                (
                    1.0 if key.state is KeyState.AVAILABLE else 0.0,
                    {"keyrouter.key": key.key, "keyrouter.state": key.state.value},
                )
            ]
        )

    def _remaining(self, options: Any) -> Any:
        seen: set[tuple[str, str]] = set()

        def pick(provider: str, key: Any) -> list[tuple[float, dict[str, str]]]:
            out = []
            for name, dim in key.dimensions.items():
                if dim.available is None or (key.scope, name) in seen:
                    continue
                seen.add((key.scope, name))
                out.append(
                    (dim.available, {"keyrouter.scope": key.scope, "keyrouter.dimension": name})
                )
            return out

        return self._observe(pick)

    def _headroom(self, options: Any) -> Any:
        seen: set[str] = set()

        def pick(provider: str, key: Any) -> list[tuple[float, dict[str, str]]]:
            if key.scope in seen or not math.isfinite(key.headroom):
                return []
            seen.add(key.scope)
            return [(key.headroom, {"keyrouter.scope": key.scope})]

        return self._observe(pick)
