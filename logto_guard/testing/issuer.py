"""A Logto look-alike issuer that lives in the test process.

Tests of an API protected by logto-guard need tokens that look exactly like Logto's (ES384,
`typ: at+jwt`, a single-string `aud`, `sub == client_id`, a space-separated `scope`) and an
issuer that serves discovery, JWKS and the token endpoint the way Logto does, without a Logto
tenant or a network. `LocalIssuer` is that: it holds its own keys, mints tokens, rotates keys
on demand, and answers HTTP in-process (`transport()`, `asgi_app`) or on a loopback port
(`serve()`), so the library's real fetch-and-verify path is what the tests exercise.

The shapes follow the access tokens Logto 1.42 issues (it is oidc-provider underneath);
token-endpoint error codes, statuses and descriptions are oidc-provider's.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._fetch import is_loopback
from ..token import ORGANIZATION_AUDIENCE_PREFIX
from .keys import Algorithm, SigningKey, b64url, compact_json
from .server import LoopbackServer

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

JWKS_CACHE_CONTROL = "no-cache, max-age=0, must-revalidate"
JWKS_CONTENT_TYPE = "application/jwk-set+json; charset=utf-8"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# RFC 6749 appendix A.4 scope-token characters, as oidc-provider checks them.
_SCOPE_SYNTAX = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*")
_CORS = {"Access-Control-Allow-Origin": "*", "Vary": "Origin"}  # oidc-provider's public routes


@dataclass(frozen=True)
class RegisteredApp:
    """A machine-to-machine app known to the token endpoint.

    `scopes_by_resource` stands for the app's M2M roles: the scopes it may get per API resource.
    `organizations` maps the organizations the app belongs to onto its organization scopes.
    """

    app_id: str
    app_secret: str = field(repr=False)
    scopes_by_resource: Mapping[str, frozenset[str]]
    organizations: Mapping[str, frozenset[str]]


class RecordedRequest(NamedTuple):
    """One request the issuer answered (lets tests count JWKS fetches, see 304s...)."""

    method: str
    path: str
    status: int


class _Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


class _OAuthError(Exception):
    """An RFC 6749 §5.2 error answer, shaped like oidc-provider's."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.headers = dict(headers or {})

    def reply(self) -> _Reply:
        headers = {"Cache-Control": "no-store", **self.headers}
        body = {"error": self.error, "error_description": self.description}
        return _json_reply(self.status, body, headers)


def _json_reply(
    status: int,
    document: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    content_type: str = JSON_CONTENT_TYPE,
) -> _Reply:
    return _Reply(
        status, {"Content-Type": content_type, **(headers or {})}, compact_json(document)
    )


