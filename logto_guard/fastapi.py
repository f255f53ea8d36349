"""FastAPI integration: `LogtoSecurity`, a `Security(...)` dependency for Logto M2M tokens.

    guard = LogtoSecurity(verifier, scopes={"read:products": "Read products"})
    Reader = Annotated[AccessToken, Security(guard, scopes=["read:products"])]

    @app.get("/products")
    async def products(token: Reader): ...

It works behind `LogtoGuard` (it reuses the token the middleware verified) and alone (it
verifies the `Authorization` header itself). It documents itself in OpenAPI as an OAuth2
client-credentials scheme whose `tokenUrl` is Logto's token endpoint.

Errors leave as `LogtoAuthError`, an `HTTPException` whose handler answers exactly like the
middleware (`{"error", "error_description"}` body, RFC 6750 challenge). FastAPI's own handler
would wrap the body in `{"detail": ...}`, so the dependency registers the handler in the running
app's handler table the first time it fails, unless one is registered already: nothing to set
up. `install_error_handler(app)` does the same explicitly; a handler registered for the status
code (`app.exception_handler(401)`) still wins, as in Starlette.

This module is the only one that imports fastapi (the `fastapi` extra).
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures at runtime and
# cannot resolve string annotations on a callable instance.

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Security
from fastapi.openapi.models import OAuthFlowClientCredentials
from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
from fastapi.security import OAuth2, SecurityScopes
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from ._asgi import (
    TOKEN_KEY,
    ErrorResponder,
    Verifier,
    authenticate,
    build_verifier,
    responder_for,
)
from .bearer import is_scope_token
from .errors import AuthError, ConfigurationError, InsufficientScope, MissingToken
from .middleware import LogtoUser
from .scopes import check_organization
from .token import AccessToken

__all__ = ["LogtoAuthError", "LogtoSecurity", "auth_error_handler", "install_error_handler"]

_HANDLERS_KEY = "starlette.exception_handlers"


class LogtoAuthError(HTTPException):
    """An `AuthError` on its way out of a FastAPI dependency."""

    def __init__(self, error: AuthError, responder: ErrorResponder) -> None:
        self.auth_error = error
        self.responder = responder
        super().__init__(
            status_code=error.status_code,
            detail=error.description,
            headers=responder.headers(error),
        )


async def auth_error_handler(conn: HTTPConnection, exc: Exception) -> Response | None:
    """Answer a `LogtoAuthError` as the middleware would, over HTTP or WebSocket."""
    if not isinstance(exc, LogtoAuthError):  # pragma: no cover - registered for that class only
        raise exc
    if isinstance(conn, WebSocket):
        await exc.responder.send(exc.auth_error, conn.scope, conn.receive, conn.send)
        return None
    return exc.responder.response(exc.auth_error)


def install_error_handler(app: FastAPI) -> None:
    """Register `auth_error_handler` explicitly (the dependency otherwise does it lazily)."""
    app.add_exception_handler(LogtoAuthError, auth_error_handler)  # type: ignore[arg-type]


def _ensure_handler(scope: Mapping[str, Any]) -> None:
    handlers = scope.get(_HANDLERS_KEY)
    if isinstance(handlers, tuple) and handlers and isinstance(handlers[0], dict):
        handlers[0].setdefault(LogtoAuthError, auth_error_handler)


class LogtoSecurity(OAuth2):
    """A FastAPI security dependency that returns the request's verified `AccessToken`.

    Scopes come from `Security(guard, scopes=[...])` (all are required). `scopes` lists the
    API's permissions for the OpenAPI document. With `auto_error=False` a request without
    credentials gets None instead of a 401 (a bad token is still a 401). Behind `LogtoGuard`,
    challenges use the middleware's realm and `resource_metadata`; alone, `realm` and
    `resource_metadata_url` here. The verifier is not closed for you: share it with the
    middleware (which closes it on shutdown) or `await verifier.aclose()` in your lifespan.
    """

    def __init__(
        self,
        verifier: Verifier | None = None,
        *,
        endpoint: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        scopes: Mapping[str, str] | None = None,
        token_url: str | None = None,
        realm: str | None = "api",
        resource_metadata_url: str | None = None,
        allow_query_token: bool = False,
        scheme_name: str | None = None,
        description: str | None = (
            "Logto machine-to-machine access token (OAuth 2.0 client credentials)"
        ),
        auto_error: bool = True,
    ) -> None:
        self.verifier = build_verifier(
            verifier, endpoint=endpoint, issuer=issuer, audience=audience
        )
        scope_docs = dict(scopes or {})
        for name in scope_docs:
            if not is_scope_token(name):
                raise ConfigurationError(f"invalid scope name {name!r}")
        flows = OAuthFlowsModel(
            clientCredentials=OAuthFlowClientCredentials(
                tokenUrl=token_url or self.verifier.token_endpoint, scopes=scope_docs
            )
        )
        super().__init__(
            flows=flows, scheme_name=scheme_name, description=description, auto_error=auto_error
        )
        self.responder = ErrorResponder(realm=realm, resource_metadata=resource_metadata_url)
        self.allow_query_token = allow_query_token

    async def __call__(  # type: ignore[override]
        self, security_scopes: SecurityScopes, request: HTTPConnection
    ) -> AccessToken | None:
        try:
            token = await self._token(request)
            if token is None:
                if not self.auto_error:
                    return None
                raise MissingToken()
            required = security_scopes.scopes
            if required and not token.has_scopes(required):
                raise InsufficientScope(required=required)
            return token
        except AuthError as error:
            raise self.error(request, error) from None

    async def _token(self, request: HTTPConnection) -> AccessToken | None:
        scope = request.scope
        if TOKEN_KEY in scope:  # LogtoGuard (or an earlier call) already looked
            found = scope[TOKEN_KEY]
            return found if isinstance(found, AccessToken) else None
        token = await authenticate(scope, self.verifier, allow_query=self.allow_query_token)
        scope[TOKEN_KEY] = token
        if token is not None:
            scope["auth"], scope["user"] = token, LogtoUser(token)
        return token

    def error(self, request: HTTPConnection, error: AuthError) -> LogtoAuthError:
        """The exception to raise for `error`, answered like the middleware would."""
        _ensure_handler(request.scope)
        return LogtoAuthError(error, responder_for(request.scope, self.responder))

    def organization(self, path_param: str = "org_id") -> Callable[..., Awaitable[AccessToken]]:
        """A dependency that also requires the token's `organization_id` to equal a path
        parameter: `Security(guard.organization("org_id"), scopes=[...])`."""

        async def organization_token(
            request: HTTPConnection, token: Annotated[AccessToken | None, Security(self)]
        ) -> AccessToken:
            # The dependency above put the token on the scope, where the shared check reads it.
            error = check_organization(request, path_param)
            if error is not None or token is None:  # None: auto_error=False, no credentials
                raise self.error(request, error or MissingToken())
            return token

        return organization_token
