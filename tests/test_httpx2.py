"""Both client families, httpx2 (the runtime dependency) and httpx (optional), end to end.

What differs between them is in one module (logto_guard/_http.py); these tests hold the promise
that a caller never notices: ClientCredentials as `auth=` of either family's clients and of one
request, get_token/aget_token with either, LocalIssuer's transport in either, the verifier's
key fetches through either (against the real test provider), and a library that needs nothing
but httpx2. The client flow itself (cache, single flight, 401 retry) runs with both families in
tests/test_client.py and tests/test_client_provider.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import httpx
import httpx2
import jwt
import pytest
from readme import block
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logto_guard import ClientCredentials, JWKSCache, KeySetUnavailable, TokenVerifier, _http
from logto_guard.testing import LocalIssuer

if TYPE_CHECKING:
    from oidc_provider import OidcProvider

SHOP = "https://shopping.api"
API = "http://api.test"


@pytest.fixture(params=["httpx2", "httpx"])
def hx(request: pytest.FixtureRequest) -> ModuleType:
    """The client family under test."""
    return {"httpx2": httpx2, "httpx": httpx}[request.param]


def test_both_families_are_known_and_httpx2_is_the_default() -> None:
    assert [f.name for f in _http.FAMILIES] == ["httpx2", "httpx"]
    assert _http.DEFAULT.name == "httpx2"
    assert _http.httpx is httpx2
    assert isinstance(ClientCredentials("a", "s", endpoint="https://t.logto.app"), httpx2.Auth)
    assert isinstance(ClientCredentials("a", "s", endpoint="https://t.logto.app"), httpx.Auth)


async def test_family_of_names_what_it_got() -> None:
    assert _http.family_of(httpx2.Request("GET", "http://x")).name == "httpx2"
    async with httpx.AsyncClient() as client:
        assert _http.family_of(client).name == "httpx"
    with pytest.raises(TypeError, match="got str"):
        _http.family_of("http://x")


# -- ClientCredentials through a real provider, per client and per request ----------------------


def echo_app() -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"authorization": request.headers.get("authorization", "")})

    return Starlette(routes=[Route("/whoami", whoami)])


def reader(oidc_provider: OidcProvider) -> ClientCredentials:
    return ClientCredentials(
        "shop-reader",
        "reader-secret",
        endpoint=oidc_provider.endpoint,
        resource=SHOP,
        scopes=["read:products"],
    )


def test_per_request_auth_sync(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    auth = reader(oidc_provider)
    oidc_provider.reset_stats()
    with hx.Client(trust_env=False, mounts={API: hx.WSGITransport(app=_wsgi_echo)}) as client:
        first = client.get(f"{API}/whoami", auth=auth)
        second = client.get(f"{API}/whoami", auth=auth)
        anonymous = client.get(f"{API}/whoami")
    assert first.json()["authorization"].startswith("Bearer ey")
    assert second.json() == first.json()  # the cached token
    assert anonymous.json() == {"authorization": ""}  # auth= was per request only
    assert oidc_provider.stats()["token_requests"] == 1


async def test_per_request_auth_async(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    auth = reader(oidc_provider)
    oidc_provider.reset_stats()
    async with hx.AsyncClient(
        trust_env=False, mounts={API: hx.ASGITransport(app=echo_app())}
    ) as client:
        responses = await asyncio.gather(
            *(client.get(f"{API}/whoami", auth=auth) for _ in range(10))
        )
        anonymous = await client.get(f"{API}/whoami")
    assert len({r.json()["authorization"] for r in responses}) == 1
    assert responses[0].json()["authorization"].startswith("Bearer ey")
    assert anonymous.json() == {"authorization": ""}
    assert oidc_provider.stats()["token_requests"] == 1


def _wsgi_echo(environ: dict[str, str], start_response: Callable[..., object]) -> list[bytes]:
    body = json.dumps({"authorization": environ.get("HTTP_AUTHORIZATION", "")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def test_get_token_refuses_a_client_of_the_wrong_kind_by_name() -> None:
    auth = ClientCredentials("a", "s", endpoint="https://t.logto.app")
    async with httpx2.AsyncClient() as client:
        with pytest.raises(TypeError) as info:
            auth.get_token(client)  # type: ignore[arg-type]
    assert str(info.value) == (
        "get_token() needs an httpx2.Client or an httpx.Client, got httpx2.AsyncClient "
        "(use aget_token() for it)"
    )
    with pytest.raises(TypeError, match=r"needs an httpx2.Client or an httpx.Client, got str"):
        auth.get_token("http://x")  # type: ignore[arg-type]


async def test_aget_token_refuses_a_sync_client_by_name() -> None:
    auth = ClientCredentials("a", "s", endpoint="https://t.logto.app")
    with httpx.Client() as client, pytest.raises(TypeError) as info:
        await auth.aget_token(client)  # type: ignore[arg-type]
    assert str(info.value) == (
        "aget_token() needs an httpx2.AsyncClient or an httpx.AsyncClient, got httpx.Client "
        "(use get_token() for it)"
    )


# -- LocalIssuer's transport ---------------------------------------------------------------------


def local_issuer() -> LocalIssuer:
    issuer = LocalIssuer()
    issuer.register_app("m2m", "m2m-secret", {SHOP: ["read:products", "write:products"]})
    return issuer


def test_local_issuer_transport_in_a_sync_client(hx: ModuleType) -> None:
    issuer = local_issuer()
    auth = ClientCredentials(
        "m2m", "m2m-secret", endpoint=issuer.endpoint, resource=SHOP, scopes="read:products"
    )
    with hx.Client(transport=issuer.transport()) as client:
        discovery = client.get(issuer.discovery_url)
        token = auth.get_token(client)
        with pytest.raises(hx.ConnectError, match="only reaches"):
            client.get("https://elsewhere.test/")
    assert discovery.status_code == 200
    assert discovery.json()["issuer"] == issuer.issuer
    assert auth.granted_scopes == frozenset({"read:products"})
    assert asyncio.run(issuer.verifier().verify(token)).scopes == frozenset({"read:products"})


async def test_local_issuer_transport_in_an_async_client(hx: ModuleType) -> None:
    issuer = local_issuer()
    auth = ClientCredentials("m2m", "m2m-secret", endpoint=issuer.endpoint, resource=SHOP)
    async with hx.AsyncClient(transport=issuer.transport()) as client:
        jwks = await client.get(issuer.jwks_uri)
        token = await auth.aget_token(client)
        with pytest.raises(hx.ConnectError):
            await client.get("https://elsewhere.test/")
    assert jwks.headers["etag"]
    assert [key["kid"] for key in jwks.json()["keys"]] == [issuer.signing_kid]
    verifier = TokenVerifier(
        issuer.issuer,
        audience=SHOP,
        jwks=JWKSCache(issuer.issuer, http_client=hx.AsyncClient(transport=issuer.transport())),
    )
    try:
        assert (await verifier.verify(token)).client_id == "m2m"
    finally:
        await verifier.aclose()


# -- the verifier's key fetches through a client the user passes --------------------------------


async def test_jwks_fetch_with_a_users_client(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    token = oidc_provider.token("shop-reader", resource=SHOP, scope="read:products")
    async with hx.AsyncClient(trust_env=False) as client:
        verifier = TokenVerifier(
            oidc_provider.issuer,
            audience=SHOP,
            jwks=JWKSCache(oidc_provider.issuer, http_client=client),
        )
        verified = await verifier.verify(token)
        await verifier.aclose()  # a client the user passed stays open
        assert not client.is_closed
    assert verified.client_id == "shop-reader"
    assert verified.scopes == frozenset({"read:products"})


async def test_a_failed_fetch_with_either_family_is_key_set_unavailable(
    hx: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    # The transport refuses every origin but its issuer's: the fetch fails with the client
    # family's ConnectError, which must be read as a failed fetch (named in `last_error`),
    # not as an unexpected exception, and answered KeySetUnavailable (503).
    elsewhere = LocalIssuer(endpoint="https://elsewhere.test")
    issuer = local_issuer()
    token = issuer.mint(audience=SHOP)
    async with hx.AsyncClient(transport=elsewhere.transport()) as client:
        cache = JWKSCache(issuer.issuer, http_client=client)
        verifier = TokenVerifier(issuer.issuer, audience=SHOP, jwks=cache)
        with pytest.raises(KeySetUnavailable):
            await verifier.verify(token)
    assert cache.last_error == (
        "GET https://logto.test/oidc/.well-known/openid-configuration failed: ConnectError"
    )
    assert not [r for r in caplog.records if r.exc_info]


# -- a library that needs nothing but httpx2 ----------------------------------------------------


def test_the_library_works_without_httpx_installed() -> None:
    # A fresh interpreter in which `import httpx` fails, as on an install without the extra.
    script = textwrap.dedent(
        """
        import asyncio, importlib, pkgutil, sys
        sys.modules["httpx"] = None  # `import httpx` now raises ModuleNotFoundError
        import logto_guard
        for module in pkgutil.walk_packages(logto_guard.__path__, "logto_guard."):
            importlib.import_module(module.name)
        import httpx2
        from logto_guard import ClientCredentials, _http
        from logto_guard.testing import LocalIssuer

        assert [f.name for f in _http.FAMILIES] == ["httpx2"], _http.FAMILIES
        issuer = LocalIssuer()
        issuer.register_app("m2m", "m2m-secret", {"https://shopping.api": ["read:products"]})
        auth = ClientCredentials(
            "m2m", "m2m-secret", endpoint=issuer.endpoint, resource="https://shopping.api"
        )
        with httpx2.Client(transport=issuer.transport(), auth=auth) as client:
            token = auth.get_token(client)
        verifier = issuer.verifier()
        print(asyncio.run(verifier.verify(token)).client_id, "httpx" in sys.modules and
              sys.modules["httpx"] is not None)
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["m2m", "False"]


