"""Tokens recorded from a real Logto (scenarios 01-05), decided by the real `TokenVerifier`.

Each `expect` entry is replayed as recorded: the verifier's clock frozen at `verify_at`, its keys
fetched through the library's own discovery + JWKS path from the recorded responses
(`real_logto.replay_transport`), and the verdict compared with the recording, member by member.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from real_logto import discovery_before, exchange, load, replay_transport

from logto_guard import (
    ExpiredToken,
    InvalidAudience,
    InvalidToken,
    JWKSCache,
    TokenVerifier,
    UnknownSigningKey,
)

SCENARIOS = (
    "01-es384-writer.json",
    "02-reader-scope-downgrade.json",
    "03-noscope.json",
    "04-management-api.json",
    "05-organization.json",
)
REASONS: dict[str, type[InvalidToken]] = {
    "audience": InvalidAudience,
    "unknown_key": UnknownSigningKey,
    "expired": ExpiredToken,
}
ORG_PREFIX = "urn:logto:organization:"


def _entries() -> Iterator[Any]:
    for name in SCENARIOS:
        for index, entry in enumerate(load(name)["expect"]):
            verdict = "valid" if entry["valid"] else entry["reason"]
            yield pytest.param(name, index, id=f"{name[:2]}-{index}-{entry['token']}-{verdict}")


ENTRIES = tuple(_entries())


def recorded_verifier(doc: dict[str, Any], entry: dict[str, Any]) -> TokenVerifier:
    """A production-default verifier whose only network is the scenario's recorded answers."""
    jwks = exchange(doc, entry["jwks"])
    discovery = discovery_before(doc, entry["jwks"])
    transport = replay_transport(
        {discovery["request"]["path"]: discovery, jwks["request"]["path"]: jwks}
    )
    cache = JWKSCache(doc["issuer"], http_client=httpx.AsyncClient(transport=transport))
    return TokenVerifier(
        doc["issuer"], audience=entry["audience"], jwks=cache, clock=lambda: entry["verify_at"]
    )


def access_token(doc: dict[str, Any], entry: dict[str, Any]) -> str:
    token: str = json.loads(exchange(doc, entry["token"])["response"]["body_raw"])["access_token"]
    assert token == entry["access_token"]  # the entry's copy is the token the server sent
    return token


def test_every_entry_of_01_to_05_is_replayed() -> None:
    assert len(ENTRIES) == sum(len(load(name)["expect"]) for name in SCENARIOS) == 11


@pytest.mark.parametrize(("name", "index"), ENTRIES)
async def test_recorded_verdict(name: str, index: int) -> None:
    doc = load(name)
    entry = doc["expect"][index]
    token = access_token(doc, entry)
    verifier = recorded_verifier(doc, entry)
    recorded_header = exchange(doc, entry["token"])["response"]["access_token_decoded_unverified"]
    assert (recorded_header["header"]["alg"], recorded_header["header"]["kid"]) == (
        entry["alg"],
        entry["kid"],
    )
    try:
        if not entry["valid"]:
            with pytest.raises(REASONS[entry["reason"]]) as refused:
                await verifier.verify(token)
            assert refused.value.error == entry["error"] == "invalid_token"
            assert refused.value.status_code == 401
            return

        verified = await verifier.verify(token)
        assert verified.issuer == entry["issuer"] == doc["issuer"]
        assert verified.sub == entry["sub"]
        assert verified.client_id == entry["client_id"]
        assert sorted(verified.scopes) == entry["scopes"]
        assert verified.organization_id == entry["organization_id"]
        assert verified.is_m2m
        key = verifier.jwks.keys.find(entry["kid"], entry["alg"]) if verifier.jwks.keys else None
        assert key is not None and key.kid == entry["kid"] and key.algorithm == entry["alg"]
        claims = recorded_header["claims"]
        assert dict(verified.claims) == claims
        source = entry.get("organization_id_from")
        if source == "aud":
            assert "organization_id" not in verified.claims
            assert verified.audience == (ORG_PREFIX + entry["organization_id"],)
        elif source is not None:
            assert source == "organization_id claim"
            assert verified.claims["organization_id"] == entry["organization_id"]
        else:
            assert entry["organization_id"] is None
    finally:
        await verifier.aclose()


async def test_one_fetch_of_discovery_and_jwks_serves_every_entry_of_a_scenario() -> None:
    """Warm verifier, the five organization entries of 05: keys are fetched once."""
    doc = load("05-organization.json")
    seen: list[str] = []
    jwks = exchange(doc, "jwks")
    discovery = discovery_before(doc, "jwks")

    def route(request: httpx.Request) -> dict[str, Any]:
        seen.append(request.url.path)
        return discovery if request.url.path.endswith("openid-configuration") else jwks

    cache = JWKSCache(
        doc["issuer"], http_client=httpx.AsyncClient(transport=replay_transport(route))
    )
    verifiers = {
        audience: TokenVerifier(
            doc["issuer"],
            audience=audience,
            jwks=cache,
            clock=lambda: doc["expect"][0]["verify_at"],
        )
        for audience in {entry["audience"] for entry in doc["expect"]}
    }
    for entry in doc["expect"]:
        verifier = verifiers[entry["audience"]]
        if entry["valid"]:
            assert (await verifier.verify(entry["access_token"])).sub == entry["sub"]
        else:
            with pytest.raises(REASONS[entry["reason"]]):
                await verifier.verify(entry["access_token"])
    assert seen == ["/oidc/.well-known/openid-configuration", "/oidc/jwks"]
    await cache.aclose()
