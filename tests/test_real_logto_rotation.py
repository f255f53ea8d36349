"""Scenarios 06, 07 and 09 recorded from a real Logto, replayed through the real fetch path.

06 and 07 run every `expect` entry, in the issuer's order, against ONE verifier, as a server
lives through the rotations: the transport serves the JWKS of each step (with the discovery
recorded before it), the verifier's clock is frozen at each `verify_at`, and the JWKS cache's
own clock follows the recorded times. How a verifier learns of a change is the policy under test:

- a key the issuer has just published is fetched on first sight of its kid, however recent the
  last fetch (right after Logto's immediate rotation the gap is a tenth of a second);
- a key the issuer has dropped is noticed at the next revalidation (within `ttl`): when the
  step's JWKS no longer lists a key the verifier holds, the replay lets the TTL pass first.

09 checks the ETag exchanges: If-None-Match is the recorded ETag, a 304 keeps the parsed key set
object, a changed set (200 to a stale ETag) replaces it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from logto_guard import errors
from logto_guard._fetch import fetch_json
from logto_guard.jwks_cache import JWKSCache
from logto_guard.verifier import TokenVerifier

try:
    from real_logto import discovery_before, exchange, load, response_of
except ImportError:  # pragma: no cover
    from .real_logto import discovery_before, exchange, load, response_of

TTL, COOLDOWN = 600.0, 30.0
START = {"06-rotation-rsa-and-back.json": "jwks_before", "07-staged-rotation.json": "jwks_setup"}


class Replay:
    """One verifier living through a scenario; `serve` picks the JWKS the issuer publishes."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.serving = ""
        self.mono = 0.0
        self.wall = 0.0
        self.fetched_at: list[float] = []  # cache-clock time of every JWKS request
        transport = httpx.MockTransport(self.handle)
        self.jwks = JWKSCache(
            doc["issuer"],
            http_client=httpx.AsyncClient(transport=transport),
            ttl=TTL,
            cooldown=COOLDOWN,
            clock=lambda: self.mono,
        )
        self.verifier = TokenVerifier(
            doc["issuer"], audience="https://shopping.api", jwks=self.jwks, clock=lambda: self.wall
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return response_of(discovery_before(self.doc, self.serving), request)
        assert request.url.path == "/oidc/jwks", request.url
        self.fetched_at.append(self.mono)
        return response_of(exchange(self.doc, self.serving), request)

    def serve(self, jwks_id: str) -> None:
        self.serving = jwks_id
        self.mono = max(self.mono, exchange(self.doc, jwks_id)["at"])

    def published_kids(self) -> set[str]:
        return {k["kid"] for k in exchange(self.doc, self.serving)["response"]["body"]["keys"]}

    async def catch_up_on_removals(self) -> None:
        held = self.jwks.keys
        if held is not None and not held.kids <= self.published_kids():
            self.mono += TTL  # keys due for revalidation, which runs in the background
            self.jwks.current()
            await self.jwks.refresh()  # joins it


def token_of(doc: dict[str, Any], entry: dict[str, Any]) -> str:
    token: str = entry["access_token"]
    return token


@pytest.mark.parametrize("name", sorted(START))
async def test_rotation_scenario_replayed_in_order(name: str) -> None:
    doc = load(name)
    replay = Replay(doc)
    replay.serve(START[name])
    replay.wall = doc["expect"][0]["verify_at"]
    await replay.jwks.refresh()  # warm: the verifier has just fetched the keys before it all
    first_sight = 0
    # In the issuer's order: by when each step's JWKS was served (07 lists one check against the
    # grace-period JWKS after those against the later one; Logto never re-publishes a key).
    timeline = sorted(doc["expect"], key=lambda e: exchange(doc, e["jwks"])["at"])
    for entry in timeline:
        replay.serve(entry["jwks"])
        replay.wall = entry["verify_at"]
        await replay.catch_up_on_removals()
        held = replay.jwks.keys.kids if replay.jwks.keys is not None else frozenset()
        if entry["valid"] and entry["kid"] not in held:
            first_sight += 1
            since_fetch = replay.mono - replay.fetched_at[-1]
            assert since_fetch < COOLDOWN  # the case that used to be refused for ~30 s
        token = token_of(doc, entry)
        if entry["valid"]:
            verified = await replay.verifier.verify(token)
            assert verified.issuer == entry["issuer"], entry["why"]
            assert (verified.sub, verified.client_id) == (entry["sub"], entry["client_id"])
            assert sorted(verified.scopes) == entry["scopes"]
            assert verified.organization_id == entry["organization_id"]
            assert replay.jwks.keys is not None
            key = replay.jwks.keys.find(entry["kid"], entry["alg"])
            assert key is not None and key.algorithm == entry["alg"]
        else:
            assert entry["reason"] == "unknown_key"
            with pytest.raises(errors.UnknownSigningKey) as refused:
                await replay.verifier.verify(token)
            assert refused.value.error == entry["error"] == "invalid_token", entry["why"]
            assert refused.value.status_code == 401
    assert first_sight >= 1  # the replay did exercise a key seen for the first time


async def test_immediate_rotation_of_06_as_it_happened() -> None:
    """06 at its recorded pace: the RS256 token 0.2 s after the verifier fetched the old JWKS."""
    doc = load("06-rotation-rsa-and-back.json")
    replay = Replay(doc)
    replay.serve("jwks_before")
    replay.wall = 1796162019
    await replay.jwks.refresh()
    replay.serve("jwks_after_rsa")
    replay.mono = exchange(doc, "token_rs256")["at"]
    token = exchange(doc, "token_rs256")["response"]["body"]["access_token"]
    assert (await replay.verifier.verify(token)).client_id == "k52dzvprl3tvg1e7y0nv5"
    assert len(replay.fetched_at) == 2 and replay.fetched_at[1] - replay.fetched_at[0] < 1


# -- 09: the ETag exchanges ----------------------------------------------------------------------


def scenario_09() -> dict[str, Any]:
    return load("09-discovery-jwks-headers.json")


class Recorded:
    """Answers JWKS requests from a chosen exchange and keeps the requests it got."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.jwks_answer = "jwks"
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return response_of(exchange(self.doc, "discovery"), request)
        return response_of(exchange(self.doc, self.jwks_answer), request)


async def test_09_revalidation_sends_the_etag_and_304_keeps_the_key_set() -> None:
    doc = scenario_09()
    mono = [0.0]
    recorded = Recorded(doc)
    client = httpx.AsyncClient(transport=httpx.MockTransport(recorded.handle))
    cache = JWKSCache(doc["issuer"], http_client=client, ttl=TTL, clock=lambda: mono[0])
    await cache.refresh()
    keys = cache.keys
    assert keys is not None
    first = recorded.requests[-1]
    assert "if-none-match" not in first.headers
    # The Accept header sent is the one the recording was made with (and Logto answered 200).
    assert (
        first.headers["accept"] == exchange(doc, "jwks_accept_json")["request"]["headers"]["Accept"]
    )
    # TTL passed: revalidation with If-None-Match = the recorded ETag; Logto's answer is 304.
    recorded.jwks_answer = "jwks_if_none_match_current"
    mono[0] += TTL
    await cache.refresh()
    sent = recorded.requests[-1].headers.get("if-none-match")
    assert (
        sent == exchange(doc, "jwks_if_none_match_current")["request"]["headers"]["If-None-Match"]
    )
    assert exchange(doc, "jwks_if_none_match_current")["response"]["status"] == 304
    assert cache.keys is keys  # the same parsed object: the verified-token cache stays valid


async def test_09_changed_set_behind_a_stale_etag_replaces_the_keys() -> None:
    doc = scenario_09()
    old = load("01-es384-writer.json")
    stale_etag = doc["stale_etag_source"]["etag"]
    mono = [0.0]
    serve_old = [True]
    recorded = Recorded(doc)

    def handle(request: httpx.Request) -> httpx.Response:
        if serve_old[0] and request.url.path.endswith("/jwks"):
            recorded.requests.append(request)
            return response_of(exchange(old, "jwks"), request)
        return recorded.handle(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    cache = JWKSCache(doc["issuer"], http_client=client, ttl=TTL, clock=lambda: mono[0])
    await cache.refresh()  # the JWKS of 01, before the rotations of 06 and 07
    before = cache.keys
    assert before is not None
    old_body = exchange(old, "jwks")["response"]["body"]
    assert before.kids == {k["kid"] for k in old_body["keys"]}
    serve_old[0] = False
    recorded.jwks_answer = "jwks_if_none_match_stale"
    mono[0] += TTL
    await cache.refresh()
    assert recorded.requests[-1].headers["if-none-match"] == stale_etag
    after = cache.keys
    assert after is not None and after is not before  # replaced by the 200's body
    new_body = exchange(doc, "jwks_if_none_match_stale")["response"]["body"]
    assert after.kids == {k["kid"] for k in new_body["keys"]}
    # The new ETag is what the next revalidation sends; a 304 to it keeps the new set.
    recorded.jwks_answer = "jwks_if_none_match_current"
    mono[0] += TTL
    await cache.refresh()
    assert (
        recorded.requests[-1].headers["if-none-match"]
        == exchange(doc, "jwks")["response"]["headers"]["ETag"]
    )
    assert cache.keys is after


@pytest.mark.parametrize(
    "expected", [e for e in scenario_09()["expect_http"] if e["exchange"] != "jwks_head"]
)
async def test_09_each_recorded_answer_through_the_fetch_path(expected: dict[str, Any]) -> None:
    """Every recorded GET as `fetch_json` reads it: a 304 is "unchanged", a 200 the document."""
    doc = scenario_09()
    recorded = exchange(doc, expected["exchange"])
    sent_etag = (recorded["request"].get("headers") or {}).get("If-None-Match")
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: response_of(recorded, request))
    )
    async with client:
        result = await fetch_json(client, recorded["request"]["url"], etag=sent_etag)
    assert recorded["response"]["status"] == expected["status"]
    if expected["status"] == 304:
        assert result.document is None and expected["body_empty"]
        assert result.etag == sent_etag
    else:
        assert result.document == recorded["response"]["body"]
        assert result.etag == expected["etag"]
