"""Metrics, spans and structured logs, with the OpenTelemetry SDK's in-memory reader and span
exporter, against the real test provider over loopback.

No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.
"""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Security
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from otel_support import Recorded, key, otel, recorder
from readme import block
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from logto_guard import _asgi, telemetry
from logto_guard.errors import InsufficientScope
from logto_guard.fastapi import LogtoSecurity
from logto_guard.jwks_cache import JWKSCache
from logto_guard.middleware import LogtoGuard, get_access_token
from logto_guard.scopes import require_scopes
from logto_guard.token import AccessToken
from logto_guard.verifier import TokenVerifier

try:
    from oidc_provider import SHOP, OidcProvider
except ImportError:  # pragma: no cover
    from .oidc_provider import SHOP, OidcProvider

__all__ = ["otel"]  # the fixture, imported for pytest

VERIFICATIONS = "logto_guard.verifications"
DURATION = "logto_guard.verification.duration"
FETCHES = "logto_guard.jwks.fetches"


def starlette_app(provider: OidcProvider, **options: Any) -> Starlette:
    @require_scopes("read:products")
    async def products(request: Request) -> JSONResponse:
        return JSONResponse({"sub": get_access_token(request).sub})

    @require_scopes("write:products")
    async def create(request: Request) -> JSONResponse:
        return JSONResponse({"created": True})

    async def refuses(request: Request) -> JSONResponse:
        raise InsufficientScope(required=["admin"])  # the route's own check

    routes = [
        Route("/products", products),
        Route("/products", create, methods=["POST"]),
        Route("/refuses", refuses),
    ]
    verifier = TokenVerifier(provider.issuer, audience=SHOP)
    # As add_middleware does: inside Starlette's error middleware, so a route's AuthError
    # reaches LogtoGuard instead of becoming a 500 first.
    guard = Middleware(LogtoGuard, verifier=verifier, **options)
    return Starlette(routes=routes, middleware=[guard])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_one_count_per_request_by_final_decision(
    oidc_provider: OidcProvider, otel: Recorded
) -> None:
    token = oidc_provider.token()  # shop-reader: read:products
    expired = oidc_provider.sign({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600})
    head, body, sig = oidc_provider.sign().split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    with TestClient(starlette_app(oidc_provider)) as client:
        for _ in range(3):
            assert client.get("/products", headers=bearer(token)).status_code == 200
        for _ in range(2):
            assert client.post("/products", headers=bearer(token)).status_code == 403
        assert client.get("/refuses", headers=bearer(token)).status_code == 403
        for _ in range(2):
            assert client.get("/products", headers=bearer(expired)).status_code == 401
        assert client.get("/products", headers=bearer(forged)).status_code == 401
        assert client.get("/products").status_code == 401

    rejected = {"outcome": "rejected", "cache": "miss"}
    insufficient = {"outcome": "rejected", "error": "insufficient_scope", "cache": "hit"}
    assert otel.counts(VERIFICATIONS) == {
        key(outcome="accepted", cache="miss"): 2,  # cached from its second sighting
        key(outcome="accepted", cache="hit"): 1,
        key(**insufficient, reason="InsufficientScope"): 3,  # never also counted as accepted
        key(**rejected, error="invalid_token", reason="ExpiredToken"): 2,
        key(**rejected, error="invalid_token", reason="InvalidSignature"): 1,
        key(**rejected, reason="MissingToken"): 1,
    }
    durations = otel.points(DURATION)
    assert sum(p.count for _, p in durations) == 10
    assert all("error" not in attrs for attrs, _ in durations)
    hit = next(p for a, p in durations if a == {"outcome": "accepted", "cache": "hit"})
    miss = next(p for a, p in durations if a == {"outcome": "accepted", "cache": "miss"})
    assert 0 < hit.sum / hit.count < miss.sum  # a cache hit costs less than a full check

    # One startup fetch, and nothing secret in any attribute.
    assert otel.counts(FETCHES) == {key(result="updated", issuer=oidc_provider.issuer): 1}
    recorded = json.dumps([a for name in (VERIFICATIONS, DURATION) for a, _ in otel.points(name)])
    assert token not in recorded and token.split(".")[1] not in recorded
    assert "jti" not in recorded and "client_id" not in recorded and "shop-reader" not in recorded


