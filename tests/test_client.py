"""Unit tests of ClientCredentials against a MockTransport (a fake Logto and a fake API).

Every test that sends a request runs twice, with httpx2 and with httpx (fixture `hx`): the flow,
the cache and the 401 retry must be the same whichever client family the caller uses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from urllib.parse import parse_qs

import httpx
import httpx2
import pytest

from logto_guard.client import ClientCredentials, TokenRequestError
from logto_guard.errors import ConfigurationError, LogtoGuardError

ENDPOINT = "https://tenant.logto.app"
TOKEN_URL = "https://tenant.logto.app/oidc/token"
API = "https://shopping.api"
APP_ID = "m2m-app-id"
SECRET = "Sup3r-S3cret-Value-xyz"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLogto:
    """Token endpoint plus a protected API; counts what it sees."""

    def __init__(self, hx: ModuleType, *, expires_in: object = 3600, delay: float = 0.0) -> None:
        self.hx = hx  # the client family: httpx2 or httpx
        self.expires_in = expires_in
        self.delay = delay
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.issued: list[str] = []
        self.rejected: set[str] = set()
        self.reject_all = False
        self.token_answer: Callable[[], httpx.Response] | None = None
        self._lock = threading.Lock()

    def _issue(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.token_requests.append(request)
            token = f"eyJ.token-{len(self.token_requests)}.sig"
            self.issued.append(token)
        if self.token_answer is not None:
            return self.token_answer()
        body: dict[str, object] = {
            "access_token": token,
            "token_type": "Bearer",
            "scope": "read:products",
        }
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return self.hx.Response(200, json=body)

    def _api(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.api_requests.append(request)
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        if (
            not header.startswith("Bearer ")
            or token not in self.issued
            or token in self.rejected
            or self.reject_all
        ):
            return self.hx.Response(401, json={"error": "invalid_token"})
        return self.hx.Response(200, json={"token": token})

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            if self.delay:
                time.sleep(self.delay)
            return self._issue(request)
        return self._api(request)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            await asyncio.sleep(self.delay)
            return self._issue(request)
        await asyncio.sleep(0)
        return self._api(request)

    def client(self, auth: ClientCredentials | None = None) -> httpx.Client:
        client: httpx.Client = self.hx.Client(
            transport=self.hx.MockTransport(self.handler), auth=auth
        )
        return client

    def async_client(self, auth: ClientCredentials | None = None) -> httpx.AsyncClient:
        client: httpx.AsyncClient = self.hx.AsyncClient(
            transport=self.hx.MockTransport(self.async_handler), auth=auth
        )
        return client


def creds(**kwargs: object) -> ClientCredentials:
    options: dict[str, object] = {
        "endpoint": ENDPOINT,
        "resource": API,
        "scopes": ("read:products", "write:products"),
    }
    options.update(kwargs)
    return ClientCredentials(APP_ID, SECRET, **options)  # type: ignore[arg-type]


def form(request: httpx.Request) -> dict[str, list[str]]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return parse_qs(request.content.decode(), keep_blank_values=True, strict_parsing=True)


@pytest.fixture(params=["httpx2", "httpx"])
def hx(request: pytest.FixtureRequest) -> ModuleType:
    """The client family under test."""
    return {"httpx2": httpx2, "httpx": httpx}[request.param]


@pytest.fixture
def fake(hx: ModuleType) -> FakeLogto:
    return FakeLogto(hx)


# -- configuration ------------------------------------------------------------------------------


def test_endpoint_gives_the_oidc_token_url() -> None:
    assert creds().token_endpoint == TOKEN_URL
    assert creds(endpoint=ENDPOINT + "/").token_endpoint == TOKEN_URL
    assert creds(endpoint="http://localhost:3001").token_endpoint == (
        "http://localhost:3001/oidc/token"
    )


def test_token_endpoint_is_used_as_given() -> None:
    auth = creds(endpoint=None, token_endpoint="https://auth.example.com/custom/token")
    assert auth.token_endpoint == "https://auth.example.com/custom/token"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": None},
        {"token_endpoint": TOKEN_URL},
        {"endpoint": "tenant.logto.app"},
        {"endpoint": "ftp://tenant.logto.app"},
        {"endpoint": ENDPOINT + "/oidc"},
        {"endpoint": ENDPOINT + "/oidc/"},
        {"endpoint": None, "token_endpoint": "/oidc/token"},
        {"endpoint": None, "token_endpoint": TOKEN_URL + "?x=1"},
        {"auth_method": "jwt"},
        {"leeway": -1},
        {"leeway": float("nan")},
        {"resource": ""},
        {"scopes": ["read products"]},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        creds(**kwargs)


@pytest.mark.parametrize(("app_id", "secret"), [("", SECRET), (APP_ID, "")])
def test_empty_credentials_are_refused(app_id: str, secret: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ClientCredentials(app_id, secret, endpoint=ENDPOINT)
    assert isinstance(info.value, LogtoGuardError)


def test_scopes_as_a_string_are_split_and_deduplicated() -> None:
    auth = creds(scopes="read:products  write:products read:products")
    assert auth.scopes == ("read:products", "write:products")


def test_management_api_self_hosted() -> None:
    auth = ClientCredentials.management_api(APP_ID, SECRET, endpoint="http://localhost:3001")
    assert auth.resource == "https://default.logto.app/api"
    assert auth.scopes == ("all",)
    assert auth.token_endpoint == "http://localhost:3001/oidc/token"


def test_management_api_cloud() -> None:
    auth = ClientCredentials.management_api(
        APP_ID, SECRET, endpoint="https://auth.example.com", tenant_id="abc123"
    )
    assert auth.resource == "https://abc123.logto.app/api"
    assert auth.scopes == ("all",)
    assert auth.token_endpoint == "https://auth.example.com/oidc/token"


# -- the token request --------------------------------------------------------------------------


def test_basic_auth_request_shape(fake: FakeLogto) -> None:
    with fake.client(creds()) as client:
        response = client.get(API + "/products")
    assert response.status_code == 200
    (token_request,) = fake.token_requests
    assert token_request.method == "POST"
    assert str(token_request.url) == TOKEN_URL
    expected = base64.b64encode(f"{APP_ID}:{SECRET}".encode()).decode()
    assert token_request.headers["authorization"] == f"Basic {expected}"
    assert token_request.headers["accept"] == "application/json"
    assert form(token_request) == {
        "grant_type": ["client_credentials"],
        "resource": [API],
        "scope": ["read:products write:products"],
    }
    (api_request,) = fake.api_requests
    assert api_request.headers["authorization"] == f"Bearer {fake.issued[0]}"


def test_body_auth_request_shape(fake: FakeLogto) -> None:
    with fake.client(creds(auth_method="body")) as client:
        assert client.get(API).status_code == 200
    (token_request,) = fake.token_requests
    assert "authorization" not in token_request.headers
    assert form(token_request) == {
        "grant_type": ["client_credentials"],
        "resource": [API],
        "scope": ["read:products write:products"],
        "client_id": [APP_ID],
        "client_secret": [SECRET],
    }


def test_basic_auth_form_encodes_credentials(fake: FakeLogto) -> None:
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
    auth = ClientCredentials("app:1", "p@ss:w/rd+ %", endpoint=ENDPOINT)
    with fake.client(auth) as client:
        client.get(API)
    header = fake.token_requests[0].headers["authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")) == b"app%3A1:p%40ss%3Aw%2Frd%2B%20%25"


def test_no_resource_and_no_scopes_send_only_the_grant(fake: FakeLogto) -> None:
    with fake.client(creds(resource=None, scopes=())) as client:
        client.get(API)
    assert form(fake.token_requests[0]) == {"grant_type": ["client_credentials"]}


def test_token_request_uses_the_clients_timeout(fake: FakeLogto, hx: ModuleType) -> None:
    auth = creds()
    transport = hx.MockTransport(fake.handler)
    with hx.Client(transport=transport, auth=auth, timeout=7.5) as client:
        client.get(API)
    assert fake.token_requests[0].extensions["timeout"]["read"] == 7.5


# -- caching and expiry -------------------------------------------------------------------------


def test_token_is_reused(fake: FakeLogto) -> None:
    with fake.client(creds()) as client:
        assert client.get(API).status_code == 200
        assert client.get(API).status_code == 200
    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 2
    assert {r.headers["authorization"] for r in fake.api_requests} == {f"Bearer {fake.issued[0]}"}


async def test_token_is_reused_async(fake: FakeLogto) -> None:
    async with fake.async_client(creds()) as client:
        assert (await client.get(API)).status_code == 200
        assert (await client.get(API)).status_code == 200
    assert len(fake.token_requests) == 1


def test_token_is_refreshed_leeway_before_expiry(fake: FakeLogto) -> None:
    clock = Clock(1000.0)
    auth = creds(clock=clock, leeway=60)
    with fake.client(auth) as client:
        client.get(API)
        clock.now = 1000.0 + 3600 - 60 - 0.001
        client.get(API)
        assert len(fake.token_requests) == 1
        clock.now = 1000.0 + 3600 - 60
        client.get(API)
        assert len(fake.token_requests) == 2
        assert fake.api_requests[-1].headers["authorization"] == f"Bearer {fake.issued[1]}"
        client.get(API)
    assert len(fake.token_requests) == 2


def test_leeway_is_capped_at_half_a_short_lifetime(hx: ModuleType) -> None:
    fake = FakeLogto(hx, expires_in=30)
    clock = Clock(0.0)
    with fake.client(creds(clock=clock, leeway=60)) as client:
        client.get(API)
        clock.now = 14.9
        client.get(API)
        assert len(fake.token_requests) == 1
        clock.now = 15.0
        client.get(API)
    assert len(fake.token_requests) == 2


def test_missing_expires_in_means_no_reuse(hx: ModuleType) -> None:
    fake = FakeLogto(hx, expires_in=None)
    with fake.client(creds()) as client:
        assert client.get(API).status_code == 200
        assert client.get(API).status_code == 200
    assert len(fake.token_requests) == 2


def test_expires_in_as_digit_string_is_accepted(hx: ModuleType) -> None:
    fake = FakeLogto(hx, expires_in="3600")
    with fake.client(creds()) as client:
        client.get(API)
        client.get(API)
    assert len(fake.token_requests) == 1


def test_invalidate_forces_a_new_token(fake: FakeLogto) -> None:
    auth = creds()
    with fake.client(auth) as client:
        client.get(API)
        auth.invalidate()
        client.get(API)
    assert len(fake.token_requests) == 2


# -- 401 from the API ---------------------------------------------------------------------------


def test_401_refetches_once_and_retries(fake: FakeLogto) -> None:
    auth = creds()
    with fake.client(auth) as client:
        client.get(API)
        fake.rejected.add(fake.issued[0])  # e.g. the signing key was rotated
        response = client.post(API, json={"a": 1})
    assert response.status_code == 200
    assert response.json() == {"token": fake.issued[1]}
    assert len(fake.token_requests) == 2
    assert len(fake.api_requests) == 3
    # the retried request is the same request, body included
    assert fake.api_requests[-1].content == fake.api_requests[-2].content == b'{"a":1}'
    assert [r.status_code for r in response.history] == [401, 200]


def test_second_401_is_returned_as_is(fake: FakeLogto) -> None:
    fake.reject_all = True
    with fake.client(creds()) as client:
        response = client.get(API)
    assert response.status_code == 401
    assert len(fake.token_requests) == 2
    assert len(fake.api_requests) == 2


async def test_second_401_is_returned_as_is_async(fake: FakeLogto) -> None:
    fake.reject_all = True
    async with fake.async_client(creds()) as client:
        response = await client.get(API)
        assert response.status_code == 401
        assert len(fake.token_requests) == 2
        assert len(fake.api_requests) == 2
        # and the next request starts over with the (new) cached token, not a loop
        response = await client.get(API)
    assert response.status_code == 401
    assert len(fake.token_requests) == 3


def test_401_to_a_streamed_upload_is_not_retried(fake: FakeLogto, hx: ModuleType) -> None:
    fake.reject_all = True

    def body() -> Iterator[bytes]:
        yield b"chunk"

    class StreamingTransport(hx.BaseTransport):
        # Like a real transport: the upload is streamed out, not buffered (MockTransport reads
        # the body into memory, which would make it replayable).
        def handle_request(self, request: hx.Request) -> hx.Response:
            if str(request.url) != TOKEN_URL:
                assert b"".join(request.stream) == b"chunk"  # type: ignore[arg-type]
                return fake._api(request)
            request.read()
            return fake._issue(request)

    with hx.Client(transport=StreamingTransport(), auth=creds()) as client:
        response = client.post(API, content=body())
    assert response.status_code == 401
    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 1


async def test_concurrent_401s_refetch_once(hx: ModuleType) -> None:
    fake = FakeLogto(hx, delay=0.01)
    async with fake.async_client(creds()) as client:
        await client.get(API)
        fake.rejected.add(fake.issued[0])
        responses = await asyncio.gather(*(client.get(API) for _ in range(30)))
    assert {r.status_code for r in responses} == {200}
    assert len(fake.token_requests) == 2


# -- concurrency --------------------------------------------------------------------------------


async def test_50_concurrent_requests_on_empty_cache_fetch_one_token(hx: ModuleType) -> None:
    fake = FakeLogto(hx, delay=0.02)
    async with fake.async_client(creds()) as client:
        responses = await asyncio.gather(*(client.get(API) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 50


async def test_concurrent_aget_token_fetches_one_token(hx: ModuleType) -> None:
    fake = FakeLogto(hx, delay=0.02)
    auth = creds()
    async with fake.async_client() as client:
        tokens = await asyncio.gather(*(auth.aget_token(client) for _ in range(50)))
    assert set(tokens) == {fake.issued[0]}
    assert len(fake.token_requests) == 1


def test_threads_on_empty_cache_fetch_one_token(hx: ModuleType) -> None:
    fake = FakeLogto(hx, delay=0.05)
    start = threading.Barrier(20)
    with fake.client(creds()) as client:

        def call() -> int:
            start.wait()
            return client.get(API).status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(lambda _: call(), range(20)))
    assert statuses == [200] * 20
    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 20


def test_threads_get_token_fetch_one_token(hx: ModuleType) -> None:
    fake = FakeLogto(hx, delay=0.05)
    auth = creds()
    start = threading.Barrier(10)
    with fake.client() as client:

        def call() -> str:
            start.wait()
            return auth.get_token(client)

        with ThreadPoolExecutor(10) as pool:
            tokens = list(pool.map(lambda _: call(), range(10)))
    assert set(tokens) == {fake.issued[0]}
    assert len(fake.token_requests) == 1


def test_one_credentials_object_serves_several_event_loops(hx: ModuleType) -> None:
    # asyncio.Lock binds to the loop it first waits in; the credentials must not break when a
    # second loop (a new asyncio.run, another test) uses them with contention again.
    fake = FakeLogto(hx, delay=0.01)
    auth = creds()

    async def burst() -> None:
        auth.invalidate()
        async with fake.async_client(auth) as client:
            responses = await asyncio.gather(*(client.get(API) for _ in range(10)))
        assert {r.status_code for r in responses} == {200}

    asyncio.run(burst())
    asyncio.run(burst())
    assert len(fake.token_requests) == 2


async def test_cancelled_fetch_releases_the_lock(hx: ModuleType) -> None:
    fake = FakeLogto(hx, delay=0.5)
    auth = creds()
    async with fake.async_client(auth) as client:
        task = asyncio.create_task(client.get(API))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        fake.delay = 0
        response = await asyncio.wait_for(client.get(API), 2)
    assert response.status_code == 200


def test_failed_fetch_releases_the_lock(fake: FakeLogto, hx: ModuleType) -> None:
    fake.token_answer = lambda: hx.Response(503, text="maintenance")
    auth = creds()
    with fake.client(auth) as client:
        with pytest.raises(TokenRequestError):
            client.get(API)
        with pytest.raises(TokenRequestError):
            auth.get_token(client)
        fake.token_answer = None
        assert client.get(API).status_code == 200


async def test_failed_fetch_releases_the_lock_async(fake: FakeLogto, hx: ModuleType) -> None:
    fake.token_answer = lambda: hx.Response(503, text="maintenance")
    auth = creds()
    async with fake.async_client(auth) as client:
        with pytest.raises(TokenRequestError):
            await client.get(API)
        with pytest.raises(TokenRequestError):
            await auth.aget_token(client)
        fake.token_answer = None
        assert (await asyncio.wait_for(client.get(API), 2)).status_code == 200


# -- get_token / aget_token ---------------------------------------------------------------------


def test_get_token_with_a_client_that_uses_the_same_auth(fake: FakeLogto) -> None:
    auth = creds()
    with fake.client(auth) as client:
        token = auth.get_token(client)
        assert token == fake.issued[0]
        assert auth.get_token(client) == token
        assert client.get(API).json() == {"token": token}
    assert len(fake.token_requests) == 1
    assert "authorization" in fake.token_requests[0].headers  # Basic, not Bearer
    assert fake.token_requests[0].headers["authorization"].startswith("Basic ")


async def test_aget_token(fake: FakeLogto) -> None:
    auth = creds()
    async with fake.async_client(auth) as client:
        token = await auth.aget_token(client)
        assert token == await auth.aget_token(client) == fake.issued[0]
        assert (await client.get(API)).json() == {"token": token}
    assert len(fake.token_requests) == 1


def test_get_token_is_shared_with_the_auth_flow(fake: FakeLogto) -> None:
    auth = creds()
    with fake.client() as plain, fake.client(auth) as authed:
        token = auth.get_token(plain)
        authed.get(API)
    assert fake.api_requests[0].headers["authorization"] == f"Bearer {token}"
    assert len(fake.token_requests) == 1


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "description"),
    [
        (400, "invalid_client", "client not found"),
        (401, "invalid_client", "client authentication failed"),
        (400, "invalid_request", "no client authentication mechanism provided"),
        (400, "invalid_target", "resource indicator is missing, or unknown"),
        (403, "access_denied", "app is not a member of the organization"),
        (400, "invalid_scope", "requested scope is invalid"),
    ],
)
def test_logto_errors_are_mapped(hx: ModuleType, status: int, error: str, description: str) -> None:
    fake = FakeLogto(hx)
    fake.token_answer = lambda: hx.Response(
        status, json={"error": error, "error_description": description}
    )
    with fake.client(creds()) as client, pytest.raises(TokenRequestError) as info:
        client.get(API)
    exc = info.value
    assert isinstance(exc, LogtoGuardError)
    assert exc.status_code == status
    assert exc.error == error
    assert exc.error_description == description
    assert str(status) in str(exc)
    assert error in str(exc)
    assert description in str(exc)
    assert fake.api_requests == []  # the API never sees a request without a token


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (lambda hx: hx.Response(502, text="<html>Bad gateway</html>"), "non-JSON"),
        (lambda hx: hx.Response(200, text="not json"), "non-JSON"),
        (lambda hx: hx.Response(200, json=["access_token"]), "not an object"),
        (lambda hx: hx.Response(200, json={"token_type": "Bearer"}), "without an access_token"),
        (lambda hx: hx.Response(200, json={"access_token": ""}), "without an access_token"),
        (
            lambda hx: hx.Response(200, json={"access_token": "t", "token_type": "DPoP"}),
            "not Bearer",
        ),
        (lambda hx: hx.Response(200, json={"access_token": "t", "expires_in": -5}), "expires_in"),
        (lambda hx: hx.Response(200, json={"access_token": "t", "expires_in": "x"}), "expires_in"),
        (lambda hx: hx.Response(200, json={"access_token": "t", "expires_in": True}), "expires_in"),
        (lambda hx: hx.Response(500, json={"message": "oops"}), "HTTP 500"),
    ],
)
def test_malformed_answers_raise(
    hx: ModuleType, answer: Callable[[ModuleType], httpx.Response], fragment: str
) -> None:
    fake = FakeLogto(hx)
    fake.token_answer = lambda: answer(hx)
    with fake.client(creds()) as client, pytest.raises(TokenRequestError) as info:
        client.get(API)
    assert fragment in str(info.value)
    assert info.value.status_code == answer(hx).status_code


def test_error_without_description(hx: ModuleType) -> None:
    fake = FakeLogto(hx)
    fake.token_answer = lambda: hx.Response(400, json={"error": "invalid_target"})
    with fake.client(creds()) as client, pytest.raises(TokenRequestError) as info:
        client.get(API)
    assert info.value.error == "invalid_target"
    assert info.value.error_description is None
    assert str(info.value) == "token request refused: HTTP 400, invalid_target"


# -- secrets stay secret ------------------------------------------------------------------------


def test_repr_has_no_secret() -> None:
    auth = creds()
    for text in (repr(auth), str(auth)):
        assert SECRET not in text
        assert APP_ID in text


@pytest.mark.parametrize("auth_method", ["basic", "body"])
def test_secret_and_token_never_leak(
    hx: ModuleType, caplog: pytest.LogCaptureFixture, auth_method: str
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeLogto(hx)
    auth = creds(auth_method=auth_method)
    texts: list[str] = []
    with fake.client(auth) as client:
        response = client.get(API)
        texts += [repr(auth), str(auth), repr(response), repr(response.request)]
        texts += [repr(response.request.headers), repr(fake.token_requests[0].headers)]
        texts += [repr(auth._cache.token)]
        fake.reject_all = True
        client.get(API)  # a 401 and a retry, logged too
        # The server echoes the secret back in its error: it must not reach the message.
        fake.token_answer = lambda: hx.Response(
            401, json={"error": "invalid_client", "error_description": f"bad secret {SECRET}"}
        )
        auth.invalidate()
        with pytest.raises(TokenRequestError) as info:
            client.get(API)
        texts += [str(info.value), repr(info.value), repr(info.value.args)]
        texts += [str(info.value.error_description)]
        fake.token_answer = lambda: hx.Response(502, text=f"proxy says {SECRET}")
        with pytest.raises(TokenRequestError) as info:
            auth.get_token(client)
        texts += [str(info.value), repr(info.value)]
    texts.append(caplog.text)
    texts += [str(record.args) for record in caplog.records]
    assert any(r.name == "logto_guard.client" for r in caplog.records)
    assert fake.issued
    joined = "\n".join(texts)
    basic = base64.b64encode(f"{APP_ID}:{SECRET}".encode()).decode()
    for secret in [SECRET, basic, *fake.issued]:
        assert secret not in joined


def test_token_request_error_is_a_plain_value() -> None:
    exc = TokenRequestError("boom", status_code=400, error="invalid_client")
    assert exc.status_code == 400
    assert exc.error == "invalid_client"
    assert exc.error_description is None
    assert "invalid_client" in repr(exc)


def test_direct_auth_flow_drives_without_a_client(fake: FakeLogto, hx: ModuleType) -> None:
    # auth_flow is the unsynchronised reference flow; drive it by hand like httpx would.
    auth = creds()
    request = hx.Request("GET", API)
    flow = auth.auth_flow(request)
    token_request = next(flow)
    assert str(token_request.url) == TOKEN_URL
    api_request = flow.send(fake.handler(token_request))
    assert api_request is request
    assert request.headers["authorization"] == f"Bearer {fake.issued[0]}"
    with pytest.raises(StopIteration):
        flow.send(hx.Response(200))


# -- scrubbing the secret as a value, not as a substring ------------------------------------------


def _refused_with(fake: FakeLogto, auth: ClientCredentials, description: str) -> TokenRequestError:
    fake.token_answer = lambda: fake.hx.Response(
        400, json={"error": "invalid_client", "error_description": description}
    )
    with fake.client(auth) as client, pytest.raises(TokenRequestError) as info:
        client.get(API)
    return info.value


def test_a_short_secret_does_not_mangle_other_words(fake: FakeLogto) -> None:
    # Recorded from real Logto (scenario 08, unknown_client), with the app secret "x".
    auth = ClientCredentials("nonexistent", "x", endpoint=ENDPOINT, resource=API)
    exc = _refused_with(fake, auth, "invalid client nonexistent")
    assert exc.error_description == "invalid client nonexistent"
    assert str(exc) == "token request refused: HTTP 400, invalid_client: invalid client nonexistent"
    assert exc.error == "invalid_client"  # "x" is not a value there either


@pytest.mark.parametrize(
    ("secret", "echo", "scrubbed"),
    [
        ("x", "bad secret x", "bad secret [secret]"),
        ("x", "client_secret=x&grant_type=client_credentials", "client_secret=[secret]&grant_type"),
        ("x", 'secret "x" is wrong, x.', 'secret "[secret]" is wrong, [secret].'),
        ("x", "xylophone x-ray x_1 max", "xylophone x-ray x_1 max"),
        (SECRET, f"bad secret {SECRET}!", "bad secret [secret]!"),
        (SECRET, f"got:{SECRET}", "got:[secret]"),
        ("p@ss w/rd+%", "client_secret=p%40ss%20w%2Frd%2B%25", "client_secret=[secret]"),
        ("p@ss w/rd+%", "client_secret=p%40ss+w%2Frd%2B%25", "client_secret=[secret]"),
        ("p@ss w/rd+%", "you sent p@ss w/rd+%", "you sent [secret]"),
    ],
)
def test_the_secret_is_scrubbed_where_it_stands_as_a_value(
    fake: FakeLogto, secret: str, echo: str, scrubbed: str
) -> None:
    auth = ClientCredentials(APP_ID, secret, endpoint=ENDPOINT, resource=API)
    exc = _refused_with(fake, auth, echo)
    assert exc.error_description is not None
    assert exc.error_description.startswith(scrubbed)
    assert scrubbed in str(exc)


def test_an_echoed_basic_credential_is_scrubbed(fake: FakeLogto) -> None:
    basic = base64.b64encode(f"{APP_ID}:{SECRET}".encode()).decode()
    exc = _refused_with(fake, creds(), f"Authorization: Basic {basic} refused")
    assert exc.error_description == "Authorization: Basic [secret] refused"


# -- granted scopes ------------------------------------------------------------------------------


def _jwt(claims: dict[str, object]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzM4NCJ9.{payload}.c2ln"


@pytest.mark.parametrize(
    ("body", "granted"),
    [
        ({"scope": "read:products write:products"}, {"read:products", "write:products"}),
        ({"scope": "read:products"}, {"read:products"}),
        ({"scope": ""}, set()),
        # Logto leaves `scope` out when it grants nothing: the token's claim says so.
        ({"access_token": _jwt({"sub": "a"})}, set()),
        ({"access_token": _jwt({"scope": "read:products"})}, {"read:products"}),
        # An opaque token and no `scope`: RFC 6749 §5.1, granted as requested.
        ({"access_token": "opaque-token"}, {"read:products", "write:products"}),
    ],
)
def test_granted_scopes(fake: FakeLogto, body: dict[str, object], granted: set[str]) -> None:
    answer = {"access_token": "t", "token_type": "Bearer", "expires_in": 3600, **body}
    fake.token_answer = lambda: fake.hx.Response(200, json=answer)
    auth = creds()
    assert auth.granted_scopes is None
    with fake.client() as client:
        auth.get_token(client)
    assert auth.granted_scopes == frozenset(granted)


def test_a_downgrade_warns_once_per_distinct_shortfall(
    fake: FakeLogto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logto_guard.client")
    auth = creds(scopes=["read:products", "write:products", "delete:products"])
    scope = "read:products"
    fake.token_answer = lambda: fake.hx.Response(
        200, json={"access_token": fake.issued[-1], "expires_in": 3600, "scope": scope}
    )
    with fake.client(auth) as client:
        for _ in range(3):
            assert client.get(API).status_code == 200
            auth.invalidate()
        assert len(caplog.records) == 1  # three downgraded tokens, one warning
        scope = "read:products write:products"
        for _ in range(2):
            client.get(API)
            auth.invalidate()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "missing delete:products write:products, granted read:products." in messages[0]
    assert "missing delete:products, granted read:products write:products." in messages[1]
    assert all(
        r.name == "logto_guard.client" and r.levelno == logging.WARNING for r in caplog.records
    )
    for secret in [SECRET, *fake.issued]:
        assert secret not in caplog.text
    assert len(fake.token_requests) == 5


def test_no_warning_when_everything_asked_is_granted(
    fake: FakeLogto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logto_guard.client")
    with fake.client(creds(scopes=["read:products"])) as client:
        client.get(API)
    with fake.client(creds(scopes=())) as client:  # nothing asked: nothing can be missing
        client.get(API)
    assert caplog.records == []


def test_organization_token_request_shape(fake: FakeLogto) -> None:
    auth = creds(resource=None, organization_id="org-1", scopes=["read:orders"])
    with fake.client(auth) as client:
        client.get(API)
    assert form(fake.token_requests[0]) == {
        "grant_type": ["client_credentials"],
        "organization_id": ["org-1"],
        "scope": ["read:orders"],
    }
    assert "organization_id='org-1'" in repr(auth)


@pytest.mark.parametrize("organization_id", ["", 5])
def test_bad_organization_id_is_refused(organization_id: object) -> None:
    with pytest.raises(ConfigurationError, match="organization_id"):
        creds(organization_id=organization_id)
