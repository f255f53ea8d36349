"""RFC 9728 protected resource metadata (R53, R54)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fakes import ISSUER, TableVerifier
from readme import block
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from logto_guard.errors import ConfigurationError
from logto_guard.metadata import ProtectedResourceMetadata, metadata_url
from logto_guard.middleware import LogtoGuard
from logto_guard.testing.server import LoopbackServer


@pytest.mark.parametrize(
    ("resource", "url"),
    [
        ("https://api.example.com", "https://api.example.com/.well-known/oauth-protected-resource"),
        (
            "https://api.example.com/",
            "https://api.example.com/.well-known/oauth-protected-resource",
        ),
        (
            "https://api.example.com/v1",
            "https://api.example.com/.well-known/oauth-protected-resource/v1",
        ),
        (
            "https://api.example.com/v1/mcp/",
            "https://api.example.com/.well-known/oauth-protected-resource/v1/mcp/",
        ),
        (
            "http://localhost:8000/mcp",
            "http://localhost:8000/.well-known/oauth-protected-resource/mcp",
        ),
    ],
)
def test_metadata_url_inserts_the_well_known_path(resource: str, url: str) -> None:
    assert metadata_url(resource) == url


@pytest.mark.parametrize(
    "resource",
    [
        "shopping-api",
        "urn:logto:organization:x",
        "ftp://api.example.com",
        "https://",
        "https://api.example.com/?a=1",
        "https://api.example.com/#frag",
        "https://api.example.com/?",
    ],
)
def test_metadata_url_refuses_non_url_resources(resource: str) -> None:
    with pytest.raises(ConfigurationError):
        metadata_url(resource)


def test_document_fields_and_zero_values_omitted() -> None:
    full = ProtectedResourceMetadata(
        "https://api.example.com/v1",
        authorization_servers=[ISSUER],
        scopes_supported=["read:products", "write:products", "read:products"],
        resource_name="Shop",
    )
    assert full.url == "https://api.example.com/.well-known/oauth-protected-resource/v1"
    assert full.path == "/.well-known/oauth-protected-resource/v1"
    assert full.document == {
        "resource": "https://api.example.com/v1",
        "authorization_servers": [ISSUER],
        "scopes_supported": ["read:products", "write:products"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Shop",
    }
    minimal = ProtectedResourceMetadata(
        "https://api.example.com", authorization_servers=[], bearer_methods_supported=()
    )
    assert minimal.document == {"resource": "https://api.example.com"}


def test_invalid_scope_name_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        ProtectedResourceMetadata(
            "https://api.example.com", authorization_servers=[ISSUER], scopes_supported=["a b"]
        )


def test_document_never_has_jwks_uri() -> None:
    doc = ProtectedResourceMetadata("https://a.example", authorization_servers=[ISSUER]).document
    assert "jwks_uri" not in doc


def test_served_as_a_standalone_asgi_route() -> None:
    metadata = ProtectedResourceMetadata(
        "https://api.example.com", authorization_servers=[ISSUER], scopes_supported=["read"]
    )
    app = TestClient(Starlette(routes=[Route(metadata.path, metadata, methods=["GET", "POST"])]))
    response = app.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == metadata.document
    refused = app.post("/.well-known/oauth-protected-resource")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"


# -- served by the middleware ------------------------------------------------------------------


def FakeVerifier(*audiences: str) -> TableVerifier:
    # An empty table: metadata must be served without ever verifying a token.
    return TableVerifier(audiences=audiences or ("https://shopping.api",))


async def hello(request: Request) -> PlainTextResponse:  # pragma: no cover - never reached
    return PlainTextResponse("hello")


def client(verifier: TableVerifier | None = None, **options: Any) -> TestClient:
    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(LogtoGuard, verifier=verifier or FakeVerifier(), **options)
    return TestClient(app)


def test_middleware_serves_metadata_without_a_token() -> None:
    app = client(scopes_supported=["read:products", "write:products"], resource_name="Shop")
    response = app.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "resource": "https://shopping.api",
        "authorization_servers": [ISSUER],
        "scopes_supported": ["read:products", "write:products"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Shop",
    }
    head = app.head("/.well-known/oauth-protected-resource")
    assert head.status_code == 200
    assert app.post("/.well-known/oauth-protected-resource").status_code == 405


def test_challenge_points_at_the_metadata_url() -> None:
    response = client().get("/hello")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", '
        'resource_metadata="https://shopping.api/.well-known/oauth-protected-resource"'
    )


def test_url_comes_from_configuration_not_the_host_header() -> None:
    response = client().get("/hello", headers={"Host": "evil.example"})
    assert "evil.example" not in response.headers["www-authenticate"]
    doc = client().get("/.well-known/oauth-protected-resource", headers={"Host": "evil.example"})
    assert doc.json()["resource"] == "https://shopping.api"


def test_resource_with_a_path_is_served_at_the_inserted_path() -> None:
    app = client(resource="https://api.example.com/mcp")
    response = app.get("/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    assert response.json()["resource"] == "https://api.example.com/mcp"
    assert app.get("/.well-known/oauth-protected-resource").status_code == 401
    assert app.get("/hello").headers["www-authenticate"] == (
        'Bearer realm="api", '
        'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"'
    )


def test_query_token_support_is_advertised() -> None:
    doc = client(allow_query_token=True).get("/.well-known/oauth-protected-resource").json()
    assert doc["bearer_methods_supported"] == ["header", "query"]


def test_serve_metadata_false_serves_and_advertises_nothing() -> None:
    app = client(serve_metadata=False)
    assert app.get("/.well-known/oauth-protected-resource").status_code == 401
    assert app.get("/hello").headers["www-authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "audiences", [("https://a.example", "https://b.example"), ("shopping-api",)]
)
def test_no_metadata_when_the_resource_is_not_known(audiences: tuple[str, ...]) -> None:
    app = client(FakeVerifier(*audiences))
    assert app.get("/.well-known/oauth-protected-resource").status_code == 401
    assert app.get("/hello").headers["www-authenticate"] == 'Bearer realm="api"'


def test_explicit_resource_with_several_audiences() -> None:
    app = client(
        FakeVerifier("https://a.example", "https://b.example"), resource="https://b.example"
    )
    assert app.get("/.well-known/oauth-protected-resource").json()["resource"] == (
        "https://b.example"
    )


# -- public_url: the API identifier is a name, the API answers elsewhere ----------------------


def test_public_url_serves_the_document_where_the_api_answers() -> None:
    app = client(public_url="https://api.example.com", scopes_supported=["read:products"])
    challenge = app.get("/hello").headers["www-authenticate"]
    assert challenge == (
        'Bearer realm="api", '
        'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
    )
    document = app.get("/.well-known/oauth-protected-resource").json()
    assert document["resource"] == "https://shopping.api"  # the identifier tokens carry in aud
    assert document["scopes_supported"] == ["read:products"]


def test_public_url_with_a_path() -> None:
    app = client(public_url="https://example.com/shop/")
    assert (
        app.get("/hello")
        .headers["www-authenticate"]
        .endswith(
            'resource_metadata="https://example.com/.well-known/oauth-protected-resource/shop/"'
        )
    )
    served = app.get("/.well-known/oauth-protected-resource/shop/")
    assert served.status_code == 200
    assert served.json()["resource"] == "https://shopping.api"
    assert app.get("/.well-known/oauth-protected-resource").status_code == 401


def test_public_url_with_an_explicit_resource_among_several_audiences() -> None:
    app = client(
        FakeVerifier("https://a.example", "https://b.example"),
        resource="https://b.example",
        public_url="http://127.0.0.1:8000",
    )
    assert app.get("/.well-known/oauth-protected-resource").json()["resource"] == (
        "https://b.example"
    )
    assert "http://127.0.0.1:8000/.well-known/" in app.get("/hello").headers["www-authenticate"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"public_url": "api.example.com"}, "public_url must be an absolute http(s) URL"),
        ({"public_url": "https://api.example.com/?x=1"}, "public_url must not have a query"),
        ({"public_url": "https://api.example.com", "serve_metadata": False}, "public_url only"),
    ],
)
def test_bad_public_url_is_a_configuration_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        LogtoGuard(hello, verifier=FakeVerifier(), **options)


def test_public_url_without_a_known_resource_names_the_audiences() -> None:
    with pytest.raises(ConfigurationError, match="pass resource=") as refused:
        LogtoGuard(
            hello,
            verifier=FakeVerifier("https://a.example", "https://b.example"),
            public_url="https://x.io",
        )
    assert "https://a.example" in str(refused.value) and "https://x.io" in str(refused.value)


def test_the_challenge_url_is_reachable_on_a_real_server() -> None:
    """Over loopback HTTP: follow `resource_metadata` from a 401 and get the document."""
    inner: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await inner["app"](scope, receive, send)

    server = LoopbackServer(app, lifespan="off")
    inner["app"] = LogtoGuard(
        Starlette(routes=[Route("/hello", hello)]), verifier=FakeVerifier(), public_url=server.url
    )
    with server as url, httpx.Client() as http:
        refused = http.get(url + "/hello")
        assert refused.status_code == 401
        found = re.search(r'resource_metadata="([^"]+)"', refused.headers["www-authenticate"])
        assert found is not None and found.group(1).startswith(url)
        document = http.get(found.group(1))
    assert document.status_code == 200
    assert document.json()["resource"] == "https://shopping.api"
    assert document.json()["authorization_servers"] == [ISSUER]


def test_readme_public_url_example() -> None:
    namespace: dict[str, Any] = {}
    exec(block('public_url="https://api.example.com"'), namespace)  # noqa: S102 - our README
    with TestClient(namespace["app"]) as app:
        refused = app.get("/products")
        document = app.get("/.well-known/oauth-protected-resource")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="api", '
        'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
    )
    assert document.json()["resource"] == "https://shopping.api"
    assert document.json()["authorization_servers"] == ["https://tenant.logto.app/oidc"]
