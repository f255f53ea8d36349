"""swap_verifier: test an app that already carries LogtoGuard for a real tenant, no second guard."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Security
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from logto_guard import AccessToken, LogtoGuard, TokenVerifier, get_access_token, require_scopes
from logto_guard.fastapi import LogtoSecurity
from logto_guard.testing import LocalIssuer, swap_verifier

TENANT = "https://tenant.logto.app"
API = "https://shopping.api"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fastapi_app() -> tuple[FastAPI, TokenVerifier, LogtoSecurity]:
    verifier = TokenVerifier(endpoint=TENANT, audience=API)
    guard = LogtoSecurity(verifier, scopes={"read:products": "Read products"})
    app = FastAPI()
    app.add_middleware(LogtoGuard, verifier=verifier, public_paths=["/health"])

    @app.get("/products")
    async def products(token: AccessToken = Security(guard, scopes=["read:products"])) -> Any:  # noqa: B008
        return {"caller": token.client_id}

    return app, verifier, guard


@require_scopes("read:products")
async def products(request: Any) -> JSONResponse:
    return JSONResponse({"caller": get_access_token(request).client_id})


def test_fastapi_app_with_middleware_and_dependency() -> None:
    app, original, guard = fastapi_app()
    issuer = LocalIssuer()
    with swap_verifier(app, issuer.verifier(audience=API)) as swap, TestClient(app) as client:
        assert sorted(type(g).__name__ for g, _ in swap.swapped) == ["LogtoGuard", "LogtoSecurity"]
        assert client.get("/products", headers=bearer(issuer.mint())).status_code == 200
        assert client.get("/products", headers=bearer(issuer.mint(scopes=[]))).status_code == 403
        assert client.get("/products").status_code == 401
        # A token of the real tenant's shape but another issuer's key is still refused.
        other = LocalIssuer(TENANT).mint()
        assert client.get("/products", headers=bearer(other)).status_code == 401
    assert guard.verifier is original


def test_a_second_test_swaps_again_after_the_stack_was_built() -> None:
    app, _, _ = fastapi_app()
    for _ in range(2):
        issuer = LocalIssuer()
        with swap_verifier(app, issuer.verifier(audience=API)), TestClient(app) as client:
            assert client.get("/products", headers=bearer(issuer.mint())).status_code == 200


def test_starlette_app_with_the_guard_in_a_mounted_sub_app() -> None:
    inner = Starlette(
        routes=[Route("/products", products)],
        middleware=[Middleware(LogtoGuard, endpoint=TENANT, audience=API)],
    )
    app = Starlette(routes=[Mount("/v1", app=inner)])
    issuer = LocalIssuer()
    with swap_verifier(app, issuer.verifier(audience=API)), TestClient(app) as client:
        answer = client.get("/v1/products", headers=bearer(issuer.mint(client_id="me")))
        assert answer.status_code == 200
        assert answer.json() == {"caller": "me"}


def test_a_guard_itself() -> None:
    guard = LogtoGuard(products, endpoint=TENANT, audience=API)
    replacement = LocalIssuer().verifier(audience=API)
    with swap_verifier(guard, replacement):
        assert guard.verifier is replacement


def test_an_app_without_guards_is_an_error() -> None:
    app = Starlette(routes=[Route("/products", products)])
    with pytest.raises(LookupError, match="no LogtoGuard or LogtoSecurity"):
        swap_verifier(app, LocalIssuer().verifier())
