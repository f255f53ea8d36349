"""`LocalIssuer` answers as the recorded real Logto did (tests/fixtures/real_logto/), key by key.

Every recorded request of the scenarios this covers is sent to a `LocalIssuer` with the same
endpoint (`http://127.0.0.1:3301`), the same app ids and the same grants, and its answer is
compared with the recording member by member: status, content type, Cache-Control, ETag and
WWW-Authenticate, body member names in order, and values. Values that are per instance (key ids,
`jti`, times, signatures, key material) are compared by type and shape instead.

Not compared: the CORS and security headers Logto's web framework adds to every answer
(`Vary`, `Access-Control-*`, `X-*`, HSTS...), which `LocalIssuer` leaves to its CORS support.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import httpx
import pytest
from real_logto import exchange, load

from logto_guard.testing import LocalIssuer

ENDPOINT = "http://127.0.0.1:3301"
SHOP = "https://shopping.api"
MANAGEMENT = "https://default.logto.app/api"
ORG = "nl70ijiqhi2u"
WRITER, READER, NOSCOPE, MAPI = (
    "k52dzvprl3tvg1e7y0nv5",
    "alua5qr61dlnfmube9cne",
    "rw8z1o3vrhslligja3oko",
    "mapi-bootstrap",
)
SECRET = "the-registered-secret"
B64URL_43 = re.compile(r"[A-Za-z0-9_-]{43}")  # a SHA-256 in base64url: kids, jti
LOGTO_ETAG = re.compile(r'"[0-9a-f]+-[A-Za-z0-9+/]{27}"')
COMPARED_HEADERS = ("Content-Type", "Cache-Control", "Pragma", "ETag", "WWW-Authenticate")

# Each scenario's tenant as the recording shows it: the apps and what their roles grant.
TENANTS: dict[str, dict[str, tuple[dict[str, set[str]], dict[str, set[str]]]]] = {
    "01-es384-writer.json": {WRITER: ({SHOP: {"read:products", "write:products"}}, {})},
    "02-reader-scope-downgrade.json": {READER: ({SHOP: {"read:products"}}, {})},
    "03-noscope.json": {NOSCOPE: ({SHOP: set()}, {})},
    "04-management-api.json": {MAPI: ({MANAGEMENT: {"all"}}, {})},
    # shop-writer's organization role: organization scope read:orders, resource scope
    # read:products (the recorded org_roles exchange); shop-reader is not a member.
    "05-organization.json": {
        WRITER: ({SHOP: {"read:products"}}, {ORG: {"read:orders"}}),
        READER: ({SHOP: {"read:products"}}, {}),
    },
    "08-token-errors.json": {WRITER: ({SHOP: {"read:products", "write:products"}}, {})},
}


def local_tenant(name: str) -> LocalIssuer:
    issuer = LocalIssuer(ENDPOINT)
    for app_id, (grants, organizations) in TENANTS[name].items():
        issuer.register_app(app_id, SECRET, grants, organizations=organizations)
    return issuer


def replay(issuer: LocalIssuer, recorded: dict[str, Any]) -> httpx.Response:
    """Send a recorded request to the local issuer, with the registered secret for "<secret>"."""
    request = recorded["request"]
    auth = request["auth"]
    basic = None
    if auth["method"] == "client_secret_basic":
        secret = SECRET if auth["client_secret"] == "<secret>" else auth["client_secret"]
        basic = (auth["client_id"], secret)
    form = {
        name: (SECRET if value == "<secret>" else value) for name, value in request["form"].items()
    }
    with httpx.Client(transport=issuer.transport()) as client:
        return client.request(
            request["method"],
            request["url"],
            data=form,
            auth=basic,
            headers=request.get("headers", {}),
        )


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def assert_same_headers(ours: httpx.Response, recorded: dict[str, Any]) -> None:
    for name in COMPARED_HEADERS:
        theirs = recorded["response"]["headers"][name]
        mine = ours.headers.get(name)
        if name == "ETag" and theirs is not None:
            assert mine is not None and LOGTO_ETAG.fullmatch(mine), (name, mine)
        else:
            assert mine == theirs, (recorded["id"], name, mine, theirs)


def assert_same_token(ours: str, theirs: str) -> None:
    """Header and claims: the same members in the same order; per-instance values by shape."""
    for index in (0, 1):
        mine, recorded = segment(ours, index), segment(theirs, index)
        assert list(mine) == list(recorded)
        for name, value in recorded.items():
            if name in ("kid", "jti"):
                assert B64URL_43.fullmatch(mine[name]) and B64URL_43.fullmatch(value), name
            elif name in ("iat", "exp"):
                assert type(mine[name]) is type(value) is int
            else:
                assert mine[name] == value, name
    assert segment(ours, 1)["exp"] - segment(ours, 1)["iat"] == (
        segment(theirs, 1)["exp"] - segment(theirs, 1)["iat"]
    )


def token_exchanges() -> list[Any]:
    cases = []
    for name in TENANTS:
        for item in load(name)["exchanges"]:
            if item["request"]["path"] == "/oidc/token":
                cases.append(pytest.param(name, item["id"], id=f"{name[:2]}-{item['id']}"))
    return cases


@pytest.mark.parametrize(("name", "exchange_id"), token_exchanges())
def test_token_endpoint_answers_as_recorded(name: str, exchange_id: str) -> None:
    recorded = exchange(load(name), exchange_id)
    ours = replay(local_tenant(name), recorded)
    assert ours.status_code == recorded["response"]["status"]
    assert_same_headers(ours, recorded)
    theirs = recorded["response"]["body"]
    body = ours.json()
    assert list(body) == list(theirs)
    if "access_token" not in theirs:  # an error: Logto's body exactly, code and message too
        assert body == theirs
        return
    assert {k: v for k, v in body.items() if k != "access_token"} == {
        k: v for k, v in theirs.items() if k != "access_token"
    }
    assert_same_token(body["access_token"], theirs["access_token"])


def test_every_token_request_of_01_to_05_and_08_is_compared() -> None:
    assert len(token_exchanges()) == 1 + 1 + 1 + 1 + 4 + 7


def client_conclusions() -> list[Any]:
    return [
        pytest.param(name, index, id=f"{name[:2]}-{entry['exchange']}")
        for name in TENANTS
        for index, entry in enumerate(load(name).get("expect_token_endpoint", []))
    ]


@pytest.mark.parametrize(("name", "index"), client_conclusions())
def test_a_client_concludes_what_it_concluded_from_logto(name: str, index: int) -> None:
    doc = load(name)
    expected = doc["expect_token_endpoint"][index]
    ours = replay(local_tenant(name), exchange(doc, expected["exchange"]))
    body = ours.json()
    assert ours.status_code == expected["status"]
    assert ("access_token" in body) is expected["token_issued"]
    if expected["token_issued"]:
        assert (body["token_type"], body["expires_in"]) == (
            expected["token_type"],
            expected["expires_in"],
        )
        assert ("scope" in body) is expected["body_has_scope"]
        assert body.get("scope") == expected["body_scope"]
    else:
        assert body["error"] == expected["error"]
        if "www_authenticate" in expected:
            assert ours.headers.get("WWW-Authenticate") == expected["www_authenticate"]


@pytest.mark.parametrize(
    "name",
    ["01-es384-writer.json", "03-noscope.json", "04-management-api.json", "05-organization.json"],
)
async def test_local_tokens_verify_to_the_recorded_verdicts(name: str) -> None:
    """Tokens the local issuer gives for the recorded requests decide like the real ones."""
    doc = load(name)
    issuer = local_tenant(name)
    for entry in doc["expect"]:
        if not entry["valid"] or entry["token"] not in {e["id"] for e in doc["exchanges"]}:
            continue
        token = replay(issuer, exchange(doc, entry["token"])).json()["access_token"]
        verifier = issuer.verifier(entry["audience"])
        try:
            verified = await verifier.verify(token)
        finally:
            await verifier.aclose()
        assert verified.issuer == entry["issuer"]
        assert (verified.sub, verified.client_id) == (entry["sub"], entry["client_id"])
        assert sorted(verified.scopes) == entry["scopes"]
        assert verified.organization_id == entry["organization_id"]


# -- discovery ----------------------------------------------------------------------------


def get(issuer: LocalIssuer, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(transport=issuer.transport(), base_url=ENDPOINT) as client:
        return client.get(path, headers=headers or {})


@pytest.mark.parametrize("exchange_id", ["discovery", "oauth_authorization_server"])
def test_discovery_is_logtos_document(exchange_id: str) -> None:
    recorded = exchange(load("09-discovery-jwks-headers.json"), exchange_id)
    ours = get(LocalIssuer(ENDPOINT), recorded["request"]["path"])
    assert ours.status_code == 200
    assert_same_headers(ours, recorded)
    assert list(ours.json()) == list(recorded["response"]["body"])
    assert ours.json() == recorded["response"]["body"]
    assert ours.text == recorded["response"]["body_raw"]  # byte for byte, so the ETag too
    assert ours.headers["ETag"] == recorded["response"]["headers"]["ETag"]


def test_discovery_follows_the_endpoint() -> None:
    recorded = exchange(load("01-es384-writer.json"), "discovery")["response"]["body_raw"]
    issuer = LocalIssuer("https://tenant.logto.test")
    expected = json.loads(recorded.replace(ENDPOINT, "https://tenant.logto.test"))
    assert issuer.discovery() == expected


def test_conditional_discovery_is_304_like_logto() -> None:
    doc = load("09-discovery-jwks-headers.json")
    recorded = exchange(doc, "discovery_if_none_match")
    ours = get(LocalIssuer(ENDPOINT), recorded["request"]["path"], recorded["request"]["headers"])
    assert ours.status_code == recorded["response"]["status"] == 304
    assert_same_headers(ours, recorded)
    assert ours.content == b""


def test_discovery_lists_the_algorithms_of_the_published_keys() -> None:
    doc = load("06-rotation-rsa-and-back.json")
    issuer = LocalIssuer(ENDPOINT)
    first = issuer.signing_kid
    issuer.rotate("RS256")  # Logto: rotate to RSA, the EC key stays as Previous
    after_rsa = exchange(doc, "discovery_after_rsa")["response"]["body"]
    assert issuer.discovery() == after_rsa
    issuer.rotate("ES384")
    issuer.remove_key(first)  # Logto drops the old Previous key at the second rotation
    after_ec = exchange(doc, "discovery_after_ec")["response"]["body"]
    assert (
        issuer.discovery()["id_token_signing_alg_values_supported"]
        == (after_ec["id_token_signing_alg_values_supported"])
    )
    assert issuer.discovery() == after_ec


# -- JWKS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_tenant() -> LocalIssuer:
    """Rotated to RSA like 06: an RSA-4096 Current key (Logto's size) and the EC Previous."""
    issuer = LocalIssuer(ENDPOINT, rsa_key_size=4096)
    issuer.rotate("RS256")
    return issuer


def assert_same_jwk(mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert list(mine) == list(theirs)
    for name, value in theirs.items():
        if name == "kid":
            assert B64URL_43.fullmatch(mine[name])
        elif name in ("x", "y", "n"):  # key material: same encoding and size
            assert re.fullmatch(r"[A-Za-z0-9_-]+", mine[name]) and len(mine[name]) == len(value)
        else:
            assert mine[name] == value, name


def test_ec_jwk_is_shaped_like_logtos() -> None:
    recorded = json.loads(exchange(load("01-es384-writer.json"), "jwks")["response"]["body_raw"])
    (theirs,) = recorded["keys"]
    (mine,) = LocalIssuer(ENDPOINT).jwks()["keys"]
    assert_same_jwk(mine, theirs)
    assert "alg" in mine and "d" not in mine


def test_rsa_jwk_comes_without_alg_like_logtos(rsa_tenant: LocalIssuer) -> None:
    body = exchange(load("06-rotation-rsa-and-back.json"), "jwks_after_rsa")["response"]
    recorded = json.loads(body["body_raw"])["keys"]
    mine = rsa_tenant.jwks()["keys"]
    assert [k["kty"] for k in mine] == [k["kty"] for k in recorded] == ["RSA", "EC"]
    for own, theirs in zip(mine, recorded, strict=True):
        assert_same_jwk(own, theirs)
    assert "alg" not in mine[0] and "alg" not in recorded[0]


def jwks_exchanges() -> list[str]:
    return [
        item["id"]
        for item in load("09-discovery-jwks-headers.json")["exchanges"]
        if item["request"]["path"] == "/oidc/jwks"
    ]


@pytest.mark.parametrize("exchange_id", jwks_exchanges())
def test_jwks_http_answers_as_recorded(exchange_id: str) -> None:
    """GET, conditional GETs (current, stale, weak ETag), HEAD: status and headers as Logto."""
    doc = load("09-discovery-jwks-headers.json")
    recorded = exchange(doc, exchange_id)
    issuer = LocalIssuer(ENDPOINT)
    current = get(issuer, "/oidc/jwks").headers["ETag"]
    headers = dict(recorded["request"].get("headers", {}))
    sent = headers.get("If-None-Match")
    recorded_etag = exchange(doc, "jwks")["response"]["headers"]["ETag"]
    if sent is not None:  # the recorded ETag stands for ours: current, weak form, or stale
        headers["If-None-Match"] = sent.replace(recorded_etag, current)
    with httpx.Client(transport=issuer.transport(), base_url=ENDPOINT) as client:
        ours = client.request(recorded["request"]["method"], "/oidc/jwks", headers=headers)
    assert ours.status_code == recorded["response"]["status"]
    assert_same_headers(ours, recorded)
    if recorded["response"]["status"] == 304 or recorded["request"]["method"] == "HEAD":
        assert ours.content == b""
    else:
        assert list(ours.json()) == ["keys"]


def test_jwks_etag_is_logtos_function_of_the_body() -> None:
    """The recorded ETags are koa's: length in hex and a truncated base64 SHA-1 of the body."""
    for name, exchange_id in [
        ("01-es384-writer.json", "jwks"),
        ("09-discovery-jwks-headers.json", "jwks"),
        ("01-es384-writer.json", "discovery"),
    ]:
        response = exchange(load(name), exchange_id)["response"]
        body = response["body_raw"].encode()
        digest = base64.b64encode(hashlib.sha1(body, usedforsecurity=False).digest()).decode()
        assert response["headers"]["ETag"] == f'"{len(body):x}-{digest[:27]}"'
    ours = get(LocalIssuer(ENDPOINT), "/oidc/jwks")
    digest = base64.b64encode(hashlib.sha1(ours.content, usedforsecurity=False).digest()).decode()
    assert ours.headers["ETag"] == f'"{len(ours.content):x}-{digest[:27]}"'
