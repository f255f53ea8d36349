"""Warm start and readiness against the real test provider: keys fetched during lifespan startup,
an outage at startup that does not stop the app, and a probe that turns ready once Logto is up.

No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.
"""

import time
from typing import Annotated, Any

import pytest
import yaml
from fastapi import FastAPI, Security
from readme import block
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from logto_guard.errors import ConfigurationError
from logto_guard.fastapi import LogtoSecurity
from logto_guard.middleware import LogtoGuard, get_access_token
from logto_guard.readiness import ReadinessEndpoint
from logto_guard.token import AccessToken
from logto_guard.verifier import TokenVerifier

try:
    from oidc_provider import SHOP, OidcProvider
except ImportError:  # pragma: no cover
    from .oidc_provider import SHOP, OidcProvider


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"sub": get_access_token(request).sub})


def guarded(provider: OidcProvider, **options: Any) -> LogtoGuard:
    verifier = TokenVerifier(provider.issuer, audience=SHOP)
    return LogtoGuard(Starlette(routes=[Route("/whoami", whoami)]), verifier=verifier, **options)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_keys_are_fetched_at_startup_before_the_first_request(
    fresh_provider: OidcProvider,
) -> None:
    guard = guarded(fresh_provider)
    fresh_provider.reset_stats()
    assert not guard.readiness().ready  # nothing fetched before startup
    with TestClient(guard) as client:
        stats = fresh_provider.stats()
        assert (stats["discovery_requests"], stats["jwks_requests"]) == (1, 1)
        status = guard.readiness()
        assert status.ready and bool(status)
        (issuer,) = status.issuers
        assert issuer.issuer == fresh_provider.issuer
        assert issuer.keys == 1 and issuer.last_error is None
        assert issuer.age is not None and 0 <= issuer.age < 60
        response = client.get("/whoami", headers=bearer(fresh_provider.token()))
        assert response.json() == {"sub": "shop-reader"}
        stats = fresh_provider.stats()
        assert (stats["discovery_requests"], stats["jwks_requests"]) == (1, 1)  # nothing new


def test_warm_start_can_be_turned_off(fresh_provider: OidcProvider) -> None:
    guard = guarded(fresh_provider, warm_start=False)
    fresh_provider.reset_stats()
    with TestClient(guard):
        assert fresh_provider.stats()["jwks_requests"] == 0
        assert not guard.readiness().ready


