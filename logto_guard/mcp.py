"""MCP servers protected by Logto: the `mcp` SDK's token-verifier protocol on top of ours, and
scopes per tool.

    verifier = TokenVerifier(endpoint="https://tenant.logto.app", audience=MCP_URL)
    server = MCPServer(
        "shop",
        token_verifier=LogtoTokenVerifier(verifier),
        auth=AuthSettings(issuer_url=verifier.issuer, resource_server_url=MCP_URL,
                          required_scopes=["read:products"], validate_token_resource=True),
    )
    app = ToolScopes(server.streamable_http_app(), {"create_product": "write:products"},
                     verifier=verifier, resource_server_url=MCP_URL)

`LogtoTokenVerifier` is all the SDK's own bearer middleware needs. `ToolScopes` adds what the SDK
lacks: a scope per tool, refused the way the MCP authorization spec asks (HTTP 403,
`WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`, which the SDK client answers
by asking for a token with the extra scope). Instead of the SDK's middleware, `LogtoGuard` can
authenticate the MCP app (RFC 6750 answers, 503 while Logto is down); `LogtoAuthContext` then
hands its verified token to the SDK, which binds sessions to their caller and serves
`get_access_token()` in tools.

This module is the only one that imports `mcp` (the `mcp` extra).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken as MCPAccessToken
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._asgi import (
    TOKEN_KEY,
    ErrorResponder,
    Verifier,
    authenticate,
    build_verifier,
    responder_for,
    route_path,
)
from ._json import loads_object
from .bearer import is_scope_token
from .errors import (
    AuthError,
    ConfigurationError,
    InsufficientScope,
    KeySetUnavailable,
    MissingToken,
)
from .metadata import metadata_url
from .token import AccessToken

__all__ = [
    "LogtoAuthContext",
    "LogtoTokenVerifier",
    "MemoryTokenStorage",
    "ToolScopes",
    "client_credentials_auth",
    "to_mcp_access_token",
]

logger = logging.getLogger("logto_guard.mcp")

PARSE_ERROR = -32700  # JSON-RPC 2.0
#: JSON-RPC code of a refused tool call (the implementation-defined server-error range)
AUTH_ERROR = -32001


def to_mcp_access_token(
    token: str, verified: AccessToken, audiences: Sequence[str]
) -> MCPAccessToken:
    """The SDK's `AccessToken` for one of ours. `resource` is the first of `audiences` the
    token names (the SDK compares it with `resource_server_url`); `subject` is `sub`, which for
    a user token differs from `client_id`."""
    resource = next((a for a in audiences if a in verified.audience), None)
    return MCPAccessToken(
        token=token,
        client_id=verified.client_id,
        scopes=sorted(verified.scopes),
        expires_at=int(verified.expires_at),
        resource=resource,
        subject=verified.sub,
        claims=dict(verified.claims),
    )


class LogtoTokenVerifier:
    """The MCP SDK's `TokenVerifier` protocol, backed by a logto-guard `TokenVerifier`.

    `verify_token` returns None for any token ours refuses (the SDK then answers 401) and logs
    why at INFO: the error class and its fixed description, never the token. A Logto outage
    (no signing keys) is logged at WARNING; the SDK can only answer it with 401.

    The token's `resource` is `resource` (the server's `resource_server_url`) when the token
    names it, else the first configured audience it names; give `resource` when the verifier
    accepts several audiences, so that `validate_token_resource` compares the right one.
    """

    def __init__(
        self,
        verifier: Verifier | None = None,
        *,
        endpoint: str | None = None,
        issuer: str | None = None,
        audience: str | Sequence[str] | None = None,
        resource: str | None = None,
    ) -> None:
        self.verifier = build_verifier(
            verifier, endpoint=endpoint, issuer=issuer, audience=audience
        )
        audiences = self.verifier.audiences
        if resource is not None and resource not in audiences:
            raise ConfigurationError(
                f"resource {resource!r} is not one of the verifier's audiences {list(audiences)}"
            )
        self._audiences = (resource, *audiences) if resource is not None else audiences

    async def verify_token(self, token: str) -> MCPAccessToken | None:
        try:
            verified = await self.verifier.verify(token)
        except KeySetUnavailable as error:
            logger.warning("MCP token not verified: %s", error.description)
            return None
        except AuthError as error:
            logger.info("MCP token refused: %s (%s)", type(error).__name__, error.description)
            return None
        except Exception as exc:  # a crash on client input must not become a 500
            logger.error("unexpected %s while verifying an MCP token", type(exc).__name__)
            return None
        return to_mcp_access_token(token, verified, self._audiences)

    async def aclose(self) -> None:
        await self.verifier.aclose()


class LogtoAuthContext:
    """Behind `LogtoGuard`: show its verified token to the MCP SDK as the SDK's own user.

    The SDK binds each Streamable HTTP session to the caller (`client_id`, issuer, `sub`) only
    when `scope["user"]` is its `AuthenticatedUser`, and tools read the caller with
    `mcp.server.auth.middleware.auth_context.get_access_token()`. Requests without a verified
    token (public paths, optional mode) pass unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = scope.get(TOKEN_KEY)
        if scope["type"] not in ("http", "websocket") or not isinstance(token, AccessToken):
            await self.app(scope, receive, send)
            return
        credentials = _bearer_credentials(scope)
        audiences = token.audience
        user = AuthenticatedUser(to_mcp_access_token(credentials, token, audiences))
        scope["user"], scope["auth"] = user, AuthCredentials(sorted(token.scopes))
        reset = auth_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(reset)


