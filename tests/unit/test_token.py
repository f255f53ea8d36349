"""`AccessToken`: claims frozen deeply, JSON-safe, and scope helpers taking one string."""

from __future__ import annotations

import base64
import copy
import json
import pickle
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi.encoders import jsonable_encoder
from jwt.algorithms import get_default_algorithms
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logto_guard import AccessToken, LogtoGuard, get_access_token
from logto_guard.testing import LocalIssuer
from logto_guard.token import FrozenDict, FrozenList, freeze

API = "https://shopping.api"


def token_with(claims: dict[str, Any], scope: str = "read:products") -> AccessToken:
    base = {
        "iss": "https://tenant.logto.app/oidc",
        "aud": API,
        "sub": "app",
        "client_id": "app",
        "iat": 1_700_000_000,
        "exp": 4_000_000_000,
        "jti": "j",
        "scope": scope,
    }
    return AccessToken.from_claims({**base, **claims}, frozenset(scope.split(" ")) - {""})


NESTED = {"roles": ["reader", {"inner": ["x"]}], "custom": {"a": {"b": [1, 2]}}}

MUTATIONS: list[tuple[str, Callable[[Any], object]]] = [
    ("set top", lambda c: c.__setitem__("sub", "other")),
    ("del top", lambda c: c.__delitem__("sub")),
    ("update top", lambda c: c.update(sub="other")),
    ("setdefault", lambda c: c.setdefault("new", 1)),
    ("pop", lambda c: c.pop("sub")),
    ("popitem", lambda c: c.popitem()),
    ("clear", lambda c: c.clear()),
    ("ior", lambda c: c.__ior__({"x": 1})),
    ("append", lambda c: c["roles"].append("admin")),
    ("extend", lambda c: c["roles"].extend(["admin"])),
    ("insert", lambda c: c["roles"].insert(0, "admin")),
    ("iadd", lambda c: c["roles"].__iadd__(["admin"])),
    ("imul", lambda c: c["roles"].__imul__(2)),
    ("list setitem", lambda c: c["roles"].__setitem__(0, "admin")),
    ("list slice", lambda c: c["roles"].__setitem__(slice(0, 1), ["admin"])),
    ("list delitem", lambda c: c["roles"].__delitem__(0)),
    ("remove", lambda c: c["roles"].remove("reader")),
    ("list pop", lambda c: c["roles"].pop()),
    ("sort", lambda c: c["roles"].sort(key=str)),
    ("reverse", lambda c: c["roles"].reverse()),
    ("list clear", lambda c: c["roles"].clear()),
    ("deep dict", lambda c: c["custom"]["a"].__setitem__("b", None)),
    ("deep list", lambda c: c["custom"]["a"]["b"].append(3)),
    ("dict in list", lambda c: c["roles"][1]["inner"].append("y")),
]


