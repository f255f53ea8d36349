"""The verifier against a REAL misbehaving issuer on loopback (R28, R29, R52).

For every fault: no verify call waits on the provider for longer than the fetch deadline, a
cold start answers `KeySetUnavailable` (503, never a crash, never a 401), a warm cache keeps
the last good keys (stale-if-error), the failure is logged clearly and without the token, and
the verifier recovers once the provider heals (after a short backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from logto_guard.errors import (
    AuthError,
    InvalidToken,
    IssuerNotVerifiable,
    KeySetUnavailable,
    SigningKeyNotYetKnown,
    UnknownSigningKey,
    UnsupportedAlgorithm,
)
from logto_guard.jwks_cache import JWKSCache
from logto_guard.token import AccessToken
from logto_guard.verifier import TokenVerifier

from .bad_provider import API, BadProvider, CountingServer

try:
    from unit.fake_issuer import sign_raw
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests.unit.fake_issuer import sign_raw

TIMEOUT = 0.5  # JWKSCache(timeout=): the total deadline of one fetch
BOUND = TIMEOUT + 0.5  # no verify call may take longer than this
TTL = 0.3  # keys are due for revalidation this soon: every test sees refetches
COOLDOWN = 0.2  # unknown-kid refetch spacing, and the base of the failure backoff
RECOVERY = 5.0  # a healed provider must be trusted again well within this

# The part of the log line that names each fault.
FRAGMENT = {
    "slow": "took longer than",
    "drip": "took longer than",
    "http_500": "HTTP 500",
    "html": "text/html",
    "invalid_json": "invalid JSON",
    "not_an_object": "invalid JSON",
    "huge": "exceeds",
    "huge_chunked": "exceeds",
    "use_enc": "no usable signing key",
    "oct_only": "no usable signing key",
    "redirect": "HTTP 302",
    "issuer_mismatch": "Logto reports its issuer as",
    "stopped": "ConnectError",
}
# Faults of a single document: each applies to the discovery document or to the JWKS.
DOCUMENT_FAULTS = (
    "slow",
    "drip",
    "http_500",
    "html",
    "invalid_json",
    "not_an_object",
    "huge",
    "huge_chunked",
    "redirect",
)
COLD_CASES = [
    *((mode, on) for mode in DOCUMENT_FAULTS for on in ("discovery", "jwks")),
    ("use_enc", "jwks"),
    ("oct_only", "jwks"),
    ("stopped", "both"),
]
# After a good fetch the discovery document is not read again: faults hit the JWKS.
WARM_CASES = [*DOCUMENT_FAULTS, "use_enc", "oct_only", "stopped"]


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def bad() -> Iterator[BadProvider]:
    provider = BadProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.close()


@pytest.fixture
def elsewhere(bad: BadProvider) -> Iterator[CountingServer]:
    """Another host serving the provider's GOOD documents; the redirect fault points there."""
    server = bad.mirror()
    bad.redirect_to = server.base_url
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def make_verifier(
    bad: BadProvider, elsewhere: CountingServer
) -> AsyncIterator[Callable[..., TokenVerifier]]:
    made: list[TokenVerifier] = []

    def factory(**options: Any) -> TokenVerifier:
        options = {"timeout": TIMEOUT, "ttl": TTL, "cooldown": COOLDOWN} | options
        verifier = TokenVerifier(
            issuer=bad.issuer, audience=API, jwks=JWKSCache(bad.issuer, **options)
        )
        made.append(verifier)
        return verifier

    yield factory
    for verifier in made:
        task = verifier.jwks._inflight  # a background revalidation may still be running
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, BOUND)
        await verifier.aclose()
    # Redirects are never followed, whatever the test did.
    assert elsewhere.total_hits == 0, dict(elsewhere.hits)


@pytest.fixture(autouse=True)
def _capture_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="logto_guard")


