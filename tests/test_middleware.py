"""LogtoGuard, the pure ASGI middleware, against a fake verifier (in-process)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from fakes import ISSUER, SHOP, TableVerifier, access_token
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, UnauthenticatedUser, requires
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from logto_guard.errors import (
    ConfigurationError,
    ExpiredToken,
    InsufficientScope,
    InvalidSignature,
    KeySetUnavailable,
    MissingToken,
)
from logto_guard.middleware import LogtoGuard, LogtoUser, get_access_token
from logto_guard.token import AccessToken
from logto_guard.verifier import TokenVerifier

META = f"{SHOP}/.well-known/oauth-protected-resource"
BARE = f'Bearer realm="api", resource_metadata="{META}"'
READER = "reader.token.sig"
WRITER = "writer.token.sig"


class FakeVerifier(TableVerifier):
    """Knows a reader's and a writer's token unless told otherwise."""

    def __init__(
        self,
        tokens: Mapping[str, AccessToken | BaseException] | None = None,
        audiences: tuple[str, ...] = (SHOP,),
    ) -> None:
        default = {
            READER: access_token("read:products", sub="app-1"),
            WRITER: access_token("read:products write:products", sub="app-2"),
        }
        super().__init__(default if tokens is None else tokens, audiences)


async def whoami(request: Request) -> JSONResponse:
    token = get_access_token(request)
    return JSONResponse(
        {
            "sub": token.sub,
            "scopes": sorted(token.scopes),
            "user": request.user.identity,
            "display_name": request.user.display_name,
            "authenticated": request.user.is_authenticated,
            "auth_is_token": request.auth is token,
            "user_is_logto": isinstance(request.user, LogtoUser),
            "scope_token_key": request.scope["logto_guard.token"] is token,
        }
    )


async def anyone(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "authenticated": request.user.is_authenticated,
            "scopes": list(request.auth.scopes),
            "has_token_key": "logto_guard.token" in request.scope,
            "token": request.scope.get("logto_guard.token", "absent"),
        }
    )


@requires("read:products")
async def starlette_read(request: Request) -> PlainTextResponse:
    return PlainTextResponse("read ok")


@requires(["read:products", "write:products"])
async def starlette_write(request: Request) -> PlainTextResponse:
    return PlainTextResponse("write ok")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    token = get_access_token(websocket)
    await websocket.send_json({"sub": token.sub, "user": websocket.user.identity})
    await websocket.close()


def make_app(verifier: TableVerifier | None = None, **options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/health", anyone),
            Route("/health/live", anyone),
            Route("/healthz", anyone),
            Route("/", anyone),
            Route("/anyone", anyone),
            Route("/starlette/read", starlette_read),
            Route("/starlette/write", starlette_write, methods=["GET", "POST"]),
            WebSocketRoute("/ws", ws_echo),
        ]
    )
    app.add_middleware(LogtoGuard, verifier=verifier or FakeVerifier(), **options)
    return app


def client(verifier: TableVerifier | None = None, **options: Any) -> TestClient:
    return TestClient(make_app(verifier, **options))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, challenge: str | None, body: dict[str, Any]) -> None:
    assert response.status_code == status
    assert response.headers.get("www-authenticate") == challenge
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


MISSING = {"error": None, "error_description": "a bearer token is required"}


# -- required mode -----------------------------------------------------------------------------


def test_no_token_is_401_with_bare_challenge() -> None:
    response = client().get("/whoami")
    assert_error(response, 401, BARE, MISSING)
    assert "retry-after" not in response.headers


def test_valid_token_reaches_the_route_with_auth_and_user() -> None:
    response = client().get("/whoami", headers=bearer(READER))
    assert response.status_code == 200
    assert response.json() == {
        "sub": "app-1",
        "scopes": ["read:products"],
        "user": "app-1",
        "display_name": "app-1",
        "authenticated": True,
        "auth_is_token": True,
        "user_is_logto": True,
        "scope_token_key": True,
    }


def test_lowercase_scheme_and_several_spaces() -> None:
    response = client().get("/whoami", headers={"Authorization": f"bearer   {READER}"})
    assert response.status_code == 200


def test_bad_token_is_401_invalid_token() -> None:
    response = client().get("/whoami", headers=bearer("forged.token.sig"))
    assert_error(
        response,
        401,
        f'Bearer realm="api", error="invalid_token", '
        f'error_description="token signature is invalid", resource_metadata="{META}"',
        {"error": "invalid_token", "error_description": "token signature is invalid"},
    )


def test_expired_token_is_401_invalid_token() -> None:
    verifier = FakeVerifier({"old.token.sig": ExpiredToken()})
    response = client(verifier).get("/whoami", headers=bearer("old.token.sig"))
    assert_error(
        response,
        401,
        f'Bearer realm="api", error="invalid_token", error_description="token expired", '
        f'resource_metadata="{META}"',
        {"error": "invalid_token", "error_description": "token expired"},
    )


def test_malformed_credentials_are_401_without_calling_the_verifier() -> None:
    verifier = FakeVerifier()
    response = client(verifier).get("/whoami", headers={"Authorization": "Bearer a,b"})
    assert_error(
        response,
        401,
        f'Bearer realm="api", error="invalid_token", error_description="malformed token", '
        f'resource_metadata="{META}"',
        {"error": "invalid_token", "error_description": "malformed token"},
    )
    assert verifier.seen == []


def test_two_authorization_headers_are_400() -> None:
    response = client().get("/whoami", headers=[("Authorization", f"Bearer {READER}")] * 2)
    assert_error(
        response,
        400,
        f'Bearer realm="api", error="invalid_request", '
        f'error_description="duplicate authorization header", resource_metadata="{META}"',
        {"error": "invalid_request", "error_description": "duplicate authorization header"},
    )


def test_header_and_query_token_are_400() -> None:
    response = client().get(f"/whoami?access_token={READER}", headers=bearer(READER))
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "more than one token method used",
    }


def test_empty_bearer_is_400() -> None:
    response = client().get("/whoami", headers={"Authorization": "Bearer"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", f"DPoP {READER}"])
def test_other_schemes_are_a_bare_401(value: str) -> None:
    response = client().get("/whoami", headers={"Authorization": value})
    assert_error(response, 401, BARE, MISSING)


def test_query_token_only_when_allowed() -> None:
    assert client().get(f"/whoami?access_token={READER}").status_code == 401
    response = client(allow_query_token=True).get(f"/whoami?access_token={READER}")
    assert response.status_code == 200


def test_key_set_unavailable_is_503_with_retry_after_and_no_challenge() -> None:
    verifier = FakeVerifier({READER: KeySetUnavailable()})
    response = client(verifier).get("/whoami", headers=bearer(READER))
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


@pytest.mark.parametrize(
    "exc",
    [RecursionError(), ValueError(f"cannot parse {READER}"), TypeError("x"), KeyError("k")],
)
def test_unexpected_verifier_exception_is_401_and_logged_without_the_token(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = FakeVerifier({READER: exc})
    with caplog.at_level(logging.DEBUG, logger="logto_guard"):
        response = client(verifier).get("/whoami", headers=bearer(READER))
    assert_error(
        response,
        401,
        f'Bearer realm="api", error="invalid_token", error_description="invalid token", '
        f'resource_metadata="{META}"',
        {"error": "invalid_token", "error_description": "invalid token"},
    )
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert type(exc).__name__ in errors[0].getMessage()
    assert READER not in caplog.text
    assert errors[0].exc_info is None


def test_failures_never_log_the_token_or_header(caplog: pytest.LogCaptureFixture) -> None:
    app = client(FakeVerifier({READER: ExpiredToken()}))
    with caplog.at_level(logging.DEBUG):
        app.get("/whoami", headers=bearer(READER))
        app.get("/whoami", headers=bearer("x" * 40))
        app.get("/whoami", headers=[("Authorization", f"Bearer {READER}")] * 2)
        app.get("/whoami", headers={"Authorization": f"Bearer {READER} x"})
    assert caplog.records  # failures are logged...
    assert READER not in caplog.text  # ...but never with the credentials
    assert "x" * 40 not in caplog.text
    assert "Bearer" not in caplog.text


def test_custom_realm_and_no_metadata() -> None:
    response = client(realm="shop", serve_metadata=False).get("/whoami")
    assert_error(response, 401, 'Bearer realm="shop"', MISSING)


# -- public paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [("/health", 200), ("/health/live", 200), ("/healthz", 401), ("/", 200), ("/anyone", 401)],
)
def test_public_paths_are_exact_or_segment_prefixes(path: str, status: int) -> None:
    response = client(public_paths=["/health/", "/"]).get(path)
    assert response.status_code == status


def test_public_paths_skip_authentication_entirely() -> None:
    verifier = FakeVerifier()
    response = client(verifier, public_paths=["/health"]).get(
        "/health", headers=bearer("forged.token.sig")
    )
    assert response.status_code == 200
    assert response.json() == {
        "authenticated": False,
        "scopes": [],
        "has_token_key": False,
        "token": "absent",
    }
    assert verifier.seen == []


def test_public_paths_match_the_route_path_under_root_path() -> None:
    app = TestClient(make_app(public_paths=["/health"]), root_path="/api")
    assert app.get("/api/health").status_code == 200
    assert app.get("/api/whoami").status_code == 401


def test_get_access_token_on_a_public_path_becomes_a_bare_401() -> None:
    response = client(public_paths=["/whoami"]).get("/whoami")
    assert_error(response, 401, BARE, MISSING)


# -- optional mode -----------------------------------------------------------------------------


def test_optional_mode_lets_anonymous_requests_through() -> None:
    response = client(mode="optional").get("/anyone")
    assert response.status_code == 200
    assert response.json() == {
        "authenticated": False,
        "scopes": [],
        "has_token_key": True,
        "token": None,
    }


def test_optional_mode_still_refuses_a_bad_token() -> None:
    response = client(mode="optional").get("/anyone", headers=bearer("forged.token.sig"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_optional_mode_authenticates_a_good_token() -> None:
    response = client(mode="optional").get("/whoami", headers=bearer(READER))
    assert response.status_code == 200
    assert response.json()["sub"] == "app-1"


def test_optional_mode_get_access_token_without_token_is_a_bare_401() -> None:
    response = client(mode="optional").get("/whoami")
    assert_error(response, 401, BARE, MISSING)


def test_optional_mode_starlette_requires_answers_403_as_starlette_does() -> None:
    response = client(mode="optional").get("/starlette/read")
    assert response.status_code == 403
    assert response.text == "Forbidden"


# -- Starlette's requires() on our auth --------------------------------------------------------


def test_starlette_requires_sees_token_scopes() -> None:
    app = client()
    assert app.get("/starlette/read", headers=bearer(READER)).text == "read ok"
    assert app.get("/starlette/write", headers=bearer(READER)).status_code == 403
    assert app.get("/starlette/write", headers=bearer(WRITER)).text == "write ok"


# -- WebSocket ---------------------------------------------------------------------------------


def test_websocket_accepted_with_a_good_token() -> None:
    with client().websocket_connect("/ws", headers=bearer(READER)) as ws:
        assert ws.receive_json() == {"sub": "app-1", "user": "app-1"}


def test_websocket_without_token_gets_a_denial_response() -> None:
    with pytest.raises(WebSocketDenialResponse) as info, client().websocket_connect("/ws"):
        pass  # pragma: no cover
    assert_error(info.value, 401, BARE, MISSING)


def test_websocket_with_bad_token_gets_a_denial_response() -> None:
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        client().websocket_connect("/ws", headers=bearer("forged.token.sig")),
    ):
        pass  # pragma: no cover
    assert info.value.status_code == 401
    assert info.value.json()["error"] == "invalid_token"


async def run_asgi(app: Any, scope: Scope, incoming: list[Message]) -> list[Message]:
    sent: list[Message] = []
    queue = list(incoming)

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def ws_scope(headers: list[tuple[bytes, bytes]], extensions: dict[str, Any] | None) -> Scope:
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "subprotocols": [],
    }
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


async def test_websocket_without_denial_extension_is_closed_with_1008() -> None:
    app = make_app()
    no_extension: list[dict[str, Any] | None] = [None, {}]
    for extensions in no_extension:
        sent = await run_asgi(app, ws_scope([], extensions), [{"type": "websocket.connect"}])
        assert sent == [
            {"type": "websocket.close", "code": 1008, "reason": "a bearer token is required"}
        ]


async def test_websocket_denial_messages_are_raw_asgi() -> None:
    sent = await run_asgi(
        make_app(),
        ws_scope([(b"authorization", b"Bearer a b")], {"websocket.http.response": {}}),
        [{"type": "websocket.connect"}],
    )
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 401
    headers = dict(sent[0]["headers"])
    assert (
        headers[b"www-authenticate"]
        == (
            f'Bearer realm="api", error="invalid_token", error_description="malformed token", '
            f'resource_metadata="{META}"'
        ).encode()
    )
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(sent[1]["body"]) == {
        "error": "invalid_token",
        "error_description": "malformed token",
    }


def test_websocket_on_public_path_is_not_authenticated() -> None:
    async def open_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"user": websocket.user.is_authenticated})
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/public/ws", open_ws)])
    app.add_middleware(LogtoGuard, verifier=FakeVerifier(), public_paths=["/public"])
    with TestClient(app).websocket_connect("/public/ws") as ws:
        assert ws.receive_json() == {"user": False}


def test_auth_error_after_websocket_accept_is_not_swallowed() -> None:
    async def late(websocket: WebSocket) -> None:
        await websocket.accept()
        raise MissingToken()

    app = Starlette(routes=[WebSocketRoute("/late", late)])
    app.add_middleware(LogtoGuard, verifier=FakeVerifier())
    # Once accepted, the handshake cannot be refused any more: the error propagates.
    with (
        pytest.raises(MissingToken),
        TestClient(app).websocket_connect("/late", headers=bearer(READER)) as ws,
    ):
        ws.receive_text()


# -- lifespan ----------------------------------------------------------------------------------


def test_lifespan_shutdown_closes_the_verifier() -> None:
    verifier = FakeVerifier()
    with TestClient(make_app(verifier)) as app:
        assert app.get("/whoami", headers=bearer(READER)).status_code == 200
        assert verifier.closed == 0
    assert verifier.closed == 1


def test_close_verifier_false_keeps_a_shared_verifier_open() -> None:
    verifier = FakeVerifier()
    with TestClient(make_app(verifier, close_verifier=False)):
        pass
    assert verifier.closed == 0


def test_lifespan_shutdown_completes_when_closing_fails(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(FakeVerifier):
        async def aclose(self) -> None:
            raise OSError("boom")

    with TestClient(make_app(Failing())):
        pass  # the context exit would raise if shutdown did not complete
    assert "closing the token verifier failed: OSError" in caplog.text


async def test_lifespan_messages_pass_through_unchanged() -> None:
    verifier = FakeVerifier()
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                assert verifier.closed == 0
                await send({"type": "lifespan.shutdown.complete"})
                return

    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        messages.append(message)

    await LogtoGuard(app, verifier=verifier)({"type": "lifespan"}, receive, send)
    assert messages == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]
    assert verifier.closed == 1


# -- construction ------------------------------------------------------------------------------


def test_add_middleware_with_endpoint_builds_a_token_verifier() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
        pass

    guard = LogtoGuard(app, endpoint="https://tenant.logto.app", audience=SHOP)
    assert isinstance(guard.verifier, TokenVerifier)
    assert guard.verifier.issuer == ISSUER
    assert guard.verifier.audiences == (SHOP,)

    with_issuer = LogtoGuard(app, issuer=ISSUER, audience=[SHOP, "https://other.api"])
    assert with_issuer.verifier.audiences == (SHOP, "https://other.api")
    assert with_issuer.metadata is None  # two audiences: which resource is ambiguous


def test_starlette_add_middleware_with_endpoint() -> None:
    app = Starlette(routes=[Route("/whoami", whoami)])
    app.add_middleware(LogtoGuard, endpoint="https://tenant.logto.app", audience=SHOP)
    response = TestClient(app).get("/whoami")
    assert_error(response, 401, BARE, MISSING)


@pytest.mark.parametrize(
    "options",
    [
        {"verifier": FakeVerifier(), "endpoint": "https://tenant.logto.app"},
        {"verifier": FakeVerifier(), "audience": SHOP},
        {"endpoint": "https://tenant.logto.app"},
        {"audience": SHOP},
        {},
        {"verifier": FakeVerifier(), "mode": "lenient"},
        {"verifier": FakeVerifier(), "realm": 'a"b'},
        {"verifier": FakeVerifier(), "realm": ""},
        {"verifier": FakeVerifier(), "public_paths": ["health"]},
        {"verifier": FakeVerifier(), "resource": "shopping-api"},
        {"verifier": FakeVerifier(), "scopes_supported": ["bad scope"]},
        {"verifier": FakeVerifier(), "realm": None, "serve_metadata": False},
    ],
)
def test_bad_configuration_fails_at_construction(options: dict[str, Any]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
        pass

    with pytest.raises(ConfigurationError):
        LogtoGuard(app, **options)


def test_public_paths_accepts_a_single_string() -> None:
    assert client(public_paths="/health").get("/health").status_code == 200


async def test_other_scope_types_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:  # pragma: no cover
        return {}

    async def send(message: Message) -> None:  # pragma: no cover
        pass

    await LogtoGuard(app, verifier=FakeVerifier())({"type": "custom"}, receive, send)
    assert seen == ["custom"]


def test_unauthenticated_pair_is_starlettes_own() -> None:
    captured: dict[str, Any] = {}

    async def capture(request: Request) -> Response:
        captured["auth"], captured["user"] = request.auth, request.user
        return Response()

    app = Starlette(routes=[Route("/c", capture)])
    app.add_middleware(LogtoGuard, verifier=FakeVerifier(), mode="optional")
    TestClient(app).get("/c")
    assert type(captured["auth"]) is AuthCredentials
    assert captured["auth"].scopes == []
    assert type(captured["user"]) is UnauthenticatedUser


def test_get_access_token_accepts_a_scope_mapping() -> None:
    token = access_token()
    assert get_access_token({"logto_guard.token": token}) is token
    with pytest.raises(MissingToken):
        get_access_token({})
    with pytest.raises(MissingToken):
        get_access_token({"logto_guard.token": None})


def test_logto_user() -> None:
    user = LogtoUser(access_token(sub="m2m-app"))
    assert (user.is_authenticated, user.identity, user.display_name) == (True, "m2m-app", "m2m-app")
    assert user.client_id == "m2m-app"
    assert user.is_m2m is True
    assert repr(user) == "LogtoUser(sub='m2m-app')"


def test_auth_error_raised_by_a_route_is_answered_by_the_middleware() -> None:
    async def custom(request: Request) -> Response:
        raise InsufficientScope(required=["admin"])

    app = Starlette(routes=[Route("/custom", custom)])
    app.add_middleware(LogtoGuard, verifier=FakeVerifier())
    response = TestClient(app).get("/custom", headers=bearer(READER))
    assert_error(
        response,
        403,
        'Bearer realm="api", error="insufficient_scope", error_description="insufficient scope",'
        f' scope="admin", resource_metadata="{META}"',
        {"error": "insufficient_scope", "error_description": "insufficient scope"},
    )


def test_auth_error_after_the_response_started_is_not_swallowed() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"partial"
        raise InvalidSignature()

    async def streaming(request: Request) -> Response:
        return StreamingResponse(body())

    app = Starlette(routes=[Route("/stream", streaming)])
    app.add_middleware(LogtoGuard, verifier=FakeVerifier())
    with pytest.raises(InvalidSignature):
        TestClient(app).get("/stream", headers=bearer(READER))
