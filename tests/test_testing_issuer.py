"""LocalIssuer: tokens shaped exactly like Logto's, and Logto's endpoints without a network."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import httpx
import jwt
import pytest

from logto_guard.testing import LocalIssuer

API = "https://shopping.api"
ACCESS_TOKEN_CLAIMS = {"iss", "aud", "sub", "client_id", "scope", "iat", "exp", "jti"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def verify(issuer: LocalIssuer, token: str, **options: Any) -> dict[str, Any]:
    """Verify with PyJWT against the published JWKS only (nothing private)."""
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(issuer.jwks())[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[header["alg"]],
        audience=options.pop("audience", API),
        issuer=issuer.issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        **options,
    )
    return claims


def rfc7638(jwk: dict[str, str]) -> str:
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


@pytest.fixture(scope="module")
def rsa_issuer() -> LocalIssuer:
    return LocalIssuer(algorithm="RS256")


@pytest.fixture
def issuer() -> LocalIssuer:
    return LocalIssuer()


# -- keys and token shapes -------------------------------------------------------------------


def test_default_issuer_is_logto_shaped(issuer: LocalIssuer) -> None:
    assert issuer.endpoint == "https://logto.test"
    assert issuer.issuer == "https://logto.test/oidc"
    assert issuer.jwks_uri == "https://logto.test/oidc/jwks"
    assert issuer.token_endpoint == "https://logto.test/oidc/token"
    assert issuer.algorithm == "ES384"
    assert LocalIssuer("http://localhost:3001/").issuer == "http://localhost:3001/oidc"


def test_ec_jwk_is_logto_shaped(issuer: LocalIssuer) -> None:
    (jwk,) = issuer.jwks()["keys"]
    assert list(jwk) == ["kty", "use", "kid", "alg", "crv", "x", "y"]  # public only: no "d"
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-384", "ES384", "sig")
    assert jwk["kid"] == rfc7638(jwk) == issuer.signing_kid


def test_rsa_jwk_has_use_but_no_alg(rsa_issuer: LocalIssuer) -> None:
    (jwk,) = rsa_issuer.jwks()["keys"]
    assert list(jwk) == ["kty", "use", "kid", "e", "n"]
    assert jwk["use"] == "sig"
    assert jwk["kid"] == rfc7638(jwk)
    assert len(base64.urlsafe_b64decode(jwk["n"] + "==")) * 8 == 2048


@pytest.mark.parametrize("fixture", ["issuer", "rsa_issuer"])
def test_minted_token_has_exactly_logtos_shape(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    issuer: LocalIssuer = request.getfixturevalue(fixture)
    token = issuer.mint()
    header = segment(token, 0)
    assert header == {"alg": issuer.algorithm, "typ": "at+jwt", "kid": issuer.signing_kid}
    claims = verify(issuer, token)
    assert set(claims) == ACCESS_TOKEN_CLAIMS
    assert claims["iss"] == issuer.issuer
    assert claims["aud"] == API  # a single string, not a list
    assert claims["sub"] == claims["client_id"] == "m2m-app"
    assert claims["scope"] == "read:products"
    assert claims["exp"] - claims["iat"] == 3600
    assert isinstance(claims["iat"], int)
    assert abs(claims["iat"] - time.time()) < 5
    assert claims["jti"] != segment(issuer.mint(), 1)["jti"]


@pytest.mark.parametrize("algorithm", ["ES256", "ES512"])
def test_newer_ec_curves(algorithm: Any) -> None:
    issuer = LocalIssuer(algorithm=algorithm)
    token = issuer.mint()
    assert segment(token, 0)["alg"] == algorithm
    assert issuer.jwks()["keys"][0]["alg"] == algorithm
    verify(issuer, token)


def test_unsupported_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported algorithm"):
        LocalIssuer(algorithm="HS256")  # type: ignore[arg-type]


def test_scopes_audience_client_and_time(issuer: LocalIssuer) -> None:
    token = issuer.mint(
        audience="https://orders.api",
        scopes=["read:orders", "write:orders"],
        client_id="app-2",
        expires_in=60,
        now=1_700_000_000,
    )
    claims = segment(token, 1)
    assert claims["aud"] == "https://orders.api"
    assert claims["scope"] == "read:orders write:orders"
    assert claims["sub"] == claims["client_id"] == "app-2"
    assert (claims["iat"], claims["exp"]) == (1_700_000_000, 1_700_000_060)


@pytest.mark.parametrize("scopes", [(), None])
def test_no_scopes_omits_the_scope_claim(issuer: LocalIssuer, scopes: Any) -> None:
    claims = verify(issuer, issuer.mint(scopes=scopes))
    assert "scope" not in claims


def test_claim_overrides_and_removals(issuer: LocalIssuer) -> None:
    token = issuer.mint(
        claims={"jti": None, "scope": "", "sub": "someone-else", "x-custom": {"tier": "gold"}}
    )
    claims = segment(token, 1)
    assert "jti" not in claims
    assert claims["scope"] == ""
    assert claims["sub"] == "someone-else"
    assert claims["client_id"] == "m2m-app"
    assert claims["x-custom"] == {"tier": "gold"}
    assert segment(issuer.mint(audience=[API, "https://other.api"]), 1)["aud"] == [
        API,
        "https://other.api",
    ]


def test_header_overrides_and_removals(issuer: LocalIssuer) -> None:
    id_token_like = issuer.mint(header={"typ": None})
    assert segment(id_token_like, 0) == {"alg": "ES384", "kid": issuer.signing_kid}
    verify(issuer, id_token_like)  # still validly signed: only the shape differs

    forged = issuer.mint(header={"alg": "RS256", "kid": "nope", "crit": ["exp"]})
    assert segment(forged, 0) == {
        "alg": "RS256",
        "typ": "at+jwt",
        "kid": "nope",
        "crit": ["exp"],
    }


def test_sign_uses_header_and_claims_verbatim(issuer: LocalIssuer) -> None:
    token = issuer.sign({"alg": "ES384", "kid": issuer.signing_kid}, {"hello": "world"})
    assert segment(token, 1) == {"hello": "world"}
    key = jwt.PyJWKSet.from_dict(issuer.jwks())[issuer.signing_kid]
    assert jwt.decode(token, key, algorithms=["ES384"]) == {"hello": "world"}


def test_expired_token(issuer: LocalIssuer) -> None:
    token = issuer.expired_token()
    claims = segment(token, 1)
    assert claims["exp"] < time.time() - 3000
    assert claims["exp"] - claims["iat"] == 3600
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(issuer, token)
    barely = segment(issuer.expired_token(expired_ago=5), 1)
    assert time.time() - 10 < barely["exp"] < time.time()


def test_organization_tokens(issuer: LocalIssuer) -> None:
    org = issuer.mint_organization_token("org-1", scopes=["read:members"])
    claims = verify(issuer, org, audience="urn:logto:organization:org-1")
    assert claims["aud"] == "urn:logto:organization:org-1"
    assert "organization_id" not in claims
    assert claims["scope"] == "read:members"
    # An organization token always has a scope, "" when none was granted (Logto's shape).
    empty = issuer.mint_organization_token("org-1")
    assert verify(issuer, empty, audience="urn:logto:organization:org-1")["scope"] == ""

    org_api = verify(issuer, issuer.mint(organization_id="org-1"))
    assert org_api["aud"] == API
    assert org_api["organization_id"] == "org-1"
    assert next(iter(org_api)) == "organization_id"  # Logto writes it first


# -- rotation --------------------------------------------------------------------------------


def test_add_promote_remove(issuer: LocalIssuer) -> None:
    first = issuer.signing_kid
    old_token = issuer.mint()

    staged = issuer.add_key()
    assert list(issuer.kids) == [first, staged]
    assert issuer.signing_kid == first  # published, not signing
    assert segment(issuer.mint(), 0)["kid"] == first
    assert segment(issuer.mint(kid=staged), 0)["kid"] == staged
    verify(issuer, issuer.mint(kid=staged))

    issuer.promote(staged)
    assert list(issuer.kids) == [staged, first]  # the signing key is listed first
    assert segment(issuer.mint(), 0)["kid"] == staged
    verify(issuer, old_token)  # the previous key stays published

    with pytest.raises(ValueError, match="signing key"):
        issuer.remove_key(staged)
    issuer.remove_key(first)
    assert list(issuer.kids) == [staged]
    with pytest.raises(KeyError):
        verify(issuer, old_token)  # no longer in the JWKS
    with pytest.raises(KeyError):
        issuer.promote(first)
    with pytest.raises(KeyError):
        issuer.remove_key(first)
    with pytest.raises(KeyError):
        issuer.mint(kid=first)


def test_rotate_to_rsa_mixes_key_types(issuer: LocalIssuer) -> None:
    first = issuer.signing_kid
    kid = issuer.rotate("RS256")
    assert issuer.signing_kid == kid
    assert issuer.algorithm == "RS256"
    assert list(issuer.kids) == [kid, first]
    assert [k["kty"] for k in issuer.jwks()["keys"]] == ["RSA", "EC"]
    token = issuer.mint()
    assert segment(token, 0)["alg"] == "RS256"
    verify(issuer, token)
    again = issuer.rotate()  # defaults to the current key's algorithm
    assert issuer.algorithm == "RS256"
    assert list(issuer.kids) == [again, first, kid]


# -- endpoints over the httpx transport ------------------------------------------------------


@pytest.fixture
def client(issuer: LocalIssuer) -> httpx.Client:
    return httpx.Client(transport=issuer.transport(), base_url=issuer.endpoint)


@pytest.mark.parametrize("name", ["openid-configuration", "oauth-authorization-server"])
def test_discovery(issuer: LocalIssuer, client: httpx.Client, name: str) -> None:
    response = client.get(f"/oidc/.well-known/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["issuer"] == issuer.issuer
    assert document["jwks_uri"] == issuer.jwks_uri
    assert document["token_endpoint"] == issuer.token_endpoint
    assert document["introspection_endpoint"] == issuer.issuer + "/token/introspection"
    assert "client_credentials" in document["grant_types_supported"]
    assert "client_secret_basic" in document["token_endpoint_auth_methods_supported"]


def test_jwks_with_etag(issuer: LocalIssuer, client: httpx.Client) -> None:
    response = client.get("/oidc/jwks")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    assert response.headers["cache-control"] == "no-cache, max-age=0, must-revalidate"
    assert response.json() == issuer.jwks()
    etag = response.headers["etag"]

    not_modified = client.get("/oidc/jwks", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert client.get("/oidc/jwks", headers={"If-None-Match": f'"x", {etag}'}).status_code == 304

    issuer.rotate()
    changed = client.get("/oidc/jwks", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert len(changed.json()["keys"]) == 2

    head = client.head("/oidc/jwks")
    assert (head.status_code, head.content) == (200, b"")


def test_unknown_routes_and_methods(client: httpx.Client) -> None:
    for method, path in [("GET", "/oidc/nope"), ("POST", "/oidc/jwks"), ("GET", "/oidc/token")]:
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.json()["error"] == "invalid_request"
    assert client.get("/jwks").status_code == 404


def test_transport_reaches_only_this_issuer(issuer: LocalIssuer) -> None:
    with httpx.Client(transport=issuer.transport()) as client:
        with pytest.raises(httpx.ConnectError, match="only reaches"):
            client.get("https://tenant.logto.app/oidc/jwks")
        with pytest.raises(httpx.ConnectError):
            client.get("http://logto.test/oidc/jwks")  # scheme matters too
        assert client.get("https://logto.test:443/oidc/jwks").status_code == 200


def test_requests_are_recorded(issuer: LocalIssuer, client: httpx.Client) -> None:
    etag = client.get("/oidc/jwks").headers["etag"]
    client.get("/oidc/jwks", headers={"If-None-Match": etag})
    assert [(r.method, r.path, r.status) for r in issuer.requests] == [
        ("GET", "/oidc/jwks", 200),
        ("GET", "/oidc/jwks", 304),
    ]
    issuer.clear_requests()
    assert issuer.requests == []


def test_outage(issuer: LocalIssuer, client: httpx.Client) -> None:
    issuer.unavailable = True
    for path in ("/oidc/jwks", "/oidc/.well-known/openid-configuration"):
        assert client.get(path).status_code == 503
    issuer.unavailable = False
    assert client.get("/oidc/jwks").status_code == 200


async def test_async_client_over_transport(issuer: LocalIssuer) -> None:
    async with httpx.AsyncClient(transport=issuer.transport()) as client:
        response = await client.get(issuer.jwks_uri)
    assert response.json() == issuer.jwks()


async def test_asgi_app(issuer: LocalIssuer) -> None:
    transport = httpx.ASGITransport(app=issuer.asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url=issuer.endpoint) as client:
        discovery = (await client.get("/oidc/.well-known/openid-configuration")).json()
        assert discovery["issuer"] == issuer.issuer
        jwks = await client.get("/oidc/jwks")
        assert jwks.headers["content-type"].startswith("application/jwk-set+json")
        assert jwks.json() == issuer.jwks()
        again = await client.get("/oidc/jwks", headers={"If-None-Match": jwks.headers["etag"]})
        assert again.status_code == 304
        issuer.register_app("app", "secret", {API: {"read:products"}})
        token = await client.post(
            "/oidc/token",
            data={"grant_type": "client_credentials", "resource": API},
            auth=("app", "secret"),
        )
        assert token.status_code == 200
        assert (await client.delete("/oidc/jwks")).status_code == 404


# -- the token endpoint ----------------------------------------------------------------------


@pytest.fixture
def registered(issuer: LocalIssuer) -> LocalIssuer:
    issuer.register_app(
        "m2m-1",
        "s3cret",
        {API: {"read:products", "write:products"}, "https://orders.api": set()},
        organizations={"org-1": {"read:members"}},
    )
    return issuer


def grant(client: httpx.Client, auth: Any = ("m2m-1", "s3cret"), **form: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", **form}
    return client.post("/oidc/token", data=data, auth=auth)


def oauth_error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert list(body) == ["code", "message", "error", "error_description"]  # Logto's body
    assert body["code"] == "oidc." + body["error"]
    return response.status_code, body["error"]


def test_token_with_basic_auth(registered: LocalIssuer, client: httpx.Client) -> None:
    response = grant(client, resource=API, scope="read:products unknown:scope write:products")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert body["scope"] == "read:products write:products"  # unknown scope dropped silently
    claims = verify(registered, body["access_token"])
    assert claims["sub"] == claims["client_id"] == "m2m-1"
    assert claims["scope"] == "read:products write:products"
    assert segment(body["access_token"], 0)["typ"] == "at+jwt"


def test_token_with_body_credentials(registered: LocalIssuer, client: httpx.Client) -> None:
    response = grant(client, auth=None, client_id="m2m-1", client_secret="s3cret", resource=API)
    assert response.status_code == 200
    body = response.json()
    assert "scope" not in body  # none requested: no scope, as in Logto
    assert "scope" not in verify(registered, body["access_token"])


def test_token_for_resource_without_granted_scopes(
    registered: LocalIssuer, client: httpx.Client
) -> None:
    response = grant(client, resource="https://orders.api", scope="read:orders")
    assert response.status_code == 200
    claims = verify(registered, response.json()["access_token"], audience="https://orders.api")
    assert "scope" not in claims


def test_organization_tokens_from_the_endpoint(
    registered: LocalIssuer, client: httpx.Client
) -> None:
    org = grant(client, organization_id="org-1", scope="read:members other")
    claims = verify(registered, org.json()["access_token"], audience="urn:logto:organization:org-1")
    assert claims["scope"] == "read:members"
    assert "organization_id" not in claims

    org_api = grant(client, organization_id="org-1", resource=API, scope="read:products")
    assert verify(registered, org_api.json()["access_token"])["organization_id"] == "org-1"

    assert oauth_error(grant(client, organization_id="org-2")) == (403, "access_denied")


def test_token_lifetime_and_default_resource() -> None:
    issuer = LocalIssuer(access_token_ttl=600, default_resource=API)
    issuer.register_app("m2m-1", "s3cret", {API: {"read:products"}})
    with httpx.Client(transport=issuer.transport(), base_url=issuer.endpoint) as client:
        body = grant(client, scope="read:products").json()
    assert body["expires_in"] == 600
    claims = verify(issuer, body["access_token"])
    assert claims["exp"] - claims["iat"] == 600


def test_wrong_secret_is_401_with_basic_challenge(
    registered: LocalIssuer, client: httpx.Client
) -> None:
    response = grant(client, auth=("m2m-1", "wrong"), resource=API)
    assert oauth_error(response) == (401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")
    body_auth = grant(client, auth=None, client_id="m2m-1", client_secret="wrong", resource=API)
    assert oauth_error(body_auth) == (401, "invalid_client")
    assert "www-authenticate" not in body_auth.headers
    no_secret = grant(client, auth=None, client_id="m2m-1", resource=API)
    assert oauth_error(no_secret) == (401, "invalid_client")


def test_unknown_app_is_400(registered: LocalIssuer, client: httpx.Client) -> None:
    assert oauth_error(grant(client, auth=("ghost", "x"), resource=API)) == (400, "invalid_client")


@pytest.mark.parametrize(
    ("auth", "headers", "form"),
    [
        (None, {}, {}),  # no client authentication at all
        (None, {"Authorization": "Basic !!!"}, {}),
        (None, {"Authorization": "Bearer abc"}, {}),
        (("m2m-1", "s3cret"), {}, {"client_secret": "s3cret"}),  # two mechanisms
        (("m2m-1", "s3cret"), {}, {"client_id": "other"}),  # client_id mismatch
    ],
)
def test_bad_client_authentication_is_invalid_request(
    registered: LocalIssuer,
    client: httpx.Client,
    auth: Any,
    headers: dict[str, str],
    form: dict[str, str],
) -> None:
    data = {"grant_type": "client_credentials", "resource": API, **form}
    response = client.post("/oidc/token", data=data, auth=auth, headers=headers)
    assert oauth_error(response) == (400, "invalid_request")


def test_grant_type_errors(registered: LocalIssuer, client: httpx.Client) -> None:
    assert oauth_error(grant(client, grant_type="password", resource=API)) == (
        400,
        "unsupported_grant_type",
    )
    missing = client.post("/oidc/token", data={"resource": API}, auth=("m2m-1", "s3cret"))
    assert oauth_error(missing) == (400, "invalid_request")


def test_resource_errors(registered: LocalIssuer, client: httpx.Client) -> None:
    assert oauth_error(grant(client, resource="https://unknown.api")) == (400, "invalid_target")
    assert oauth_error(grant(client)) == (400, "invalid_target")  # no resource, no default
    two = client.post(
        "/oidc/token",
        content=f"grant_type=client_credentials&resource={API}&resource=https://orders.api",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("m2m-1", "s3cret"),
    )
    assert oauth_error(two) == (400, "invalid_target")


def test_malformed_token_requests(registered: LocalIssuer, client: httpx.Client) -> None:
    as_json = client.post(
        "/oidc/token",
        json={"grant_type": "client_credentials", "resource": API},
        auth=("m2m-1", "s3cret"),
    )
    assert oauth_error(as_json) == (400, "invalid_request")
    assert oauth_error(grant(client, resource=API, scope='bad"scope')) == (400, "invalid_scope")


# -- on a loopback port ----------------------------------------------------------------------


def test_serve_on_loopback() -> None:
    issuer = LocalIssuer()
    issuer.register_app("m2m-1", "s3cret", {API: {"read:products"}})
    with issuer.serve() as endpoint, httpx.Client() as client:
        assert issuer.running
        assert endpoint == issuer.endpoint
        assert endpoint.startswith("http://127.0.0.1:")
        assert issuer.issuer == endpoint + "/oidc"
        discovery = client.get(issuer.discovery_url).json()
        assert discovery["issuer"] == issuer.issuer
        assert discovery["jwks_uri"] == endpoint + "/oidc/jwks"
        jwks = client.get(discovery["jwks_uri"])
        assert jwks.headers["content-type"].startswith("application/jwk-set+json")
        etag = jwks.headers["etag"]
        assert client.get(issuer.jwks_uri, headers={"If-None-Match": etag}).status_code == 304
        response = client.post(
            discovery["token_endpoint"],
            data={"grant_type": "client_credentials", "resource": API, "scope": "read:products"},
            auth=("m2m-1", "s3cret"),
        )
        claims = verify(issuer, response.json()["access_token"])
        assert claims["iss"] == endpoint + "/oidc"
        verify(issuer, issuer.mint())
        with pytest.raises(RuntimeError, match="already running"):
            issuer.start()
    assert not issuer.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(issuer.jwks_uri)


def test_restart_keeps_the_endpoint() -> None:
    issuer = LocalIssuer()
    first = issuer.start()
    issuer.stop()
    issuer.stop()  # idempotent
    try:
        assert issuer.start() == first
        assert httpx.get(issuer.jwks_uri).status_code == 200
    finally:
        issuer.stop()


def test_serve_refuses_ambiguous_endpoints() -> None:
    with pytest.raises(ValueError, match="cannot serve"):
        LocalIssuer("https://logto.test").start()
    with pytest.raises(ValueError, match="cannot serve"):
        LocalIssuer("http://127.0.0.1").start()  # no port given
    minted = LocalIssuer()
    minted.mint()
    with pytest.raises(RuntimeError, match="already minted"):
        minted.start()


# -- parity with a real oidc-provider configured like Logto (tests/conftest.py) ---------------


def shape(value: Any) -> Any:
    """Member names and JSON types, recursively: what must match, not the values."""
    if isinstance(value, dict):
        return {name: shape(member) for name, member in value.items()}
    return type(value).__name__


def test_same_shapes_as_the_real_provider(oidc_provider: Any) -> None:
    local = LocalIssuer()
    local.register_app("shop-reader", "reader-secret", {API: {"read:products"}})
    real = oidc_provider.token_response(scope="read:products unknown:scope")
    with httpx.Client(transport=local.transport(), base_url=local.endpoint) as client:
        mine = grant(client, ("shop-reader", "reader-secret"), resource=API, scope=real["scope"])
        ours = mine.json()
    assert shape(ours) == shape(real)
    assert ours["scope"] == real["scope"] == "read:products"
    for index in (0, 1):
        theirs, own = segment(real["access_token"], index), segment(ours["access_token"], index)
        assert shape(own) == shape(theirs)
        assert {k: v for k, v in own.items() if k not in ("kid", "jti", "iss", "iat", "exp")} == {
            k: v for k, v in theirs.items() if k not in ("kid", "jti", "iss", "iat", "exp")
        }
    assert len(segment(ours["access_token"], 1)["jti"]) == len(
        segment(real["access_token"], 1)["jti"]
    )
    no_scope = oidc_provider.token_response(scope=None)
    assert "scope" not in no_scope
    assert "scope" not in segment(no_scope["access_token"], 1)

    real_jwk = oidc_provider.fetch_jwks()["keys"][0]
    assert shape(local.jwks()["keys"][0]) == shape(real_jwk)
    # Logto enables the device flow and back-channel logout, the test provider does not: its
    # members are a subset of Logto's (the exact document is checked against the recordings
    # in test_local_issuer_parity.py).
    assert set(oidc_provider.discovery()) <= set(local.discovery())
    assert set(local.discovery()) - set(oidc_provider.discovery()) == {
        "device_authorization_endpoint",
        "backchannel_logout_supported",
        "backchannel_logout_session_supported",
    }


def test_same_token_errors_as_the_real_provider(oidc_provider: Any) -> None:
    """Status and error of each refusal match. Bodies are Logto's, not plain oidc-provider's
    (Logto adds `code` and `message` and words two descriptions its own way): they are
    compared with the recordings in test_local_issuer_parity.py."""
    local = LocalIssuer()
    local.register_app("shop-reader", "reader-secret", {API: {"read:products"}})
    good = ("shop-reader", "reader-secret")
    cases: list[tuple[dict[str, str], Any]] = [
        ({"grant_type": "client_credentials", "resource": API}, ("shop-reader", "wrong")),
        ({"grant_type": "client_credentials", "resource": API}, None),
        ({"grant_type": "password", "resource": API}, good),
        ({"resource": API}, good),
        ({"grant_type": "client_credentials", "resource": "https://unknown.api"}, good),
        ({"grant_type": "client_credentials"}, good),
        (
            {
                "grant_type": "client_credentials",
                "resource": API,
                "client_id": "shop-reader",
                "client_secret": "wrong",
            },
            None,
        ),
    ]
    with (
        httpx.Client() as network,
        httpx.Client(transport=local.transport()) as in_process,
    ):
        for form, auth in cases:
            theirs = network.post(oidc_provider.token_endpoint, data=form, auth=auth)
            ours = in_process.post(local.token_endpoint, data=form, auth=auth)
            assert (ours.status_code, ours.json()["error"]) == (
                theirs.status_code,
                theirs.json()["error"],
            ), form
            assert ours.headers["cache-control"] == theirs.headers["cache-control"]
            challenge = theirs.headers.get("www-authenticate")
            assert (challenge is None) == ("www-authenticate" not in ours.headers)


def test_same_jwks_http_behaviour_as_the_real_provider(oidc_provider: Any) -> None:
    local = LocalIssuer()
    with httpx.Client() as network, httpx.Client(transport=local.transport()) as in_process:
        for client, url in ((network, oidc_provider.jwks_uri), (in_process, local.jwks_uri)):
            first = client.get(url)
            assert first.headers["content-type"] == "application/jwk-set+json; charset=utf-8"
            assert first.headers["cache-control"] == "no-cache, max-age=0, must-revalidate"
            assert first.headers["etag"].endswith('"')  # Logto's is strong, the provider's weak
            assert first.headers["access-control-allow-origin"] == "*"
            again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304
