"""LogtoSecurity, the FastAPI dependency, with and without the middleware (fake verifier).

No `from __future__ import annotations`: the routes' Annotated metadata names local objects.
"""

import subprocess
import sys
from typing import Annotated, Any

import pytest
from fakes import ISSUER, SHOP, TableVerifier, access_token
from fastapi import FastAPI, Request, Security, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.testclient import TestClient, WebSocketDenialResponse

from logto_guard.errors import (
    ConfigurationError,
    KeySetUnavailable,
)
from logto_guard.fastapi import LogtoAuthError, LogtoSecurity, install_error_handler
from logto_guard.middleware import LogtoGuard
from logto_guard.token import AccessToken
from logto_guard.verifier import TokenVerifier

META = f"{SHOP}/.well-known/oauth-protected-resource"
SCOPES = {"read:products": "Read products", "write:products": "Change products"}


class FakeVerifier(TableVerifier):
    def __init__(self, **extra: AccessToken | BaseException) -> None:
        super().__init__(
            {
                "reader": access_token("read:products", sub="reader-app"),
                "writer": access_token("read:products write:products", sub="writer-app"),
                "org-a": access_token("read:products", sub="org-app", organization_id="org-a"),
                **extra,
            }
        )


def make_app(
    verifier: FakeVerifier, *, middleware: dict[str, Any] | None = None, **guard_options: Any
) -> tuple[FastAPI, LogtoSecurity]:
    guard = LogtoSecurity(verifier, scopes=SCOPES, **guard_options)
    app = FastAPI()

    @app.get("/products")
    async def products(
        token: Annotated[AccessToken, Security(guard, scopes=["read:products"])],
    ) -> Any:
        return {"sub": token.sub}

    @app.post("/products")
    async def create(
        token: Annotated[AccessToken, Security(guard, scopes=["write:products"])],
    ) -> Any:
        return {"created_by": token.sub}

    @app.get("/both")
    async def both(
        a: Annotated[AccessToken, Security(guard, scopes=["read:products"])],
        b: Annotated[AccessToken, Security(guard, scopes=["read:products", "write:products"])],
    ) -> Any:
        return {"same": a is b}

    @app.get("/maybe")
    async def maybe(request: Request) -> Any:
        return {"user": request.user.identity if "user" in request.scope else None}

    @app.get("/orgs/{org_id}/products")
    async def org_products(
        org_id: str,
        token: Annotated[
            AccessToken, Security(guard.organization("org_id"), scopes=["read:products"])
        ],
    ) -> Any:
        return {"org": token.organization_id}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, token: Annotated[AccessToken, Security(guard)]) -> None:
        await websocket.accept()
        await websocket.send_text(token.sub)
        await websocket.close()

    if middleware is not None:
        app.add_middleware(LogtoGuard, verifier=verifier, **middleware)
    return app, guard


def client(verifier: TableVerifier | None = None, **options: Any) -> TestClient:
    app, _ = make_app(verifier or FakeVerifier(), **options)
    return TestClient(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, challenge: str | None, body: dict[str, Any]) -> None:
    assert response.status_code == status
    assert response.headers.get("www-authenticate") == challenge
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


MISSING = {"error": None, "error_description": "a bearer token is required"}
WRITE_403 = (
    'Bearer realm="api", error="insufficient_scope", error_description="insufficient scope",'
    ' scope="write:products"'
)
INSUFFICIENT = {"error": "insufficient_scope", "error_description": "insufficient scope"}


# -- without the middleware ------------------------------------------------------------------


def test_good_token_returns_the_access_token() -> None:
    response = client().get("/products", headers=bearer("reader"))
    assert (response.status_code, response.json()) == (200, {"sub": "reader-app"})


def test_no_token_is_401_bare_with_rfc6750_body_not_detail() -> None:
    assert_error(client().get("/products"), 401, 'Bearer realm="api"', MISSING)


def test_missing_scope_is_403_insufficient_scope() -> None:
    assert_error(client().post("/products", headers=bearer("reader")), 403, WRITE_403, INSUFFICIENT)
    assert client().post("/products", headers=bearer("writer")).json() == {
        "created_by": "writer-app"
    }


