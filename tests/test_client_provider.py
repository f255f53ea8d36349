"""ClientCredentials against the real OpenID provider (oidc-provider, the engine Logto runs on).

The unit tests pin the request shape; these prove that shape is what a real Logto-like token
endpoint accepts, and that tokens reach an API through real clients of both families: every
test that sends a request runs with httpx2 and with httpx (fixture `hx`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logto_guard.client import ClientCredentials, TokenRequestError
from logto_guard.testing import LoopbackServer

if TYPE_CHECKING:
    from oidc_provider import OidcProvider

SHOP = "https://shopping.api"
MGMT = "https://default.logto.app/api"
API = "http://api.test"


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def scopes(token: str) -> set[str]:
    return set(claims(token).get("scope", "").split())


@pytest.fixture(params=["httpx2", "httpx"])
def hx(request: pytest.FixtureRequest) -> ModuleType:
    """The client family under test."""
    return {"httpx2": httpx2, "httpx": httpx}[request.param]


def real_client(hx: ModuleType) -> httpx.Client:
    # trust_env=False: a proxy set in the environment must not capture loopback traffic.
    client: httpx.Client = hx.Client(trust_env=False, timeout=10)
    return client


@pytest.mark.parametrize("auth_method", ["basic", "body"])
def test_token_for_an_api_resource(
    oidc_provider: OidcProvider, hx: ModuleType, auth_method: str
) -> None:
    assert oidc_provider.SHOP == SHOP
    auth = ClientCredentials(
        "shop-writer",
        "writer-secret",
        endpoint=oidc_provider.endpoint,
        resource=SHOP,
        scopes=["read:products", "write:products"],
        auth_method=auth_method,  # type: ignore[arg-type]
    )
    assert auth.token_endpoint == oidc_provider.token_endpoint
    with real_client(hx) as client:
        token = auth.get_token(client)
        assert auth.get_token(client) == token  # cached
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    body = claims(token)
    assert body["aud"] == SHOP
    assert body["iss"] == oidc_provider.issuer
    assert body["client_id"] == body["sub"] == "shop-writer"
    assert scopes(token) == {"read:products", "write:products"}
    assert body["exp"] - body["iat"] == 3600


def test_scopes_not_granted_are_dropped(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    auth = ClientCredentials(
        "shop-reader",
        "reader-secret",
        token_endpoint=oidc_provider.token_endpoint,
        resource=SHOP,
        scopes="read:products write:products",
        auth_method="body",
    )
    with real_client(hx) as client:
        token = auth.get_token(client)
    assert claims(token)["aud"] == SHOP
    assert scopes(token) == {"read:products"}


def test_get_token_without_a_client(oidc_provider: OidcProvider) -> None:
    auth = ClientCredentials(
        "shop-reader", "reader-secret", endpoint=oidc_provider.endpoint, resource=SHOP
    )
    token = auth.get_token()  # a throwaway httpx2.Client of its own (the default family)
    assert claims(token)["aud"] == SHOP
    assert "scope" not in claims(token) or claims(token)["scope"] == ""


async def test_aget_token(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    auth = ClientCredentials(
        "shop-reader",
        "reader-secret",
        endpoint=oidc_provider.endpoint,
        resource=SHOP,
        scopes=["read:products"],
    )
    async with hx.AsyncClient(trust_env=False) as client:
        token = await auth.aget_token(client)
    assert scopes(token) == {"read:products"}


def test_wrong_secret_is_invalid_client(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    auth = ClientCredentials(
        "shop-reader", "not-the-secret", endpoint=oidc_provider.endpoint, resource=SHOP
    )
    with real_client(hx) as client, pytest.raises(TokenRequestError) as info:
        auth.get_token(client)
    assert info.value.error == "invalid_client"
    assert info.value.status_code in (400, 401)
    assert "invalid_client" in str(info.value)
    assert "not-the-secret" not in str(info.value) + repr(info.value)


def test_unknown_app_is_invalid_client(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    auth = ClientCredentials(
        "no-such-app", "whatever", endpoint=oidc_provider.endpoint, resource=SHOP
    )
    with real_client(hx) as client, pytest.raises(TokenRequestError) as info:
        auth.get_token(client)
    assert info.value.error == "invalid_client"


def test_unknown_resource_is_invalid_target(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    auth = ClientCredentials(
        "shop-reader",
        "reader-secret",
        endpoint=oidc_provider.endpoint,
        resource="https://unknown.api",
    )
    with real_client(hx) as client, pytest.raises(TokenRequestError) as info:
        auth.get_token(client)
    assert info.value.error == "invalid_target"
    assert info.value.status_code == 400
    assert info.value.error_description


def test_no_resource_is_invalid_target(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    # Like a Logto tenant without a default API resource.
    auth = ClientCredentials("shop-reader", "reader-secret", endpoint=oidc_provider.endpoint)
    with real_client(hx) as client, pytest.raises(TokenRequestError) as info:
        auth.get_token(client)
    assert info.value.error == "invalid_target"


def test_management_api_self_hosted(oidc_provider: OidcProvider, hx: ModuleType) -> None:
    assert oidc_provider.MGMT == MGMT
    auth = ClientCredentials.management_api(
        "mgmt-client", "mgmt-secret", endpoint=oidc_provider.endpoint
    )
    with real_client(hx) as client:
        token = auth.get_token(client)
    assert claims(token)["aud"] == MGMT
    assert claims(token)["scope"] == "all"


# -- through an API ------------------------------------------------------------------------------


class EchoApi:
    """A tiny Starlette API that reports the Authorization header it got.

    `reject_first` makes it answer 401 to the first token it sees (as after a key rotation), to
    exercise the refetch-and-retry against the real provider.
    """

    def __init__(self, *, reject_first: bool = False) -> None:
        self.reject_first = reject_first
        self.seen: list[str] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/whoami", self.whoami, methods=["GET", "POST"])])

    async def whoami(self, request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        with self._lock:
            self.seen.append(header)
            first = self.seen[0]
        if self.reject_first and header == first:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"authorization": header})


async def test_async_client_sends_the_bearer_token(
    oidc_provider: OidcProvider, hx: ModuleType
) -> None:
    api = EchoApi()
    auth = ClientCredentials(
        "shop-reader",
        "reader-secret",
        endpoint=oidc_provider.endpoint,
        resource=SHOP,
        scopes=["read:products"],
    )
    oidc_provider.reset_stats()
    async with hx.AsyncClient(
        auth=auth,
        trust_env=False,
        mounts={API: hx.ASGITransport(app=api.app)},  # the token request goes to the provider
    ) as client:
        responses = await asyncio.gather(*(client.get(f"{API}/whoami") for _ in range(25)))
    assert {r.status_code for r in responses} == {200}
    headers = {r.json()["authorization"] for r in responses}
    assert len(headers) == 1
    (header,) = headers
    assert header.startswith("Bearer ")
    token = header.removeprefix("Bearer ")
    assert claims(token)["aud"] == SHOP
    assert claims(token)["client_id"] == "shop-reader"
    assert oidc_provider.stats()["token_requests"] == 1


async def test_401_gets_a_new_real_token_and_one_retry(
    oidc_provider: OidcProvider, hx: ModuleType
) -> None:
    api = EchoApi(reject_first=True)
    auth = ClientCredentials(
        "shop-writer",
        "writer-secret",
        endpoint=oidc_provider.endpoint,
        resource=SHOP,
        auth_method="body",
    )
    oidc_provider.reset_stats()
    async with hx.AsyncClient(
        auth=auth, trust_env=False, mounts={API: hx.ASGITransport(app=api.app)}
    ) as client:
        response = await client.post(f"{API}/whoami", json={"x": 1})
    assert response.status_code == 200
    assert len(api.seen) == 2
    assert api.seen[0] != api.seen[1]
    assert oidc_provider.stats()["token_requests"] == 2


# -- a real server over a real socket, with a sync client in threads -----------------------------


@pytest.fixture
def served_api() -> Iterator[tuple[EchoApi, str]]:
    api = EchoApi()
    with LoopbackServer(api.app) as url:
        yield api, url


def test_sync_client_in_threads_over_uvicorn(
    oidc_provider: OidcProvider, hx: ModuleType, served_api: tuple[EchoApi, str]
) -> None:
    api, url = served_api
    auth = ClientCredentials(
        "shop-writer",
        "writer-secret",
        endpoint=oidc_provider.endpoint,
        resource=SHOP,
        scopes=["write:products"],
    )
    oidc_provider.reset_stats()
    start = threading.Barrier(16)
    with hx.Client(auth=auth, trust_env=False, timeout=10) as client:

        def call(_: int) -> str:
            start.wait()
            response = client.get(f"{url}/whoami")
            response.raise_for_status()
            header: str = response.json()["authorization"]
            return header

        threads_results: list[str] = []
        workers = [
            threading.Thread(target=lambda: threads_results.append(call(0))) for _ in range(16)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    assert len(threads_results) == 16
    assert len(set(threads_results)) == 1
    token = threads_results[0].removeprefix("Bearer ")
    assert scopes(token) == {"write:products"}
    assert oidc_provider.stats()["token_requests"] == 1
    assert len(api.seen) == 16


# -- scopes Logto did not grant ------------------------------------------------------------------


def test_scope_downgrade_warns_once_and_exposes_the_granted_scopes(
    oidc_provider: OidcProvider, hx: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    # shop-reader's role grants read:products only; the provider (like Logto) drops the rest
    # with a 200, and "delete:everything" is not a permission of the resource at all.
    caplog.set_level(logging.DEBUG, logger="logto_guard.client")
    auth = ClientCredentials(
        "shop-reader",
        "reader-secret",
        endpoint=oidc_provider.endpoint,
        resource=SHOP,
        scopes=["read:products", "write:products", "delete:everything"],
    )
    assert auth.granted_scopes is None
    tokens = []
    with real_client(hx) as client:
        for _ in range(3):  # three token requests, each downgraded the same way
            auth.invalidate()
            tokens.append(auth.get_token(client))
    assert len(set(tokens)) == 3
    assert auth.granted_scopes == frozenset({"read:products"}) == scopes(tokens[-1])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "missing delete:everything write:products" in message
    assert "shop-reader" in message and SHOP in message
    for secret in ["reader-secret", *tokens]:
        assert secret not in caplog.text


def test_a_different_shortfall_warns_again(
    oidc_provider: OidcProvider, hx: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logto_guard.client")
    asked = ["read:products", "write:products"]
    writer = ClientCredentials(
        "shop-writer", "writer-secret", endpoint=oidc_provider.endpoint, resource=SHOP, scopes=asked
    )
    reader = ClientCredentials(
        "shop-reader", "reader-secret", endpoint=oidc_provider.endpoint, resource=SHOP, scopes=asked
    )
    with real_client(hx) as client:
        writer.get_token(client)
        reader.get_token(client)
    assert writer.granted_scopes == frozenset(asked)  # nothing missing: no warning
    assert reader.granted_scopes == frozenset({"read:products"})
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "Logto granted app shop-reader fewer scopes than asked for resource https"
    ]


def test_the_cli_keeps_the_providers_words_with_a_short_secret(
    oidc_provider: OidcProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    # "lie" is inside "client": scrubbing by substring printed "c[secret]nt authentication".
    from logto_guard.cli import EXIT_REJECTED, main

    argv = ["token", "--endpoint", oidc_provider.endpoint, "--resource", SHOP]
    code = main([*argv, "--app-id", "no-such-app", "--app-secret", "lie"])
    err = capsys.readouterr().err
    assert code == EXIT_REJECTED, err
    assert "invalid_client: client authentication failed" in err
    assert "[secret]" not in err
