"""End to end: real uvicorn servers, the real verifier, real tokens from a real provider.

Three servers on free loopback ports, started once for the module:

- "starlette": a Starlette app behind `LogtoGuard` with `require_scopes` and Starlette's own
  `requires()`;
- "fastapi": a FastAPI app behind `LogtoGuard` (docs paths public) using `LogtoSecurity`;
- "fastapi-bare": the same FastAPI routes with no middleware: the dependency verifies alone.

Tokens come from the provider's /oidc/token endpoint; expired and tampered ones are signed with
its real key. Nothing here is faked.

No `from __future__ import annotations`: FastAPI must see the route annotations, which name
Annotated aliases local to `fastapi_app`.
"""

import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Security
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from logto_guard.fastapi import LogtoSecurity
from logto_guard.middleware import LogtoGuard, get_access_token
from logto_guard.scopes import require_scopes
from logto_guard.testing import LoopbackServer
from logto_guard.token import AccessToken
from logto_guard.verifier import TokenVerifier

try:
    from oidc_provider import SHOP, OidcProvider
except ImportError:  # pragma: no cover - tests/ imported as a package
    from .oidc_provider import SHOP, OidcProvider

SCOPES = {"read:products": "Read products", "write:products": "Create and change products"}
META = f"{SHOP}/.well-known/oauth-protected-resource"


class CountingVerifier(TokenVerifier):
    """The real verifier, counting lifespan closes."""

    closed = 0

    async def aclose(self) -> None:
        self.closed += 1
        await super().aclose()


# -- the apps ----------------------------------------------------------------------------------


def starlette_app(verifier: TokenVerifier) -> Starlette:
    @require_scopes("read:products")
    async def list_products(request: Request) -> JSONResponse:
        return JSONResponse({"sub": get_access_token(request).sub})

    @require_scopes("write:products")
    async def create_product(request: Request) -> JSONResponse:
        return JSONResponse({"created_by": request.user.identity}, status_code=201)

    @require_scopes("read:products", organization="org_id")
    async def org_products(request: Request) -> JSONResponse:
        return JSONResponse({"org": get_access_token(request).organization_id})

    @requires("read:products")
    async def starlette_read(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"requires ok {sorted(request.auth.scopes)}")

    @requires("write:products")
    async def starlette_write(request: Request) -> PlainTextResponse:  # pragma: no cover
        return PlainTextResponse("never")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    @require_scopes("read:products")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello {websocket.user.identity}")
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/products", list_products, methods=["GET"]),
            Route("/products", create_product, methods=["POST"]),
            Route("/orgs/{org_id}/products", org_products),
            Route("/starlette/read", starlette_read),
            Route("/starlette/write", starlette_write),
            Route("/health", health),
            WebSocketRoute("/ws", ws),
        ]
    )
    app.add_middleware(
        LogtoGuard,
        verifier=verifier,
        public_paths=["/health"],
        scopes_supported=list(SCOPES),
        resource_name="Shopping API",
    )
    return app


def fastapi_app(verifier: TokenVerifier, *, middleware: bool) -> FastAPI:
    guard = LogtoSecurity(verifier, scopes=SCOPES)
    Reader = Annotated[AccessToken, Security(guard, scopes=["read:products"])]
    Writer = Annotated[AccessToken, Security(guard, scopes=["write:products"])]
    OrgReader = Annotated[
        AccessToken, Security(guard.organization("org_id"), scopes=["read:products"])
    ]
    @asynccontextmanager
    async def close_verifier(app: FastAPI) -> AsyncIterator[None]:
        yield
        await verifier.aclose()  # alone, the dependency leaves closing to the app's lifespan

    app = FastAPI(title="Shopping API", lifespan=None if middleware else close_verifier)

    @app.get("/products")
    async def list_products(token: Reader) -> dict[str, Any]:
        return {"sub": token.sub}

    @app.post("/products", status_code=201)
    async def create_product(token: Writer) -> dict[str, Any]:
        return {"created_by": token.sub}

    @app.get("/orgs/{org_id}/products")
    async def org_products(org_id: str, token: OrgReader) -> dict[str, Any]:
        return {"org": token.organization_id}

    @app.get("/health")
    async def health() -> str:
        return "ok"

    @app.websocket("/ws")
    async def ws(websocket: FastAPIWebSocket, token: Reader) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello {token.sub}")
        await websocket.close()

    if middleware:
        app.add_middleware(
            LogtoGuard,
            verifier=verifier,
            public_paths=["/docs", "/openapi.json", "/health"],
            scopes_supported=list(SCOPES),
            resource_name="Shopping API",
        )
    return app


