"""Fixtures of the fuzz tests: one event loop, one healthy BadProvider and the real-token
samples (with their warm verifiers), shared by the whole tests/faults session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from logto_guard.jwks_cache import JWKSCache
from logto_guard.verifier import TokenVerifier

from .bad_provider import API, BadProvider, decode_segment
from .fuzzing import Runner, Sample


@pytest.fixture(scope="session")
def run() -> Iterator[Runner]:
    runner = Runner()
    try:
        yield runner
    finally:
        runner.loop.run_until_complete(runner.loop.shutdown_asyncgens())
        runner.loop.close()


@pytest.fixture(scope="session")
def healthy() -> Iterator[BadProvider]:
    provider = BadProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.close()


@pytest.fixture(scope="session")
def samples(run: Runner, healthy: BadProvider, oidc_provider: Any) -> Iterator[list[Sample]]:
    # cooldown=0: every unknown kid is refetched, so each example's answer does not depend on
    # the ones before it (a shared cooldown answers fresh unknown kids 503, by design).
    real = TokenVerifier(
        issuer=oidc_provider.issuer,
        audience=oidc_provider.SHOP,
        jwks=JWKSCache(oidc_provider.issuer, cooldown=0),
    )
    local = TokenVerifier(
        issuer=healthy.issuer,
        audience=API,
        jwks=JWKSCache(healthy.issuer, timeout=2.0, cooldown=0),
    )
    found = [
        ("oidc-provider", oidc_provider.token(), real),
        ("bad-provider ES384", healthy.sign(), local),
        ("bad-provider RS256", healthy.sign(kid=healthy.rsa_kid), local),
    ]
    result = []
    for name, token, verifier in found:
        claims = run(verifier.verify(token))  # warms the key cache
        header, payload, _ = token.split(".")
        raw_header = decode_segment(header)
        result.append(
            Sample(
                name,
                token,
                verifier,
                raw_header,
                decode_segment(payload),
                dict(claims.claims),
                json.loads(raw_header)["alg"],
            )
        )
    try:
        yield result
    finally:
        for verifier in (real, local):
            run(verifier.aclose())
