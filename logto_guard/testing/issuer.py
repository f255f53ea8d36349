"""A Logto look-alike issuer that lives in the test process.

Tests of an API protected by logto-guard need tokens that look exactly like Logto's (ES384,
`typ: at+jwt`, a single-string `aud`, `sub == client_id`, a space-separated `scope`) and an
issuer that serves discovery, JWKS and the token endpoint the way Logto does, without a Logto
tenant or a network. `LocalIssuer` is that: it holds its own keys, mints tokens, rotates keys
on demand, and answers HTTP in-process (`transport()`, `asgi_app`) or on a loopback port
(`serve()`), so the library's real fetch-and-verify path is what the tests exercise.

This module is the tenant itself: its URLs, keys and tokens. The token endpoint's apps and
grant live in `token_endpoint`, the HTTP routes and documents in `endpoints`.

The shapes follow the access tokens Logto 1.42 issues (it is oidc-provider underneath);
token-endpoint error codes, statuses and descriptions are oidc-provider's.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.applications import Starlette

from .._http import MockTransport, httpx
from ..token import ORGANIZATION_AUDIENCE_PREFIX
from .endpoints import JSON_CONTENT_TYPE as JSON_CONTENT_TYPE
from .endpoints import JWKS_CACHE_CONTROL as JWKS_CACHE_CONTROL
from .endpoints import JWKS_CONTENT_TYPE as JWKS_CONTENT_TYPE
from .endpoints import Endpoints, RecordedRequest, discovery_document, loopback_address
from .keys import Algorithm, KeyRing
from .server import LoopbackServer
from .token_endpoint import RegisteredApp, TokenEndpoint

if TYPE_CHECKING:
    from ..verifier import TokenVerifier

__all__ = [
    "ORGANIZATION_AUDIENCE_PREFIX",
    "Algorithm",
    "LocalIssuer",
    "RecordedRequest",
    "RegisteredApp",
]

DEFAULT_ENDPOINT = "https://logto.test"
DEFAULT_AUDIENCE = "https://shopping.api"
DEFAULT_SCOPES: tuple[str, ...] = ("read:products",)
DEFAULT_CLIENT_ID = "m2m-app"


class LocalIssuer(KeyRing):
    """An in-process Logto tenant: signing keys, token minting, and Logto's OIDC endpoints.

    `endpoint` plays Logto's `ENDPOINT`; the issuer is `endpoint + "/oidc"`. Left out, it is
    `https://logto.test` in-process (https, so a verifier needs no insecure-http switch in tests)
    and `http://127.0.0.1:<free port>` once `start()`/`serve()` binds a loopback port.

    Thread-safe: a served issuer answers from a background thread while the test mints and
    rotates keys (the key methods come from `KeyRing`).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        algorithm: Algorithm = "ES384",
        rsa_key_size: int = 2048,
        access_token_ttl: int = 3600,
        default_resource: str | None = None,
    ) -> None:
        self._endpoint_pinned = endpoint is not None
        self._endpoint = self._check_endpoint(endpoint or DEFAULT_ENDPOINT)
        super().__init__(algorithm, rsa_key_size)
        self.access_token_ttl = access_token_ttl
        self.default_resource = default_resource
        self.unavailable = False
        """While True, every endpoint answers 503 (simulates a Logto outage)."""
        self._server: LoopbackServer | None = None
        self._tokens = TokenEndpoint(self)
        self._http = Endpoints(self, self._tokens)
        self.asgi_app: Starlette = self._http.asgi_app
        """Logto's endpoints as an ASGI app (mount it, or hand it to httpx.ASGITransport)."""

    @staticmethod
    def _check_endpoint(endpoint: str) -> str:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint must be an absolute http(s) URL, not {endpoint!r}")
        if parts.query or parts.fragment:
            raise ValueError("endpoint must not have a query or fragment")
        return endpoint.rstrip("/")

    # -- URLs -------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """Logto's `ENDPOINT` (what its console shows as the tenant URL)."""
        return self._endpoint

    @property
    def issuer(self) -> str:
        """The `iss` of every token and the issuer a verifier is configured with."""
        return self._endpoint + "/oidc"

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return self.issuer + "/jwks"

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"

    # -- tokens -----------------------------------------------------------------------------

    def mint(
        self,
        *,
        audience: str | Sequence[str] = DEFAULT_AUDIENCE,
        scopes: Iterable[str] | None = DEFAULT_SCOPES,
        client_id: str = DEFAULT_CLIENT_ID,
        expires_in: int = 3600,
        organization_id: str | None = None,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        kid: str | None = None,
        now: float | None = None,
    ) -> str:
        """A Logto M2M access token (client_credentials with a resource).

        `claims` and `header` override or add members; a `None` value removes one (e.g.
        `header={"typ": None}` makes an ID-token-shaped header). `scopes` empty or None omits
        `scope`, as Logto does when none was requested. `kid` signs with another published key.
        `organization_id` makes an organization-level API token (`aud` stays the API).
        """
        key = self._key(kid)
        issued_at = int(time.time() if now is None else now)
        scope = " ".join(scopes or ())
        # Member order as Logto writes them (recorded in tests/fixtures/real_logto/).
        payload: dict[str, Any] = {}
        if organization_id is not None:
            payload["organization_id"] = organization_id
        payload["jti"] = secrets.token_urlsafe(32)  # 43 characters, like oidc-provider's
        payload["sub"] = client_id
        payload["iat"] = issued_at
        payload["exp"] = issued_at + expires_in
        # Logto omits an empty scope, except in a token for an organization itself, which
        # always has one (`""` when no organization scope was granted).
        organization_audience = isinstance(audience, str) and audience.startswith(
            ORGANIZATION_AUDIENCE_PREFIX
        )
        if scope or organization_audience:
            payload["scope"] = scope
        payload["client_id"] = client_id
        payload["iss"] = self.issuer
        payload["aud"] = audience if isinstance(audience, str) else list(audience)
        jose_header: dict[str, Any] = {"alg": key.algorithm, "typ": "at+jwt", "kid": key.kid}
        return self.sign(_merge(jose_header, header), _merge(payload, claims), kid=key.kid)

    def mint_organization_token(
        self,
        organization_id: str,
        *,
        scopes: Iterable[str] | None = (),
        client_id: str = DEFAULT_CLIENT_ID,
        expires_in: int = 3600,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        kid: str | None = None,
        now: float | None = None,
    ) -> str:
        """A token for an organization itself: `aud = urn:logto:organization:<id>`, no
        `organization_id` claim, and a `scope` claim even when empty (`""`), as Logto sends."""
        return self.mint(
            audience=ORGANIZATION_AUDIENCE_PREFIX + organization_id,
            scopes=scopes,
            client_id=client_id,
            expires_in=expires_in,
            claims=claims,
            header=header,
            kid=kid,
            now=now,
        )

    def expired_token(
        self,
        *,
        expired_ago: float = 3600,
        audience: str | Sequence[str] = DEFAULT_AUDIENCE,
        scopes: Iterable[str] | None = DEFAULT_SCOPES,
        client_id: str = DEFAULT_CLIENT_ID,
        expires_in: int = 3600,
        organization_id: str | None = None,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        kid: str | None = None,
    ) -> str:
        """A valid-looking token whose `exp` passed `expired_ago` seconds ago.

        The default hour is far beyond any verifier's leeway; pass a few seconds to probe one.
        """
        return self.mint(
            audience=audience,
            scopes=scopes,
            client_id=client_id,
            expires_in=expires_in,
            organization_id=organization_id,
            claims=claims,
            header=header,
            kid=kid,
            now=time.time() - expired_ago - expires_in,
        )

    # -- token endpoint configuration ---------------------------------------------------------

    def register_app(
        self,
        app_id: str,
        app_secret: str,
        scopes_by_resource: Mapping[str, Iterable[str]] | None = None,
        *,
        organizations: Mapping[str, Iterable[str]] | None = None,
        cors_origins: Iterable[str] = (),
    ) -> RegisteredApp:
        """Let an M2M app get tokens from `POST /oidc/token`.

        Every resource named here becomes one of the tenant's API resources; asking for any
        other resource is `invalid_target`, and scopes the app was not granted are dropped.
        `cors_origins` (e.g. `["http://127.0.0.1:8000"]`) may call the token endpoint from a
        browser, as Swagger UI's Authorize button does; other origins get `invalid_request`.
        """
        return self._tokens.register(
            app_id, app_secret, scopes_by_resource, organizations, cors_origins
        )

    @property
    def resources(self) -> frozenset[str]:
        """The tenant's API resource indicators (every resource any app was registered for)."""
        return self._tokens.resources

    # -- HTTP ---------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, oldest first (a copy)."""
        return self._http.requests

    def clear_requests(self) -> None:
        self._http.clear_requests()

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata, member for member (and in the order) Logto 1.42 serves.

        `id_token_signing_alg_values_supported` follows the published keys, as in Logto: an
        RSA key adds PS256 and RS256.
        """
        with self._lock:
            algorithms = [key.algorithm for key in self._published()]
        return discovery_document(self.issuer, algorithms)

    def transport(self) -> MockTransport:
        """A transport that reaches this issuer only, for httpx2 and httpx clients alike.

        ``httpx2.Client(transport=...)``, ``httpx.AsyncClient(transport=...)``: one transport
        serves sync and async clients of both families. Requests for another origin fail with
        the client family's ``ConnectError``, like an unreachable host, so a verifier
        configured with the wrong issuer fails instead of silently passing.
        """
        return self._http.transport()

    def verifier(
        self,
        audience: str | Sequence[str] = DEFAULT_AUDIENCE,
        *,
        jwks_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> TokenVerifier:
        """A `TokenVerifier` for this issuer that fetches discovery and JWKS via `transport()`.

        It runs the library's real fetch-and-verify path with production defaults; `kwargs` go
        to `TokenVerifier`, `jwks_options` to its `JWKSCache` (e.g. `{"cooldown": 0}` to see a
        promoted, never-staged key at once instead of after the 30 s unknown-kid cooldown).
        """
        from ..jwks_cache import JWKSCache
        from ..verifier import TokenVerifier

        options: dict[str, Any] = {
            name: kwargs[name] for name in ("algorithms", "allow_insecure_http") if name in kwargs
        }
        options.update(jwks_options or {})
        jwks = JWKSCache(
            self.issuer, http_client=httpx.AsyncClient(transport=self.transport()), **options
        )
        return TokenVerifier(self.issuer, audience=audience, jwks=jwks, **kwargs)

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one HTTP request (the core behind `transport()` and `asgi_app`).

        `headers` must look names up case-insensitively (httpx and Starlette headers do).
        """
        return self._http.handle(method, path, headers, body)

    # -- loopback server ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, *, timeout: float = 10.0) -> str:
        """Serve on a loopback port from a background thread; returns `endpoint`.

        Without an explicit `endpoint`, a free port on 127.0.0.1 is bound first and the
        endpoint becomes `http://127.0.0.1:<port>`, so the issuer (`iss`, `jwks_uri`...) names
        the port it really listens on. An explicit endpoint must be loopback http with a port.
        """
        if self._server is not None:
            raise RuntimeError("this LocalIssuer is already running")
        server = self._http.loopback_server(*self._address())
        if not self._endpoint_pinned:
            self._endpoint = server.url
            self._endpoint_pinned = True  # a restart keeps the same URLs
        server.start(timeout)
        self._server = server
        return self._endpoint

    def _address(self) -> tuple[str, int]:
        if self._endpoint_pinned:
            return loopback_address(self._endpoint)
        if self._signed:
            raise RuntimeError(
                f"tokens were already minted for {self.issuer}; start() gives the issuer "
                "a new endpoint, so start it before minting (or pass endpoint=...)"
            )
        return "127.0.0.1", 0

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loopback server (idempotent). The endpoint and keys stay as they were."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout)

    @contextlib.contextmanager
    def serve(self, *, timeout: float = 10.0) -> Iterator[str]:
        """`with issuer.serve() as endpoint:` runs the loopback server for the block."""
        endpoint = self.start(timeout=timeout)
        try:
            yield endpoint
        finally:
            self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "in-process"
        return f"LocalIssuer({self.issuer!r}, {self.algorithm}, {state})"


def _merge(base: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Apply overrides; a None value removes the member."""
    for name, value in (overrides or {}).items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base