@dataclass
class Served:
    name: str
    url: str
    verifier: CountingVerifier
    metadata: bool  # whether LogtoGuard serves RFC 9728 metadata (and advertises it)

    def challenge(self, params: str = "") -> str:
        value = 'Bearer realm="api"' + (f", {params}" if params else "")
        return value + (f', resource_metadata="{META}"' if self.metadata else "")


@pytest.fixture(scope="module")
def servers(oidc_provider: OidcProvider) -> Iterator[dict[str, Served]]:
    def build_starlette(verifier: TokenVerifier) -> ASGIApp:
        return starlette_app(verifier)

    def build_fastapi(verifier: TokenVerifier) -> ASGIApp:
        return fastapi_app(verifier, middleware=True)

    def build_fastapi_bare(verifier: TokenVerifier) -> ASGIApp:
        return fastapi_app(verifier, middleware=False)

    specs: dict[str, tuple[Callable[[TokenVerifier], ASGIApp], bool]] = {
        "starlette": (build_starlette, True),
        "fastapi": (build_fastapi, True),
        "fastapi-bare": (build_fastapi_bare, False),
    }
    running: list[LoopbackServer] = []
    served: dict[str, Served] = {}
    try:
        for name, (build, metadata) in specs.items():
            verifier = CountingVerifier(issuer=oidc_provider.issuer, audience=SHOP)
            thread = LoopbackServer(build(verifier), lifespan="on")
            thread.start()
            running.append(thread)
            served[name] = Served(name, thread.url, verifier, metadata)
        yield served
    finally:
        for thread in running:
            thread.stop()
    # Lifespan shutdown closed each verifier once: LogtoGuard's, and the bare app's own.
    assert [s.verifier.closed for s in served.values()] == [1, 1, 1]


@pytest.fixture(params=["starlette", "fastapi", "fastapi-bare"])
def server(request: pytest.FixtureRequest, servers: dict[str, Served]) -> Served:
    return servers[request.param]


@pytest.fixture(params=["starlette", "fastapi"])
def guarded(request: pytest.FixtureRequest, servers: dict[str, Served]) -> Served:
    return servers[request.param]


@pytest.fixture(scope="module")
def reader(oidc_provider: OidcProvider) -> str:
    return oidc_provider.token("shop-reader", scope="read:products")


