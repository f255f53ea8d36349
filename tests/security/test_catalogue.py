"""The attack catalogue, every case through the real ASGI app (LogtoGuard + routes + verifier).

One request per case, driven in-process with httpx's ASGITransport against a warm verifier of
the real oidc-provider's keys. Each case asserts the exact answer: status, the JSON `error`, the
whole `WWW-Authenticate` value (and, where the reason matters, the `error_description`). No case
may answer 5xx, accept a forged token, or make the verifier fetch a URL named in a token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from logto_guard.jwks_cache import JWKSCache
from logto_guard.verifier import TokenVerifier

from .catalogue import CASES, OK, SHOP, Case, Ctx, build_app, check_answer, no_attacker_fetch


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def verifier(ctx: Ctx) -> AsyncIterator[TokenVerifier]:
    # cooldown=0: each unknown-kid case refetches, as it would alone (a shared cooldown would
    # answer later cases 503 "not fetched yet"; that policy is tested in tests/test_rotation.py)
    verifier = TokenVerifier(
        issuer=ctx.issuer, audience=SHOP, jwks=JWKSCache(ctx.issuer, cooldown=0)
    )
    yield verifier
    await verifier.aclose()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(verifier: TokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _params() -> list[Any]:
    params: list[Any] = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", _params())
async def test_attack(case: Case, ctx: Ctx, client: httpx.AsyncClient) -> None:
    req = case.build(ctx)
    url = req.path + ("?" + req.query.decode("ascii") if req.query else "")
    with no_attacker_fetch(ctx):
        response = await client.request(req.method, url, headers=list(req.headers))
    assert response.status_code < 500
    check_answer(case, response.status_code, list(response.headers.items()), response.content, req)


def test_catalogue_size() -> None:
    assert len(CASES) >= 50
    accepted = [c for c in CASES if c.expect == OK]
    refused = [c for c in CASES if c.expect != OK]
    # Both directions are exercised: forged tokens refused, and legitimate variants accepted.
    assert len(accepted) >= 15 and len(refused) >= 100, (len(accepted), len(refused))


def test_no_url_named_in_a_token_was_ever_fetched(ctx: Ctx) -> None:
    assert ctx.attacker.hits == []
