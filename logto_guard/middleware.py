"""`LogtoGuard`: a pure ASGI middleware that verifies Logto access tokens.

It authenticates every HTTP request and WebSocket handshake before the app sees it, and answers
failures itself with RFC 6750 status codes and challenges. Route-level authorization (scopes,
organizations) stays with the routes: `require_scopes`, Starlette's `requires()`, or the FastAPI
dependency.

What ends up in the ASGI scope:

* Verified token: `scope["auth"]` is the `AccessToken` (it has `.scopes`, so Starlette's
  `requires()` works), `scope["user"]` a `LogtoUser`, and `scope["logto_guard.token"]` the token.
* No token, in `mode="optional"`: `scope["auth"]` is an empty `AuthCredentials()` and
  `scope["user"]` an `UnauthenticatedUser()` — exactly what Starlette's own
  `AuthenticationMiddleware` sets — so `requires()` answers 403 (or redirects) as usual, while
  `require_scopes` and the FastAPI dependency answer 401. `scope["logto_guard.token"]` is None.
* A bad token is a 401 in both modes: a client that sent credentials wants to know they failed.
* Public paths are not authenticated at all (a stale token must not break a health check); they
  get the unauthenticated `auth`/`user` pair and no `logto_guard.token` key.

It is a plain ASGI callable, not Starlette's base HTTP middleware class (which breaks WebSockets,
streaming and contextvars); it never reads the request body, and never logs the token or the
`Authorization` header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Literal

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import telemetry
from ._asgi import (
    RESPONDER_KEY,
    TOKEN_KEY,
    ErrorResponder,
    Verifier,
    authenticate,
    build_verifier,
    logger,
    responder_for,
    route_path,
)
from .errors import AuthError, ConfigurationError, MissingToken
from .metadata import ProtectedResourceMetadata
from .readiness import KeyWarmer, Readiness, ReadinessEndpoint, verifier_readiness
from .token import AccessToken

__all__ = ["LogtoGuard", "LogtoUser", "get_access_token"]

# The messages after which the client has an answer: an AuthError can no longer replace it.
_ANSWER_STARTS = frozenset(
    {"http.response.start", "websocket.accept", "websocket.close", "websocket.http.response.start"}
)


class LogtoUser(BaseUser):
    """The caller behind a verified token: for an M2M token, the Logto application."""

    def __init__(self, token: AccessToken) -> None:
        self.token = token

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.token.sub

    @property
    def identity(self) -> str:
        return self.token.sub

    @property
    def client_id(self) -> str:
        return self.token.client_id

    @property
    def is_m2m(self) -> bool:
        return self.token.is_m2m

    def __repr__(self) -> str:
        return f"LogtoUser(sub={self.token.sub!r})"


def get_access_token(conn: HTTPConnection | Mapping[str, Any]) -> AccessToken:
    """The verified token of a request (a Request, WebSocket or ASGI scope).

    Raises `MissingToken` when there is none; under `LogtoGuard` that becomes a 401.
    """
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    token = scope.get(TOKEN_KEY)
    if not isinstance(token, AccessToken):
        raise MissingToken()
    return token


class LogtoGuard:
    """Authenticate requests with Logto access tokens.

    ``app.add_middleware(LogtoGuard, endpoint="https://tenant.logto.app", audience="https://api")``
    or ``LogtoGuard(app, verifier=TokenVerifier(...))``.

    `public_paths` entries match a path exactly or as a segment prefix: "/health" matches
    "/health" and "/health/live", not "/healthz"; "/" matches only "/".

    RFC 9728 metadata is served at the URL derived from `resource` (default: the single
    audience, if it is an http(s) URL), and that URL goes into every challenge as
    `resource_metadata`. Set `serve_metadata=False` to do neither. When the API identifier is
    not where clients reach the API (`https://shopping.api` is a name, not a host), give
    `public_url="https://api.example.com"`: the metadata is served under that URL's path and
    challenges name it, while the document's `resource` stays the identifier.

    On lifespan startup the signing keys are fetched (`warm_start=False` skips it); if Logto is
    down the app starts anyway and the fetch is retried in the background. `readiness()` says
    whether keys are loaded and fresh; `readiness_path="/ready"` serves it for a probe (200 or
    503, no token needed). On lifespan shutdown the verifier's HTTP client is closed
    (`close_verifier=False` keeps a shared verifier open).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier | None = None,
        endpoint: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        mode: Literal["required", "optional"] = "required",
        public_paths: Iterable[str] = (),
        realm: str | None = "api",
        allow_query_token: bool = False,
        scopes_supported: Iterable[str] = (),
        resource: str | None = None,
        resource_name: str | None = None,
        public_url: str | None = None,
        serve_metadata: bool = True,
        close_verifier: bool = True,
        warm_start: bool = True,
        readiness_path: str | None = None,
    ) -> None:
        if mode not in ("required", "optional"):
            raise ConfigurationError("mode must be 'required' or 'optional'")
        self.app = app
        self.verifier = build_verifier(
            verifier, endpoint=endpoint, issuer=issuer, audience=audience
        )
        self.mode = mode
        self.allow_query_token = allow_query_token
        self.close_verifier = close_verifier
        self._public_exact, self._public_prefixes = _compile_paths(public_paths)
        self.warmer = KeyWarmer(self.verifier) if warm_start else None
        if readiness_path is not None and not readiness_path.startswith("/"):
            raise ConfigurationError(f"readiness_path {readiness_path!r} must start with '/'")
        self.readiness_path = readiness_path
        self._readiness_endpoint = ReadinessEndpoint(self)

        self.metadata: ProtectedResourceMetadata | None = None
        if serve_metadata:
            if resource is None:
                audiences = self.verifier.audiences
                if len(audiences) == 1 and audiences[0].startswith(("https://", "http://")):
                    resource = audiences[0]
            if resource is None and public_url is not None:
                raise ConfigurationError(
                    f"public_url={public_url!r} needs the resource it serves: pass resource= "
                    f"(the audiences are {list(self.verifier.audiences)!r})"
                )
            if resource is not None:
                methods = ("header", "query") if allow_query_token else ("header",)
                self.metadata = ProtectedResourceMetadata(
                    resource,
                    public_url=public_url,
                    # every trusted issuer (custom domains, tenants); a plain Verifier has one
                    authorization_servers=getattr(
                        self.verifier, "issuers", (self.verifier.issuer,)
                    ),
                    scopes_supported=scopes_supported,
                    bearer_methods_supported=methods,
                    resource_name=resource_name,
                )
        elif public_url is not None:
            raise ConfigurationError("public_url only applies when metadata is served")
        self.responder = ErrorResponder(
            realm=realm,
            resource_metadata=self.metadata.url if self.metadata is not None else None,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        if (
            self.metadata is not None
            and scope["type"] == "http"
            and scope["path"] == self.metadata.path
        ):
            await self.metadata(scope, receive, send)
            return
        if self.readiness_path is not None and route_path(scope) == self.readiness_path:
            await self._readiness_endpoint(scope, receive, send)
            return

        scope[RESPONDER_KEY] = self.responder
        if self._public_exact and self._is_public(route_path(scope)):
            scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
        else:
            started = telemetry.hooks.start()
            try:
                token = await authenticate(scope, self.verifier, allow_query=self.allow_query_token)
                if token is None and self.mode == "required":
                    raise MissingToken()
            except AuthError as error:
                telemetry.hooks.refused(scope, self.verifier, started, error)  # logs it too
                await self.responder.send(error, scope, receive, send)
                return
            telemetry.hooks.verified(scope, started)
            scope[TOKEN_KEY] = token
            if token is None:
                scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
            else:
                scope["auth"], scope["user"] = token, LogtoUser(token)

        # Run the app. An `AuthError` it raises before answering (e.g. from `get_access_token`)
        # becomes the matching answer instead of a 500. The request's final decision is
        # recorded when the answer starts: route checks have run by then (a WebSocket is
        # counted at its handshake, not when it closes).
        answered = False

        def tracking_send(message: Message) -> Awaitable[None]:
            # A plain function handing back send's awaitable: one coroutine less per message.
            nonlocal answered
            if not answered and message["type"] in _ANSWER_STARTS:
                answered = True
                telemetry.hooks.done(scope, self.verifier)
            return send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except AuthError as error:
            if answered:
                raise
            telemetry.decide(scope, error)
            await responder_for(scope, self.responder).send(error, scope, receive, tracking_send)
        finally:
            if not answered:  # the app failed without answering
                telemetry.hooks.done(scope, self.verifier)

    def readiness(self) -> Readiness:
        """Keys loaded and confirmed within `max_stale` for every issuer, and the last error."""
        return verifier_readiness(self.verifier)

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if self.warmer is not None and message["type"] == "lifespan.startup.complete":
                await self.warmer.start()
            if self.warmer is not None and message["type"].startswith("lifespan.shutdown."):
                await self.warmer.stop()
            if self.close_verifier and message["type"] in (
                "lifespan.shutdown.complete",
                "lifespan.shutdown.failed",
            ):
                try:
                    await self.verifier.aclose()
                except Exception as exc:  # shutdown must finish whatever happens
                    logger.warning("closing the token verifier failed: %s", type(exc).__name__)
            await send(message)

        return lifespan_send

    def _is_public(self, path: str) -> bool:
        return path in self._public_exact or path.startswith(self._public_prefixes)


def _compile_paths(paths: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    exact: set[str] = set()
    prefixes: list[str] = []
    for path in [paths] if isinstance(paths, str) else paths:
        if not path.startswith("/"):
            raise ConfigurationError(f"public path {path!r} must start with '/'")
        if path == "/":
            exact.add(path)
            continue
        path = path.rstrip("/")
        exact.add(path)
        prefixes.append(path + "/")
    return frozenset(exact), tuple(prefixes)