async def timed(verifier: TokenVerifier, token: str) -> AccessToken | AuthError:
    """verify() with a latency bound; an AuthError is returned, anything else propagates."""
    started = time.monotonic()
    try:
        outcome: AccessToken | AuthError = await verifier.verify(token)
    except AuthError as exc:
        outcome = exc
    elapsed = time.monotonic() - started
    assert elapsed <= BOUND, f"verify took {elapsed:.2f} s (> {BOUND} s): {outcome!r}"
    return outcome


async def cache(verifier: TokenVerifier, token: str) -> None:
    """Verify a token twice: from its second sighting it is in the verified-token cache."""
    for _ in range(2):
        assert isinstance(await timed(verifier, token), AccessToken)


async def recover(
    verifier: TokenVerifier, token: str, *, expected: type[AuthError], within: float = RECOVERY
) -> float:
    """Verify until the token passes (each call bounded); the seconds it took."""
    started = time.monotonic()
    while True:
        outcome = await timed(verifier, token)
        if isinstance(outcome, AccessToken):
            return time.monotonic() - started
        assert isinstance(outcome, expected), repr(outcome)
        assert time.monotonic() - started < within, "the verifier never recovered"
        await asyncio.sleep(0.05)


def jwks_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "logto_guard.jwks" and r.levelno == level
    ]


def assert_logged(caplog: pytest.LogCaptureFixture, level: int, *fragments: str) -> None:
    lines = jwks_records(caplog, level)
    assert any(all(f in line for f in fragments) for line in lines), (fragments, lines)


def assert_no_token(caplog: pytest.LogCaptureFixture, *tokens: str) -> None:
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for token in tokens:
        assert token not in text
        assert token.rsplit(".", 1)[-1] not in text  # not even the signature


async def wait_for_log(
    caplog: pytest.LogCaptureFixture,
    level: int,
    fragment: str,
    poll: Callable[[], Any] | None = None,
) -> None:
    """Wait (bounded) for a log line, running `poll()` (verify calls) meanwhile."""
    deadline = time.monotonic() + RECOVERY
    while not any(fragment in line for line in jwks_records(caplog, level)):
        assert time.monotonic() < deadline, (fragment, jwks_records(caplog, level))
        if poll is not None:
            await poll()
        await asyncio.sleep(0.05)


# -- cold start under each fault --------------------------------------------------------------


@pytest.mark.parametrize(("mode", "on"), COLD_CASES)
async def test_cold_start_under_fault(
    bad: BadProvider,
    make_verifier: Callable[..., TokenVerifier],
    caplog: pytest.LogCaptureFixture,
    mode: str,
    on: str,
) -> None:
    bad.set_fault(mode, on=("discovery", "jwks") if on == "both" else (on,))
    verifier = make_verifier()
    token = bad.sign()

    for _ in range(2):  # the first fetch, then a retry or an answer during the backoff
        outcome = await timed(verifier, token)
        assert isinstance(outcome, KeySetUnavailable), repr(outcome)
        assert outcome.status_code == 503
    assert_logged(caplog, logging.ERROR, FRAGMENT[mode], "no keys yet", bad.issuer)

    bad.heal()
    await recover(verifier, token, expected=KeySetUnavailable)
    # Healthy again: a new token verifies at once.
    assert isinstance(await timed(verifier, bad.sign()), AccessToken)
    assert_no_token(caplog, token)


