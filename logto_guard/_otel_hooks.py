"""The hooks with OpenTelemetry: `opentelemetry-api` instruments and spans on top of `Hooks`.

Imported only when `opentelemetry-api` is installed (`telemetry` checks). Without an SDK the
instruments are the API's own no-ops.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace

from ._hooks import (
    DECISION_KEY,
    DURATION_BUCKETS,
    MAX_ATTRIBUTE_SETS,
    SCOPE_NAME,
    TOKEN_KEY,
    VERIFICATION_KEY,
    Hooks,
    Span,
    confirmed_keys,
    log_refusal,
)

if TYPE_CHECKING:
    from .jwks_cache import JWKSCache

# When this task's verifier last missed its cache (perf_counter): a miss later than a request's
# start is that request's, so a cache hit writes nothing here.
_last_miss: ContextVar[float] = ContextVar("logto_guard_last_miss", default=-math.inf)


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

        self.tracer = otel_trace.get_tracer(SCOPE_NAME, __version__, tracer_provider)
        self.record_client_id = record_client_id
        self.trace_verifications = trace_verifications
        instruments = _instruments_of(meter_provider, __version__)
        self.duration, self.fetches = instruments.duration, instruments.fetches
        self._lock, self._entries = instruments.lock, instruments.entries

    def start(self) -> float:
        return time.perf_counter()

    def cache_miss(self) -> None:
        _last_miss.set(time.perf_counter())

    def verified(self, scope: MutableMapping[str, Any], started: float) -> None:
        missed = _last_miss.get() >= started
        scope[VERIFICATION_KEY] = (started, time.perf_counter() - started, missed)

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
        lock = self._lock  # acquire/release: half the cost of `with` on this path
        lock.acquire()
        try:
            entry[0] += 1
        finally:
            lock.release()
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
        return span, otel_context.attach(otel_trace.set_span_in_context(span))

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
        otel_context.detach(token)
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


class _Instruments:
    """One meter provider's instruments, made once per process.

    OpenTelemetry keeps the first of two instruments of the same name and drops the second
    one's callbacks, so a `configure()` that made new ones would count into nothing (the import
    already made them on the global provider). Every `OTelHooks` of a provider shares these,
    counts included: `logto_guard.verifications` stays one monotonic sum.
    """

    def __init__(self, meter: Any) -> None:
        # Counted here and reported when the reader collects (an asynchronous counter exports
        # the same monotonic sum): a counter add through the SDK costs ~6 µs, as much as the
        # whole guarded request with a reused token; a lock and an increment cost ~0.1 µs.
        self.lock = threading.Lock()
        # (outcome, error, reason, cache, client_id) -> [count, counter attrs, histogram attrs]
        self.entries: dict[tuple[Any, ...], list[Any]] = {}
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

    def _observe_verifications(self, options: Any) -> Iterable[Any]:
        with self.lock:
            entries = [(count, attributes) for count, attributes, _ in self.entries.values()]
        for count, attributes in entries:
            yield otel_metrics.Observation(count, attributes)


# A meter provider given to `configure` -> its instruments. The global provider's are kept
# under a stand-in key (None is not a weak key); OpenTelemetry's global meter delegates to
# whichever provider is set later, so they stay right.
_instruments: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()


class _GlobalMeterProvider:
    """The key of the global provider's instruments."""


_GLOBAL_PROVIDER = _GlobalMeterProvider()


def _instruments_of(meter_provider: Any, version: str) -> _Instruments:
    key = _GLOBAL_PROVIDER if meter_provider is None else meter_provider
    made = _instruments.get(key)
    if made is None:
        meter = otel_metrics.get_meter(SCOPE_NAME, version, meter_provider)
        made = _instruments[key] = _Instruments(meter)
    return made


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
    for cache, confirmed in list(confirmed_keys.items()):
        yield otel_metrics.Observation(now - confirmed, {"issuer": cache.issuer})
