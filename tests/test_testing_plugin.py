"""The pytest plugin as a user sees it, and LocalIssuer against the library's real verifier."""

from __future__ import annotations

import textwrap

import httpx
import pytest

from logto_guard.errors import (
    ExpiredToken,
    InvalidAudience,
    InvalidIssuer,
    KeySetUnavailable,
    UnknownSigningKey,
)
from logto_guard.testing import LocalIssuer
from logto_guard.verifier import TokenVerifier

pytest_plugins = ["pytester"]

API = "https://shopping.api"
# hypothesis' plugin costs seconds per inner session (imports at terminal summary) and is unused.
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run_user_suite(pytester: pytest.Pytester, tests: str, conftest: str = "") -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makeconftest(
        'pytest_plugins = ["logto_guard.testing.pytest_plugin"]\n' + textwrap.dedent(conftest)
    )
    pytester.makepyfile(test_user=textwrap.dedent(tests))


def test_fixtures_from_a_users_point_of_view(pytester: pytest.Pytester) -> None:
    run_user_suite(
        pytester,
        """
        import httpx, jwt

        def claims(token):
            return jwt.decode(token, options={"verify_signature": False})

        def test_token_factory(logto_token, logto_issuer):
            token = logto_token(scopes=["read:products", "write:products"])
            assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
            assert claims(token)["scope"] == "read:products write:products"
            assert claims(token)["aud"] == "https://shopping.api"
            assert claims(token)["iss"] == logto_issuer.issuer
            assert claims(logto_token())["scope"] == "read:products"
            assert claims(logto_token(client_id="other"))["sub"] == "other"

        def test_fresh_issuer_per_test(logto_issuer, logto_token):
            assert logto_issuer.kids == (logto_issuer.signing_kid,)

        def test_transport(logto_transport, logto_issuer):
            with httpx.Client(transport=logto_transport) as client:
                assert client.get(logto_issuer.jwks_uri).json() == logto_issuer.jwks()

        async def test_verifier(logto_verifier, logto_token, logto_issuer):
            token = await logto_verifier.verify(logto_token(scopes=["read:products"]))
            assert token.scopes == {"read:products"}
            assert token.issuer == logto_issuer.issuer

        def test_served_issuer(logto_served_issuer):
            assert logto_served_issuer.endpoint.startswith("http://127.0.0.1:")
            assert httpx.get(logto_served_issuer.jwks_uri).status_code == 200
        """,
    )
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(passed=5)


def test_overriding_the_audience(pytester: pytest.Pytester) -> None:
    run_user_suite(
        pytester,
        """
        async def test_audience(logto_token, logto_verifier):
            token = await logto_verifier.verify(logto_token())
            assert token.audience == ("https://orders.api",)
        """,
        conftest="""
        import pytest

        @pytest.fixture
        def logto_audience():
            return "https://orders.api"
        """,
    )
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=1)


def test_the_documented_example(pytester: pytest.Pytester) -> None:
    """The module docstring's example, nearly verbatim, against a Starlette app."""
    run_user_suite(
        pytester,
        """
        import httpx
        import pytest
        from starlette.applications import Starlette
        from starlette.authentication import requires
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from logto_guard.middleware import LogtoGuard

        @requires("read:products")
        async def products(request):
            return JSONResponse({"client": request.auth.client_id})

        routes = [Route("/products", products)]

        @pytest.fixture
        async def client(logto_verifier):
            app = Starlette(routes=routes)
            app.add_middleware(LogtoGuard, verifier=logto_verifier)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield client

        async def test_list_products(client, logto_token):
            token = logto_token(scopes=["read:products"])
            response = await client.get("/products", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
            assert response.json() == {"client": "m2m-app"}

        async def test_needs_the_scope(client, logto_token):
            token = logto_token(scopes=[])
            response = await client.get("/products", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 403

        async def test_expired(client, logto_issuer):
            token = logto_issuer.expired_token()
            response = await client.get("/products", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
        """,
    )
    pytester.runpytest(*INNER_ARGS, "-W", "error").assert_outcomes(passed=3)