def test_bad_token_is_401_invalid_token() -> None:
    assert_error(
        client().get("/products", headers=bearer("forged")),
        401,
        'Bearer realm="api", error="invalid_token", error_description="token signature is invalid"',
        {"error": "invalid_token", "error_description": "token signature is invalid"},
    )


def test_two_authorization_headers_are_400() -> None:
    response = client().get("/products", headers=[("authorization", "Bearer reader")] * 2)
    assert_error(
        response,
        400,
        'Bearer realm="api", error="invalid_request", '
        'error_description="duplicate authorization header"',
        {"error": "invalid_request", "error_description": "duplicate authorization header"},
    )


def test_key_set_unavailable_is_503_with_retry_after() -> None:
    verifier = FakeVerifier(down=KeySetUnavailable())
    response = client(verifier).get("/products", headers=bearer("down"))
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


def test_unexpected_exception_is_401_not_500() -> None:
    verifier = FakeVerifier(crash=RecursionError())
    response = client(verifier).get("/products", headers=bearer("crash"))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": "invalid token"}


def test_token_verified_once_per_request_across_dependencies() -> None:
    verifier = FakeVerifier()
    response = client(verifier).get("/both", headers=bearer("writer"))
    assert response.json() == {"same": True}
    assert verifier.seen == ["writer"]
    assert_error(
        client().get("/both", headers=bearer("reader")),
        403,
        'Bearer realm="api", error="insufficient_scope", error_description="insufficient scope",'
        ' scope="read:products write:products"',
        INSUFFICIENT,
    )


def test_realm_and_resource_metadata_options() -> None:
    response = client(realm="shop", resource_metadata_url=META).get("/products")
    assert_error(response, 401, f'Bearer realm="shop", resource_metadata="{META}"', MISSING)


def test_auto_error_false_gives_none_without_credentials() -> None:
    guard = LogtoSecurity(FakeVerifier(), auto_error=False)
    app = FastAPI()

    @app.get("/")
    async def index(token: Annotated[AccessToken | None, Security(guard)]) -> Any:
        return {"sub": token.sub if token else None}

    http = TestClient(app)
    assert http.get("/").json() == {"sub": None}
    assert http.get("/", headers=bearer("reader")).json() == {"sub": "reader-app"}
    assert http.get("/", headers=bearer("forged")).status_code == 401


def test_user_handler_for_logto_auth_error_wins() -> None:
    app, _ = make_app(FakeVerifier())

    @app.exception_handler(LogtoAuthError)
    async def mine(request: Request, exc: LogtoAuthError) -> PlainTextResponse:
        return PlainTextResponse(f"custom {exc.auth_error.status_code}", status_code=418)

    response = TestClient(app).get("/products")
    assert (response.status_code, response.text) == (418, "custom 401")


def test_install_error_handler_explicitly() -> None:
    app, _ = make_app(FakeVerifier())
    install_error_handler(app)
    assert_error(TestClient(app).get("/products"), 401, 'Bearer realm="api"', MISSING)


def test_status_handler_registered_by_the_user_still_wins_as_in_starlette() -> None:
    app, _ = make_app(FakeVerifier())

    @app.exception_handler(401)
    async def on_401(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"mine": True}, status_code=401)

    assert TestClient(app).get("/products").json() == {"mine": True}


def test_organization_dependency() -> None:
    http = client()
    assert http.get("/orgs/org-a/products", headers=bearer("org-a")).json() == {"org": "org-a"}
    assert_error(
        http.get("/orgs/org-b/products", headers=bearer("org-a")),
        403,
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="token is not for this organization"',
        {"error": "insufficient_scope", "error_description": "token is not for this organization"},
    )
    assert http.get("/orgs/org-a/products", headers=bearer("reader")).status_code == 403
    assert http.get("/orgs/org-a/products").status_code == 401


def test_organization_dependency_with_auto_error_false_and_no_token() -> None:
    guard = LogtoSecurity(FakeVerifier(), auto_error=False)
    app = FastAPI()

    @app.get("/orgs/{org_id}")
    async def org(
        org_id: str, token: Annotated[AccessToken, Security(guard.organization())]
    ) -> Any:
        return {"org": token.organization_id}  # pragma: no cover

    assert_error(TestClient(app).get("/orgs/x"), 401, 'Bearer realm="api"', MISSING)


