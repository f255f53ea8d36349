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

This module and `mcp_tools` (where `ToolScopes` lives) are the only ones that import `mcp`
(the `mcp` extra).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken as MCPAccessToken
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from ._asgi import TOKEN_KEY, Verifier, build_verifier
from .errors import AuthError, ConfigurationError, KeySetUnavailable
from .mcp_tools import ToolScopes
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

    # The `Verifier` protocol too, so `ToolScopes(verifier=...)` takes this object as well.

    @property
    def issuer(self) -> str:
        return self.verifier.issuer

    @property
    def audiences(self) -> tuple[str, ...]:
        return self.verifier.audiences

    @property
    def token_endpoint(self) -> str:
        return self.verifier.token_endpoint

    async def verify(self, token: str) -> AccessToken:
        return await self.verifier.verify(token)

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
