"""CORS on LocalIssuer's endpoints: what Swagger UI's Authorize button needs from a browser."""

from __future__ import annotations

import httpx
import pytest

from logto_guard.testing import LocalIssuer

API = "https://shopping.api"
ORIGIN = "http://127.0.0.1:8000"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def issuer() -> LocalIssuer:
    issuer = LocalIssuer(default_resource=API)
    issuer.register_app("swagger", "s3cret", {API: ["read:products"]}, cors_origins=[ORIGIN])
    issuer.register_app("backend", "s3cret", {API: ["read:products"]})
    return issuer


def client(issuer: LocalIssuer) -> httpx.Client:
    return httpx.Client(transport=issuer.transport(), base_url=issuer.endpoint)


def test_preflight_of_the_token_endpoint(issuer: LocalIssuer) -> None:
    with client(issuer) as http:
        response = http.options(
            "/oidc/token",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-methods"] == "POST"
    assert response.headers["access-control-allow-headers"] == "authorization,content-type"
    assert response.headers["access-control-max-age"] == "3600"
    assert response.content == b""


def test_options_without_a_preflight_is_still_unknown(issuer: LocalIssuer) -> None:
    with client(issuer) as http:
        assert http.options("/oidc/token", headers={"Origin": ORIGIN}).status_code == 404


def test_token_from_an_allowed_origin_with_the_default_resource(issuer: LocalIssuer) -> None:
    # Swagger UI sends Basic credentials and a scope, never `resource`.
    with client(issuer) as http:
        response = http.post(
            "/oidc/token",
            auth=("swagger", "s3cret"),
            headers={"Origin": ORIGIN, **FORM},
            content=b"grant_type=client_credentials&scope=read%3Aproducts",
        )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "WWW-Authenticate" in response.headers["access-control-expose-headers"]
    assert response.json()["scope"] == "read:products"


def test_origin_the_app_does_not_allow_is_refused(issuer: LocalIssuer) -> None:
    with client(issuer) as http:
        response = http.post(
            "/oidc/token",
            auth=("backend", "s3cret"),
            headers={"Origin": ORIGIN, **FORM},
            content=b"grant_type=client_credentials",
        )
    assert response.status_code == 400
    assert response.json() == {  # shaped like every Logto token-endpoint error
        "error": "invalid_request",
        "error_description": f"origin {ORIGIN} not allowed for client: backend",
        "code": "oidc.invalid_request",
        "message": "Request is invalid.",
    }
    assert "access-control-allow-origin" not in response.headers


def test_server_side_requests_need_no_origin(issuer: LocalIssuer) -> None:
    with client(issuer) as http:
        response = http.post(
            "/oidc/token",
            auth=("backend", "s3cret"),
            headers=FORM,
            content=f"grant_type=client_credentials&resource={API}".encode(),
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


def test_preflight_against_the_served_issuer() -> None:
    issuer = LocalIssuer()
    with issuer.serve() as endpoint:
        response = httpx.options(
            endpoint + "/oidc/token",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.parametrize("origin", ["127.0.0.1:8000", "http://127.0.0.1:8000/docs", "ftp://x"])
def test_bad_origins_are_refused_at_registration(origin: str) -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        LocalIssuer().register_app("a", "b", {API: []}, cors_origins=[origin])
