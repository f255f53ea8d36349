"""The hooks every other module calls, as they are without OpenTelemetry: structured logs, and
the key state readiness needs. `telemetry` chooses them or `_otel_hooks.OTelHooks`; the scope
keys and constants here are shared by both.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import weakref
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import AuthError
    from .jwks_cache import JWKSCache

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

# JWKS cache -> monotonic time its keys were last confirmed (a 200 or a 304).
confirmed_keys: weakref.WeakKeyDictionary[JWKSCache, float] = weakref.WeakKeyDictionary()


def decide(scope: MutableMapping[str, Any], error: AuthError) -> None:
    """A route check refused the request: the final decision, recorded once the app is done."""
    scope[DECISION_KEY] = error


def key_age(cache: JWKSCache) -> float | None:
    """Seconds since the cache's keys were last confirmed by the issuer; None if never."""
    confirmed = confirmed_keys.get(cache)
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
            confirmed_keys[cache] = time.monotonic()
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
                from opentelemetry.trace import StatusCode  # a real span: OpenTelemetry is here

                self.span.set_status(StatusCode.ERROR)


_NO_SPAN = Span()


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