async def test_cold_start_with_discovery_naming_another_issuer(
    bad: BadProvider,
    make_verifier: Callable[..., TokenVerifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong endpoint is a configuration mistake, not an outage: 401 (never 503), named once
    at ERROR; trusted again once discovery agrees."""
    bad.set_fault("issuer_mismatch", on=("discovery",))
    verifier = make_verifier()
    token = bad.sign()
    for _ in range(2):
        outcome = await timed(verifier, token)
        assert isinstance(outcome, IssuerNotVerifiable), repr(outcome)
        assert outcome.status_code == 401
    lines = jwks_records(caplog, logging.ERROR)
    assert [line for line in lines if FRAGMENT["issuer_mismatch"] in line] == lines
    assert len(lines) == 1 and bad.issuer in lines[0]
    bad.heal()
    await recover(verifier, token, expected=IssuerNotVerifiable)


async def test_cold_start_single_flight_under_a_hanging_provider(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    """100 concurrent cold requests against a provider that never answers: one fetch, and every
    request gets its 503 within the deadline."""
    bad.set_fault("slow", on=("jwks",))
    verifier = make_verifier()
    token = bad.sign()
    outcomes = await asyncio.gather(*(timed(verifier, token) for _ in range(100)))
    assert all(isinstance(o, KeySetUnavailable) for o in outcomes)
    assert (bad.discovery_hits, bad.jwks_hits) == (1, 1)


async def test_failures_back_off(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    """After a failure, requests during the backoff get 503 at once, without a fetch; the next
    fetch waits cooldown, then 2 x cooldown..."""
    bad.set_fault("http_500", on=("jwks",))
    verifier = make_verifier(cooldown=0.4, ttl=60)
    token = bad.sign()
    assert isinstance(await timed(verifier, token), KeySetUnavailable)
    assert bad.jwks_hits == 1
    for _ in range(5):
        started = time.monotonic()
        assert isinstance(await timed(verifier, token), KeySetUnavailable)
        assert time.monotonic() - started < 0.05  # answered from memory
    assert bad.jwks_hits == 1
    await asyncio.sleep(0.45)
    assert isinstance(await timed(verifier, token), KeySetUnavailable)
    assert bad.jwks_hits == 2  # second failure: the next try is 0.8 s away
    await asyncio.sleep(0.45)
    assert isinstance(await timed(verifier, token), KeySetUnavailable)
    assert bad.jwks_hits == 2
    bad.heal()
    waited = await recover(verifier, token, expected=KeySetUnavailable)
    assert waited <= 0.8
    assert bad.jwks_hits == 3


# -- a fault after a good fetch: stale-if-error ---------------------------------------------


@pytest.mark.parametrize("mode", WARM_CASES)
async def test_warm_cache_keeps_last_good_keys(
    bad: BadProvider,
    make_verifier: Callable[..., TokenVerifier],
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    verifier = make_verifier()
    tokens = [bad.sign(), bad.sign(kid=bad.rsa_kid)]
    for token in tokens:
        assert isinstance(await timed(verifier, token), AccessToken)

    bad.set_fault(mode, on=("jwks",))
    await asyncio.sleep(TTL + 0.05)  # the keys are due for revalidation

    async def verify_fresh_tokens() -> None:
        for kid in (bad.kid, bad.rsa_kid):  # new tokens: no verified-token cache hits
            token = bad.sign(kid=kid)
            tokens.append(token)
            outcome = await timed(verifier, token)
            assert isinstance(outcome, AccessToken), repr(outcome)

    # Requests keep passing with the last good keys while revalidation fails in the background.
    await wait_for_log(caplog, logging.WARNING, FRAGMENT[mode], verify_fresh_tokens)
    assert_logged(caplog, logging.WARNING, FRAGMENT[mode], "keeping the last good keys")
    await verify_fresh_tokens()
    for token in tokens[:2]:
        assert isinstance(await timed(verifier, token), AccessToken)

    # An unknown kid on a new token is refused with 503: the failing provider cannot tell
    # whether it is a key published since (after a bounded refetch attempt).
    stranger = bad.sign(key=ec.generate_private_key(ec.SECP384R1()), kid="not-published")
    await asyncio.sleep(COOLDOWN)
    refused = await timed(verifier, stranger)
    assert isinstance(refused, SigningKeyNotYetKnown), repr(refused)
    assert refused.status_code == 503 and refused.retry_after >= 1

    # Rotation during the outage; the healed provider's new key is picked up.
    new_kid = bad.add_key("EC")
    bad.heal()
    fresh = bad.sign(kid=new_kid)
    await recover(verifier, fresh, expected=(UnknownSigningKey, SigningKeyNotYetKnown))
    await verify_fresh_tokens()
    assert_no_token(caplog, *tokens, stranger, fresh)


async def test_stale_keys_expire_after_max_stale(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    verifier = make_verifier(max_stale=1.0)
    assert isinstance(await timed(verifier, bad.sign()), AccessToken)
    bad.set_fault("stopped")
    assert isinstance(await timed(verifier, bad.sign()), AccessToken)
    await asyncio.sleep(1.05)
    assert isinstance(await timed(verifier, bad.sign()), KeySetUnavailable)
    bad.heal()
    await recover(verifier, bad.sign(), expected=KeySetUnavailable)


async def test_cached_token_expires_with_max_stale(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    """Past max_stale a new token of the same key gets 503: the token verified (and cached)
    before the outage must not keep passing on the strength of keys no longer trusted."""
    verifier = make_verifier(max_stale=1.0)
    cached = bad.sign()
    await cache(verifier, cached)
    bad.set_fault("stopped")
    await asyncio.sleep(1.05)
    assert isinstance(await timed(verifier, bad.sign()), KeySetUnavailable)
    assert isinstance(await timed(verifier, cached), KeySetUnavailable)


# -- duplicate kid, oct keys, malformed keys ------------------------------------------------


async def test_duplicate_kid_cold(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier], caplog: pytest.LogCaptureFixture
) -> None:
    bad.set_fault("dup_kid", on=("jwks",))
    verifier = make_verifier()
    for token in (bad.sign(), bad.sign(key=bad.impostor)):  # the real key, and the other one
        outcome = await timed(verifier, token)
        assert isinstance(outcome, InvalidToken), repr(outcome)
        assert isinstance(outcome, UnsupportedAlgorithm)
    # A token without kid cannot pick one of the two ES384 keys either.
    no_kid = bad.sign(header={"kid": None})
    assert isinstance(await timed(verifier, no_kid), InvalidToken)
    # The unambiguous key of the same set still works.
    assert isinstance(await timed(verifier, bad.sign(kid=bad.rsa_kid)), AccessToken)
    assert any("kid twice" in r.getMessage() for r in caplog.records)


async def test_duplicate_kid_appearing_after_a_good_fetch(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    verifier = make_verifier()
    cached = bad.sign()
    await cache(verifier, cached)
    bad.set_fault("dup_kid", on=("jwks",))
    await asyncio.sleep(TTL + 0.05)
    # New tokens trigger the revalidation (answered with the keys in hand meanwhile); once the
    # new key set is in, the kid is ambiguous, for the token in the verified-token cache too.
    deadline = time.monotonic() + RECOVERY
    while isinstance(await timed(verifier, bad.sign()), AccessToken):
        assert time.monotonic() < deadline, "the duplicate kid was never noticed"
        await asyncio.sleep(0.05)
    assert isinstance(await timed(verifier, bad.sign()), UnsupportedAlgorithm)
    assert isinstance(await timed(verifier, cached), UnsupportedAlgorithm)
    assert isinstance(await timed(verifier, bad.sign(kid=bad.rsa_kid)), AccessToken)

    # Healed: a request with another kid starts the revalidation, and the kid is usable again.
    bad.heal()
    await asyncio.sleep(TTL + 0.05)
    assert isinstance(await timed(verifier, bad.sign(kid=bad.rsa_kid)), AccessToken)
    await recover(verifier, bad.sign(), expected=UnsupportedAlgorithm)


async def test_recovers_from_a_transient_duplicate_kid(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    """Logto signs with one key: every token carries the same kid. A JWKS that briefly lists
    that kid twice must not lock it out once the provider publishes a sane set again."""
    verifier = make_verifier()
    bad.set_fault("dup_kid", on=("jwks",))
    assert isinstance(await timed(verifier, bad.sign()), UnsupportedAlgorithm)
    bad.heal()
    await recover(verifier, bad.sign(), expected=UnsupportedAlgorithm, within=TTL + 2 * BOUND)


async def test_removed_key_noticed_through_misses(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    """R30: once a refresh no longer lists a kid, its tokens are rejected, cached ones too."""
    verifier = make_verifier()
    cached = bad.sign()
    await cache(verifier, cached)
    bad.remove_key(bad.kid)
    await asyncio.sleep(TTL + 0.05)
    deadline = time.monotonic() + RECOVERY
    while isinstance(await timed(verifier, bad.sign(kid=bad.rsa_kid)), AccessToken):
        if isinstance(await timed(verifier, cached), UnknownSigningKey):
            break
        assert time.monotonic() < deadline, "the removed key was never noticed"
        await asyncio.sleep(0.05)
    assert isinstance(await timed(verifier, cached), UnknownSigningKey)


async def test_removed_key_noticed_with_only_cache_hits(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    """An M2M client reuses one token for an hour: all its requests are cache hits. The keys
    are still due for revalidation every ttl, and a key withdrawn meanwhile must stop working."""
    verifier = make_verifier()
    cached = bad.sign()
    await cache(verifier, cached)
    bad.remove_key(bad.kid)
    deadline = time.monotonic() + TTL + 2 * BOUND
    while time.monotonic() < deadline:
        if isinstance(await timed(verifier, cached), UnknownSigningKey):
            break
        await asyncio.sleep(0.05)
    assert isinstance(await timed(verifier, cached), UnknownSigningKey)
    assert bad.jwks_hits >= 2


@pytest.mark.parametrize("warm", [False, True])
async def test_oct_key_never_becomes_an_hmac_secret(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier], warm: bool
) -> None:
    verifier = make_verifier()
    if warm:
        assert isinstance(await timed(verifier, bad.sign()), AccessToken)
    bad.set_fault("oct_only", on=("jwks",))
    await asyncio.sleep(TTL + 0.05)
    claims = bad.claims()
    for alg in ("HS256", "HS384", "HS512"):
        forged = sign_raw({"alg": alg, "kid": bad.kid, "typ": "at+jwt"}, claims, bad.oct_secret)
        outcome = await timed(verifier, forged)
        assert isinstance(outcome, UnsupportedAlgorithm), repr(outcome)


async def test_one_malformed_jwk_is_skipped_not_fatal(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    bad.set_fault("poisoned_key", on=("jwks",))
    verifier = make_verifier()
    assert isinstance(await timed(verifier, bad.sign()), AccessToken)


# -- redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("on", ["discovery", "jwks"])
async def test_redirect_is_not_followed(
    bad: BadProvider,
    elsewhere: CountingServer,
    make_verifier: Callable[..., TokenVerifier],
    caplog: pytest.LogCaptureFixture,
    status: int,
    on: str,
) -> None:
    bad.redirect_status = status
    bad.set_fault("redirect", on=(on,))
    verifier = make_verifier()
    outcome = await timed(verifier, bad.sign())
    assert isinstance(outcome, KeySetUnavailable), repr(outcome)
    assert_logged(caplog, logging.ERROR, f"HTTP {status}")
    assert elsewhere.total_hits == 0
    assert bad.hits[bad.discovery_path if on == "discovery" else bad.jwks_path] == 1


# -- the deadline covers the whole key fetch --------------------------------------------------


async def test_cold_start_deadline_covers_discovery_and_jwks(
    bad: BadProvider, make_verifier: Callable[..., TokenVerifier]
) -> None:
    """A cold fetch reads two documents (discovery, then JWKS); `timeout` is the total deadline
    of the fetch (R28), not one per document."""
    verifier = make_verifier(cooldown=0.05, ttl=0.05)
    # A first failed attempt creates the HTTP client (about 0.15 s of CPU for the TLS context)
    # and warms httpx, so the timed attempt below measures the fetch alone.
    bad.set_fault("http_500", on=("discovery",))
    assert isinstance(await timed(verifier, bad.sign()), KeySetUnavailable)
    bad.heal()
    bad.delay = 0.35  # each document well within the deadline, both together beyond it
    await asyncio.sleep(0.1)  # past the backoff
    started = time.monotonic()
    outcome = await timed(verifier, bad.sign())
    elapsed = time.monotonic() - started
    assert elapsed <= TIMEOUT + 0.1, f"{elapsed:.2f} s, {outcome!r}"
