"""Key rotation against the real provider: no valid token refused, no token storm.

Logto OSS rotates immediately by default (grace period 0): the very next token is signed by a
key the JWKS has listed for milliseconds. A verifier whose last fetch was seconds ago must take
it on first sight; random-kid floods must still cost at most one JWKS fetch per cooldown.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import warnings

import httpx
import pytest

from logto_guard import ClientCredentials, LogtoGuard, errors
from logto_guard.jwks_cache import JWKSCache
from logto_guard.token import AccessToken
from logto_guard.verifier import TokenVerifier

try:
    from oidc_provider import SHOP, OidcProvider
except ImportError:  # pragma: no cover
    from .oidc_provider import SHOP, OidcProvider


def warm_verifier(provider: OidcProvider, **jwks_options: float) -> TokenVerifier:
    jwks = JWKSCache(provider.issuer, **jwks_options)
    return TokenVerifier(provider.issuer, audience=SHOP, jwks=jwks)


@pytest.mark.parametrize("kty", ["RSA", "EC"])
async def test_immediate_rotation_next_token_verifies_first_time(
    fresh_provider: OidcProvider, kty: str
) -> None:
    """The measured failure: warm verifier (a fetch just happened), rotate, the next token."""
    verifier = warm_verifier(fresh_provider)  # the defaults: ttl 600 s, cooldown 30 s
    old_token = fresh_provider.token()
    await verifier.verify(old_token)  # the first fetch, just now
    fresh_provider.reset_stats()
    new_kid = fresh_provider.rotate(kty)  # grace period 0: the new key signs at once
    new_token = fresh_provider.token()
    verified = await verifier.verify(new_token)  # first try, no waiting
    assert verified.client_id == "shop-reader"
    assert fresh_provider.key_alg(new_kid) == ("RS256" if kty == "RSA" else "ES384")
    assert (await verifier.verify(old_token)).client_id == "shop-reader"  # Previous still listed
    # And right after that refetch, a second immediate rotation: still no refusal.
    fresh_provider.rotate("EC")
    assert (await verifier.verify(fresh_provider.token())).client_id == "shop-reader"
    assert fresh_provider.stats()["jwks_requests"] == 2  # one refetch per rotation, no more
    await verifier.aclose()


async def test_rotation_right_after_a_ttl_revalidation(fresh_provider: OidcProvider) -> None:
    verifier = warm_verifier(fresh_provider, ttl=0.2)
    await verifier.verify(fresh_provider.token())
    await asyncio.sleep(0.25)
    await verifier.jwks.refresh()  # a revalidation has just happened
    fresh_provider.rotate("RSA")
    assert (await verifier.verify(fresh_provider.token())).client_id == "shop-reader"


async def test_staged_rotation_with_grace_shorter_than_ttl(fresh_provider: OidcProvider) -> None:
    """Logto's rotationGracePeriod: Next is published, signs after the grace period. With a
    grace (0.3 s) far below the TTL (600 s), the verifier never saw Next before it signs."""
    verifier = warm_verifier(fresh_provider)
    old_token = fresh_provider.token()
    await verifier.verify(old_token)  # keys fetched before Next was published
    next_kid = fresh_provider.add_key()
    await asyncio.sleep(0.3)
    fresh_provider.promote(next_kid)
    promoted = fresh_provider.token()
    assert fresh_provider.current_kid == next_kid
    assert (await verifier.verify(promoted)).client_id == "shop-reader"
    assert (await verifier.verify(old_token)).client_id == "shop-reader"


async def test_flood_during_a_rotation(fresh_provider: OidcProvider) -> None:
    """The flood bound wins: the new key's token waits (503, Retry-After) until the cooldown
    that the flood armed ends, then verifies; the flood costs one fetch per cooldown."""
    cooldown = 1.0
    verifier = warm_verifier(fresh_provider, cooldown=cooldown)
    await verifier.verify(fresh_provider.token())
    fresh_provider.reset_stats()
    flood = [fresh_provider.sign(header={"kid": uuid.uuid4().hex}) for _ in range(200)]
    started = time.monotonic()
    outcomes = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)
    # One refetch for all; then 401 (absent) or 503 (arrived after that refetch began).
    refusals = (errors.UnknownSigningKey, errors.SigningKeyNotYetKnown)
    assert all(isinstance(o, refusals) for o in outcomes)
    assert fresh_provider.stats()["jwks_requests"] == 1
    fresh_provider.rotate("RSA")
    new_token = fresh_provider.token()
    pending = None
    while time.monotonic() - started < cooldown * 0.8:  # inside the cooldown the flood armed
        more = [fresh_provider.sign(header={"kid": uuid.uuid4().hex}) for _ in range(20)]
        await asyncio.gather(*(verifier.verify(t) for t in more), return_exceptions=True)
        try:
            await verifier.verify(new_token)
        except errors.SigningKeyNotYetKnown as exc:
            pending = exc
            break
    assert pending is not None, "the cooldown ended before the check: machine too slow"
    assert pending.status_code == 503 and 1 <= pending.retry_after <= cooldown + 1
    # The client waits Retry-After, as told; then the token verifies.
    deadline = time.monotonic() + 10 * cooldown
    while True:
        try:
            verified = await verifier.verify(new_token)
            break
        except errors.SigningKeyNotYetKnown:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    assert verified.client_id == "shop-reader"
    elapsed = time.monotonic() - started
    assert 2 <= fresh_provider.stats()["jwks_requests"] <= int(elapsed / cooldown) + 1


async def test_pending_key_is_503_and_no_token_storm(fresh_provider: OidcProvider) -> None:
    """Over HTTP: the answer during the cooldown has Retry-After and no challenge, so
    ClientCredentials does not fetch another token (it retries only on 401)."""
    cooldown = 30.0
    jwks = JWKSCache(fresh_provider.issuer, cooldown=cooldown)
    verifier = TokenVerifier(fresh_provider.issuer, audience=SHOP, jwks=jwks)

    async def ok(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = LogtoGuard(ok, verifier=verifier)
    await verifier.verify(fresh_provider.token())
    with pytest.raises(errors.UnknownSigningKey):  # a random kid arms the cooldown
        await verifier.verify(fresh_provider.sign(header={"kid": "flood-1"}))
    fresh_provider.rotate("EC")
    fresh_provider.reset_stats()
    auth = ClientCredentials(
        "shop-reader",
        "reader-secret",
        endpoint=fresh_provider.endpoint,
        resource=SHOP,
        scopes=["read:products"],
    )
    mounts = {"http://api.test": httpx.ASGITransport(app=app)}  # the token endpoint: real
    async with httpx.AsyncClient(mounts=mounts, auth=auth) as api:
        response = await api.get("http://api.test/products")
    assert response.status_code == 503
    assert 1 <= int(response.headers["retry-after"]) <= cooldown
    assert "www-authenticate" not in response.headers
    assert response.json()["error"] == "temporarily_unavailable"
    assert fresh_provider.stats()["token_requests"] == 1  # the first token only: no storm


async def test_removed_key_after_rotation_is_401(fresh_provider: OidcProvider) -> None:
    verifier = warm_verifier(fresh_provider, ttl=0.2)
    old_token = fresh_provider.token()
    old_kid = fresh_provider.current_kid
    await verifier.verify(old_token)
    fresh_provider.rotate("EC")
    fresh_provider.remove_key(old_kid)
    await asyncio.sleep(0.25)
    await verifier.jwks.refresh()
    for _ in range(3):  # refetched once, then known absent: 401 every time, never 503
        with pytest.raises(errors.UnknownSigningKey):
            await verifier.verify(old_token)
    assert isinstance(await verifier.verify(fresh_provider.token()), AccessToken)


async def test_own_http_client_leaves_nothing_open(fresh_provider: OidcProvider) -> None:
    """No lifespan, no aclose(): nothing may be left for the garbage collector to warn about."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        verifier = TokenVerifier(endpoint=fresh_provider.endpoint, audience=SHOP)
        await verifier.verify(fresh_provider.token())
        fresh_provider.rotate("RSA")
        await verifier.verify(fresh_provider.token())
        del verifier
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
