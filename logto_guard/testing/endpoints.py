"""The local issuer's HTTP surface: Logto's OIDC routes, answered in-process or on loopback.

The library's fetch-and-verify path must be what the tests exercise, so the issuer answers
real HTTP: discovery and JWKS with Logto's headers and ETags (a verifier's revalidation and
304 handling get tested), the token endpoint with its CORS, oidc-provider's 404 for anything
else, and a 503 outage on demand. One core (`Endpoints.handle`) answers behind the httpx
transport, the ASGI app and the loopback server alike.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._fetch import is_loopback
from .._http import MockTransport, Reply, Unreachable, httpx
from .cors import origin_headers, preflight_headers
from .keys import compact_json
from .server import LoopbackServer
from .token_endpoint import OAuthError, OriginRefused, TokenEndpoint

__all__ = [
    "JSON_CONTENT_TYPE",
    "JWKS_CACHE_CONTROL",
    "JWKS_CONTENT_TYPE",
    "Endpoints",
    "RecordedRequest",
    "discovery_document",
    "loopback_address",
]

JWKS_CACHE_CONTROL = "no-cache, max-age=0, must-revalidate"
JWKS_CONTENT_TYPE = "application/jwk-set+json; charset=utf-8"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# What Logto 1.42's discovery lists (tests/fixtures/real_logto/01-es384-writer.json).
_LOGTO_CLAIMS = (
    *("sub", "name", "family_name", "given_name", "middle_name", "nickname"),
    *("preferred_username", "profile", "picture", "website", "gender", "birthdate"),
    *("zoneinfo", "locale", "updated_at", "username", "created_at", "email"),
    *("email_verified", "phone_number", "phone_number_verified", "address", "custom_data"),
    *("identities", "sso_identities", "roles", "organizations", "organization_data"),
    *("organization_roles", "sid", "auth_time", "iss"),
)
_LOGTO_SCOPES = (
    *("openid", "offline_access", "profile", "email", "phone", "address", "custom_data"),
    *("identities", "roles", "urn:logto:scope:organizations"),
    *("urn:logto:scope:organization_roles", "urn:logto:scope:sessions"),
    "urn:logto:scope:trusted_devices",
)
_DISCOVERY_ROUTES = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
_CORS = {"Access-Control-Allow-Origin": "*", "Vary": "Origin"}  # oidc-provider's public routes
# Routes that answer a CORS preflight, with the methods they allow (oidc-provider's).
_CORS_ROUTES = {"/token": "POST", "/jwks": "GET", **dict.fromkeys(_DISCOVERY_ROUTES, "GET")}


class RecordedRequest(NamedTuple):
    """One request the issuer answered (lets tests count JWKS fetches, see 304s...)."""

    method: str
    path: str
    status: int


class _Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def _json_reply(
    status: int,
    document: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    content_type: str = JSON_CONTENT_TYPE,
) -> _Reply:
    return _Reply(
        status, {"Content-Type": content_type, **(headers or {})}, compact_json(document)
    )


def _etag(body: bytes) -> str:
    """Logto's (koa's) strong ETag: body length in hex and a truncated SHA-1, in quotes."""
    digest = base64.b64encode(hashlib.sha1(body, usedforsecurity=False).digest()).decode()
    return f'"{len(body):x}-{digest[:27]}"'


def _weak_etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against each listed tag (or `*`)."""
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def discovery_document(issuer: str, key_algorithms: Iterable[str]) -> dict[str, Any]:
    """Logto 1.42's OpenID Provider metadata for `issuer`, member for member and in order.

    `id_token_signing_alg_values_supported` follows the published keys' algorithms (in JWKS
    order), as in Logto: an RSA key adds PS256 and RS256.
    """
    signing: dict[str, None] = {}
    for algorithm in key_algorithms:
        signing.update(dict.fromkeys(("PS256", "RS256") if algorithm == "RS256" else (algorithm,)))
    return {
        "authorization_endpoint": issuer + "/auth",
        "device_authorization_endpoint": issuer + "/device/auth",
        "claims_parameter_supported": False,
        "claims_supported": list(_LOGTO_CLAIMS),
        "code_challenge_methods_supported": ["S256"],
        "end_session_endpoint": issuer + "/session/end",
        "grant_types_supported": [
            "implicit",
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        "issuer": issuer,
        "jwks_uri": issuer + "/jwks",
        "authorization_response_iss_parameter_supported": True,
        "response_modes_supported": ["form_post", "fragment", "query"],
        "response_types_supported": ["code id_token", "code", "id_token", "none"],
        "scopes_supported": list(_LOGTO_SCOPES),
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_jwt",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": [
            "HS256",
            "RS256",
            "PS256",
            "ES256",
            "Ed25519",
            "EdDSA",
        ],
        "token_endpoint": issuer + "/token",
        "id_token_signing_alg_values_supported": list(signing),
        "pushed_authorization_request_endpoint": issuer + "/request",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": issuer + "/me",
        "introspection_endpoint": issuer + "/token/introspection",
        "revocation_endpoint": issuer + "/token/revocation",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "claim_types_supported": ["normal"],
    }


def loopback_address(endpoint: str) -> tuple[str, int]:
    """The host and port a served issuer with this explicit `endpoint` must bind."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if parts.scheme != "http" or not is_loopback(host) or parts.port is None:
        raise ValueError(
            f"cannot serve {endpoint} locally: give an endpoint like "
            "http://127.0.0.1:<port>, or none to get a free port"
        )
    if parts.path:
        raise ValueError("a served endpoint cannot have a path")
    return host, parts.port


class Served(Protocol):
    """What the endpoints read from their issuer (a `LocalIssuer`) on every request."""

    unavailable: bool

    @property
    def endpoint(self) -> str: ...

    @property
    def issuer(self) -> str: ...

    def discovery(self) -> dict[str, Any]: ...

    def jwks(self) -> dict[str, Any]: ...


class Endpoints:
    """Routes requests to the issuer's documents and token endpoint, and records them."""

    def __init__(self, issuer: Served, tokens: TokenEndpoint) -> None:
        self._issuer = issuer
        self._tokens = tokens
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        # One catch-all route: the same core answers here and in transport(), and the issuer's
        # path can change when start() picks the port.
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        route = Route("/{path:path}", self._asgi_endpoint, methods=methods)
        self.asgi_app = Starlette(routes=[route])

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def transport(self) -> MockTransport:
        return MockTransport(self._handle_httpx)

    def loopback_server(self, host: str, port: int) -> LoopbackServer:
        return LoopbackServer(
            self.asgi_app,
            host=host,
            port=port,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        reply = self._dispatch(method.upper(), path, headers, body)
        with self._lock:
            self._requests.append(RecordedRequest(method.upper(), path, reply.status))
        return reply

    def _dispatch(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        base = urlsplit(self._issuer.issuer).path
        route = path[len(base) :] if path.startswith(base + "/") else None
        read = method in ("GET", "HEAD")
        if self._issuer.unavailable and route is not None:
            return _json_reply(
                503,
                {"error": "server_error", "error_description": "service temporarily unavailable"},
                {"Retry-After": "1"},
            )
        reply: _Reply
        if method == "OPTIONS" and route in _CORS_ROUTES:
            preflight = preflight_headers(headers, _CORS_ROUTES[route])
            if preflight is not None:
                return _Reply(204, preflight, b"")
        if read and route in _DISCOVERY_ROUTES:
            reply = self._discovery_reply(headers.get("if-none-match"))
        elif read and route == "/jwks":
            reply = self._jwks_reply(headers.get("if-none-match"), head=method == "HEAD")
        elif method == "POST" and route == "/token":
            reply = self._token_reply(headers, body)
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

    def _discovery_reply(self, if_none_match: str | None) -> _Reply:
        """Logto's discovery: an ETag and 304s, but no Cache-Control."""
        body = compact_json(self._issuer.discovery())
        etag = _etag(body)
        if if_none_match and _weak_etag_matches(if_none_match, etag):
            return _Reply(304, {"ETag": etag, **_CORS}, b"")
        return _Reply(200, {"Content-Type": JSON_CONTENT_TYPE, "ETag": etag, **_CORS}, body)

    def _jwks_reply(self, if_none_match: str | None, *, head: bool = False) -> _Reply:
        body = compact_json(self._issuer.jwks())
        if head:  # Logto sets neither Cache-Control nor an ETag on HEAD
            return _Reply(200, {"Content-Type": JWKS_CONTENT_TYPE, **_CORS}, body)
        etag = _etag(body)
        headers = {"Cache-Control": JWKS_CACHE_CONTROL, "ETag": etag, **_CORS}
        if if_none_match and _weak_etag_matches(if_none_match, etag):
            return _Reply(304, headers, b"")
        return _Reply(200, {"Content-Type": JWKS_CONTENT_TYPE, **headers}, body)

    def _token_reply(self, headers: Mapping[str, str], body: bytes) -> _Reply:
        """The token answer, with CORS headers only for an origin the app allows."""
        cors: dict[str, str] = origin_headers(headers.get("origin") or "*")
        try:
            document = self._tokens.grant(headers, body)
            reply = _json_reply(200, document, {"Cache-Control": "no-store"})
        except OAuthError as exc:
            reply = _error_reply(exc)
        except OriginRefused as exc:
            reply, cors = _error_reply(OAuthError("invalid_request", str(exc))), {}
        return reply._replace(headers={**reply.headers, **cors})

    def _handle_httpx(self, request: httpx.Request) -> Reply:
        url = request.url
        endpoint = self._issuer.endpoint
        if _origin(url.scheme, url.host, url.port) != _origin_of(endpoint):
            raise Unreachable(
                f"LocalIssuer transport only reaches {endpoint}, not "
                f"{url.scheme}://{url.netloc.decode('ascii')}"
            )
        return self.handle(request.method, url.path, request.headers, request.content)

    async def _asgi_endpoint(self, request: Request) -> Response:
        status, headers, body = self.handle(
            request.method, request.url.path, request.headers, await request.body()
        )
        return Response(body, status_code=status, headers=headers)


def _error_reply(error: OAuthError) -> _Reply:
    headers = {"Cache-Control": "no-store", **error.headers}
    return _json_reply(error.status, error.document(), headers)


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int]:
    return scheme, (host or "").lower(), port or (443 if scheme == "https" else 80)


def _origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return _origin(parts.scheme, parts.hostname, parts.port)