# -- LocalIssuer against the real TokenVerifier ------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES384", "RS256"])
async def test_verifier_accepts_local_tokens_via_the_transport(algorithm: str) -> None:
    issuer = LocalIssuer(algorithm=algorithm)  # type: ignore[arg-type]
    verifier = issuer.verifier(audience=API)
    token = await verifier.verify(issuer.mint(scopes=["read:products", "write:products"]))
    assert token.scopes == {"read:products", "write:products"}
    assert token.sub == token.client_id == "m2m-app"
    assert token.issuer == issuer.issuer
    paths = [r.path for r in issuer.requests]
    assert paths == ["/oidc/.well-known/openid-configuration", "/oidc/jwks"]

    with pytest.raises(ExpiredToken):
        await verifier.verify(issuer.expired_token())
    with pytest.raises(InvalidAudience):
        await verifier.verify(issuer.mint(audience="https://other.api"))
    org = await verifier.verify(issuer.mint(organization_id="org-1"))
    assert org.organization_id == "org-1"


async def test_verifier_rejects_another_issuers_tokens() -> None:
    issuer, stranger = LocalIssuer(), LocalIssuer()
    verifier = issuer.verifier(audience=API)
    with pytest.raises(UnknownSigningKey):
        await verifier.verify(stranger.mint())
    other_iss = LocalIssuer("https://tenant.logto.app")
    with pytest.raises(InvalidIssuer):
        # signed by the trusted key, but naming another issuer
        await verifier.verify(issuer.sign(_header(issuer), _claims(other_iss.mint())))


async def test_staged_rotation_is_seamless() -> None:
    """Logto's recommended rotation: publish the next key before it signs anything."""
    issuer = LocalIssuer()
    verifier = issuer.verifier(audience=API)
    old = issuer.mint()
    staged = issuer.add_key("RS256")
    await verifier.verify(old)
    issuer.promote(staged)
    await verifier.verify(issuer.mint())  # known from the first fetch: no refetch needed
    await verifier.verify(old)
    assert sum(r.path.endswith("/jwks") for r in issuer.requests) == 1


async def test_unstaged_rotation_is_picked_up_on_first_sight() -> None:
    issuer = LocalIssuer()
    strict = issuer.verifier(audience=API)
    eager = issuer.verifier(audience=API, jwks_options={"cooldown": 0})
    for verifier in (strict, eager):
        await verifier.verify(issuer.mint())
    issuer.rotate()
    for verifier in (strict, eager):  # fetched a moment ago, yet the new kid is refetched
        await verifier.verify(issuer.mint())


async def test_outage_means_no_keys() -> None:
    issuer = LocalIssuer()
    issuer.unavailable = True
    with pytest.raises(KeySetUnavailable):
        await issuer.verifier(audience=API).verify(issuer.mint())


async def test_verifier_against_the_served_issuer() -> None:
    issuer = LocalIssuer()
    with issuer.serve():
        verifier = TokenVerifier(issuer.issuer, audience=API)  # loopback http is allowed
        try:
            token = await verifier.verify(issuer.mint())
        finally:
            await verifier.aclose()
    assert token.issuer.startswith("http://127.0.0.1:")


async def test_token_endpoint_tokens_verify() -> None:
    issuer = LocalIssuer()
    issuer.register_app("m2m-1", "s3cret", {API: {"read:products"}})
    async with httpx.AsyncClient(transport=issuer.transport()) as client:
        response = await client.post(
            issuer.token_endpoint,
            data={"grant_type": "client_credentials", "resource": API, "scope": "read:products"},
            auth=("m2m-1", "s3cret"),
        )
    token = await issuer.verifier(audience=API).verify(response.json()["access_token"])
    assert token.client_id == "m2m-1"
    assert token.scopes == {"read:products"}


def _header(issuer: LocalIssuer) -> dict[str, str]:
    return {"alg": issuer.algorithm, "typ": "at+jwt", "kid": issuer.signing_kid}


def _claims(token: str) -> dict[str, object]:
    import jwt

    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims
