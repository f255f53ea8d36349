"""The verifier against a real OpenID provider (oidc-provider, configured like Logto).

Tokens come from the provider's real /oidc/token endpoint; the keys, discovery and JWKS are
fetched over HTTP on loopback. Forged variants are signed with the provider's real keys.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from logto_guard import errors
from logto_guard.jwks_cache import JWKSCache
from logto_guard.verifier import TokenVerifier

try:
    from oidc_provider import MGMT, SHOP, OidcProvider
except ImportError:  # pragma: no cover
    from .oidc_provider import MGMT, SHOP, OidcProvider


_opened: list[TokenVerifier] = []


def opened(verifier: TokenVerifier) -> TokenVerifier:
    """Closed after the test, so no connection outlives it (warnings are errors)."""
    _opened.append(verifier)
    return verifier


@pytest.fixture(autouse=True)
async def _close_verifiers() -> AsyncIterator[None]:
    yield
    while _opened:
        await _opened.pop().aclose()


def make_verifier(provider: OidcProvider, **jwks_options: float) -> TokenVerifier:
    jwks = JWKSCache(provider.issuer, **jwks_options)
    return opened(TokenVerifier(provider.issuer, audience=SHOP, jwks=jwks))


async def test_es384_token_from_token_endpoint(oidc_provider: OidcProvider) -> None:
    verifier = opened(TokenVerifier(endpoint=oidc_provider.endpoint, audience=SHOP))
    token = oidc_provider.token("shop-writer", scope="read:products write:products")
    at = await verifier.verify(token)
    assert at.sub == at.client_id == "shop-writer"
    assert at.is_m2m
    assert at.scopes == {"read:products", "write:products"}
    assert at.audience == (SHOP,)
    assert at.issuer == oidc_provider.issuer
    assert at.expires_at - at.issued_at == 3600
    await verifier.aclose()


async def test_management_api_token_for_its_own_audience(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("mgmt-client", resource=MGMT, scope="all")
    mgmt = opened(TokenVerifier(oidc_provider.issuer, audience=MGMT))
    assert (await mgmt.verify(token)).scopes == {"all"}
    shop = opened(TokenVerifier(oidc_provider.issuer, audience=SHOP))
    with pytest.raises(errors.InvalidAudience):
        await shop.verify(token)


async def test_rs256_after_rotation_to_rsa(fresh_provider: OidcProvider) -> None:
    verifier = make_verifier(fresh_provider, cooldown=0)
    es_token = fresh_provider.token()
    await verifier.verify(es_token)
    fresh_provider.rotate("RSA")
    rs_token = fresh_provider.token()
    assert json.loads(base64.urlsafe_b64decode(rs_token.split(".")[0] + "=="))["alg"] == "RS256"
    assert (await verifier.verify(rs_token)).client_id == "shop-reader"
    assert (await verifier.verify(es_token)).client_id == "shop-reader"  # old key still published


def _issuer_variant(provider: OidcProvider) -> str:
    return provider.issuer.replace("127.0.0.1", "localhost")


@pytest.mark.parametrize(
    ("make_token", "error"),
    [
        (lambda p: p.token("mgmt-client", resource=MGMT, scope="all"), errors.InvalidAudience),
        (lambda p: p.sign({"aud": "https://other.api"}), errors.InvalidAudience),
        (lambda p: p.sign({"iss": _issuer_variant(p)}), errors.InvalidIssuer),
        (lambda p: p.sign({"iss": p.issuer + "/"}), errors.InvalidIssuer),
        (lambda p: p.sign({"exp": int(time.time()) - 120}), errors.ExpiredToken),
        (lambda p: p.sign({"exp": None}), errors.InvalidClaim),
        (lambda p: p.sign({"exp": str(int(time.time()) + 600)}), errors.InvalidClaim),
        # ID-token shaped: no typ, aud = a client id
        (lambda p: p.sign({"aud": "shop-reader"}, header={"typ": None}), errors.InvalidTokenType),
        (lambda p: p.sign(header={"typ": None}), errors.InvalidTokenType),
        (lambda p: p.sign(header={"typ": "JWT"}), errors.InvalidTokenType),
        (lambda p: p.sign(alg="none"), errors.MalformedToken),  # empty signature
        (lambda p: p.sign(alg="HS256"), errors.UnsupportedAlgorithm),
        (lambda p: p.sign(header={"alg": "ES384"}, alg="HS256"), errors.InvalidSignature),
        (lambda p: p.sign(header={"alg": "RS256"}, alg="ES384"), errors.UnsupportedAlgorithm),
        (lambda p: p.sign(kid=p.generate_key()), errors.UnknownSigningKey),
    ],
)
async def test_bad_tokens_rejected(oidc_provider: OidcProvider, make_token, error) -> None:  # type: ignore[no-untyped-def]
    verifier = make_verifier(oidc_provider)
    with pytest.raises(error) as caught:
        await verifier.verify(make_token(oidc_provider))
    assert caught.value.status_code == 401
    assert caught.value.error == "invalid_token"


async def test_tampered_payload_rejected(oidc_provider: OidcProvider) -> None:
    verifier = make_verifier(oidc_provider)
    header, payload, signature = oidc_provider.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "read:products write:products"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(errors.InvalidSignature):
        await verifier.verify(f"{header}.{forged}.{signature}")


async def test_staged_rotation_picked_up_without_restart(fresh_provider: OidcProvider) -> None:
    verifier = make_verifier(fresh_provider, cooldown=0.2)
    old_token = fresh_provider.token()
    await verifier.verify(old_token)
    # Logto's staged rotation: the next key is published, then signs, then the old one goes.
    new_kid = fresh_provider.add_key()
    await asyncio.sleep(0.25)
    fresh_provider.promote(new_kid)
    new_token = fresh_provider.token()
    assert (await verifier.verify(new_token)).client_id == "shop-reader"
    assert (await verifier.verify(old_token)).client_id == "shop-reader"
    old_kid = fresh_provider.kids[1]
    fresh_provider.remove_key(old_kid)
    await asyncio.sleep(0.25)
    await verifier.jwks.refresh()
    with pytest.raises(errors.UnknownSigningKey):
        await verifier.verify(old_token)  # even though it was in the verified-token cache
    assert (await verifier.verify(new_token)).client_id == "shop-reader"


async def test_provider_down_known_keys_still_verify(fresh_provider: OidcProvider) -> None:
    verifier = make_verifier(fresh_provider, ttl=0.1)
    await verifier.verify(fresh_provider.token())
    token = fresh_provider.sign()  # same key, not yet seen by the verifier
    fresh_provider.stop()
    await asyncio.sleep(0.15)  # keys now due for revalidation, which will fail
    assert (await verifier.verify(token)).sub == "shop-reader"
    await asyncio.sleep(0.05)
    assert (await verifier.verify(fresh_provider.sign())).sub == "shop-reader"
    fresh_provider.start()


async def test_cold_start_1000_concurrent_one_fetch(fresh_provider: OidcProvider) -> None:
    verifier = make_verifier(fresh_provider)
    tokens = [fresh_provider.token() for _ in range(3)]
    fresh_provider.reset_stats()
    results = await asyncio.gather(*(verifier.verify(tokens[i % 3]) for i in range(1000)))
    assert {r.client_id for r in results} == {"shop-reader"}
    stats = fresh_provider.stats()
    assert stats["jwks_requests"] == 1
    assert stats["discovery_requests"] == 1


async def test_random_kid_flood_bounded_by_cooldown(fresh_provider: OidcProvider) -> None:
    verifier = make_verifier(fresh_provider, cooldown=0.5)
    await verifier.verify(fresh_provider.token())
    fresh_provider.reset_stats()
    started = time.monotonic()
    rejected = 0
    while time.monotonic() - started < 1.6:
        batch = [fresh_provider.sign(header={"kid": uuid.uuid4().hex}) for _ in range(50)]
        outcomes = await asyncio.gather(
            *(verifier.verify(t) for t in batch), return_exceptions=True
        )
        # 401 once a refetch showed the kid absent; 503 (not fetched yet) for fresh tokens the
        # cooldown keeps from refetching. Both are refusals that cost no fetch.
        assert all(
            isinstance(o, (errors.UnknownSigningKey, errors.SigningKeyNotYetKnown))
            for o in outcomes
        ), outcomes
        rejected += len(outcomes)
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    fetches = fresh_provider.stats()["jwks_requests"]
    assert rejected > 100
    assert 1 <= fetches <= int(elapsed / 0.5) + 1


async def test_reused_token_served_from_cache_without_io(oidc_provider: OidcProvider) -> None:
    verifier = make_verifier(oidc_provider)
    token = oidc_provider.token()
    await verifier.verify(token)
    cached = await verifier.verify(token)  # cached from its second sighting
    oidc_provider.reset_stats()
    for _ in range(100):
        assert await verifier.verify(token) is cached
    assert oidc_provider.stats()["jwks_requests"] == 0