# -- README: the client side, run as written -----------------------------------------------------


async def test_readme_client_blocks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The README's tenant, app and API, served in-process: every client the blocks build (of
    # either family) gets a transport that reaches a LocalIssuer at https://tenant.logto.app
    # and an API at https://api.example.com that checks the token's signature and audience.
    issuer = LocalIssuer(endpoint="https://tenant.logto.app")
    issuer.register_app("<app id>", "<app secret>", {SHOP: ["read:products"]})
    public_key = issuer.private_key().public_key()
    seen: list[dict[str, object]] = []

    def handle(request: httpx2.Request) -> _http.Reply:
        if request.url.host == "tenant.logto.app":
            return issuer.handle(request.method, request.url.path, request.headers, request.content)
        assert request.url.host == "api.example.com"
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        seen.append(jwt.decode(token, public_key, algorithms=["ES384"], audience=SHOP))
        return 200, {"content-type": "application/json"}, b'[{"id": 1, "name": "Keyboard"}]'

    router = _http.MockTransport(handle)
    for module in (httpx2, httpx):
        for name in ("Client", "AsyncClient"):
            real = getattr(module, name)
            routed = type(name, (real,), {"__init__": _with_transport(real, router)})
            monkeypatch.setattr(module, name, routed)

    namespace: dict[str, object] = {}
    for source in (
        block('auth = ClientCredentials(\n    "<app id>"'),
        block("products = api.get("),
        block("async def call_both()"),
        block("ask the Logto admin for a role with"),
    ):
        exec(source, namespace)  # noqa: S102 - the README's own code
    assert namespace["products"] == [{"id": 1, "name": "Keyboard"}]
    call_both = namespace["call_both"]
    assert await call_both() == [200, 200]  # type: ignore[operator]
    assert capsys.readouterr().out == "ask the Logto admin for a role with write:products\n"
    assert {claims["client_id"] for claims in seen} == {"<app id>"}
    assert len(seen) == 3


def _with_transport(real: type, transport: _http.MockTransport) -> Callable[..., None]:
    def __init__(self: object, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("transport", transport)
        real.__init__(self, *args, **kwargs)  # type: ignore[misc]

    return __init__