def _bearer_credentials(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            return str(value.decode("latin-1").strip().partition(" ")[2].strip())
    return ""


class ToolScopes:
    """Require scopes per MCP tool: `ToolScopes(app, {"create_product": "write:products"})`.

    A `tools/call` POST to `path` naming a listed tool must carry a token with all of that
    tool's scopes, else it gets 403 `insufficient_scope` with `scope="..."` (the MCP spec's
    step-up challenge) before the MCP app runs; without a valid token it gets 401. Other
    requests pass untouched, after their body is read (up to `max_body_size`, the SDK's own
    limit, else 413) and replayed.

    The token is the one `LogtoGuard` verified when it runs outside; otherwise `verifier`
    (ours, or a `LogtoTokenVerifier`) verifies the header, from its cache after the first time.
    Challenges carry `resource_metadata` for `resource_server_url` (what the SDK advertises),
    or `LogtoGuard`'s when it runs outside. A body that is not one strict JSON object (a
    duplicate member could name another tool to another parser) is refused with a JSON-RPC
    parse error.
    """

    def __init__(
        self,
        app: ASGIApp,
        scopes: Mapping[str, str | Iterable[str]],
        *,
        verifier: Verifier | LogtoTokenVerifier | None = None,
        path: str = "/mcp",
        resource_server_url: str | None = None,
        realm: str | None = None,
        max_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    ) -> None:
        self.app = app
        self.scopes: dict[str, tuple[str, ...]] = {}
        for tool, wanted in scopes.items():
            names = (wanted,) if isinstance(wanted, str) else tuple(wanted)
            bad = [s for s in names if not isinstance(s, str) or not is_scope_token(s)]
            if not names or bad:
                raise ConfigurationError(f"tool {tool!r} needs valid scope names, got {wanted!r}")
            self.scopes[tool] = names
        if isinstance(verifier, LogtoTokenVerifier):
            verifier = verifier.verifier
        self.verifier = verifier
        if not path.startswith("/"):
            raise ConfigurationError(f"path {path!r} must start with '/'")
        self.path = path
        metadata = metadata_url(resource_server_url) if resource_server_url else None
        if realm is None and metadata is None:
            realm = "mcp"
        self.responder = ErrorResponder(realm=realm, resource_metadata=metadata)
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or route_path(scope) != self.path
            or not self.scopes
        ):
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive, self.max_body_size)
        if more is None:  # the client went away
            return
        if more:
            await _send_json(send, 413, {"error": "request body too large"})
            return
        try:
            message = loads_object(body)
        except ValueError:
            error = {"code": PARSE_ERROR, "message": "Parse error"}
            await _send_json(send, 400, {"jsonrpc": "2.0", "id": None, "error": error})
            return
        required = self._required(message)
        if required:
            error_ = await self._check(scope, required, message["params"]["name"])
            if error_ is not None:
                headers = responder_for(scope, self.responder).headers(error_)
                document = _jsonrpc_error(message.get("id"), error_)
                await _send_json(send, error_.status_code, document, headers)
                return
        await self.app(scope, _replay(body, receive), send)

    def _required(self, message: dict[str, Any]) -> tuple[str, ...]:
        params = message.get("params")
        if message.get("method") != "tools/call" or not isinstance(params, dict):
            return ()
        name = params.get("name")
        return self.scopes.get(name, ()) if isinstance(name, str) else ()

    async def _check(
        self, scope: Scope, required: tuple[str, ...], tool: str
    ) -> AuthError | None:
        token = scope.get(TOKEN_KEY)
        if not isinstance(token, AccessToken):
            try:
                token = await authenticate(scope, self.verifier) if self.verifier else None
            except AuthError as error:
                return error
        if token is None:
            return MissingToken()
        if token.has_scopes(required):
            return None
        logger.debug("MCP tool %r refused: token lacks %s", tool, " ".join(required))
        return InsufficientScope(required, f"the tool {tool} needs {' '.join(required)}")


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool | None]:
    """The request body, and whether more than `limit` bytes came (None: client gone)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _jsonrpc_error(request_id: Any, error: AuthError) -> dict[str, Any]:
    """A JSON-RPC error answering the call, so MCP clients can show why (the HTTP status and
    challenge are RFC 6750's); `data` holds the RFC 6750 members."""
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        request_id = None
    data: dict[str, Any] = {"error": error.error, "error_description": error.description}
    if isinstance(error, InsufficientScope):
        data["scope"] = " ".join(error.required_scopes)
    message = f"{error.error}: {error.description}" if error.error else error.description
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": AUTH_ERROR, "message": message, "data": data},
    }


async def _send_json(
    send: Send, status: int, document: dict[str, Any], extra: Mapping[str, str] | None = None
) -> None:
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MemoryTokenStorage:
    """The SDK client's `TokenStorage`, in memory: an M2M agent just asks Logto again after a
    restart (the SDK ships only the protocol)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def client_credentials_auth(
    server_url: str,
    app_id: str,
    app_secret: str,
    *,
    endpoint: str | None = None,
    issuer: str | None = None,
) -> ClientCredentialsOAuthProvider:
    """The SDK client's client-credentials extension for a Logto M2M app (an `httpx2.Auth`).

    `issuer` is Logto's (`endpoint + "/oidc"`): the SDK then sends the secret only to the
    authorization server with that issuer, whatever the MCP server's metadata says. The
    `resource` it asks Logto for is the MCP server's URL (from the metadata), the scopes those
    the metadata lists, plus any a `403 insufficient_scope` challenge names later.
    """
    if (issuer is None) == (endpoint is None):
        raise ConfigurationError("give exactly one of endpoint= or issuer=")
    if endpoint is not None:
        issuer = endpoint.rstrip("/") + "/oidc"
    return ClientCredentialsOAuthProvider(
        server_url=server_url,
        storage=MemoryTokenStorage(),
        client_id=app_id,
        client_secret=app_secret,
        issuer=issuer,
    )
