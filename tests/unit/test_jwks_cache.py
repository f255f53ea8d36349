"""The JWKS cache's policy: freshness, ETag, single-flight, cooldown, stale-if-error."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from logto_guard.errors import (
    ConfigurationError,
    IssuerMismatch,
    IssuerNotVerifiable,
    KeySetUnavailable,
    SigningKeyNotYetKnown,
    UnknownSigningKey,
)
from logto_guard.jwks_cache import JWKSCache

from .fake_issuer import ISSUER, FakeClock, FakeIssuer


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def background_done(cache: JWKSCache) -> None:
    """Wait for the background revalidation, if one runs (a condition, not a sleep)."""
    task = cache._inflight
    if task is not None:
        await asyncio.shield(task)


def make_cache(issuer: FakeIssuer, clock: FakeClock, **kw: object) -> JWKSCache:
    return JWKSCache(ISSUER, http_client=issuer.client(), clock=clock, **kw)  # type: ignore[arg-type]


async def test_discovery_then_jwks_and_key_lookup(issuer: FakeIssuer, clock: FakeClock) -> None:
    cache = make_cache(issuer, clock)
    kid = issuer.published[0]["kid"]
    key = await cache.get_key(kid, "ES384")
    assert key.kid == kid and key.algorithm == "ES384"
    assert (issuer.discovery_calls, issuer.jwks_calls) == (1, 1)
    assert await cache.get_key(kid, "ES384") is key
    assert issuer.jwks_calls == 1


async def test_cold_start_is_single_flight(issuer: FakeIssuer, clock: FakeClock) -> None:
    issuer.delay = 0.05
    cache = make_cache(issuer, clock)
    kid = issuer.published[0]["kid"]
    keys = await asyncio.gather(*(cache.get_key(kid, "ES384") for _ in range(1000)))
    assert len({id(k) for k in keys}) == 1
    assert issuer.jwks_calls == 1 and issuer.discovery_calls == 1


async def test_stale_keys_revalidate_in_background_with_etag(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    cache = make_cache(issuer, clock, ttl=600)
    kid = issuer.published[0]["kid"]
    key = await cache.get_key(kid, "ES384")
    clock.advance(601)
    assert await cache.get_key(kid, "ES384") is key  # answered at once from memory
    await background_done(cache)  # let the background revalidation run
    assert issuer.jwks_calls == 2
    assert await cache.get_key(kid, "ES384") is key  # 304 kept the parsed keys
    assert issuer.jwks_calls == 2


async def test_unknown_kid_refetches_once_per_cooldown(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    cache = make_cache(issuer, clock, cooldown=30)
    await cache.get_key(issuer.published[0]["kid"], "ES384")
    clock.advance(31)
    results = await asyncio.gather(
        *(cache.get_key(f"random-{i}", "ES384") for i in range(10_000)), return_exceptions=True
    )
    assert all(isinstance(r, UnknownSigningKey) for r in results)
    assert issuer.jwks_calls == 2  # one refetch for the whole flood
    clock.advance(10)
    with pytest.raises(UnknownSigningKey):
        await cache.get_key("another", "ES384")
    assert issuer.jwks_calls == 2
    clock.advance(30)
    new_kid = issuer.add_key()
    assert (await cache.get_key(new_kid, "ES384")).kid == new_kid
    assert issuer.jwks_calls == 3


async def test_kid_with_other_algorithm_is_refused_without_fetch(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    cache = make_cache(issuer, clock, cooldown=0)
    kid = issuer.published[0]["kid"]
    await cache.get_key(kid, "ES384")
    with pytest.raises(Exception, match="does not match"):
        await cache.get_key(kid, "RS256")
    assert issuer.jwks_calls == 1


async def test_stale_if_error_keeps_last_good_keys(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(issuer, clock, ttl=600, max_stale=3600)
    kid = issuer.published[0]["kid"]
    key = await cache.get_key(kid, "ES384")
    issuer.fault = lambda request: httpx.Response(500, text="down")
    clock.advance(601)
    with caplog.at_level(logging.WARNING, logger="logto_guard.jwks"):
        assert await cache.get_key(kid, "ES384") is key
        await background_done(cache)
    assert "keeping the last good keys" in caplog.text
    # backoff: no new fetch attempt right after a failure
    calls = issuer.jwks_calls
    assert await cache.get_key(kid, "ES384") is key
    await background_done(cache)
    assert issuer.jwks_calls == calls
    # past max_stale, the old keys are no longer trusted
    clock.advance(3600)
    with pytest.raises(KeySetUnavailable):
        await cache.get_key(kid, "ES384")
    # recovery when the provider heals
    issuer.fault = None
    clock.advance(600)
    assert (await cache.get_key(kid, "ES384")).kid == kid


async def test_cold_start_with_provider_down_is_503_and_backs_off(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    issuer.fault = lambda request: httpx.Response(
        200, text="<html>", headers={"content-type": "text/html"}
    )
    cache = make_cache(issuer, clock)
    with pytest.raises(KeySetUnavailable):
        await cache.get_key("k", "ES384")
    with pytest.raises(KeySetUnavailable):
        await cache.get_key("k", "ES384")
    assert issuer.jwks_calls == 1  # the second request did not hammer the provider


@pytest.mark.parametrize(
    ("fault", "log"),
    [
        (
            lambda r: httpx.Response(
                200, content=b"{not json", headers={"content-type": "application/json"}
            ),
            "invalid JSON",
        ),
        (
            lambda r: httpx.Response(302, headers={"location": "https://evil.example/jwks"}),
            "HTTP 302",
        ),
        (
            lambda r: httpx.Response(
                200, content=b" " * (600 * 1024), headers={"content-type": "application/json"}
            ),
            "exceeds",
        ),
        (
            lambda r: httpx.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            "no usable",
        ),
        (lambda r: httpx.Response(200, json={"nokeys": []}), "no 'keys'"),
    ],
)
async def test_bad_jwks_answers_are_logged_failures(
    issuer: FakeIssuer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    fault,
    log,  # type: ignore[no-untyped-def]
) -> None:
    issuer.fault = fault
    cache = make_cache(issuer, clock)
    with (
        caplog.at_level(logging.ERROR, logger="logto_guard.jwks"),
        pytest.raises(KeySetUnavailable),
    ):
        await cache.get_key("k", "ES384")
    assert log in caplog.text


async def test_discovery_issuer_mismatch_is_a_configuration_error(
    issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.discovery_issuer = "https://other.logto.app/oidc"
    cache = make_cache(issuer, clock)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(IssuerNotVerifiable) as refused:
            await cache.get_key("k", "ES384")
        assert refused.value.status_code == 401  # not 503: waiting will not fix it
        with pytest.raises(IssuerNotVerifiable):  # backing off: no new discovery yet
            await cache.get_key("k", "ES384")
        clock.advance(601)  # retried after ttl, in case Logto's configuration was fixed
        with pytest.raises(IssuerMismatch) as mismatch:
            await cache.refresh()
    sentence = (
        f"Logto reports its issuer as 'https://other.logto.app/oidc' but '{ISSUER}' is configured"
    )
    assert str(mismatch.value) == sentence
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        sentence + ": fix the endpoint/issuer setting"
    ]  # logged once, though discovery ran twice
    assert (issuer.discovery_calls, issuer.jwks_calls) == (2, 0)
    assert cache.last_error == sentence
    issuer.discovery_issuer = ISSUER  # fixed: the next fetch succeeds and clears the error
    clock.advance(601)
    await cache.refresh()
    assert cache.config_error is None


async def test_slow_provider_hits_the_total_deadline(issuer: FakeIssuer, clock: FakeClock) -> None:
    issuer.delay = 1.0
    cache = make_cache(issuer, clock, timeout=0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(KeySetUnavailable):
        await cache.get_key("k", "ES384")
    assert loop.time() - started < 0.5


async def test_removed_key_is_no_longer_current(issuer: FakeIssuer, clock: FakeClock) -> None:
    cache = make_cache(issuer, clock, ttl=10)
    old = issuer.published[0]["kid"]
    new = issuer.add_key()
    await cache.get_key(old, "ES384")
    before = cache.current()
    assert before is not None and before.find(old, "ES384") is not None
    issuer.remove_key(old)
    clock.advance(11)
    await cache.refresh()
    after = cache.current()
    assert after is not before  # a changed key set: verified-token cache entries no longer match
    assert after is not None and after.find(old, "ES384") is None
    assert (await cache.get_key(new, "ES384")).kid == new


def test_http_issuer_needs_loopback_or_opt_in() -> None:
    with pytest.raises(ConfigurationError):
        JWKSCache("http://tenant.logto.app/oidc")
    JWKSCache("http://127.0.0.1:3001/oidc")
    JWKSCache("http://localhost:3001/oidc")
    JWKSCache("http://logto.internal/oidc", allow_insecure_http=True)


# -- rotation: only a fruitless unknown-kid refetch arms the cooldown -------------------------


async def test_new_kid_right_after_a_fetch_refetches_at_once(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Logto's immediate rotation: the very next token has a kid published a moment ago."""
    cache = make_cache(issuer, clock, cooldown=30)
    await cache.get_key(issuer.published[0]["kid"], "ES384")  # the first fetch: no cooldown
    for _ in range(3):  # three rotations within a second: each new kid found on first sight
        clock.advance(0.1)
        new_kid = issuer.add_key()
        assert (await cache.get_key(new_kid, "ES384", min_age=-60)).kid == new_kid
    assert issuer.jwks_calls == 4


