"""Scopes per MCP tool: `ToolScopes`, an ASGI middleware in front of an MCP Streamable HTTP app.

The MCP SDK can require scopes for a whole server only. The MCP authorization spec's answer to
a call that needs more is HTTP 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
scope="..."`, on which clients (the SDK's among them) ask for a token with that scope and retry.
Which tool a request calls is in its JSON-RPC body, so this middleware reads the body, decides,
and replays it to the app. Re-exported by `logto_guard.mcp`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._asgi import TOKEN_KEY, ErrorResponder, Verifier, authenticate, responder_for, route_path
from ._json import loads_object
from .bearer import is_scope_token
from .errors import AuthError, ConfigurationError, InsufficientScope, MissingToken
from .metadata import metadata_url
from .token import AccessToken

__all__ = ["AUTH_ERROR", "PARSE_ERROR", "ToolScopes"]

logger = logging.getLogger("logto_guard.mcp")

PARSE_ERROR = -32700  # JSON-RPC 2.0
#: JSON-RPC code of a refused tool call (the implementation-defined server-error range)
AUTH_ERROR = -32001


class ToolScopes:
    """Require scopes per MCP tool: `ToolScopes(app, {"create_product": "write:products"})`.

    A `tools/call` POST to `path` naming a listed tool must carry a token with all of that
    tool's scopes, else it gets 403 `insufficient_scope` with `scope="..."` (the MCP spec's
    step-up challenge) before the MCP app runs; without a valid token it gets 401. Other
    requests pass untouched, after their body is read (up to `max_body_size`, the SDK's own
    limit, else 413) and replayed.

    The token is the one `LogtoGuard` verified when it runs outside; otherwise `verifier`
    (a `TokenVerifier`, or the `LogtoTokenVerifier` wrapping one) verifies the header, from its
    cache after the first time.
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
        verifier: Verifier | None = None,
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

    async def _check(self, scope: Scope, required: tuple[str, ...], tool: str) -> AuthError | None:
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