def test_fetch_spans_follow_http_client_conventions(
    oidc_provider: OidcProvider, otel: Recorded
) -> None:
    with TestClient(starlette_app(oidc_provider)) as client:
        assert client.get("/products", headers=bearer(oidc_provider.token())).status_code == 200
    (fetch,) = otel.spans("logto_guard.jwks.fetch")
    assert fetch.attributes is not None
    assert fetch.attributes["logto_guard.issuer"] == oidc_provider.issuer
    assert fetch.attributes["logto_guard.jwks.result"] == "updated"
    gets = otel.spans("GET")
    assert [s.attributes and s.attributes["url.full"] for s in gets] == [
        oidc_provider.discovery_url,
        oidc_provider.jwks_uri,
    ]
    for span in gets:
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == fetch.context.span_id
        assert span.attributes is not None
        assert span.attributes["http.request.method"] == "GET"
        assert span.attributes["http.response.status_code"] == 200
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == oidc_provider.port
    (verify,) = otel.spans("logto_guard.verify")
    assert verify.attributes == {"logto_guard.outcome": "accepted", "logto_guard.cache": "miss"}
    assert verify.end_time is not None and verify.start_time is not None
    assert verify.end_time > verify.start_time


def test_failed_fetch_is_counted_and_its_span_is_an_error(
    fresh_provider: OidcProvider, otel: Recorded
) -> None:
    fresh_provider.stop()
    with TestClient(starlette_app(fresh_provider)) as client:
        assert client.get("/products").status_code == 401
    counts = otel.counts(FETCHES)
    assert counts.get(key(result="failed", issuer=fresh_provider.issuer), 0) >= 1
    assert key(result="updated", issuer=fresh_provider.issuer) not in counts
    fetch = otel.spans("logto_guard.jwks.fetch")[0]
    assert fetch.status.status_code is StatusCode.ERROR
    (get, *_) = otel.spans("GET")
    assert get.status.status_code is StatusCode.ERROR
    assert get.attributes is not None and get.attributes["error.type"] == "ConnectError"


async def test_revalidation_counts_not_modified_and_key_age(
    fresh_provider: OidcProvider, otel: Recorded
) -> None:
    cache = JWKSCache(fresh_provider.issuer)
    await cache.refresh()
    before = time.monotonic()
    await cache.refresh()  # the ETag makes it a 304
    await cache.aclose()
    assert fresh_provider.stats()["jwks_304"] == 1
    assert otel.counts(FETCHES) == {
        key(result="updated", issuer=fresh_provider.issuer): 1,
        key(result="not_modified", issuer=fresh_provider.issuer): 1,
    }
    ages = otel.points("logto_guard.jwks.key_age")
    (age,) = [p.value for a, p in ages if a == {"issuer": fresh_provider.issuer}]
    assert 0 <= age <= time.monotonic() - before


def test_fastapi_dependency_alone_counts_once(oidc_provider: OidcProvider, otel: Recorded) -> None:
    guard = LogtoSecurity(issuer=oidc_provider.issuer, audience=SHOP)
    app = FastAPI(lifespan=guard.lifespan)
    Reader = Annotated[AccessToken, Security(guard, scopes=["read:products"])]
    Writer = Annotated[AccessToken, Security(guard, scopes=["write:products"])]

    @app.get("/products")
    async def products(token: Reader) -> dict[str, str]:
        return {"sub": token.sub}

    @app.post("/products")
    async def create(reader: Reader, writer: Writer) -> dict[str, str]:  # accepts, then refuses
        return {"sub": writer.sub}

    @app.get("/orgs/{org_id}/products")
    async def org(token: Annotated[AccessToken, Security(guard.organization(), scopes=[])]) -> Any:
        return {}

    token = oidc_provider.token()
    with TestClient(app) as client:
        assert client.get("/products", headers=bearer(token)).status_code == 200
        assert client.get("/products", headers=bearer(token)).status_code == 200
        assert client.post("/products", headers=bearer(token)).status_code == 403
        assert client.get("/orgs/o1/products", headers=bearer(token)).status_code == 403
        assert client.get("/products").status_code == 401
    assert otel.counts(VERIFICATIONS) == {
        key(outcome="accepted", cache="miss"): 2,  # cached from its second sighting
        key(
            outcome="rejected", error="insufficient_scope", reason="InsufficientScope", cache="hit"
        ): 2,
        key(outcome="rejected", reason="MissingToken", cache="miss"): 1,
    }
    assert otel.counts(FETCHES) == {key(result="updated", issuer=oidc_provider.issuer): 1}


