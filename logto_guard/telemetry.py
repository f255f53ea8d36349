"""What the guard did, for the people on call: OpenTelemetry metrics and spans, structured logs.

Every other module calls in here through `hooks`, one line per event, and all the logic lives
here. `hooks` is chosen once, at import or by `configure()`, never per request:

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

import base64
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .errors import AuthError
    from .jwks_cache import JWKSCache

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:  # the `otel` extra is not installed: logs only
    otel_metrics = otel_trace = None  # type: ignore[assignment]

__all__ = ["Hooks", "OTelHooks", "configure", "decide", "hooks", "key_age"]

logger = logging.getLogger("logto_guard")
jwks_logger = logging.getLogger("logto_guard.jwks")

SCOPE_NAME = "logto_guard"
#: ASGI scope keys. TOKEN_KEY is `_asgi.TOKEN_KEY` (not imported: the verifier, which calls in
#: here, stays free of Starlette).
TOKEN_KEY = "logto_guard.token"  # noqa: S105 - a scope key, not a secret
DECISION_KEY = "logto_guard.decision"
VERIFICATION_KEY = "logto_guard.verification"
VERIFIER_KEY = "logto_guard.verifier"  # the FastAPI dependency's verifier, when it verified
RECORDER_KEY = "logto_guard.recorder"  # set once the FastAPI dependency's recorder is in place

#: Histogram buckets, seconds: a cache hit is ~2 µs, a first-seen token ~0.1-1 ms, a cold
#: start waits for a JWKS fetch (up to the fetch timeout).
DURATION_BUCKETS = (
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0
)  # fmt: skip

#: With `record_client_id`, distinct attribute sets kept before client_ids are left out.
MAX_ATTRIBUTE_SETS = 1000  # under the SDK's own default limit (2,000 per metric)

_cache_missed: ContextVar[bool] = ContextVar("logto_guard_cache_missed", default=False)
# JWKS cache -> monotonic time its keys were last confirmed (a 200 or a 304).
_confirmed: weakref.WeakKeyDictionary[JWKSCache, float] = weakref.WeakKeyDictionary()


def decide(scope: MutableMapping[str, Any], error: AuthError) -> None:
    """A route check refused the request: the final decision, recorded once the app is done."""
    scope[DECISION_KEY] = error


def key_age(cache: JWKSCache) -> float | None:
    """Seconds since the cache's keys were last confirmed by the issuer; None if never."""
    confirmed = _confirmed.get(cache)
    return None if confirmed is None else time.monotonic() - confirmed


class Hooks:
    """The calls the rest of the package makes. This base class logs and keeps key state only."""

    # -- the per-request path (middleware, FastAPI dependency, verifier) ---------------------

    def start(self) -> float:
        """Before verification: a timestamp for `verified`/`refused`."""
        return 0.0

    def cache_miss(self) -> None:
        """The verified-token cache did not answer (called by the verifier's full path)."""

    def verified(self, scope: MutableMapping[str, Any], started: float) -> None:
        """Verification is over; its duration and cache use wait in the scope for `done`."""

    def refused(
        self, scope: MutableMapping[str, Any], verifier: object, started: float, error: AuthError
    ) -> None:
        """The middleware refuses the request itself (no token, bad token, no keys)."""
        self.verified(scope, started)
        scope[DECISION_KEY] = error
        self.done(scope, verifier)

    def done(self, scope: Mapping[str, Any], verifier: object) -> None:
        """The request's final decision is known: record it once."""
        error = scope.get(DECISION_KEY)
        if error is not None:
            log_refusal(scope, verifier, error)

    # -- keys ---------------------------------------------------------------------------------

    def jwks_fetch_started(self, cache: JWKSCache) -> Any:
        """A fetch of the cache's keys begins; the returned handle goes to `jwks_fetch_done`."""
        return None

    def jwks_fetch_done(
        self, cache: JWKSCache, handle: Any, result: str, *, changed: bool = False
    ) -> None:
        """`result` is "updated" (200), "not_modified" (304) or "failed"."""
        if result != "failed":
            _confirmed[cache] = time.monotonic()
        if changed and cache.keys is not None:
            kids = sorted(kid for kid in cache.keys.kids if kid)
            jwks_logger.info(
                "JWKS of %s loaded: %d usable keys (kids %s)",
                cache.issuer,
                len(cache.keys),
                ", ".join(kids) or "none",
                extra={"issuer": cache.issuer, "kid": ",".join(kids), "reason": "keys_changed"},
            )

    def http_get(self, url: str) -> AbstractContextManager[Span]:
        """Around one GET of discovery or JWKS; `.status(code)` once the answer is in."""
        return nullcontext(_NO_SPAN)


