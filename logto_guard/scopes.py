"""Route decorators for Starlette endpoints: scope and organization checks.

They read the token `LogtoGuard` verified, so a forged token has already been answered with 401
before any scope is looked at (a forged token never learns it lacks a scope). Unlike Starlette's
`requires()`, a failure is RFC 6750 shaped: 401 with a bare challenge when there is no token,
403 `insufficient_scope` with `scope="..."` when it lacks a scope, and the same JSON body and
headers the middleware sends.

Like `requires()`, they find the `request` or `websocket` parameter by name, so they work on
functions and on `HTTPEndpoint`/`WebSocketEndpoint` methods, sync or async.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from . import telemetry
from ._asgi import TOKEN_KEY, responder_for
from .bearer import is_scope_token
from .errors import AuthError, ConfigurationError, InsufficientScope, MissingToken
from .token import AccessToken

__all__ = ["check_organization", "check_scopes", "require_organization", "require_scopes"]

_P = ParamSpec("_P")
_Check = Callable[[HTTPConnection], AuthError | None]

ORGANIZATION_MISMATCH = "token is not for this organization"


def check_scopes(
    conn: HTTPConnection, scopes: Sequence[str], *, any_of: bool = False
) -> AuthError | None:
    """The error a request deserves for these scopes, or None if its token has them."""
    token = conn.scope.get(TOKEN_KEY)
    if not isinstance(token, AccessToken):
        return MissingToken()
    if not scopes:
        return None
    granted = not token.scopes.isdisjoint(scopes) if any_of else token.scopes.issuperset(scopes)
    return None if granted else InsufficientScope(required=scopes)


def check_organization(conn: HTTPConnection, path_param: str) -> AuthError | None:
    """The error a request deserves unless its token's organization is the one in the path."""
    token = conn.scope.get(TOKEN_KEY)
    if not isinstance(token, AccessToken):
        return MissingToken()
    try:
        wanted = conn.path_params[path_param]
    except KeyError:
        raise ConfigurationError(f"the route has no path parameter {path_param!r}") from None
    if token.organization_id is None or token.organization_id != str(wanted):
        return InsufficientScope(description=ORGANIZATION_MISMATCH)
    return None


def require_scopes(
    *scopes: str, any_of: bool = False, organization: str | None = None
) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    """Let a request in only if its token has every scope (or one of them, with `any_of`).

    `organization="org_id"` also requires the token's `organization_id` to equal that path
    parameter. With `any_of`, the challenge's `scope` lists all the alternatives.
    """
    for scope in scopes:
        if not is_scope_token(scope):
            raise ConfigurationError(f"invalid scope name {scope!r}")
    required = tuple(scopes)
    if organization is None:
        return _decorator(lambda conn: check_scopes(conn, required, any_of=any_of))

    def check(conn: HTTPConnection) -> AuthError | None:
        error = check_scopes(conn, required, any_of=any_of)
        return error if error is not None else check_organization(conn, organization)

    return _decorator(check)


def require_organization(
    path_param: str = "org_id",
) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    """Let a request in only if its token was issued for the organization in the path."""
    return _decorator(lambda conn: check_organization(conn, path_param))


def _decorator(check: _Check) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    def decorator(func: Callable[_P, Any]) -> Callable[_P, Any]:
        return _guard(func, check)

    return decorator


def _guard(func: Callable[_P, Any], check: _Check) -> Callable[_P, Any]:
    names = list(inspect.signature(func).parameters)
    kind = next((name for name in names if name in ("request", "websocket")), None)
    if kind is None:
        raise ConfigurationError(f'no "request" or "websocket" parameter on {func!r}')
    idx = names.index(kind)
    expected = WebSocket if kind == "websocket" else Request

    def connection(args: Any, kwargs: Any) -> Any:
        conn = args[idx] if idx < len(args) else kwargs.get(kind)
        if not isinstance(conn, expected):
            raise TypeError(f"parameter {kind!r} is a {type(conn).__name__}, not a {expected}")
        return conn

    if kind == "websocket":

        @functools.wraps(func)
        async def websocket_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
            websocket: WebSocket = connection(args, kwargs)
            error = check(websocket)
            if error is not None:
                telemetry.decide(websocket.scope, error)
                await responder_for(websocket.scope).send(
                    error, websocket.scope, websocket.receive, websocket.send
                )
                return
            await func(*args, **kwargs)

        return websocket_wrapper

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            request: Request = connection(args, kwargs)
            error = check(request)
            if error is not None:
                return _response(request, error)
            return await func(*args, **kwargs)

        return async_wrapper

    @functools.wraps(func)
    def sync_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
        request: Request = connection(args, kwargs)
        error = check(request)
        if error is not None:
            return _response(request, error)
        return func(*args, **kwargs)

    return sync_wrapper


def _response(conn: HTTPConnection, error: AuthError) -> Response:
    telemetry.decide(conn.scope, error)
    return responder_for(conn.scope).response(error)
