"""Litestar integration: `LogtoPlugin`, one `LogtoGuard` setup for a whole Litestar app.

    app = Litestar(
        route_handlers=[products],
        plugins=[LogtoPlugin(endpoint="https://tenant.logto.app", audience="https://api")],
    )

    @get("/products", guards=[scopes_guard("read:products")])
    async def products(request: Request) -> dict[str, str]:
        return {"caller": request.auth.client_id}

`LogtoGuard` is plain ASGI and works as Litestar middleware, but two things differ from
Starlette, and the plugin takes care of both:

* Litestar builds the middleware stack once per route handler, so
  `DefineMiddleware(LogtoGuard, endpoint=...)` builds one verifier, and so one key cache and one
  JWKS fetch, per route. The plugin builds one verifier and hands it to every copy; it closes
  it in `on_shutdown` (Litestar's lifespan does not pass through route middleware).
* Litestar answers exceptions from handlers and guards itself, so an `AuthError` raised there
  (`get_access_token`, `scopes_guard`) would be a 500. The plugin registers
  `auth_error_handler`, which answers with the middleware's own RFC 6750 responder. (That is
  for HTTP; a WebSocket handshake without a valid token is refused by the middleware before
  any handler runs.)

Litestar runs route middleware for matched routes only, so the plugin also routes the RFC 9728
metadata path. The verified `AccessToken` is `request.auth`; the `LogtoUser` is `request.user`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler, asgi
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPluginProtocol
from litestar.types import Guard
from starlette.types import Receive, Scope, Send

from ._asgi import Verifier, build_verifier, responder_for
from .bearer import error_body
from .errors import AuthError, InsufficientScope
from .middleware import LogtoGuard, get_access_token

__all__ = ["LogtoPlugin", "auth_error_handler", "scopes_guard"]


def auth_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Answer an `AuthError` raised in a handler or guard as `LogtoGuard` answers its own."""
    if not isinstance(exc, AuthError):  # pragma: no cover - registered for AuthError only
        raise exc
    responder = responder_for(request.scope)
    return Response(
        error_body(exc),
        status_code=exc.status_code,
        headers=responder.headers(exc),
        media_type="application/json",
    )


def scopes_guard(*scopes: str) -> Guard:
    """A Litestar guard requiring every one of `scopes` (403 `insufficient_scope` otherwise)."""
    required = tuple(scopes)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        token = get_access_token(connection.scope)  # MissingToken (401) in optional mode
        if not token.has_scopes(required):
            raise InsufficientScope(required=required)

    return guard


async def _unreachable(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
    raise RuntimeError("LogtoGuard answers the metadata path itself")


class LogtoPlugin(InitPluginProtocol):
    """Protect every route of a Litestar app with one shared verifier.

    Takes `verifier=` or `endpoint`/`issuer` and `audience`, plus any other `LogtoGuard`
    option (`mode`, `public_paths`, `realm`, `resource`, ...). `close_verifier=False` keeps a
    verifier you share with something else open at shutdown.
    """

    def __init__(
        self,
        verifier: Verifier | None = None,
        *,
        endpoint: str | None = None,
        issuer: str | None = None,
        audience: str | Sequence[str] | None = None,
        close_verifier: bool = True,
        **options: Any,
    ) -> None:
        self.verifier = build_verifier(
            verifier, endpoint=endpoint, issuer=issuer, audience=audience
        )
        self.close_verifier = close_verifier
        self.options = options
        # Built once now so a wrong option fails here, and to learn the metadata path.
        self.metadata = LogtoGuard(_unreachable, verifier=self.verifier, **options).metadata

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.insert(
            0,
            DefineMiddleware(
                cast(Any, LogtoGuard),  # Starlette's ASGI types, structurally Litestar's
                verifier=self.verifier,
                close_verifier=False,
                **self.options,
            ),
        )
        app_config.exception_handlers.setdefault(AuthError, auth_error_handler)
        if self.metadata is not None:
            app_config.route_handlers.append(
                asgi(self.metadata.path, copy_scope=True)(_unreachable)
            )
        if self.close_verifier:
            app_config.on_shutdown.append(self.verifier.aclose)
        return app_config