def _weak_etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against each listed tag (or `*`)."""
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


class LocalIssuer:
    """An in-process Logto tenant: signing keys, token minting, and Logto's OIDC endpoints.

    `endpoint` plays Logto's `ENDPOINT`; the issuer is `endpoint + "/oidc"`. Left out, it is
    `https://logto.test` in-process (https, so a verifier needs no insecure-http switch in tests)
    and `http://127.0.0.1:<free port>` once `start()`/`serve()` binds a loopback port.

    Thread-safe: a served issuer answers from a background thread while the test mints and
    rotates keys.
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
        self.rsa_key_size = rsa_key_size
        self.access_token_ttl = access_token_ttl
        self.default_resource = default_resource
        self.unavailable = False
        """While True, every endpoint answers 503 (simulates a Logto outage)."""
        self._lock = threading.RLock()
        first = SigningKey.generate(algorithm, rsa_key_size)
        self._keys: dict[str, SigningKey] = {first.kid: first}
        self._signing_kid = first.kid
        self._apps: dict[str, RegisteredApp] = {}
        self._requests: list[RecordedRequest] = []
        self._minted = False
        self._server: LoopbackServer | None = None
        self.asgi_app: Starlette = self._build_asgi_app()
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

    # -- keys -------------------------------------------------------------------------------

    @property
    def signing_kid(self) -> str:
        """The key new tokens are signed with (Logto's "current" key)."""
        return self._signing_kid

    @property
    def algorithm(self) -> str:
        """The algorithm of the current signing key."""
        with self._lock:
            return self._keys[self._signing_kid].algorithm

    @property
    def kids(self) -> tuple[str, ...]:
        """Every published key id in JWKS order: the signing key first, then oldest first."""
        with self._lock:
            return tuple(key.kid for key in self._published())

    def _published(self) -> list[SigningKey]:
        signing = self._keys[self._signing_kid]
        return [signing, *(key for key in self._keys.values() if key is not signing)]

    def add_key(self, algorithm: Algorithm | None = None) -> str:
        """Publish a new key without signing with it yet (a staged rotation's "next" key)."""
        key = SigningKey.generate(algorithm or self.algorithm, self.rsa_key_size)
        with self._lock:
            self._keys[key.kid] = key
        return key.kid

    def promote(self, kid: str) -> None:
        """Sign new tokens with a published key; the old one stays published."""
        with self._lock:
            if kid not in self._keys:
                raise KeyError(f"no published key {kid!r}")
            self._signing_kid = kid

    def remove_key(self, kid: str) -> None:
        """Unpublish a key: tokens it signed no longer verify once a verifier refetches."""
        with self._lock:
            if kid not in self._keys:
                raise KeyError(f"no published key {kid!r}")
            if kid == self._signing_kid:
                raise ValueError("cannot remove the signing key; promote or rotate first")
            del self._keys[kid]

    def rotate(self, algorithm: Algorithm | None = None) -> str:
        """Logto's "rotate": a new current key; the previous stays published until removed."""
        kid = self.add_key(algorithm)
        self.promote(kid)
        return kid

    def jwks(self) -> dict[str, Any]:
        """The public JWK set, as `/oidc/jwks` serves it."""
        with self._lock:
            return {"keys": [dict(key.public_jwk) for key in self._published()]}

    def private_key(self, kid: str | None = None) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        """A signing key, for tests that build tokens by other means."""
        with self._lock:
            return self._keys[kid or self._signing_kid].private_key

    # -- tokens -----------------------------------------------------------------------------

    def sign(
        self, header: Mapping[str, Any], claims: Mapping[str, Any], *, kid: str | None = None
    ) -> str:
        """Sign header and claims exactly as given (no defaults), with key `kid` or the current.

        The signature always uses the key's own algorithm, whatever `header["alg"]` says, so a
        test can forge an alg-confusion token on purpose.
        """
        with self._lock:
            key = self._keys.get(kid or self._signing_kid)
            if key is None:
                raise KeyError(f"no published key {kid!r}")
            self._minted = True
        signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(claims))}"
        signature = key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"

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
        with self._lock:
            key = self._keys.get(kid or self._signing_kid)
            if key is None:
                raise KeyError(f"no published key {kid!r}")
        issued_at = int(time.time() if now is None else now)
        scope = " ".join(scopes or ())
        payload: dict[str, Any] = {
            "jti": secrets.token_urlsafe(32),  # 43 characters, like oidc-provider's
            "sub": client_id,
            "iat": issued_at,
            "exp": issued_at + expires_in,
        }
        if scope:
            payload["scope"] = scope
        payload["client_id"] = client_id
        if organization_id is not None:
            payload["organization_id"] = organization_id
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
        """A token for an organization itself: `aud = urn:logto:organization:<id>`, no claim."""
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
    ) -> RegisteredApp:
        """Let an M2M app get tokens from `POST /oidc/token`.

        Every resource named here becomes one of the tenant's API resources; asking for any
        other resource is `invalid_target`, and scopes the app was not granted are dropped.
        """
        app = RegisteredApp(
            app_id=app_id,
            app_secret=app_secret,
            scopes_by_resource={
                resource: frozenset(scopes)
                for resource, scopes in (scopes_by_resource or {}).items()
            },
            organizations={org: frozenset(scopes) for org, scopes in (organizations or {}).items()},
        )
        with self._lock:
            self._apps[app_id] = app
        return app

    @property
    def resources(self) -> frozenset[str]:
        """The tenant's API resource indicators (every resource any app was registered for)."""
        with self._lock:
            found = {r for app in self._apps.values() for r in app.scopes_by_resource}
        if self.default_resource:
            found.add(self.default_resource)
        return frozenset(found)

    # -- HTTP ---------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata: the members oidc-provider (Logto's engine) publishes."""
        issuer = self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": issuer + "/auth",
            "token_endpoint": issuer + "/token",
            "jwks_uri": issuer + "/jwks",
            "userinfo_endpoint": issuer + "/me",
            "end_session_endpoint": issuer + "/session/end",
            "introspection_endpoint": issuer + "/token/introspection",
            "revocation_endpoint": issuer + "/token/revocation",
            "pushed_authorization_request_endpoint": issuer + "/request",
            "grant_types_supported": [
                "implicit",
                "authorization_code",
                "refresh_token",
                "client_credentials",
            ],
            "response_types_supported": ["code id_token", "code", "id_token", "none"],
            "response_modes_supported": ["form_post", "fragment", "query"],
            "scopes_supported": ["openid", "offline_access", "profile", "email", "phone"],
            "subject_types_supported": ["public"],
            "claims_supported": ["sub", "sid", "auth_time", "iss"],
            "claim_types_supported": ["normal"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_jwt",
                "client_secret_post",
                "private_key_jwt",
                "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["HS256", "RS256", "ES256"],
            "id_token_signing_alg_values_supported": [self.algorithm],
            "code_challenge_methods_supported": ["S256"],
            "claims_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
        }

    def transport(self) -> httpx.MockTransport:
        """An httpx transport (sync and async clients alike) that reaches this issuer only.

        Requests for another origin fail with `httpx.ConnectError`, like an unreachable host,
        so a verifier configured with the wrong issuer fails instead of silently passing.
        """
        return httpx.MockTransport(self._handle_httpx)

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
        reply = self._dispatch(method.upper(), path, headers, body)
        with self._lock:
            self._requests.append(RecordedRequest(method.upper(), path, reply.status))
        return reply

    def _dispatch(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        base = urlsplit(self.issuer).path
        route = path[len(base) :] if path.startswith(base + "/") else None
        read = method in ("GET", "HEAD")
        if self.unavailable and route is not None:
            return _json_reply(
                503,
                {"error": "server_error", "error_description": "service temporarily unavailable"},
                {"Retry-After": "1"},
            )
        reply: _Reply
        if read and route in (
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ):
            reply = _json_reply(200, self.discovery(), _CORS)
        elif read and route == "/jwks":
            reply = self._jwks_reply(headers.get("if-none-match"))
        elif method == "POST" and route == "/token":
            try:
                reply = self._token_reply(headers, body)
            except _OAuthError as exc:
                reply = exc.reply()
        else:
            # oidc-provider's answer to any unknown route or method.
            reply = _json_reply(
                404,
                {
                    "error": "invalid_request",
                    "error_description": f"unrecognized route or not allowed method "
                    f"({method} {path})",
                },
            )
        if method == "HEAD":
            reply = reply._replace(body=b"")
        return reply

    def _jwks_reply(self, if_none_match: str | None) -> _Reply:
        body = compact_json(self.jwks())
        etag = 'W/"' + b64url(hashlib.sha256(body).digest())[:27] + '"'
        headers = {"Cache-Control": JWKS_CACHE_CONTROL, "ETag": etag, **_CORS}
        if if_none_match and _weak_etag_matches(if_none_match, etag):
            return _Reply(304, headers, b"")
        return _Reply(200, {"Content-Type": JWKS_CONTENT_TYPE, **headers}, body)

    def _token_reply(self, headers: Mapping[str, str], body: bytes) -> _Reply:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _OAuthError(
                "invalid_request",
                "only application/x-www-form-urlencoded content-type bodies are supported on "
                "POST /token",
            )
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise _OAuthError("invalid_request", "request body is not valid UTF-8") from None
        params: dict[str, list[str]] = {}
        for name, value in pairs:
            if value != "":  # oidc-provider treats empty parameters as absent
                params.setdefault(name, []).append(value)
        for name, values in params.items():
            if len(values) > 1 and name != "resource":
                raise _OAuthError(
                    "invalid_request", f"'{name}' parameter must not be provided twice"
                )

        def param(name: str) -> str | None:
            values = params.get(name)
            return values[0] if values else None

        app = self._authenticate_client(headers, param("client_id"), param("client_secret"))

        grant_type = param("grant_type")
        if grant_type is None:
            raise _OAuthError("invalid_request", "missing required parameter 'grant_type'")
        if grant_type != "client_credentials":
            raise _OAuthError("unsupported_grant_type", "unsupported grant_type requested")

        scope = param("scope")
        if scope is not None and not _SCOPE_SYNTAX.fullmatch(scope):
            raise _OAuthError("invalid_scope", "scope contains invalid characters")
        requested = scope.split(" ") if scope else []

        resources = params.get("resource", [])
        if len(resources) > 1:
            raise _OAuthError(
                "invalid_target",
                "only a single resource indicator value is supported for this grant type",
            )
        organization_id = param("organization_id")
        resource = resources[0] if resources else None
        if resource is None and organization_id is None:
            resource = self.default_resource
            if resource is None:  # Logto would issue an opaque token, never an M2M JWT
                raise _OAuthError("invalid_target", "resource indicator is missing")
        if organization_id is not None and organization_id not in app.organizations:
            raise _OAuthError(
                "access_denied", "app is not a member of the organization", status=403
            )

        if resource is None:
            assert organization_id is not None  # checked above
            audience = ORGANIZATION_AUDIENCE_PREFIX + organization_id
            granted = app.organizations[organization_id]
            token_org = None
        else:
            if resource not in self.resources:
                raise _OAuthError("invalid_target", "resource indicator is missing, or unknown")
            audience = resource
            granted = app.scopes_by_resource.get(resource, frozenset())
            token_org = organization_id
        # Unknown or ungranted scopes are dropped silently, keeping the requested order.
        scopes = [s for s in dict.fromkeys(requested) if s in granted]
        token = self.mint(
            audience=audience,
            scopes=scopes,
            client_id=app.app_id,
            expires_in=self.access_token_ttl,
            organization_id=token_org,
        )
        document: dict[str, Any] = {
            "access_token": token,
            "expires_in": self.access_token_ttl,
            "token_type": "Bearer",
        }
        if scopes:
            document["scope"] = " ".join(scopes)
        return _json_reply(200, document, {"Cache-Control": "no-store"})

    def _authenticate_client(
        self, headers: Mapping[str, str], body_id: str | None, body_secret: str | None
    ) -> RegisteredApp:
        """client_secret_basic or client_secret_post, in oidc-provider's order of checks."""
        authorization = headers.get("authorization")
        if authorization is not None and body_secret is not None:
            raise _OAuthError(
                "invalid_request", "client authentication must only be provided using one mechanism"
            )
        client_id, secret = body_id, body_secret
        if authorization is not None:
            basic_id, secret = _parse_basic(authorization)
            if client_id is not None and client_id != basic_id:
                raise _OAuthError("invalid_request", "client_id mismatch")
            client_id = basic_id
        if client_id is None:
            raise _OAuthError("invalid_request", "no client authentication mechanism provided")
        with self._lock:
            app = self._apps.get(client_id)
        if app is None:
            # Logto answers an unknown app with 400 (oidc-provider alone would say 401).
            raise _OAuthError("invalid_client", "client authentication failed", status=400)
        challenge = None
        if authorization is not None:  # oidc-provider answers Basic with a Basic challenge
            challenge = {
                "WWW-Authenticate": f'Basic realm="{self.issuer}", error="invalid_client", '
                'error_description="client authentication failed"'
            }
        if secret is None or not hmac.compare_digest(
            secret.encode("utf-8"), app.app_secret.encode("utf-8")
        ):
            raise _OAuthError(
                "invalid_client", "client authentication failed", status=401, headers=challenge
            )
        return app

    def _handle_httpx(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if _origin(url.scheme, url.host, url.port) != _origin_of(self._endpoint):
            raise httpx.ConnectError(
                f"LocalIssuer transport only reaches {self._endpoint}, not "
                f"{url.scheme}://{url.netloc.decode('ascii')}",
                request=request,
            )
        status, headers, body = self.handle(
            request.method, url.path, request.headers, request.content
        )
        return httpx.Response(status, headers=headers, content=body)

    async def _asgi_endpoint(self, request: Request) -> Response:
        status, headers, body = self.handle(
            request.method, request.url.path, request.headers, await request.body()
        )
        return Response(body, status_code=status, headers=headers)

    def _build_asgi_app(self) -> Starlette:
        # One catch-all route: the same core answers here and in transport(), and the issuer's
        # path can change when start() picks the port.
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", self._asgi_endpoint, methods=methods)])

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
        host, port = self._address()
        server = LoopbackServer(
            self.asgi_app,
            host=host,
            port=port,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        if not self._endpoint_pinned:
            self._endpoint = server.url
            self._endpoint_pinned = True  # a restart keeps the same URLs
        server.start(timeout)
        self._server = server
        return self._endpoint

    def _address(self) -> tuple[str, int]:
        if not self._endpoint_pinned:
            if self._minted:
                raise RuntimeError(
                    f"tokens were already minted for {self.issuer}; start() gives the issuer "
                    "a new endpoint, so start it before minting (or pass endpoint=...)"
                )
            return "127.0.0.1", 0
        parts = urlsplit(self._endpoint)
        host = parts.hostname or ""
        if parts.scheme != "http" or not is_loopback(host) or parts.port is None:
            raise ValueError(
                f"cannot serve {self._endpoint} locally: give an endpoint like "
                "http://127.0.0.1:<port>, or none to get a free port"
            )
        if parts.path:
            raise ValueError("a served endpoint cannot have a path")
        return host, parts.port

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


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int]:
    return scheme, (host or "").lower(), port or (443 if scheme == "https" else 80)


def _origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return _origin(parts.scheme, parts.hostname, parts.port)


def _parse_basic(authorization: str) -> tuple[str, str]:
    """HTTP Basic client credentials, form-urlencoded inside as RFC 6749 §2.3.1 says."""
    malformed = _OAuthError("invalid_request", "invalid authorization header value format")
    parts = authorization.split(" ")
    if len(parts) != 2 or parts[0].lower() != "basic":
        raise malformed
    try:
        decoded = base64.b64decode(parts[1], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise malformed from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise malformed
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not secret:
        raise _OAuthError(
            "invalid_request", "client_secret must be provided in the Authorization header"
        )
    return client_id, secret