class Span:
    """An HTTP GET in progress (a no-op without OpenTelemetry)."""

    def __init__(self, span: Any = None) -> None:
        self.span = span
        self.code: int | None = None

    def status(self, code: int) -> None:
        self.code = code
        if self.span is not None:
            self.span.set_attribute("http.response.status_code", code)
            if code >= 400:
                self.span.set_attribute("error.type", str(code))
                self.span.set_status(otel_trace.StatusCode.ERROR)


_NO_SPAN = Span()


class OTelHooks(Hooks):
    """Hooks that also record through `opentelemetry-api`."""

    def __init__(
        self,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        *,
        record_client_id: bool = False,
        trace_verifications: bool = False,
    ) -> None:
        from ._version import __version__

        meter = otel_metrics.get_meter(SCOPE_NAME, __version__, meter_provider)
        self.tracer = otel_trace.get_tracer(SCOPE_NAME, __version__, tracer_provider)
        self.record_client_id = record_client_id
        self.trace_verifications = trace_verifications
        # Counted here and reported when the reader collects (an asynchronous counter exports
        # the same monotonic sum): a counter add through the SDK costs ~6 µs, as much as the
        # whole guarded request with a reused token; a lock and an increment cost ~0.1 µs.
        self._lock = threading.Lock()
        # (outcome, error, reason, cache, client_id) -> [count, counter attrs, histogram attrs]
        self._entries: dict[tuple[Any, ...], list[Any]] = {}
        meter.create_observable_counter(
            "logto_guard.verifications",
            callbacks=[self._observe_verifications],
            unit="{request}",
            description="Requests decided by logto-guard, by final outcome",
        )
        self.duration = meter.create_histogram(
            "logto_guard.verification.duration",
            unit="s",
            description="Time spent verifying the request's access token",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.fetches = meter.create_counter(
            "logto_guard.jwks.fetches",
            unit="{fetch}",
            description="Discovery + JWKS fetches, by result",
        )
        meter.create_observable_gauge(
            "logto_guard.jwks.key_age",
            callbacks=[_observe_key_age],
            unit="s",
            description="Seconds since the issuer last confirmed the signing keys",
        )

    def start(self) -> float:
        _cache_missed.set(False)
        return time.perf_counter()

    def cache_miss(self) -> None:
        _cache_missed.set(True)

    def verified(self, scope: MutableMapping[str, Any], started: float) -> None:
        scope[VERIFICATION_KEY] = (started, time.perf_counter() - started, _cache_missed.get())

    def done(self, scope: Mapping[str, Any], verifier: object) -> None:
        verification = scope.get(VERIFICATION_KEY)
        error = scope.get(DECISION_KEY)
        token = scope.get(TOKEN_KEY)
        if error is None and token is None:
            return  # nothing was verified or decided (optional mode, no token)
        if error is not None:
            log_refusal(scope, verifier, error)
        started, seconds, missed = verification or (0.0, None, True)
        cache = "miss" if missed or token is None else "hit"
        client_id = getattr(token, "client_id", None) if self.record_client_id else None
        if error is None:
            key: tuple[Any, ...] = ("accepted", None, None, cache, client_id)
        else:
            key = ("rejected", error.error, type(error).__name__, cache, client_id)
        entry = self._entries.get(key) or self._entry(key)
        with self._lock:
            entry[0] += 1
        if seconds is not None:
            self.duration.record(seconds, entry[2])
            if self.trace_verifications:
                self._verification_span(started, seconds, entry[1])

    def _entry(self, key: tuple[Any, ...]) -> list[Any]:
        if key[4] is not None and len(self._entries) >= MAX_ATTRIBUTE_SETS:
            key = (*key[:4], None)  # too many client_ids: count the rest without one
            if key in self._entries:
                return self._entries[key]
        with self._lock:
            return self._entries.setdefault(key, [0, *_attribute_dicts(key)])

    def _observe_verifications(self, options: Any) -> Iterable[Any]:
        with self._lock:
            entries = [(count, attributes) for count, attributes, _ in self._entries.values()]
        for count, attributes in entries:
            yield otel_metrics.Observation(count, attributes)

    def _verification_span(self, started: float, seconds: float, attrs: dict[str, str]) -> None:
        # Made after the fact with its real start and end: it costs nothing until then.
        end_ns = time.time_ns() - int((time.perf_counter() - started - seconds) * 1e9)
        span = self.tracer.start_span(
            "logto_guard.verify",
            start_time=end_ns - int(seconds * 1e9),
            attributes={f"logto_guard.{name}": value for name, value in attrs.items()},
        )
        if attrs["outcome"] == "rejected":
            span.set_status(otel_trace.StatusCode.ERROR)
            span.set_attribute("error.type", attrs["reason"])
        span.end(end_time=end_ns)

    def jwks_fetch_started(self, cache: JWKSCache) -> Any:
        span = self.tracer.start_span(
            "logto_guard.jwks.fetch", attributes={"logto_guard.issuer": cache.issuer}
        )
        return span, otel_context_attach(span)

    def jwks_fetch_done(
        self, cache: JWKSCache, handle: Any, result: str, *, changed: bool = False
    ) -> None:
        super().jwks_fetch_done(cache, handle, result, changed=changed)
        self.fetches.add(1, {"result": result, "issuer": cache.issuer})
        if handle is None:
            return
        span, token = handle
        span.set_attribute("logto_guard.jwks.result", result)
        if result == "failed":
            span.set_status(otel_trace.StatusCode.ERROR, cache.last_error)
            span.set_attribute("error.type", "fetch_failed")
        otel_context_detach(token)
        span.end()

    @contextmanager
    def http_get(self, url: str) -> Iterator[Span]:
        # HTTP client span semantic conventions: name = method, kind CLIENT.
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        attributes: dict[str, str | int] = {
            "http.request.method": "GET",
            "url.full": url,
            "server.address": parts.hostname or "",
            "server.port": port,
        }
        with self.tracer.start_as_current_span(
            "GET",
            kind=otel_trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            answer = Span(span)
            try:
                yield answer
            except BaseException as exc:
                if answer.code is None or answer.code < 400:  # else error.type is the status
                    span.set_attribute("error.type", type(exc).__name__)
                span.set_status(otel_trace.StatusCode.ERROR)
                raise


def _attribute_dicts(key: tuple[Any, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """(counter attributes, histogram attributes), built once per attribute set."""
    outcome, error, reason, cache, client_id = key
    timed = {"outcome": outcome, "cache": cache}
    if reason is not None:
        timed["reason"] = reason
    if client_id is not None:
        timed["client_id"] = client_id
    counted = dict(timed)
    if error is not None:
        counted["error"] = error
    return counted, timed


def _observe_key_age(options: Any) -> Iterable[Any]:
    now = time.monotonic()
    for cache, confirmed in list(_confirmed.items()):
        yield otel_metrics.Observation(now - confirmed, {"issuer": cache.issuer})


def otel_context_attach(span: Any) -> Any:
    from opentelemetry import context

    return context.attach(otel_trace.set_span_in_context(span))


def otel_context_detach(token: Any) -> None:
    from opentelemetry import context

    context.detach(token)


# -- structured log records ----------------------------------------------------------------------


def log_refusal(scope: Mapping[str, Any], verifier: object, error: AuthError) -> None:
    """One record per refused request, with `extra` fields JSON formatters pick up."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    token = scope.get(TOKEN_KEY)
    fields: dict[str, Any] = {
        "reason": type(error).__name__,
        "error": error.error,
        "issuer": getattr(token, "issuer", None) or getattr(verifier, "issuer", None),
        "kid": _unverified_kid(scope),
        "client_id": getattr(token, "client_id", None),  # only from a verified token
    }
    logger.debug("request refused: %s (%s)", fields["reason"], error.description, extra=fields)


def _unverified_kid(scope: Mapping[str, Any]) -> str | None:
    """The `kid` in the token header, for the log only (never trusted, length-capped)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            head = value[7:].split(b".", 1)[0].strip()
            if not 0 < len(head) <= 1024:
                return None
            try:
                header = json.loads(base64.urlsafe_b64decode(head + b"=" * (-len(head) % 4)))
            except ValueError:
                return None
            kid = header.get("kid") if isinstance(header, dict) else None
            return kid[:128] if isinstance(kid, str) else None
    return None


# -- configuration ------------------------------------------------------------------------------


def _default() -> Hooks:
    return Hooks() if otel_metrics is None else OTelHooks()


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
    if not enabled or otel_metrics is None:
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
