"""Plumbing shared by the middleware, the route decorators and the FastAPI dependency.

One place turns an `AuthError` into an answer (HTTP response, WebSocket denial or close), so
every entry point sends the same status, headers and body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .bearer import challenge, check_realm, error_body, extract_token
from .errors import AuthError, ConfigurationError, InvalidToken, KeySetUnavailable

if TYPE_CHECKING:
    from logto_guard.token import AccessToken

logger = logging.getLogger("logto_guard")

#: scope key holding the verified `AccessToken`, or None when the request carried no token.
#: Absent when nothing has looked (no middleware, or a public path).
TOKEN_KEY = "logto_guard.token"  # noqa: S105 - a scope key, not a secret
#: scope key holding the `ErrorResponder` of the middleware, so routes answer alike.
RESPONDER_KEY = "logto_guard.responder"

WS_POLICY_VIOLATION = 1008


class Verifier(Protocol):
    """What the adapters need from `logto_guard.verifier.TokenVerifier`."""

    @property
    def issuer(self) -> str: ...

    @property
    def audiences(self) -> tuple[str, ...]: ...

    @property
    def token_endpoint(self) -> str: ...

    async def verify(self, token: str) -> AccessToken: ...

    async def aclose(self) -> None: ...


def build_verifier(
    verifier: Verifier | None,
    *,
    endpoint: str | Sequence[str] | None,
    issuer: str | Sequence[str] | None,
    audience: str | Sequence[str] | None,
) -> Verifier:
    """Take the given verifier, or build a `TokenVerifier` from endpoint/issuer and audience.

    `endpoint` and `issuer` may be lists (several trusted issuers, see `TokenVerifier`).
    """
    if verifier is not None:
        if endpoint is not None or issuer is not None or audience is not None:
            raise ConfigurationError("pass either verifier= or endpoint/issuer and audience")
        return verifier
    if audience is None:
        raise ConfigurationError("audience (the API identifier) is required")
    if endpoint is None and issuer is None:
        raise ConfigurationError("endpoint or issuer is required")
    from logto_guard.verifier import TokenVerifier  # imported late: it pulls in PyJWT and httpx

    built: Verifier = TokenVerifier(issuer, endpoint=endpoint, audience=audience)
    return built


class ErrorResponder:
    """Answers an `AuthError`: status, `WWW-Authenticate`, `Retry-After` and a JSON body.

    A 503 (no signing keys) carries no Bearer challenge: a challenge tells the client to fetch
    new credentials, which is exactly the token storm R52 wants to avoid.
    """

    def __init__(self, *, realm: str | None = "api", resource_metadata: str | None = None) -> None:
        check_realm(realm)
        self.realm = realm
        self.resource_metadata = resource_metadata
        challenge(None, realm=realm, resource_metadata=resource_metadata)  # validate now

    def headers(self, error: AuthError) -> dict[str, str]:
        headers: dict[str, str] = {}
        if isinstance(error, KeySetUnavailable):
            headers["Retry-After"] = str(max(0, int(error.retry_after)))
        else:
            headers["WWW-Authenticate"] = challenge(
                error, realm=self.realm, resource_metadata=self.resource_metadata
            )
        return headers

    def response(self, error: AuthError) -> Response:
        return Response(
            error_body(error),
            status_code=error.status_code,
            headers=self.headers(error),
            media_type="application/json",
        )

    async def send(self, error: AuthError, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the answer over HTTP, or refuse a WebSocket handshake.

        A WebSocket gets the same HTTP response when the server offers the
        `websocket.http.response` extension, else a close with 1008 before any accept.
        """
        response = self.response(error)
        if scope["type"] != "websocket":
            await response(scope, receive, send)
        elif "websocket.http.response" in (scope.get("extensions") or {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status_code,
                    "headers": response.raw_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await send(
                {
                    "type": "websocket.close",
                    "code": WS_POLICY_VIOLATION,
                    "reason": error.description[:120],
                }
            )


DEFAULT_RESPONDER = ErrorResponder()


def responder_for(
    scope: Mapping[str, Any], default: ErrorResponder | None = None
) -> ErrorResponder:
    found = scope.get(RESPONDER_KEY)
    if isinstance(found, ErrorResponder):
        return found
    return default if default is not None else DEFAULT_RESPONDER


async def authenticate(
    scope: Mapping[str, Any], verifier: Verifier, *, allow_query: bool = False
) -> AccessToken | None:
    """Find and verify the request's token; None when it carries no Bearer credentials.

    Raises `AuthError` only. Anything unexpected inside verification becomes `InvalidToken`
    (a crash on client input must never be a 500); it is logged by type and place, never with
    its message, which could quote the token.
    """
    token = extract_token(
        scope.get("headers", ()),
        scope.get("query_string", b""),
        allow_query=allow_query,
        check_syntax=not getattr(verifier, "checks_token_syntax", False),
    )
    if token is None:
        return None
    try:
        return await verifier.verify(token)
    except AuthError:
        raise
    except Exception as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
        logger.error("unexpected %s during token verification at %s", type(exc).__name__, where)
        raise InvalidToken() from None


def route_path(scope: Mapping[str, Any]) -> str:
    """The path as routes see it: `path` without the `root_path` prefix (as Starlette does)."""
    path: str = scope.get("path", "/")
    root_path: str = scope.get("root_path", "")
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        return path[len(root_path) :] or "/"
    return path