def test_websocket_dependency() -> None:
    http = client()
    with http.websocket_connect("/ws", headers=bearer("reader")) as ws:
        assert ws.receive_text() == "reader-app"
    with pytest.raises(WebSocketDenialResponse) as info, http.websocket_connect("/ws"):
        pass  # pragma: no cover
    assert_error(info.value, 401, 'Bearer realm="api"', MISSING)


# -- with the middleware -----------------------------------------------------------------------


def test_with_middleware_the_token_is_verified_once() -> None:
    verifier = FakeVerifier()
    http = client(verifier, middleware={})
    assert http.get("/products", headers=bearer("reader")).json() == {"sub": "reader-app"}
    assert verifier.seen == ["reader"]


def test_with_middleware_errors_use_the_middleware_challenge() -> None:
    http = client(middleware={})
    assert_error(
        http.get("/products"),
        401,
        f'Bearer realm="api", resource_metadata="{META}"',
        MISSING,
    )
    assert_error(
        http.post("/products", headers=bearer("reader")),
        403,
        WRITE_403 + f', resource_metadata="{META}"',
        INSUFFICIENT,
    )


def test_with_optional_middleware_the_dependency_still_requires_a_token() -> None:
    http = client(middleware={"mode": "optional"})
    assert http.get("/maybe").json() == {"user": ""}
    assert_error(
        http.get("/products"), 401, f'Bearer realm="api", resource_metadata="{META}"', MISSING
    )
    assert http.get("/products", headers=bearer("reader")).status_code == 200


def test_on_a_public_path_the_dependency_verifies_by_itself() -> None:
    verifier = FakeVerifier()
    http = client(verifier, middleware={"public_paths": ["/products"]})
    assert http.get("/products", headers=bearer("reader")).json() == {"sub": "reader-app"}
    assert verifier.seen == ["reader"]
    assert http.get("/products").status_code == 401


# -- OpenAPI -----------------------------------------------------------------------------------


def test_openapi_documents_the_client_credentials_scheme() -> None:
    app, _ = make_app(FakeVerifier())
    doc = TestClient(app).get("/openapi.json").json()
    assert doc["components"]["securitySchemes"] == {
        "LogtoSecurity": {
            "type": "oauth2",
            "description": "Logto machine-to-machine access token (OAuth 2.0 client credentials)",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": f"{ISSUER}/token",
                    "scopes": SCOPES,
                }
            },
        }
    }
    assert doc["paths"]["/products"]["get"]["security"] == [{"LogtoSecurity": ["read:products"]}]
    assert doc["paths"]["/products"]["post"]["security"] == [{"LogtoSecurity": ["write:products"]}]
    assert doc["paths"]["/orgs/{org_id}/products"]["get"]["security"] == [
        {"LogtoSecurity": ["read:products"]}
    ]


def test_openapi_token_url_and_scheme_name_options() -> None:
    guard = LogtoSecurity(
        FakeVerifier(), token_url="https://auth.example/oidc/token", scheme_name="Logto"
    )
    assert guard.scheme_name == "Logto"
    assert guard.model.model_dump(by_alias=True, exclude_none=True)["flows"] == {
        "clientCredentials": {"tokenUrl": "https://auth.example/oidc/token", "scopes": {}}
    }


# -- construction ------------------------------------------------------------------------------


def test_built_from_endpoint_and_audience() -> None:
    guard = LogtoSecurity(endpoint="https://tenant.logto.app", audience=SHOP)
    assert isinstance(guard.verifier, TokenVerifier)
    flows = guard.model.model_dump(by_alias=True, exclude_none=True)["flows"]
    assert flows == {"clientCredentials": {"tokenUrl": f"{ISSUER}/token", "scopes": {}}}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"endpoint": "https://tenant.logto.app"},
        {"verifier": FakeVerifier(), "audience": SHOP},
        {"verifier": FakeVerifier(), "scopes": {"bad scope": "x"}},
        {"verifier": FakeVerifier(), "realm": 'a"b'},
    ],
)
def test_bad_configuration(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        LogtoSecurity(**options)


def test_importing_logto_guard_does_not_import_fastapi() -> None:
    code = (
        "import sys, logto_guard, logto_guard.middleware, logto_guard.scopes, "
        "logto_guard.metadata, logto_guard.bearer; "
        "assert 'fastapi' not in sys.modules, 'fastapi imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