@pytest.mark.parametrize(("name", "mutate"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_claims_cannot_be_changed_at_any_depth(name: str, mutate: Callable[[Any], object]) -> None:
    token = token_with(NESTED)
    before = json.dumps(token.claims, sort_keys=True)
    with pytest.raises(TypeError, match="read-only"):
        mutate(token.claims)
    assert json.dumps(token.claims, sort_keys=True) == before


def test_frozen_claims_are_json_everywhere() -> None:
    token = token_with(NESTED)
    claims = token.claims
    assert isinstance(claims, dict) and isinstance(claims["roles"], list)
    assert claims == {**dict(claims), **NESTED}  # compares equal to plain dicts and lists
    assert json.loads(json.dumps(claims))["roles"] == ["reader", {"inner": ["x"]}]
    assert json.loads(JSONResponse(dict(claims)).body)["custom"] == NESTED["custom"]
    assert json.loads(JSONResponse(claims).body)["sub"] == "app"
    encoded = jsonable_encoder(claims)
    assert encoded["roles"] == ["reader", {"inner": ["x"]}]
    encoded["roles"].append("mine")  # FastAPI's encoder returns plain, mutable copies
    assert claims["roles"] == ["reader", {"inner": ["x"]}]


def test_copies_stay_frozen_and_plain_copies_are_shallow() -> None:
    claims = token_with(NESTED).claims
    for duplicate in (copy.copy(claims), copy.deepcopy(claims), pickle.loads(pickle.dumps(claims))):  # noqa: S301
        assert duplicate == claims
        assert type(duplicate) is FrozenDict and type(duplicate["roles"]) is FrozenList
    mutable = dict(claims)
    mutable["sub"] = "changed"  # a plain dict of the top level is the caller's own
    assert claims["sub"] == "app"
    thawed = json.loads(json.dumps(claims))  # a deep mutable copy
    thawed["roles"].append("admin")
    assert claims["roles"] == ["reader", {"inner": ["x"]}]


def test_freeze_leaves_scalars_alone() -> None:
    assert freeze({"a": 1, "b": None, "c": "s", "d": 1.5, "e": True}) == {
        "a": 1,
        "b": None,
        "c": "s",
        "d": 1.5,
        "e": True,
    }


def test_a_single_string_is_one_scope() -> None:
    token = token_with({}, scope="read:products")
    assert token.has_scopes("read:products")
    assert token.has_any_scope("read:products")
    assert not token.has_scopes("write:products")
    assert not token.has_any_scope("write:products")
    # The characters of a scope are not scopes: "r" is not granted by "read:products".
    assert not token_with({}, scope="r e a d").has_scopes("read")
    assert token_with({}, scope="r e a d").has_scopes(["r", "e"])


def test_scope_collections_still_work() -> None:
    token = token_with({}, scope="read:products write:products")
    assert token.has_scopes(["read:products", "write:products"])
    assert token.has_scopes({"read:products"})
    assert token.has_scopes(())
    assert not token.has_scopes(["read:products", "admin"])
    assert token.has_any_scope(("admin", "write:products"))
    assert not token.has_any_scope([])


# -- through a real app: cached tokens, routes returning claims as JSON -------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_text(issuer: LocalIssuer, claims_text: str) -> str:
    """A token whose payload is exactly `claims_text` (JSON Python would never write)."""
    header = {"alg": "ES384", "typ": "at+jwt", "kid": issuer.signing_kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(claims_text.encode())}"
    signature = get_default_algorithms()["ES384"].sign(signing_input.encode(), issuer.private_key())
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def issuer() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture
async def api(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    attempts: list[str] = []

    async def meddle(request: Request) -> JSONResponse:
        claims = get_access_token(request).claims
        for name, mutate in MUTATIONS:
            try:
                mutate(claims)
            except TypeError:
                continue
            except (KeyError, AttributeError):
                pass
            attempts.append(name)  # a mutation that went through
        return JSONResponse({"changed": attempts})

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse(dict(get_access_token(request).claims))

    app = Starlette(routes=[Route("/meddle", meddle), Route("/whoami", whoami)])
    guarded = LogtoGuard(app, verifier=issuer.verifier(API))
    transport = httpx.ASGITransport(app=guarded, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_one_request_cannot_change_what_the_next_one_sees(
    issuer: LocalIssuer, api: httpx.AsyncClient
) -> None:
    token = issuer.mint(claims={"roles": ["reader", {"inner": ["x"]}], "custom": NESTED["custom"]})
    auth = {"Authorization": f"Bearer {token}"}
    first = await api.get("/whoami", headers=auth)
    assert first.status_code == 200
    # the same token: cached from this, its second sighting
    meddled = await api.get("/meddle", headers=auth)
    assert meddled.status_code == 200
    assert meddled.json() == {"changed": []}
    second = await api.get("/whoami", headers=auth)
    assert second.json() == first.json()
    assert second.json()["roles"] == ["reader", {"inner": ["x"]}]


@pytest.mark.parametrize(
    "claims_text",
    [
        '"n":1e400',
        '"n":-1e400',
        '"deep":{"list":[1,2e999]}',
        r'"name":"\ud800"',
        r'"roles":["ok","\udfff"]',
        r'"\ud800":"in a member name"',
    ],
)
async def test_values_json_cannot_carry_never_reach_a_route(
    issuer: LocalIssuer, api: httpx.AsyncClient, claims_text: str
) -> None:
    good = json.loads(json.dumps(issuer_claims(issuer)))
    text = json.dumps(good)[:-1] + "," + claims_text + "}"
    response = await api.get(
        "/whoami", headers={"Authorization": f"Bearer {sign_text(issuer, text)}"}
    )
    assert response.status_code == 401  # never a 500 from JSONResponse
    assert response.json()["error"] == "invalid_token"


async def test_the_same_shape_with_json_safe_values_is_accepted(
    issuer: LocalIssuer, api: httpx.AsyncClient
) -> None:
    text = json.dumps(issuer_claims(issuer))[:-1] + r',"n":1e300,"name":"\ud83d\ude00"}'
    response = await api.get(
        "/whoami", headers={"Authorization": f"Bearer {sign_text(issuer, text)}"}
    )
    assert response.status_code == 200
    assert (response.json()["n"], response.json()["name"]) == (1e300, "😀")


def issuer_claims(issuer: LocalIssuer) -> dict[str, Any]:
    token = issuer.mint()
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims
