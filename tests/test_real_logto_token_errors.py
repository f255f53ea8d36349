"""ClientCredentials against the token-endpoint answers recorded from a real Logto.

Scenario 08 holds every token-endpoint error the recording produced; scenarios 01-05 hold the
tokens Logto issued, with the scope it granted. Each recorded answer is replayed through
ClientCredentials' real request path (a client with `auth=`, the flow, the parsing), with clients
of both families, and must lead to what the recording's `expect_token_endpoint` says: a
`TokenRequestError` with Logto's status, `error` and `error_description` and no token; or the
recorded token with the recorded scope as `granted_scopes` (and a warning when that is less than
what was asked).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest
from real_logto import exchange, load, replay_transport, response_of

from logto_guard import _http
from logto_guard.client import ClientCredentials, TokenRequestError

API = "https://api.example.test/products"

ERRORS = "08-token-errors.json"
ISSUED = [
    "01-es384-writer.json",
    "02-reader-scope-downgrade.json",
    "03-noscope.json",
    "04-management-api.json",
    "05-organization.json",
]

# Requests that ClientCredentials cannot send by design: it always authenticates, and it asks
# for one resource. Their recorded answers are still replayed through the same path.
NOT_SENDABLE = {"no_client_authentication", "two_resources"}


@pytest.fixture(params=["httpx2", "httpx"])
def hx(request: pytest.FixtureRequest) -> ModuleType:
    """The client family under test."""
    return {"httpx2": httpx2, "httpx": httpx}[request.param]


def cases(name: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, entry) for entry in load(name)["expect_token_endpoint"]]


def _id(case: tuple[str, dict[str, Any]]) -> str:
    return f"{case[0][:2]}-{case[1]['exchange']}"


def credentials(recorded: Mapping[str, Any]) -> ClientCredentials:
    """The ClientCredentials that sends (as near as it can) the recorded request."""
    request = recorded["request"]
    form = request["form"]
    auth = request["auth"]
    resource = form.get("resource")
    if isinstance(resource, list):  # two resources: not something ClientCredentials sends
        resource = resource[0]
    return ClientCredentials(
        auth.get("client_id", "some-app"),
        auth.get("client_secret", "<secret>"),
        token_endpoint=request["url"],
        resource=resource,
        organization_id=form.get("organization_id"),
        scopes=form.get("scope", ()),
        auth_method="body" if auth["method"] == "client_secret_post" else "basic",
    )


class Replay:
    """Answers the token endpoint from one recorded exchange, and the API with 200."""

    def __init__(self, hx: ModuleType, recorded: Mapping[str, Any]) -> None:
        self.recorded = recorded
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        if hx is httpx:
            self.transport: Any = replay_transport(self._route)  # the loader's own transport
        else:
            # The loader builds httpx responses; the family-neutral transport re-issues the
            # same status, headers and body as httpx2 responses.
            self.transport = _http.MockTransport(self._reply)

    def _route(self, request: httpx.Request) -> Mapping[str, Any]:
        if request.url.path == self.recorded["request"]["path"]:
            self.token_requests.append(request)
            return self.recorded
        self.api_requests.append(request)
        return {"response": {"status": 200, "headers_all": [], "body_raw": "{}"}}

    def _reply(self, request: httpx2.Request) -> _http.Reply:
        answer = response_of(self._route(request), request)  # type: ignore[arg-type]
        return answer.status_code, answer.headers.multi_items(), answer.content


def sent_form(request: httpx.Request) -> dict[str, str]:
    return dict(httpx.QueryParams(request.content.decode()).multi_items())


@pytest.mark.parametrize("case", cases(ERRORS), ids=_id)
def test_recorded_token_errors_become_token_request_errors(
    hx: ModuleType, case: tuple[str, dict[str, Any]]
) -> None:
    name, expected = case
    recorded = exchange(load(name), expected["exchange"])
    assert expected["token_issued"] is False
    auth = credentials(recorded)
    replay = Replay(hx, recorded)
    with hx.Client(transport=replay.transport) as client:
        with pytest.raises(TokenRequestError) as info:
            client.get(API, auth=auth)
        with pytest.raises(TokenRequestError) as again:
            auth.get_token(client)
    for exc in (info.value, again.value):
        assert exc.status_code == expected["status"]
        assert exc.error == expected["error"]
        assert exc.error_description == expected["error_description"]
        assert str(exc) == (
            f"token request refused: HTTP {expected['status']}, {expected['error']}: "
            f"{expected['error_description']}"
        )
        sent_secret = recorded["request"]["auth"].get("client_secret", "<secret>")
        assert sent_secret not in str(exc) + repr(exc)
    # No token issued: nothing cached, nothing granted, and the API never called.
    assert auth.granted_scopes is None
    assert replay.api_requests == []
    assert len(replay.token_requests) == 2
    if expected["exchange"] not in NOT_SENDABLE:
        assert sent_form(replay.token_requests[0]) == recorded["request"]["form"]


async def test_recorded_token_errors_async(hx: ModuleType) -> None:
    doc = load(ERRORS)
    for expected in doc["expect_token_endpoint"]:
        recorded = exchange(doc, expected["exchange"])
        auth = credentials(recorded)
        replay = Replay(hx, recorded)
        async with hx.AsyncClient(transport=replay.transport, auth=auth) as client:
            with pytest.raises(TokenRequestError) as info:
                await client.get(API)
            with pytest.raises(TokenRequestError) as again:
                await auth.aget_token(client)
        for exc in (info.value, again.value):
            assert (exc.status_code, exc.error, exc.error_description) == (
                expected["status"],
                expected["error"],
                expected["error_description"],
            ), expected["exchange"]
        assert replay.api_requests == []


def test_the_unknown_client_error_keeps_its_words_with_a_one_letter_secret(hx: ModuleType) -> None:
    # The defect this recording exposed: secret "x" turned the description into
    # "invalid client none[secret]istent".
    recorded = exchange(load(ERRORS), "unknown_client")
    auth = ClientCredentials(
        "nonexistent",
        "x",
        token_endpoint=recorded["request"]["url"],
        resource="https://shopping.api",
    )
    with (
        hx.Client(transport=Replay(hx, recorded).transport) as client,
        pytest.raises(TokenRequestError) as info,
    ):
        auth.get_token(client)
    assert info.value.error_description == "invalid client nonexistent"
    assert "invalid client nonexistent" in str(info.value)


@pytest.mark.parametrize("case", [c for name in ISSUED for c in cases(name)], ids=_id)
def test_recorded_token_answers_are_decided_as_recorded(
    hx: ModuleType, case: tuple[str, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logto_guard.client")
    name, expected = case
    recorded = exchange(load(name), expected["exchange"])
    auth = credentials(recorded)
    replay = Replay(hx, recorded)
    with hx.Client(transport=replay.transport, auth=auth) as client:
        if not expected["token_issued"]:
            with pytest.raises(TokenRequestError) as info:
                client.get(API)
            assert (info.value.status_code, info.value.error) == (
                expected["status"],
                expected["error"],
            )
            assert auth.granted_scopes is None
            assert replay.api_requests == []
            return
        assert client.get(API).status_code == 200
        assert client.get(API).status_code == 200  # cached: expires_in 3600
    body = recorded["response"]["body"]
    assert len(replay.token_requests) == 1
    assert sent_form(replay.token_requests[0]) == recorded["request"]["form"]
    assert sent_form(replay.token_requests[0])["scope"] == expected["requested_scope"]
    assert {r.headers["authorization"] for r in replay.api_requests} == {
        f"Bearer {body['access_token']}"
    }
    assert expected["status"] == 200 and body["token_type"] == expected["token_type"]
    # The scope Logto granted: the body's, or (03: no `scope` in the body) the token's claim,
    # which has none either.
    granted = (expected["body_scope"] or "").split()
    assert auth.granted_scopes == frozenset(granted)
    missing = sorted(set(expected["requested_scope"].split()) - set(granted))
    warnings = [r.getMessage() for r in caplog.records]
    if missing:
        assert len(warnings) == 1
        assert f"missing {' '.join(missing)}, granted " in warnings[0]
        assert body["access_token"] not in warnings[0]
    else:
        assert warnings == []


def test_scenario_02_is_a_downgrade_named_in_one_warning(
    hx: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logto_guard.client")
    recorded = exchange(load("02-reader-scope-downgrade.json"), "token")
    auth = credentials(recorded)
    assert auth.scopes == ("read:products", "write:products")
    with hx.Client(transport=Replay(hx, recorded).transport, auth=auth) as client:
        for _ in range(3):
            auth.invalidate()
            client.get(API)
    assert auth.granted_scopes == frozenset({"read:products"})
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "Logto granted app alua5qr61dlnfmube9cne fewer scopes than asked for resource "
        "https://shopping.api: missing write:products, granted read:products."
    )
