"""Several trusted issuers, early refusal and a misconfigured endpoint, against real providers.

Two provider processes stand for a tenant's default and custom domain (or two tenants): each
has its own keys, so a token verifies only against the key set of the issuer it names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Security

from logto_guard import AccessToken, LogtoGuard, errors
from logto_guard.fastapi import LogtoSecurity
from logto_guard.verifier import TokenVerifier

try:
    from oidc_provider import SHOP, OidcProvider
    from readme import block
except ImportError:  # pragma: no cover
    from .oidc_provider import SHOP, OidcProvider
    from .readme import block


@pytest.fixture
def second_provider() -> Iterator[OidcProvider]:
    provider = OidcProvider("RSA")
    provider.start()
    try:
        yield provider
    finally:
        provider.close()


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["logto_guard.token"].issuer.encode()})


async def test_each_issuer_with_its_own_keys(
    fresh_provider: OidcProvider, second_provider: OidcProvider
) -> None:
    a, b = fresh_provider, second_provider
    verifier = TokenVerifier([a.issuer, b.issuer], audience=SHOP)
    assert verifier.issuers == (a.issuer, b.issuer)
    assert verifier.issuer == a.issuer and verifier.token_endpoint == a.issuer + "/token"
    for provider in (a, b):
        provider.reset_stats()
    assert (await verifier.verify(a.token())).issuer == a.issuer
    assert (await verifier.verify(b.token())).issuer == b.issuer
    assert [p.stats()["jwks_requests"] for p in (a, b)] == [1, 1]
    # A's key claiming B's issuer: looked up in B's key set only, so it is refused.
    with pytest.raises(errors.UnknownSigningKey):
        await verifier.verify(a.sign({"iss": b.issuer}))
    await verifier.aclose()


async def test_tokens_of_other_issuers_and_apis_cost_no_key_fetch(
    fresh_provider: OidcProvider, second_provider: OidcProvider
) -> None:
    a, b = fresh_provider, second_provider
    verifier = TokenVerifier(endpoint=[a.endpoint], audience=SHOP)
    a.reset_stats()
    with pytest.raises(errors.InvalidAudience):  # a real token of this issuer, for another API
        await verifier.verify(a.sign({"aud": "https://other.api"}))
    assert a.stats()["discovery_requests"] == a.stats()["jwks_requests"] == 0
    b.reset_stats()
    with pytest.raises(errors.InvalidIssuer):  # a real token of an issuer nobody configured
        await verifier.verify(b.token())
    await asyncio.sleep(0.2)  # give any background work time to show on the wire
    other = b.stats()
    assert (other["discovery_requests"], other["jwks_requests"]) == (0, 0)
    # The configured issuer's discovery is checked once (it names a wrong endpoint, if any);
    # never its keys.
    stats = a.stats()
    assert (stats["discovery_requests"], stats["jwks_requests"]) == (1, 0)
    with pytest.raises(errors.InvalidIssuer):
        await verifier.verify(b.token())
    assert a.stats()["discovery_requests"] == 1


async def test_middleware_and_metadata_with_two_issuers(
    fresh_provider: OidcProvider, second_provider: OidcProvider
) -> None:
    a, b = fresh_provider, second_provider
    app = LogtoGuard(ok, endpoint=[a.endpoint, b.endpoint], audience=SHOP)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        metadata = (await client.get("/.well-known/oauth-protected-resource")).json()
        assert metadata["authorization_servers"] == [a.issuer, b.issuer]
        for provider in (a, b):
            r = await client.get("/", headers={"Authorization": f"Bearer {provider.token()}"})
            assert (r.status_code, r.text) == (200, provider.issuer)
        r = await client.get("/", headers={"Authorization": f"Bearer {a.sign({'iss': 'x'})}"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    await app.verifier.aclose()


async def test_fastapi_dependency_with_two_issuers(
    fresh_provider: OidcProvider, second_provider: OidcProvider
) -> None:
    a, b = fresh_provider, second_provider
    guard = LogtoSecurity(issuer=[a.issuer, b.issuer], audience=SHOP)
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(token: AccessToken = Security(guard)) -> dict[str, str]:  # noqa: B008
        return {"issuer": token.issuer}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for provider in (a, b):
            headers = {"Authorization": f"Bearer {provider.token()}"}
            r = await client.get("/whoami", headers=headers)
            assert r.json() == {"issuer": provider.issuer}
    await guard.verifier.aclose()


# -- a misconfigured endpoint ------------------------------------------------------------------


def mismatch_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and "Logto reports its issuer as" in r.getMessage()
    ]


async def test_wrong_endpoint_is_named_and_answered_401(
    fresh_provider: OidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """`localhost` configured, while the provider calls itself `127.0.0.1`: not an outage."""
    provider = fresh_provider
    wrong = f"http://localhost:{provider.port}"
    app = LogtoGuard(ok, endpoint=wrong, audience=SHOP)
    transport = httpx.ASGITransport(app=app)
    provider.reset_stats()
    sentence = (
        f"Logto reports its issuer as {provider.issuer!r} but {wrong + '/oidc'!r} is configured"
    )
    with caplog.at_level(logging.ERROR, logger="logto_guard"):
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            # Real tokens name 127.0.0.1: refused early, and the discovery check names the cause.
            bearer = {"Authorization": f"Bearer {provider.token()}"}
            for _ in range(3):
                r = await client.get("/", headers=bearer)
                assert r.status_code == 401 and r.json()["error"] == "invalid_token"
                assert "www-authenticate" in r.headers and "retry-after" not in r.headers
            deadline = time.monotonic() + 10
            while not mismatch_lines(caplog):
                assert time.monotonic() < deadline, "the mistake was never logged"
                await asyncio.sleep(0.05)
            # A token that names the configured (wrong) issuer: 401 too, never 503.
            forged = provider.sign({"iss": wrong + "/oidc"})
            for _ in range(2):
                r = await client.get("/", headers={"Authorization": f"Bearer {forged}"})
                assert r.status_code == 401, r.text
                assert r.json() == {
                    "error": "invalid_token",
                    "error_description": "token issuer cannot be verified by this API",
                }
    assert mismatch_lines(caplog) == [sentence + ": fix the endpoint/issuer setting"]  # once
    assert provider.stats()["jwks_requests"] == 0
    cache = app.verifier.jwks  # type: ignore[attr-defined]
    assert isinstance(cache.config_error, errors.IssuerMismatch)
    assert (cache.config_error.reported, cache.config_error.configured) == (
        provider.issuer,
        wrong + "/oidc",
    )
    with pytest.raises(errors.IssuerMismatch, match="Logto reports its issuer as"):
        await cache.refresh()


def test_readme_several_issuers_example() -> None:
    namespace: dict[str, Any] = {}
    example = block('endpoint=["https://tenant.logto.app", "https://auth.example.com"]')
    exec(example, namespace)  # noqa: S102 - our own README, run as written
    verifier = namespace["verifier"]
    assert isinstance(verifier, TokenVerifier)
    assert verifier.issuers == ("https://tenant.logto.app/oidc", "https://auth.example.com/oidc")
    assert [cache.issuer for cache in verifier.jwks_caches] == list(verifier.issuers)