async def test_ttl_revalidation_does_not_arm_the_cooldown(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    cache = make_cache(issuer, clock, ttl=10, cooldown=30)
    await cache.get_key(issuer.published[0]["kid"], "ES384")
    clock.advance(11)
    await cache.refresh()  # a revalidation just happened
    new_kid = issuer.add_key()
    assert (await cache.get_key(new_kid, "ES384", min_age=-60)).kid == new_kid


async def test_during_a_cooldown_old_tokens_get_401_new_ones_503(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    cache = make_cache(issuer, clock, cooldown=30)
    await cache.get_key(issuer.published[0]["kid"], "ES384")
    clock.advance(5)
    with pytest.raises(UnknownSigningKey):  # refetched, still absent: really unknown
        await cache.get_key("random-1", "ES384", min_age=-60)
    assert issuer.jwks_calls == 2
    clock.advance(10)
    # The refetch 10 s ago would have listed the key of a token signed 100 s ago.
    with pytest.raises(UnknownSigningKey):
        await cache.get_key("random-2", "ES384", min_age=100)
    # A kid that refetch already showed absent is a removed key, however recent the token.
    with pytest.raises(UnknownSigningKey):
        await cache.get_key("random-1", "ES384", min_age=-60)
    # A token possibly newer than our keys: 503, retry when the cooldown ends (20 s).
    new_kid = issuer.add_key()
    with pytest.raises(SigningKeyNotYetKnown) as pending:
        await cache.get_key(new_kid, "ES384", min_age=-60)
    assert (pending.value.status_code, pending.value.retry_after) == (503, 20)
    assert issuer.jwks_calls == 2  # the flood bound holds
    clock.advance(20)
    assert (await cache.get_key(new_kid, "ES384", min_age=-60)).kid == new_kid
    assert issuer.jwks_calls == 3


async def test_joining_a_fetch_that_started_earlier_fetches_again(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """A revalidation in flight may predate the key: its answer cannot prove the kid absent."""
    cache = make_cache(issuer, clock, ttl=10, cooldown=30)
    await cache.get_key(issuer.published[0]["kid"], "ES384")
    clock.advance(11)
    before = issuer.jwks()

    def answer_with_the_old_set(request: httpx.Request) -> httpx.Response:
        issuer.fault = None  # once: the set as it was when this revalidation was sent
        return httpx.Response(200, json=before)

    issuer.fault = answer_with_the_old_set
    cache.current()  # starts the due revalidation, in the background
    clock.advance(0.01)
    new_kid = issuer.add_key()  # published while that revalidation is on its way
    assert (await cache.get_key(new_kid, "ES384", min_age=-60)).kid == new_kid
    assert issuer.jwks_calls == 3


async def test_failed_refetch_answers_by_the_token_age(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    cache = make_cache(issuer, clock, cooldown=30)
    await cache.get_key(issuer.published[0]["kid"], "ES384")
    issuer.fault = lambda request: httpx.Response(500, text="down")
    clock.advance(5)
    with pytest.raises(SigningKeyNotYetKnown) as pending:  # Logto down: cannot tell
        await cache.get_key("new", "ES384", min_age=-60)
    assert pending.value.retry_after == 30  # the failure backoff
    with pytest.raises(UnknownSigningKey):  # older than our last good fetch
        await cache.get_key("other", "ES384", min_age=100)


async def test_owned_client_leaves_nothing_open(clock: FakeClock) -> None:
    """Without http_client= each fetch uses a client of its own, closed right after it."""
    cache = JWKSCache("https://127.0.0.1:9/oidc", timeout=0.5, clock=clock)  # nothing listens
    with pytest.raises(KeySetUnavailable):
        await cache.get_key("k", "ES384")
    first_context = cache._ssl_context
    assert first_context is not None
    clock.advance(3600)
    with pytest.raises(KeySetUnavailable):
        await cache.get_key("k", "ES384")
    assert cache._ssl_context is first_context  # the CA bundle is loaded once


async def test_aclose_ends_a_fetch_in_flight(issuer: FakeIssuer, clock: FakeClock) -> None:
    """A shutdown mid-fetch leaves no task (nor its per-fetch client) behind."""
    issuer.delay = 5.0
    cache = make_cache(issuer, clock)
    cache.current()  # cold: starts a fetch in the background
    task = cache._inflight
    assert task is not None
    await asyncio.sleep(0.01)
    await cache.aclose()
    assert task.done() and cache._inflight is None


async def test_concurrent_requests_for_a_removed_kid_all_get_401(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Requests joining the refetch that proves a kid absent are answered 401 too, not 503."""
    cache = make_cache(issuer, clock, cooldown=30)
    old = issuer.published[0]["kid"]
    await cache.get_key(old, "ES384")
    issuer.add_key()
    issuer.remove_key(old)
    issuer.delay = 0.05
    clock.advance(1)

    async def late(delay: float) -> object:
        await asyncio.sleep(delay)
        clock.advance(0.01)  # arrives after the refetch started
        return await cache.get_key("gone", "ES384", min_age=-60)

    outcomes = await asyncio.gather(
        cache.get_key("gone", "ES384", min_age=-60), late(0.01), late(0.02),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(o, UnknownSigningKey) for o in outcomes), outcomes
    assert issuer.jwks_calls == 2


async def test_a_kid_we_held_and_logto_dropped_is_401_without_refetch(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """A removed key's tokens keep coming (M2M clients cache tokens for an hour): each is a
    plain 401, costs no fetch and arms no cooldown, however recent the token."""
    cache = make_cache(issuer, clock, ttl=10, cooldown=30)
    old = issuer.published[0]["kid"]
    await cache.get_key(old, "ES384")
    new = issuer.add_key()
    issuer.remove_key(old)
    clock.advance(11)
    await cache.refresh()
    calls = issuer.jwks_calls
    for _ in range(3):
        with pytest.raises(UnknownSigningKey):
            await cache.get_key(old, "ES384", min_age=-60)
    assert issuer.jwks_calls == calls
    newer = issuer.add_key()  # no cooldown was armed: a new kid is still fetched at once
    assert (await cache.get_key(newer, "ES384", min_age=-60)).kid == newer
    assert (await cache.get_key(new, "ES384")).kid == new
