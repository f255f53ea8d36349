"""require_scopes / require_organization on Starlette endpoints (R44-R47)."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import SHOP, TableVerifier, access_token
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from logto_guard.errors import ConfigurationError
from logto_guard.middleware import LogtoGuard
from logto_guard.scopes import require_organization, require_scopes

META = f"{SHOP}/.well-known/oauth-protected-resource"


TOKENS = {
    "reader": access_token("read:products"),
    "writer": access_token("read:products write:products"),
    "nothing": access_token(""),
    "lookalike": access_token("read:products_all read write:products:x"),
    "org-a": access_token("read:products", organization_id="org-a"),
    "org-less": access_token("read:products"),
}


def FakeVerifier() -> TableVerifier:
    return TableVerifier(TOKENS)


@require_scopes("read:products")
async def read(request: Request) -> PlainTextResponse:
    return PlainTextResponse("read")


@require_scopes("read:products", "write:products")
def write_sync(request: Request) -> PlainTextResponse:
    return PlainTextResponse("write")


@require_scopes("write:products", "admin", any_of=True)
async def any_of(request: Request) -> PlainTextResponse:
    return PlainTextResponse("any")


@require_scopes()
async def any_token(request: Request) -> PlainTextResponse:
    return PlainTextResponse("token")


@require_organization("org_id")
async def org_only(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"org {request.path_params['org_id']}")


@require_scopes("read:products", organization="org_id")
async def org_read(request: Request) -> PlainTextResponse:
    return PlainTextResponse("org read")


class Products(HTTPEndpoint):
    @require_scopes("read:products")
    async def get(self, request: Request) -> Response:
        return PlainTextResponse("class get")

    @require_scopes("write:products")
    def post(self, request: Request) -> Response:
        return PlainTextResponse("class post")


@require_scopes("read:products")
async def ws_read(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


@require_scopes("read:products")
async def keyword_only(*, request: Request) -> PlainTextResponse:
    return PlainTextResponse("kw")  # pragma: no cover - reached only through a direct call


ROUTES = [
    Route("/read", read),
    Route("/write", write_sync, methods=["POST"]),
    Route("/any", any_of),
    Route("/token", any_token),
    Route("/orgs/{org_id}/info", org_only),
    Route("/orgs/{org_id}/products", org_read),
    Route("/class", Products, methods=["GET", "POST"]),
    WebSocketRoute("/ws", ws_read),
]


def client(**options: Any) -> TestClient:
    app = Starlette(routes=ROUTES)
    app.add_middleware(LogtoGuard, verifier=FakeVerifier(), **options)
    return TestClient(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def insufficient(scope: str | None) -> str:
    value = 'Bearer realm="api", error="insufficient_scope", error_description='
    if scope is None:
        value += '"token is not for this organization"'
    else:
        value += f'"insufficient scope", scope="{scope}"'
    return value + f', resource_metadata="{META}"'


def assert_403(response: Any, scope: str | None) -> None:
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == insufficient(scope)
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": (
            "insufficient scope" if scope is not None else "token is not for this organization"
        ),
    }


def test_scope_present_is_200() -> None:
    response = client().get("/read", headers=bearer("reader"))
    assert (response.status_code, response.text) == (200, "read")


def test_scope_missing_is_403_with_scope_in_challenge() -> None:
    assert_403(client().post("/write", headers=bearer("reader")), "read:products write:products")


def test_sync_endpoint_with_all_scopes() -> None:
    response = client().post("/write", headers=bearer("writer"))
    assert (response.status_code, response.text) == (200, "write")


def test_no_scopes_at_all_is_403() -> None:
    assert_403(client().get("/read", headers=bearer("nothing")), "read:products")


def test_no_substring_or_prefix_matching() -> None:
    assert_403(client().get("/read", headers=bearer("lookalike")), "read:products")


def test_any_of() -> None:
    app = client()
    assert app.get("/any", headers=bearer("writer")).text == "any"
    assert_403(app.get("/any", headers=bearer("reader")), "write:products admin")


def test_no_required_scopes_needs_only_a_token() -> None:
    app = client(mode="optional")
    assert app.get("/token", headers=bearer("nothing")).text == "token"
    response = app.get("/token")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="api", resource_metadata="{META}"'
    assert response.json() == {"error": None, "error_description": "a bearer token is required"}


def test_missing_token_in_optional_mode_is_401_not_403() -> None:
    response = client(mode="optional").get("/read")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="api", resource_metadata="{META}"'


def test_forged_token_is_401_before_any_scope_check() -> None:
    response = client().get("/read", headers=bearer("forged"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_class_based_endpoint_methods() -> None:
    app = client()
    assert app.get("/class", headers=bearer("reader")).text == "class get"
    assert_403(app.post("/class", headers=bearer("reader")), "write:products")
    assert app.post("/class", headers=bearer("writer")).text == "class post"


def test_organization_must_match_path() -> None:
    app = client()
    assert app.get("/orgs/org-a/info", headers=bearer("org-a")).text == "org org-a"
    assert_403(app.get("/orgs/org-b/info", headers=bearer("org-a")), None)
    assert_403(app.get("/orgs/org-a/info", headers=bearer("org-less")), None)


def test_scopes_and_organization_together() -> None:
    app = client()
    assert app.get("/orgs/org-a/products", headers=bearer("org-a")).text == "org read"
    assert_403(app.get("/orgs/org-b/products", headers=bearer("org-a")), None)
    assert_403(app.get("/orgs/org-a/products", headers=bearer("nothing")), "read:products")


def test_realm_follows_the_middleware() -> None:
    response = client(realm="shop", serve_metadata=False).get("/read", headers=bearer("nothing"))
    assert response.headers["www-authenticate"] == (
        'Bearer realm="shop", error="insufficient_scope", error_description="insufficient scope",'
        ' scope="read:products"'
    )


def test_without_middleware_every_request_is_a_bare_401() -> None:
    response = TestClient(Starlette(routes=ROUTES)).get("/read", headers=bearer("reader"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'


def test_websocket_with_scope_is_accepted() -> None:
    with client().websocket_connect("/ws", headers=bearer("reader")) as ws:
        assert ws.receive_text() == "hello"


def test_websocket_without_scope_is_denied_with_403() -> None:
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        client().websocket_connect("/ws", headers=bearer("nothing")),
    ):
        pass  # pragma: no cover
    assert_403(info.value, "read:products")


def test_decorator_needs_a_request_or_websocket_parameter() -> None:
    with pytest.raises(ConfigurationError):

        @require_scopes("x")
        async def handler(conn: Request) -> None:  # pragma: no cover
            pass


@pytest.mark.parametrize("scope", ["", "a b", 'a"b', "a\\b", "caf\u00e9"])
def test_invalid_scope_names_fail_at_decoration(scope: str) -> None:
    with pytest.raises(ConfigurationError):
        require_scopes(scope)


def test_route_without_the_organization_path_param_is_a_configuration_error() -> None:
    @require_organization("tenant")
    async def handler(request: Request) -> Response:  # pragma: no cover
        return Response()

    app = Starlette(routes=[Route("/x", handler)])
    app.add_middleware(LogtoGuard, verifier=FakeVerifier())
    with pytest.raises(ConfigurationError):
        TestClient(app).get("/x", headers=bearer("org-a"))


async def test_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        await keyword_only(request="not a request")  # type: ignore[arg-type]