def test_outage_at_startup_starts_the_app_then_turns_ready_when_logto_is_up(
    fresh_provider: OidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_provider.stop()
    guard = guarded(fresh_provider, readiness_path="/ready")
    assert guard.warmer is not None
    guard.warmer.retry_max = 0.5  # retry often: the test waits for it
    token = fresh_provider.sign()
    with TestClient(guard) as client:  # startup completes although Logto is down
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["ready"] is False
        (issuer,) = body["issuers"]
        assert issuer["keys"] == 0 and issuer["age"] is None and issuer["ready"] is False
        assert "ConnectError" in issuer["last_error"]
        assert client.get("/whoami", headers=bearer(token)).status_code == 503
        startup = [r for r in caplog.records if getattr(r, "reason", "") == "startup_fetch_failed"]
        assert len(startup) == 1 and startup[0].__dict__["issuer"] == fresh_provider.issuer

        fresh_provider.start()
        wait_for(lambda: client.get("/ready").status_code == 200)
        body = client.get("/ready").json()
        assert body["ready"] is True
        assert body["issuers"][0]["keys"] == 1 and body["issuers"][0]["last_error"] is None
        assert client.get("/whoami", headers=bearer(token)).status_code == 200


def test_shutdown_stops_the_background_retry(fresh_provider: OidcProvider) -> None:
    fresh_provider.stop()
    guard = guarded(fresh_provider)
    assert guard.warmer is not None
    with TestClient(guard):
        task = guard.warmer._task
        assert task is not None and not task.done()  # retrying while Logto is down
    assert task.done() and guard.warmer._task is None


def test_keys_past_max_stale_are_not_ready(fresh_provider: OidcProvider) -> None:
    guard = guarded(fresh_provider)
    with TestClient(guard):
        assert guard.readiness().ready
        verifier = guard.verifier
        assert isinstance(verifier, TokenVerifier)
        verifier.jwks.max_stale = 0.0  # the keys in hand are now too old to trust
        status = guard.readiness()
        assert not status.ready and status.issuers[0].keys == 1


def test_readiness_path_must_be_a_path(fresh_provider: OidcProvider) -> None:
    with pytest.raises(ConfigurationError, match="'ready' must start with '/'"):
        guarded(fresh_provider, readiness_path="ready")


def test_fastapi_dependency_alone_warm_start_and_readiness(fresh_provider: OidcProvider) -> None:
    guard = LogtoSecurity(issuer=fresh_provider.issuer, audience=SHOP)
    app = FastAPI(lifespan=guard.lifespan)
    app.add_route("/ready", ReadinessEndpoint(guard))

    @app.get("/products")
    async def products(token: Annotated[AccessToken, Security(guard)]) -> dict[str, str]:
        return {"sub": token.sub}

    fresh_provider.reset_stats()
    with TestClient(app) as client:
        assert fresh_provider.stats()["jwks_requests"] == 1
        assert guard.readiness().ready
        assert client.get("/ready").json()["ready"] is True
        response = client.get("/products", headers=bearer(fresh_provider.token()))
        assert response.json() == {"sub": "shop-reader"}
        assert fresh_provider.stats()["jwks_requests"] == 1


def test_fastapi_dependency_alone_outage_at_startup(fresh_provider: OidcProvider) -> None:
    fresh_provider.stop()
    guard = LogtoSecurity(issuer=fresh_provider.issuer, audience=SHOP)
    app = FastAPI(lifespan=guard.lifespan)
    app.add_route("/ready", ReadinessEndpoint(guard))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 503
        fresh_provider.start()
        wait_for(lambda: client.get("/ready").status_code == 200)


def test_readme_readiness_path_and_kubernetes_probe(
    fresh_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's app and probe, verbatim: the probe fails while Logto is down at startup and
    passes once it is up (kubelet counts 200-399 as success)."""
    probe = yaml.safe_load(block("readinessProbe:"))["readinessProbe"]
    assert probe["httpGet"]["port"] == 8000  # the container port; here the app runs in-process
    fresh_provider.stop()
    monkeypatch.setenv("LOGTO_ENDPOINT", fresh_provider.endpoint)
    namespace: dict[str, Any] = {}
    exec(block('readiness_path="/ready",  # 200'), namespace)  # noqa: S102 - the README example, as written

    def probe_passes(client: TestClient) -> bool:
        return 200 <= client.get(probe["httpGet"]["path"]).status_code < 400

    with TestClient(namespace["app"]) as client:
        assert not probe_passes(client)
        assert client.get("/ready").status_code == 503
        fresh_provider.start()
        wait_for(lambda: probe_passes(client))
        assert client.get("/ready").json()["ready"] is True


def test_readme_fastapi_dependency_alone(
    fresh_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGTO_ENDPOINT", fresh_provider.endpoint)
    namespace: dict[str, Any] = {}
    exec(block("app = FastAPI(lifespan=guard.lifespan)"), namespace)  # noqa: S102 - the README example, as written
    fresh_provider.reset_stats()
    with TestClient(namespace["app"]) as client:
        assert fresh_provider.stats()["jwks_requests"] == 1  # before the first request
        assert client.get("/ready").json()["ready"] is True
        response = client.get("/products", headers=bearer(fresh_provider.token()))
        assert response.json() == {"caller": "shop-reader"}
        assert client.get("/products").status_code == 401
        assert fresh_provider.stats()["jwks_requests"] == 1
