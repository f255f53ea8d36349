"""What the guard did, for the people on call: OpenTelemetry metrics and spans, structured logs.

Every other module calls in here through `hooks`, one line per event; the hooks themselves live
in `_hooks` (logs, key state) and `_otel_hooks` (OpenTelemetry). `hooks` is chosen once, at
import or by `configure()`, never per request:

* `Hooks`: `opentelemetry-api` is not installed (or `configure(enabled=False)`): only the
  structured log records and the key state readiness needs; each per-request hook is an empty
  method or a dict lookup.
* `OTelHooks`: instruments from the API's meter and tracer (the global providers, or those given
  to `configure`). Without an SDK they are the API's own no-ops.

Metric names and attributes are a stable API (README "Observability"). One
`logto_guard.verifications` increment per request, by its final decision: the middleware records
after the app has run, and a route check that refuses a verified token (`require_scopes`, the
FastAPI dependency, an `AuthError` raised by the route) leaves its error in the ASGI scope with
`decide()`. No attribute or log field ever holds a token, a `jti` or a secret; `client_id` is a
metric attribute only with `configure(record_client_id=True)` (it is unbounded cardinality).
"""

from __future__ import annotations

from typing import Any

from ._hooks import (
    DECISION_KEY,
    DURATION_BUCKETS,
    MAX_ATTRIBUTE_SETS,
    RECORDER_KEY,
    SCOPE_NAME,
    TOKEN_KEY,
    VERIFICATION_KEY,
    VERIFIER_KEY,
    Hooks,
    Span,
    decide,
    key_age,
    log_refusal,
)

try:
    from ._otel_hooks import OTelHooks
except ImportError:  # the `otel` extra is not installed: logs only
    OTelHooks = None  # type: ignore[assignment,misc]

__all__ = [
    "DECISION_KEY",
    "DURATION_BUCKETS",
    "MAX_ATTRIBUTE_SETS",
    "RECORDER_KEY",
    "SCOPE_NAME",
    "TOKEN_KEY",
    "VERIFICATION_KEY",
    "VERIFIER_KEY",
    "Hooks",
    "OTelHooks",
    "Span",
    "configure",
    "decide",
    "hooks",
    "key_age",
    "log_refusal",
]


# -- configuration ------------------------------------------------------------------------------


def _default() -> Hooks:
    return Hooks() if OTelHooks is None else OTelHooks()


hooks: Hooks = _default()


def configure(
    *,
    enabled: bool = True,
    meter_provider: Any = None,
    tracer_provider: Any = None,
    record_client_id: bool = False,
    trace_verifications: bool = False,
) -> Hooks:
    """Choose what the guard records; call it once at start-up (it replaces `hooks`).

    Providers default to OpenTelemetry's global ones. `record_client_id` adds `client_id` to the
    verification metrics; `trace_verifications` adds a span per verified request.
    """
    global hooks
    if not enabled or OTelHooks is None:
        if enabled and (meter_provider or tracer_provider or trace_verifications):
            from .errors import ConfigurationError

            raise ConfigurationError(
                "OpenTelemetry options need opentelemetry-api: pip install 'logto-guard[otel]'"
            )
        hooks = Hooks()
    else:
        hooks = OTelHooks(
            meter_provider,
            tracer_provider,
            record_client_id=record_client_id,
            trace_verifications=trace_verifications,
        )
    return hooks