@pytest.fixture(scope="module")
def writer(oidc_provider: OidcProvider) -> str:
    return oidc_provider.token("shop-writer", scope="read:products write:products")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(
    response: httpx.Response, status: int, challenge: str | None, body: dict[str, Any]
) -> None:
    assert response.status_code == status
    assert response.headers.get("www-authenticate") == challenge
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tamper(token: str, **claims: Any) -> str:
    """Change claims of a real token and keep its (now wrong) signature."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    return f"{header}.{b64url(json.dumps(decoded).encode())}.{signature}"


MISSING = {"error": None, "error_description": "a bearer token is required"}
INSUFFICIENT = {"error": "insufficient_scope", "error_description": "insufficient scope"}


# -- HTTP ----------------------------------------------------------------------------------------


def test_reader_token_reads(server: Served, reader: str) -> None:
    response = httpx.get(f"{server.url}/products", headers=bearer(reader))
    assert response.status_code == 200
    assert response.json() == {"sub": "shop-reader"}


def test_reader_token_cannot_write(server: Served, reader: str) -> None:
    response = httpx.post(f"{server.url}/products", headers=bearer(reader))
    assert_error(
        response,
        403,
        server.challenge(
            'error="insufficient_scope", error_description="insufficient scope", '
            'scope="write:products"'
        ),
        INSUFFICIENT,
    )


def test_writer_token_writes(server: Served, writer: str) -> None:
    response = httpx.post(f"{server.url}/products", headers=bearer(writer))
    assert response.status_code == 201
    assert response.json() == {"created_by": "shop-writer"}


def test_no_token_is_a_bare_401(server: Served) -> None:
    assert_error(httpx.get(f"{server.url}/products"), 401, server.challenge(), MISSING)


def test_basic_credentials_are_a_bare_401(server: Served) -> None:
    response = httpx.get(f"{server.url}/products", auth=("shop-reader", "reader-secret"))
    assert_error(response, 401, server.challenge(), MISSING)


def test_expired_token_is_401_invalid_token(server: Served, oidc_provider: OidcProvider) -> None:
    now = int(time.time())
    expired = oidc_provider.sign({"iat": now - 7200, "exp": now - 3600})
    assert_error(
        httpx.get(f"{server.url}/products", headers=bearer(expired)),
        401,
        server.challenge('error="invalid_token", error_description="token expired"'),
        {"error": "invalid_token", "error_description": "token expired"},
    )


def test_tampered_token_is_401_invalid_token_never_403(server: Served, reader: str) -> None:
    # A forged scope claim must be refused for its signature, not judged on its scopes.
    forged = tamper(reader, scope="read:products write:products")
    assert_error(
        httpx.post(f"{server.url}/products", headers=bearer(forged)),
        401,
        server.challenge('error="invalid_token", error_description="token signature is invalid"'),
        {"error": "invalid_token", "error_description": "token signature is invalid"},
    )


def test_token_for_another_api_is_401(server: Served, oidc_provider: OidcProvider) -> None:
    other = oidc_provider.sign({"aud": "https://other.api"})
    response = httpx.get(f"{server.url}/products", headers=bearer(other))
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "token audience does not match this API",
    }


def test_two_authorization_headers_are_400(server: Served, reader: str) -> None:
    response = httpx.get(
        f"{server.url}/products",
        headers=[("Authorization", f"Bearer {reader}"), ("Authorization", f"Bearer {reader}")],
    )
    assert_error(
        response,
        400,
        server.challenge(
            'error="invalid_request", error_description="duplicate authorization header"'
        ),
        {"error": "invalid_request", "error_description": "duplicate authorization header"},
    )


def test_header_and_query_token_are_400(server: Served, reader: str) -> None:
    response = httpx.get(
        f"{server.url}/products", params={"access_token": reader}, headers=bearer(reader)
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "more than one token method used",
    }


def test_organization_token(server: Served, oidc_provider: OidcProvider) -> None:
    org_token = oidc_provider.sign({"organization_id": "org-a", "scope": "read:products"})
    ok = httpx.get(f"{server.url}/orgs/org-a/products", headers=bearer(org_token))
    assert (ok.status_code, ok.json()) == (200, {"org": "org-a"})
    assert_error(
        httpx.get(f"{server.url}/orgs/org-b/products", headers=bearer(org_token)),
        403,
        server.challenge(
            'error="insufficient_scope", error_description="token is not for this organization"'
        ),
        {"error": "insufficient_scope", "error_description": "token is not for this organization"},
    )


def test_public_path_needs_no_token(server: Served) -> None:
    response = httpx.get(f"{server.url}/health", headers=bearer("garbage"))
    assert response.status_code == 200


# -- Starlette's requires() on our auth --------------------------------------------------------


def test_starlette_requires_works_on_logto_auth(servers: dict[str, Served], reader: str) -> None:
    url = servers["starlette"].url
    ok = httpx.get(f"{url}/starlette/read", headers=bearer(reader))
    assert (ok.status_code, ok.text) == (200, "requires ok ['read:products']")
    denied = httpx.get(f"{url}/starlette/write", headers=bearer(reader))
    assert (denied.status_code, denied.text) == (403, "Forbidden")
    # The middleware answers before requires() ever runs when there is no token.
    assert httpx.get(f"{url}/starlette/read").status_code == 401


# -- WebSocket -----------------------------------------------------------------------------------


def ws_url(server: Served) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


async def test_websocket_accepted_with_a_good_token(server: Served, reader: str) -> None:
    async with connect(ws_url(server), additional_headers=bearer(reader)) as ws:
        assert await ws.recv() == "hello shop-reader"


async def test_websocket_refused_without_token(server: Served) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(server)):
            pass  # pragma: no cover
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == server.challenge()
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body or b"") == MISSING


async def test_websocket_refused_without_scope(server: Served, oidc_provider: OidcProvider) -> None:
    no_scope = oidc_provider.token("shop-reader", scope=None)
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(server), additional_headers=bearer(no_scope)):
            pass  # pragma: no cover
    response = info.value.response
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == server.challenge(
        'error="insufficient_scope", error_description="insufficient scope", scope="read:products"'
    )
    assert json.loads(response.body or b"") == INSUFFICIENT


async def test_websocket_refused_with_tampered_token(server: Served, reader: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(server), additional_headers=bearer(tamper(reader, sub="x"))):
            pass  # pragma: no cover
    assert info.value.response.status_code == 401
    assert json.loads(info.value.response.body or b"")["error"] == "invalid_token"


# -- OpenAPI and RFC 9728 metadata ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["fastapi", "fastapi-bare"])
def test_openapi_documents_client_credentials(
    name: str, servers: dict[str, Served], oidc_provider: OidcProvider
) -> None:
    doc = httpx.get(f"{servers[name].url}/openapi.json").json()
    assert doc["components"]["securitySchemes"]["LogtoSecurity"] == {
        "type": "oauth2",
        "description": "Logto machine-to-machine access token (OAuth 2.0 client credentials)",
        "flows": {
            "clientCredentials": {"tokenUrl": f"{oidc_provider.issuer}/token", "scopes": SCOPES}
        },
    }
    assert doc["paths"]["/products"]["get"]["security"] == [{"LogtoSecurity": ["read:products"]}]
    assert doc["paths"]["/products"]["post"]["security"] == [{"LogtoSecurity": ["write:products"]}]
    docs = httpx.get(f"{servers[name].url}/docs")
    assert docs.status_code == 200


def test_the_token_url_in_openapi_really_issues_tokens(
    servers: dict[str, Served], oidc_provider: OidcProvider
) -> None:
    doc = httpx.get(f"{servers['fastapi'].url}/openapi.json").json()
    flow = doc["components"]["securitySchemes"]["LogtoSecurity"]["flows"]["clientCredentials"]
    issued = httpx.post(
        flow["tokenUrl"],
        data={"grant_type": "client_credentials", "resource": SHOP, "scope": "read:products"},
        auth=("shop-reader", "reader-secret"),
    )
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    response = httpx.get(f"{servers['fastapi'].url}/products", headers=bearer(token))
    assert response.json() == {"sub": "shop-reader"}


def test_metadata_endpoint(guarded: Served, oidc_provider: OidcProvider) -> None:
    response = httpx.get(f"{guarded.url}/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "resource": SHOP,
        "authorization_servers": [oidc_provider.issuer],
        "scopes_supported": ["read:products", "write:products"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Shopping API",
    }
    # The issuer it names is the real one: its discovery document agrees.
    discovery = httpx.get(f"{oidc_provider.issuer}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == response.json()["authorization_servers"][0]


# -- the identity provider is down -----------------------------------------------------------------


def test_no_signing_keys_is_503_with_retry_after(fresh_provider: OidcProvider) -> None:
    token = fresh_provider.token("shop-reader", scope="read:products")
    verifier = CountingVerifier(issuer=fresh_provider.issuer, audience=SHOP)
    fresh_provider.stop()  # cold start with the IdP unreachable: no key material at all
    thread = LoopbackServer(starlette_app(verifier), lifespan="on")
    thread.start()
    try:
        response = httpx.get(f"{thread.url}/products", headers=bearer(token), timeout=30)
    finally:
        thread.stop()
    assert_error(
        response,
        503,
        None,
        {
            "error": "temporarily_unavailable",
            "error_description": "signing keys are temporarily unavailable",
        },
    )
    assert response.headers["retry-after"] == "5"
    assert verifier.closed == 1
