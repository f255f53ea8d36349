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

A dependency cannot add responses to the operations that use it, so `document_errors(app)` does
it on the OpenAPI document: every operation secured by a `LogtoSecurity` lists its 401 (and,
when it requires scopes, 403) answer with the `{"error", "error_description"}` body schema.

This module is the only one that imports fastapi (the `fastapi` extra).
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures at runtime and
# cannot resolve string annotations on a callable instance.

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Security
from fastapi.openapi.models import OAuthFlowClientCredentials
from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
from fastapi.security import OAuth2, SecurityScopes
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from . import telemetry
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
from .readiness import KeyWarmer, Readiness, verifier_readiness
from .scopes import check_organization
from .token import AccessToken

__all__ = [
    "LogtoAuthError",
    "LogtoSecurity",
    "auth_error_handler",
    "document_errors",
    "install_error_handler",
]

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


async def _record_decision(request: HTTPConnection) -> AsyncIterator[None]:
    """Without `LogtoGuard`: record the request's final decision once the route is done."""
    scope = request.scope
    # Behind the middleware it records; and FastAPI versions that cache dependencies per
    # security scopes run this once per distinct set: the first one records.
    alone = TOKEN_KEY not in scope and telemetry.RECORDER_KEY not in scope
    scope[telemetry.RECORDER_KEY] = True
    try:
        yield
    finally:
        if alone:
            telemetry.hooks.done(scope, scope.get(telemetry.VERIFIER_KEY))


class LogtoSecurity(OAuth2):
    """A FastAPI security dependency that returns the request's verified `AccessToken`.

    Scopes come from `Security(guard, scopes=[...])` (all are required). `scopes` lists the
    API's permissions for the OpenAPI document. With `auto_error=False` a request without
    credentials gets None instead of a 401 (a bad token is still a 401). Behind `LogtoGuard`,
    challenges use the middleware's realm and `resource_metadata`; alone, `realm` and
    `resource_metadata_url` here. Without the middleware,
    `FastAPI(lifespan=guard.lifespan)` fetches the keys at startup (retrying in the background
    if Logto is down) and closes the verifier on shutdown; else share the verifier with the
    middleware (which closes it) or `await verifier.aclose()` in your lifespan. `readiness()`
    says whether keys are loaded and fresh.
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
        self,
        security_scopes: SecurityScopes,
        request: HTTPConnection,
        _decision: Annotated[None, Depends(_record_decision)] = None,
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
        started, scope[telemetry.VERIFIER_KEY] = telemetry.hooks.start(), self.verifier
        try:
            token = await authenticate(scope, self.verifier, allow_query=self.allow_query_token)
        finally:
            telemetry.hooks.verified(scope, started)
        scope[TOKEN_KEY] = token
        if token is not None:
            scope["auth"], scope["user"] = token, LogtoUser(token)
        return token

    def error(self, request: HTTPConnection, error: AuthError) -> LogtoAuthError:
        """The exception to raise for `error`, answered like the middleware would."""
        _ensure_handler(request.scope)
        telemetry.decide(request.scope, error)
        return LogtoAuthError(error, responder_for(request.scope, self.responder))

    def readiness(self) -> Readiness:
        """Keys loaded and confirmed within `max_stale` for every issuer, and the last error."""
        return verifier_readiness(self.verifier)

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Fetch the keys at startup (never fails the startup); close the verifier at the end."""
        warmer = KeyWarmer(self.verifier)
        await warmer.start()
        try:
            yield
        finally:
            await warmer.stop()
            await self.verifier.aclose()

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


ERROR_SCHEMA_NAME = "LogtoAuthError"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "description": "RFC 6750 error answer; `error` is null when no token was sent.",
    "type": "object",
    "properties": {
        "error": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "examples": ["invalid_token", "insufficient_scope"],
        },
        "error_description": {"type": "string"},
    },
    "required": ["error", "error_description"],
}
_ERROR_RESPONSES = {
    "401": 'No token, or an invalid one (`WWW-Authenticate: Bearer ... error="invalid_token"`)',
    "403": "Valid token without the scopes this operation needs (`insufficient_scope`)",
}
_ERROR_EXAMPLES = {
    "401": {"error": "invalid_token", "error_description": "token expired"},
    "403": {"error": "insufficient_scope", "error_description": "insufficient scope"},
}


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` list the 401/403 answers of operations secured by `LogtoSecurity`.

    Responses an operation already declares for those codes are kept as they are.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        _add_error_responses(schema, _scheme_names(app.routes))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _scheme_names(routes: Sequence[Any]) -> set[str]:
    names: set[str] = set()

    def walk(dependant: Any) -> None:
        for dependency in getattr(dependant, "dependencies", ()):
            call = getattr(dependency, "call", None)
            if isinstance(call, LogtoSecurity):
                names.add(call.scheme_name)
            walk(dependency)

    for route in routes:
        walk(getattr(route, "dependant", None))
    return names


def _add_error_responses(schema: dict[str, Any], scheme_names: set[str]) -> None:
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    used = False
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            requirements = [
                scopes
                for requirement in operation.get("security", ())
                for name, scopes in requirement.items()
                if name in scheme_names
            ]
            if not requirements:
                continue
            codes = ["401"] + (["403"] if any(requirements) else [])
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(
                    code,
                    {
                        "description": _ERROR_RESPONSES[code],
                        "content": {
                            "application/json": {"schema": ref, "example": _ERROR_EXAMPLES[code]}
                        },
                    },
                )
            used = True
    if used:
        schema.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = (
            ERROR_SCHEMA
        )