def test_fastapi_dependency_behind_the_middleware_counts_once(
    oidc_provider: OidcProvider, otel: Recorded
) -> None:
    verifier = TokenVerifier(oidc_provider.issuer, audience=SHOP)
    guard = LogtoSecurity(verifier)
    app = FastAPI()

    @app.post("/products")
    async def create(token: Annotated[AccessToken, Security(guard, scopes=["write:products"])]):
        return {}

    with TestClient(LogtoGuard(app, verifier=verifier)) as client:
        assert client.post("/products", headers=bearer(oidc_provider.token())).status_code == 403
    assert otel.counts(VERIFICATIONS) == {
        key(
            outcome="rejected", error="insufficient_scope", reason="InsufficientScope", cache="miss"
        ): 1
    }


def test_client_id_only_when_opted_in(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token()
    for opted_in in (False, True):
        for recorded in recorder(record_client_id=opted_in):
            with TestClient(starlette_app(oidc_provider)) as client:
                client.get("/products", headers=bearer(token))
            (attrs, _), *_ = recorded.points(VERIFICATIONS)
            assert attrs.get("client_id") == ("shop-reader" if opted_in else None)


def test_refusals_and_key_events_are_structured_log_records(
    oidc_provider: OidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="logto_guard")
    token = oidc_provider.token()
    unknown = oidc_provider.sign(header={"kid": "no-such-key"})
    with TestClient(starlette_app(oidc_provider)) as client:
        client.post("/products", headers=bearer(token))
        client.get("/products", headers=bearer(unknown))
    loaded = [r for r in caplog.records if getattr(r, "reason", None) == "keys_changed"]
    assert len(loaded) == 1
    assert loaded[0].__dict__["issuer"] == oidc_provider.issuer
    assert loaded[0].__dict__["kid"] == oidc_provider.current_kid
    refused = [r for r in caplog.records if r.getMessage().startswith("request refused")]
    assert [r.__dict__["reason"] for r in refused] == ["InsufficientScope", "UnknownSigningKey"]
    scope_refusal, kid_refusal = (r.__dict__ for r in refused)
    assert scope_refusal["client_id"] == "shop-reader"
    assert scope_refusal["issuer"] == kid_refusal["issuer"] == oidc_provider.issuer
    assert scope_refusal["kid"] == oidc_provider.current_kid
    assert kid_refusal["kid"] == "no-such-key" and kid_refusal["client_id"] is None
    assert kid_refusal["error"] == "invalid_token"
    for record in caplog.records:
        text = json.dumps({k: str(v) for k, v in record.__dict__.items()}) + record.getMessage()
        assert token not in text and unknown not in text and "reader-secret" not in text


def test_token_key_is_the_asgi_one() -> None:
    assert telemetry.TOKEN_KEY == _asgi.TOKEN_KEY


def test_without_opentelemetry_api_hooks_are_plain() -> None:
    """With `opentelemetry` unimportable, the logs-only hooks are chosen once, at import."""
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from logto_guard import telemetry
from logto_guard.errors import ConfigurationError
assert type(telemetry.hooks) is telemetry.Hooks, telemetry.hooks
assert telemetry.hooks.start() == 0.0
try:
    telemetry.configure(trace_verifications=True)
except ConfigurationError as exc:
    print("refused:", exc)
import logto_guard, logto_guard.middleware, logto_guard.readiness  # all import without it
print("plain")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "refused: OpenTelemetry options need opentelemetry-api" in done.stdout
    assert done.stdout.strip().endswith("plain")


def test_default_hooks_use_the_api_when_installed() -> None:
    assert type(telemetry.hooks) is telemetry.OTelHooks
    assert type(telemetry.configure(enabled=False)) is telemetry.Hooks
    assert type(telemetry.configure()) is telemetry.OTelHooks


PROMETHEUS_CHECK = """
import os, sys
import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from logto_guard import LogtoGuard, TokenVerifier

async def hello(request):
    return PlainTextResponse("ok")

issuer, audience, token = sys.argv[1:4]
guard = LogtoGuard(Starlette(routes=[Route("/", hello)]),
                   verifier=TokenVerifier(issuer, audience=audience))
with TestClient(guard) as client:
    answers = [client.get("/", headers={"Authorization": f"Bearer {token}"}).status_code
               for _ in range(3)] + [client.get("/").status_code]
assert answers == [200, 200, 200, 401], answers
text = httpx.get(f"http://127.0.0.1:{os.environ['METRICS_PORT']}/metrics").text
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        if sample.name.startswith("logto_guard"):
            # Prometheus adds otel_scope_* labels, and '' for an attribute a series lacks
            labels = [(k, v) for k, v in sorted(sample.labels.items())
                      if v and not k.startswith("otel_scope_")]
            print(sample.name, labels, sample.value)
"""


@pytest.mark.parametrize("configure_after", [False, True])
def test_readme_prometheus_recipe(oidc_provider: OidcProvider, configure_after: bool) -> None:
    """The README's recipe, verbatim, in a process of its own (it sets the global provider)
    after logto_guard was imported; then a scrape of the endpoint it starts. With
    `configure_after`, the start-up `telemetry.configure()` the README suggests comes next: it
    must count into the instruments the import made, not into same-named ones OpenTelemetry
    drops."""
    import socket

    recipe = block("MeterProvider(metric_readers=[PrometheusMetricReader()])")
    if configure_after:
        recipe += "\nfrom logto_guard import telemetry\ntelemetry.configure()\n"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = "import logto_guard\n" + recipe + PROMETHEUS_CHECK
    argv = [sys.executable, "-c", script, oidc_provider.issuer, SHOP, oidc_provider.token()]
    env = dict(os.environ, METRICS_PORT=str(port))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    samples = done.stdout.splitlines()
    issuer = oidc_provider.issuer
    for expected in (
        # the token is cached from its second sighting: miss, miss, hit
        "logto_guard_verifications_total [('cache', 'miss'), ('outcome', 'accepted')] 2.0",
        "logto_guard_verifications_total [('cache', 'hit'), ('outcome', 'accepted')] 1.0",
        "logto_guard_verifications_total "
        "[('cache', 'miss'), ('outcome', 'rejected'), ('reason', 'MissingToken')] 1.0",
        "logto_guard_verification_duration_seconds_count "
        "[('cache', 'hit'), ('outcome', 'accepted')] 1.0",
        f"logto_guard_jwks_fetches_total [('issuer', '{issuer}'), ('result', 'updated')] 1.0",
    ):
        assert expected in samples, done.stdout
    (age,) = [s for s in samples if s.startswith("logto_guard_jwks_key_age_seconds")]
    assert f"('issuer', '{issuer}')" in age and 0 <= float(age.rsplit(" ", 1)[1]) < 120


def test_a_miss_is_counted_for_its_own_request_only() -> None:
    """Two requests in one task (as under httpx's ASGITransport): the first one's cache miss
    must not label the second one, a hit."""
    hooks = telemetry.OTelHooks()
    first: dict[str, Any] = {}
    started = hooks.start()
    hooks.cache_miss()  # what the verifier's full check calls
    hooks.verified(first, started)
    second: dict[str, Any] = {}
    hooks.verified(second, hooks.start())
    assert first[telemetry.VERIFICATION_KEY][2] is True
    assert second[telemetry.VERIFICATION_KEY][2] is False


def test_configure_again_keeps_counting_on_the_same_provider() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    scope = {telemetry.TOKEN_KEY: object(), telemetry.VERIFICATION_KEY: (0.0, 1e-6, False)}
    try:
        telemetry.configure(meter_provider=provider).done(scope, None)
        again = telemetry.configure(meter_provider=provider, trace_verifications=False)
        again.done(scope, None)
        again.done(scope, None)
        recorded = Recorded(reader, InMemorySpanExporter())
        assert recorded.counts(VERIFICATIONS) == {key(outcome="accepted", cache="hit"): 3}
        ((_, point),) = recorded.points("logto_guard.verification.duration")
        assert point.count == 3
    finally:
        telemetry.configure()
        provider.shutdown()


def test_readme_configure_block() -> None:
    try:
        exec(block("trace_verifications=True,  # a span per verified request"), {})  # noqa: S102 - the README example, as written
        hooks = telemetry.hooks
        assert isinstance(hooks, telemetry.OTelHooks)
        assert hooks.record_client_id and hooks.trace_verifications
    finally:
        telemetry.configure()
    assert not telemetry.hooks.record_client_id


def test_client_id_attribute_sets_are_capped(oidc_provider: OidcProvider) -> None:
    for recorded in recorder(record_client_id=True):
        hooks = telemetry.hooks
        assert isinstance(hooks, telemetry.OTelHooks)
        for n in range(telemetry.MAX_ATTRIBUTE_SETS + 5):
            token = AccessToken.from_claims(
                {**oidc_provider.default_claims(), "client_id": f"app-{n}"}, frozenset()
            )
            hooks.done({telemetry.TOKEN_KEY: token}, None)
        counts = recorded.counts(VERIFICATIONS)
        assert len(counts) == telemetry.MAX_ATTRIBUTE_SETS + 1
        assert counts[key(outcome="accepted", cache="miss")] == 5  # the overflow, no client_id
        assert sum(counts.values()) == telemetry.MAX_ATTRIBUTE_SETS + 5


def test_websocket_counted_at_its_handshake(oidc_provider: OidcProvider, otel: Recorded) -> None:
    @require_scopes("read:products")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        # Counted once the handshake is answered, not when the connection closes.
        assert otel.counts(VERIFICATIONS) == {key(outcome="accepted", cache="miss"): 1}
        await websocket.send_text("hi")
        await websocket.close()

    @require_scopes("write:products")
    async def admin(websocket: WebSocket) -> None:  # pragma: no cover - refused before
        await websocket.accept()

    verifier = TokenVerifier(oidc_provider.issuer, audience=SHOP)
    routes = [WebSocketRoute("/feed", feed), WebSocketRoute("/admin", admin)]
    app = Starlette(routes=routes, middleware=[Middleware(LogtoGuard, verifier=verifier)])
    token = oidc_provider.token()
    with TestClient(app) as client:
        with client.websocket_connect("/feed", headers=bearer(token)) as ws:
            assert ws.receive_text() == "hi"
        with (
            pytest.raises(WebSocketDenialResponse),
            client.websocket_connect("/admin", headers=bearer(token)),
        ):
            pass  # pragma: no cover - the handshake is refused
    assert otel.counts(VERIFICATIONS) == {
        key(outcome="accepted", cache="miss"): 1,
        key(  # the token's second sighting: verified again, then cached
            outcome="rejected", error="insufficient_scope", reason="InsufficientScope", cache="miss"
        ): 1,
    }


def test_cost_benchmark_runs() -> None:
    """bench/otel_cost.py's in-process part, tiny: it checks that the reader saw every request."""
    script = Path(__file__).resolve().parent.parent / "bench" / "otel_cost.py"
    argv = [sys.executable, str(script), "--in-process-only", "--rounds", "2", "--requests", "50"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line[:22].strip(): line[22:].split() for line in done.stdout.splitlines()[2:]}
    assert sorted(rows) == ["Starlette route", "bare ASGI app"], done.stdout
    for plain, _, otel_us, _, ratio, _ in rows.values():
        assert float(plain) > 0 and float(otel_us) > 0 and float(ratio.rstrip("x")) > 0
