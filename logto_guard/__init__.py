"""Trust Logto machine-to-machine access tokens in Starlette and FastAPI APIs.

Layers, one way: `bearer` (RFC 6750 extraction) → `verifier` (RFC 9068 checks, with keys from
`jwks_cache`) → `token.AccessToken` → route checks (`scopes`, `fastapi`). `client` is the
caller's side (client credentials).
"""

from __future__ import annotations

from ._version import __version__
from .client import ClientCredentials, TokenRequestError
from .errors import (
    AuthError,
    ConfigurationError,
    ExpiredToken,
    ImmatureToken,
    InsufficientScope,
    InvalidAudience,
    InvalidClaim,
    InvalidIssuer,
    InvalidRequest,
    InvalidSignature,
    InvalidToken,
    InvalidTokenType,
    IssuerMismatch,
    IssuerNotVerifiable,
    KeySetUnavailable,
    LogtoGuardError,
    MalformedToken,
    MissingToken,
    SigningKeyNotYetKnown,
    UnknownSigningKey,
    UnsupportedAlgorithm,
)
from .jwks_cache import JWKSCache
from .metadata import ProtectedResourceMetadata
from .middleware import LogtoGuard, LogtoUser, get_access_token
from .readiness import IssuerStatus, Readiness, ReadinessEndpoint
from .scopes import require_organization, require_scopes
from .token import AccessToken
from .verifier import TokenVerifier

__all__ = [
    "AccessToken",
    "AuthError",
    "ClientCredentials",
    "ConfigurationError",
    "ExpiredToken",
    "ImmatureToken",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidIssuer",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidToken",
    "InvalidTokenType",
    "IssuerMismatch",
    "IssuerNotVerifiable",
    "IssuerStatus",
    "JWKSCache",
    "KeySetUnavailable",
    "LogtoGuard",
    "LogtoGuardError",
    "LogtoUser",
    "MalformedToken",
    "MissingToken",
    "ProtectedResourceMetadata",
    "Readiness",
    "ReadinessEndpoint",
    "SigningKeyNotYetKnown",
    "TokenRequestError",
    "TokenVerifier",
    "UnknownSigningKey",
    "UnsupportedAlgorithm",
    "__version__",
    "get_access_token",
    "require_organization",
    "require_scopes",
]
