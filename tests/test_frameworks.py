"""`LogtoGuard` under four ASGI frameworks: Starlette, FastAPI, Litestar (through `LogtoPlugin`)
and Quart, with real tokens from the real test provider and its keys fetched over loopback.

Each app has the same two routes: GET /read needs `read:products`, GET /write needs
`write:products`, and both return the verified claims, so the tests check that the claims reach
the handler. Each app runs its real ASGI lifespan, which must close the shared verifier.

No `from __future__ import annotations`: FastAPI and Litestar read the handler annotations.
"""

import asyncio
import logging
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Security
from litestar import Litestar, get
from litestar import Request as LitestarRequest
from quart import Quart
from quart import request as quart_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from logto_guard import (
    AccessToken,
    AuthError,
    InsufficientScope,
    LogtoGuard,
    TokenVerifier,
    get_access_token,
    require_scopes,
)
from logto_guard.bearer import error_body
from logto_guard.fastapi import LogtoSecurity
from logto_guard.litestar import LogtoPlugin, scopes_guard

try:
    from oidc_provider import SHOP, OidcProvider
except ImportError:  # pragma: no cover - tests/ imported as a package
    from .oidc_provider import SHOP, OidcProvider


class ClosingVerifier(TokenVerifier):
    """The real verifier, counting closes (the framework's lifespan must close it once)."""

    closes = 0

    async def aclose(self) -> None:
        self.closes += 1
        await super().aclose()


def claims(token: AccessToken) -> dict[str, Any]:
    return {"sub": token.sub, "client_id": token.client_id, "scopes": sorted(token.scopes)}


# -- the apps ----------------------------------------------------------------------------------


def starlette_app(verifier: TokenVerifier) -> ASGIApp:
    @require_scopes("read:products")
    async def read(request: Request) -> JSONResponse:
        return JSONResponse(claims(get_access_token(request)))

    @require_scopes("write:products")
    async def write(request: Request) -> JSONResponse:  # pragma: no cover - only 403 here
        return JSONResponse(claims(request.auth))

    app = Starlette(routes=[Route("/read", read), Route("/write", write)])
    app.add_middleware(LogtoGuard, verifier=verifier)
    return app


def fastapi_app(verifier: TokenVerifier) -> ASGIApp:
    guard = LogtoSecurity(verifier)
    app = FastAPI()
    app.add_middleware(LogtoGuard, verifier=verifier)

    @app.get("/read")
    async def read(
        token: Annotated[AccessToken, Security(guard, scopes=["read:products"])],
    ) -> dict[str, Any]:
        return claims(token)

    @app.get("/write")
    async def write(
        token: Annotated[AccessToken, Security(guard, scopes=["write:products"])],
    ) -> dict[str, Any]:  # pragma: no cover - only 403 here
        return claims(token)

    return app


def litestar_app(verifier: TokenVerifier) -> ASGIApp:
    @get("/read", guards=[scopes_guard("read:products")])
    async def read(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:
        return claims(request.auth)

    @get("/write", guards=[scopes_guard("write:products")])
    async def write(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:  # pragma: no cover
        return claims(request.auth)

    @get("/raises")
    async def raises() -> None:
        raise InsufficientScope(["admin"])  # answered by the plugin's handler, not a 500

    @get("/health")
    async def health(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:
        get_access_token(request.scope)  # a public path has no token: MissingToken, a 401
        return {}  # pragma: no cover

    app = Litestar(
        route_handlers=[read, write, raises, health],
        plugins=[LogtoPlugin(verifier, public_paths=["/health"])],
        logging_config=None,  # Litestar's default reconfigures the root logger for everyone
    )
    return app  # type: ignore[return-value]  # Litestar's ASGI types, structurally the same


def quart_app(verifier: TokenVerifier) -> ASGIApp:
    app = Quart(__name__)
    guard = LogtoGuard(app.asgi_app, verifier=verifier)  # type: ignore[arg-type]
    app.asgi_app = guard  # type: ignore[assignment,method-assign]

    def checked(*scopes: str) -> AccessToken:
        token = get_access_token(quart_request.scope)
        if not token.has_scopes(scopes):
            raise InsufficientScope(scopes)
        return token

    @app.errorhandler(AuthError)
    async def auth_error(error: AuthError) -> tuple[bytes, int, dict[str, str]]:
        # Quart turns exceptions into 500s itself: answer with the guard's responder.
        headers = {**guard.responder.headers(error), "Content-Type": "application/json"}
        return error_body(error), error.status_code, headers

    @app.get("/read")
    async def read() -> dict[str, Any]:
        return claims(checked("read:products"))

    @app.get("/write")
    async def write() -> dict[str, Any]:  # pragma: no cover - only 403 here
        return claims(checked("write:products"))

    return app  # type: ignore[return-value]


APPS: dict[str, Callable[[TokenVerifier], ASGIApp]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
    "litestar": litestar_app,
    "quart": quart_app,
}


# -- driving them ------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan around the block, as a server would."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: Any) -> None:
        await outbox.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, send))  # type: ignore[arg-type]
    try:
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        yield
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    finally:
        await asyncio.wait_for(task, 10)


Client = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture(params=sorted(APPS))
async def served(
    request: pytest.FixtureRequest, oidc_provider: OidcProvider
) -> AsyncIterator[tuple[str, Client, ClosingVerifier]]:
    verifier = ClosingVerifier(oidc_provider.issuer, audience=SHOP)
    name = request.param
    app = APPS[name](verifier)
    try:
        async with (
            lifespan(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api"
            ) as client,
        ):

            async def call(path: str, token: str | None = None) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return await client.get(path, headers=headers)

            yield name, call, verifier
        assert verifier.closes == 1, f"{name}'s lifespan did not close the verifier"
    finally:
        if verifier.closes == 0:
            await verifier.aclose()


@pytest.fixture(scope="module")
def reader(oidc_provider: OidcProvider) -> str:
    return oidc_provider.token("shop-reader", scope="read:products")


def challenge(response: httpx.Response) -> str:
    return response.headers.get("www-authenticate", "")


# -- the tests ---------------------------------------------------------------------------------


async def test_no_token_is_401(served: tuple[str, Client, ClosingVerifier]) -> None:
    _, call, _ = served
    response = await call("/read")
    assert response.status_code == 401
    assert challenge(response).startswith('Bearer realm="api"')
    assert "error=" not in challenge(response)


async def test_forged_token_is_401_invalid_token(
    served: tuple[str, Client, ClosingVerifier], reader: str
) -> None:
    _, call, _ = served
    header, payload, signature = reader.split(".")
    response = await call("/read", f"{header}.{payload}.{signature[::-1]}")
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge(response)
    assert response.json()["error"] == "invalid_token"


async def test_missing_scope_is_403_insufficient_scope(
    served: tuple[str, Client, ClosingVerifier], reader: str
) -> None:
    name, call, _ = served
    response = await call("/write", reader)
    assert response.status_code == 403, (name, response.text)
    assert 'error="insufficient_scope"' in challenge(response)
    assert 'scope="write:products"' in challenge(response)
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "insufficient scope",
    }


