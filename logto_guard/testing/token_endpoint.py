"""The local issuer's `POST /oidc/token`: its registered M2M apps and the client_credentials grant.

A test of an M2M client needs the token endpoint to refuse what Logto refuses, with Logto's
codes and messages, not just to hand out tokens. This module decides each answer the way Logto
(oidc-provider underneath) does: client authentication (Basic or post, in oidc-provider's order
of checks), the browser origins an app allows, the resource or organization asked for, and the
scopes the app's roles grant. Minting the token is the issuer's job; HTTP framing is the
endpoints'.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote_plus

from ..token import ORGANIZATION_AUDIENCE_PREFIX
from .cors import allowed_origins

__all__ = ["OAuthError", "OriginRefused", "RegisteredApp", "TokenEndpoint"]

# RFC 6749 appendix A.4 scope-token characters, as oidc-provider checks them.
_SCOPE_SYNTAX = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*")

# Logto's phrases for oidc-provider errors (packages/phrases, errors/oidc.ts), the `message` of
# every token-endpoint error body; other errors get the fallback phrase.
_LOGTO_MESSAGES = {
    "invalid_request": "Request is invalid.",
    "invalid_grant": "Grant request is invalid.",
    "access_denied": "Access denied.",
    "invalid_target": "Invalid resource indicator.",
    "unsupported_grant_type": "Unsupported `grant_type` requested.",
    "server_error": "An unknown OIDC error occurred. Please try again later.",
}


def _logto_message(error: str, description: str) -> str:
    if error == "invalid_scope":
        return f"Invalid scope: {description}."
    return _LOGTO_MESSAGES.get(error, f"An OIDC error occurred: oidc.{error}.")


@dataclass(frozen=True)
class RegisteredApp:
    """A machine-to-machine app known to the token endpoint.

    `scopes_by_resource` stands for the app's M2M roles: the scopes it may get per API resource.
    `organizations` maps the organizations the app belongs to onto its organization scopes.
    `cors_origins` are the browser origins allowed to post its token requests (Logto's "CORS
    allowed origins" of the app).
    """

    app_id: str
    app_secret: str = field(repr=False)
    scopes_by_resource: Mapping[str, frozenset[str]]
    organizations: Mapping[str, frozenset[str]]
    cors_origins: frozenset[str] = frozenset()


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer, shaped like Logto's: oidc-provider's `error` and
    `error_description`, after Logto's own `code` and `message` members."""

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

    def document(self) -> dict[str, str]:
        return {
            "code": f"oidc.{self.error}",
            "message": _logto_message(self.error, self.description),
            "error": self.error,
            "error_description": self.description,
        }


class OriginRefused(Exception):
    """oidc-provider's refusal of a token request from an origin the client does not allow."""


class Minter(Protocol):
    """What the token endpoint needs from its issuer (a `LocalIssuer`)."""

    default_resource: str | None
    access_token_ttl: int

    @property
    def issuer(self) -> str: ...

    def mint(
        self,
        *,
        audience: str,
        scopes: list[str],
        client_id: str,
        expires_in: int,
        organization_id: str | None,
    ) -> str: ...


class TokenEndpoint:
    """The tenant's M2M apps, and the token endpoint's answers to them."""

    def __init__(self, issuer: Minter) -> None:
        self._issuer = issuer
        self._lock = threading.Lock()
        self._apps: dict[str, RegisteredApp] = {}

    def register(
        self,
        app_id: str,
        app_secret: str,
        scopes_by_resource: Mapping[str, Iterable[str]] | None,
        organizations: Mapping[str, Iterable[str]] | None,
        cors_origins: Iterable[str],
    ) -> RegisteredApp:
        app = RegisteredApp(
            app_id=app_id,
            app_secret=app_secret,
            scopes_by_resource={
                resource: frozenset(scopes)
                for resource, scopes in (scopes_by_resource or {}).items()
            },
            organizations={org: frozenset(scopes) for org, scopes in (organizations or {}).items()},
            cors_origins=allowed_origins(cors_origins),
        )
        with self._lock:
            self._apps[app_id] = app
        return app

    @property
    def resources(self) -> frozenset[str]:
        """Every resource any app was registered for, and the issuer's default resource."""
        with self._lock:
            found = {r for app in self._apps.values() for r in app.scopes_by_resource}
        if self._issuer.default_resource:
            found.add(self._issuer.default_resource)
        return frozenset(found)

    def grant(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The token answer's JSON document; raises `OAuthError` or `OriginRefused`."""
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise OAuthError(
                "invalid_request",
                "only application/x-www-form-urlencoded content-type bodies are supported on "
                "POST /token",
            )
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise OAuthError("invalid_request", "request body is not valid UTF-8") from None
        params: dict[str, list[str]] = {}
        for name, value in pairs:
            if value != "":  # oidc-provider treats empty parameters as absent
                params.setdefault(name, []).append(value)
        for name, values in params.items():
            if len(values) > 1 and name != "resource":
                raise OAuthError(
                    "invalid_request", f"'{name}' parameter must not be provided twice"
                )

        def param(name: str) -> str | None:
            values = params.get(name)
            return values[0] if values else None

        app = self._authenticate_client(headers, param("client_id"), param("client_secret"))

        grant_type = param("grant_type")
        if grant_type is None:
            raise OAuthError("invalid_request", "missing required parameter 'grant_type'")
        if grant_type != "client_credentials":
            raise OAuthError("unsupported_grant_type", "unsupported grant_type requested")

        scope = param("scope")
        if scope is not None and not _SCOPE_SYNTAX.fullmatch(scope):
            raise OAuthError("invalid_scope", "scope contains invalid characters")
        requested = scope.split(" ") if scope else []

        resources = params.get("resource", [])
        if len(resources) > 1:
            raise OAuthError(
                "invalid_target",
                "only a single resource indicator value is supported for this grant type",
            )
        organization_id = param("organization_id")
        resource = resources[0] if resources else None
        if resource is None and organization_id is None:
            resource = self._issuer.default_resource
            if resource is None:  # Logto would issue an opaque token, never an M2M JWT
                raise OAuthError(
                    "invalid_target", "both `resource` and `organization_id` are not provided"
                )
        if organization_id is not None and organization_id not in app.organizations:
            raise OAuthError(
                "access_denied", "app has not associated with the organization", status=403
            )

        if resource is None:
            assert organization_id is not None  # checked above
            audience = ORGANIZATION_AUDIENCE_PREFIX + organization_id
            granted = app.organizations[organization_id]
            token_org = None
        else:
            if resource not in self.resources:
                raise OAuthError("invalid_target", "resource indicator is missing, or unknown")
            audience = resource
            granted = app.scopes_by_resource.get(resource, frozenset())
            token_org = organization_id
        # Unknown or ungranted scopes are dropped silently, keeping the requested order.
        scopes = [s for s in dict.fromkeys(requested) if s in granted]
        ttl = self._issuer.access_token_ttl
        token = self._issuer.mint(
            audience=audience,
            scopes=scopes,
            client_id=app.app_id,
            expires_in=ttl,
            organization_id=token_org,
        )
        document: dict[str, Any] = {
            "access_token": token,
            "expires_in": ttl,
            "token_type": "Bearer",
        }
        if scopes or resource is None:  # an organization token's scope is there even if ""
            document["scope"] = " ".join(scopes)
        return document

    def _authenticate_client(
        self, headers: Mapping[str, str], body_id: str | None, body_secret: str | None
    ) -> RegisteredApp:
        """client_secret_basic or client_secret_post, in oidc-provider's order of checks."""
        authorization = headers.get("authorization")
        if authorization is not None and body_secret is not None:
            raise OAuthError(
                "invalid_request", "client authentication must only be provided using one mechanism"
            )
        client_id, secret = body_id, body_secret
        if authorization is not None:
            basic_id, secret = _parse_basic(authorization)
            if client_id is not None and client_id != basic_id:
                raise OAuthError("invalid_request", "client_id mismatch")
            client_id = basic_id
        if client_id is None:
            raise OAuthError("invalid_request", "no client authentication mechanism provided")
        with self._lock:
            app = self._apps.get(client_id)
        if app is None:
            # Logto answers an unknown app with 400 and names it (oidc-provider alone: 401).
            raise OAuthError("invalid_client", f"invalid client {client_id}", status=400)
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in app.cors_origins:
            raise OriginRefused(f"origin {origin} not allowed for client: {app.app_id}")
        challenge = None
        if authorization is not None:  # oidc-provider answers Basic with a Basic challenge
            challenge = {
                "WWW-Authenticate": f'Basic realm="{self._issuer.issuer}", error="invalid_client", '
                'error_description="client authentication failed"'
            }
        if secret is None or not hmac.compare_digest(
            secret.encode("utf-8"), app.app_secret.encode("utf-8")
        ):
            raise OAuthError(
                "invalid_client", "client authentication failed", status=401, headers=challenge
            )
        return app


def _parse_basic(authorization: str) -> tuple[str, str]:
    """HTTP Basic client credentials, form-urlencoded inside as RFC 6749 §2.3.1 says."""
    malformed = OAuthError("invalid_request", "invalid authorization header value format")
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
        raise OAuthError(
            "invalid_request", "client_secret must be provided in the Authorization header"
        )
    return client_id, secret