async def test_claims_reach_the_handler(
    served: tuple[str, Client, ClosingVerifier], reader: str
) -> None:
    name, call, _ = served
    response = await call("/read", reader)
    assert response.status_code == 200, (name, response.text)
    assert response.json() == {
        "sub": "shop-reader",
        "client_id": "shop-reader",
        "scopes": ["read:products"],
    }


# -- Litestar specifics ------------------------------------------------------------------------


@pytest.fixture
async def litestar(oidc_provider: OidcProvider) -> AsyncIterator[Client]:
    verifier = TokenVerifier(oidc_provider.issuer, audience=SHOP)
    app = litestar_app(verifier)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):

        async def call(path: str, token: str | None = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.get(path, headers=headers)

        yield call


async def test_litestar_auth_error_in_handler_is_answered_not_500(
    litestar: Client, reader: str
) -> None:
    response = await litestar("/raises", reader)
    assert response.status_code == 403
    assert challenge(response).startswith('Bearer realm="api", error="insufficient_scope"')
    assert 'scope="admin"' in challenge(response)
    assert 'resource_metadata="https://shopping.api/.well-known/' in challenge(response)


async def test_litestar_get_access_token_on_public_path_is_401(litestar: Client) -> None:
    response = await litestar("/health")
    assert response.status_code == 401
    assert challenge(response).startswith('Bearer realm="api"')
    assert response.json()["error"] is None


async def test_litestar_serves_protected_resource_metadata(litestar: Client) -> None:
    response = await litestar("/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    document = response.json()
    assert document["resource"] == SHOP
    assert document["authorization_servers"]


async def test_litestar_app_shares_one_key_cache(
    oidc_provider: OidcProvider, litestar: Client, reader: str
) -> None:
    oidc_provider.reset_stats()
    for path in ("/read", "/write", "/raises", "/read"):
        assert (await litestar(path, reader)).status_code in (200, 403)
    assert oidc_provider.stats()["jwks_requests"] == 1  # one fetch for four routes


def test_litestar_plugin_names_a_wrong_option() -> None:
    with pytest.raises(TypeError, match="unknown_option"):
        LogtoPlugin(endpoint="https://tenant.logto.app", audience=SHOP, unknown_option=1)


# -- the README's Litestar example, run as written ---------------------------------------------


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Undo what a default-configured Litestar app does to logging (root and "litestar")."""
    saved = {
        name: (logger.handlers[:], logger.level, logger.propagate)
        for name in ("", "litestar")
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)  # Litestar stops its queue listener at exit
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.mark.usefixtures("logging_restored")
async def test_readme_litestar_example(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from readme import block
    except ImportError:  # pragma: no cover - tests/ imported as a package
        from .readme import block

    # A module of its own: Litestar resolves handler annotations through sys.modules.
    module = types.ModuleType("readme_litestar_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(block("plugins=[LogtoPlugin(endpoint="), module.__dict__)  # noqa: S102 - README code
    app = module.app
    plugin = app.plugins.init[0]
    assert isinstance(plugin, LogtoPlugin)
    assert plugin.verifier.issuer == "https://tenant.logto.app/oidc"
    assert plugin.verifier.audiences == ("https://shopping.api",)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        # No token and public paths need no keys, so nothing leaves the machine.
        refused = await client.get("/products")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == (
            'Bearer realm="api", resource_metadata='
            '"https://shopping.api/.well-known/oauth-protected-resource"'
        )
        assert (await client.get("/health")).status_code == 404  # public, and no such route
        metadata = await client.get("/.well-known/oauth-protected-resource")
        assert metadata.json()["authorization_servers"] == ["https://tenant.logto.app/oidc"]
