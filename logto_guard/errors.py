"""Exceptions, one class per RFC 6750 §3.1 outcome.

Every error carries what an HTTP answer needs (status, RFC 6750 code, a description from a fixed
vocabulary) so the framework adapters never have to interpret exceptions. Descriptions never
contain token data: they are safe to log and to send to the client.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class LogtoGuardError(Exception):
    """Base class of everything this library raises."""


class ConfigurationError(LogtoGuardError, ValueError):
    """The library was set up wrongly (an empty issuer, an http issuer, a bad option)."""


class IssuerMismatch(ConfigurationError):
    """Logto's discovery document names another issuer than the one configured.

    A wrong endpoint (`localhost` for `127.0.0.1`, a missing custom domain), not an outage: it
    will not heal by waiting, so it is never answered as 503.
    """

    def __init__(self, reported: object, configured: str) -> None:
        self.reported = reported
        self.configured = configured
        super().__init__(
            f"Logto reports its issuer as {reported!r} but {configured!r} is configured"
        )


class AuthError(LogtoGuardError):
    """A request cannot be let through; maps to one HTTP answer."""

    status_code: int = 401
    error: str | None = None
    description: str = "authentication required"

    def __init__(self, description: str | None = None) -> None:
        if description is not None:
            self.description = description
        super().__init__(self.description)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class MissingToken(AuthError):
    """No Bearer credentials at all: RFC 6750 §3.1 says answer 401 without an error code."""

    status_code = 401
    error = None
    description = "a bearer token is required"


class InvalidRequest(AuthError):
    """The request is malformed: duplicate headers, several token methods, empty credentials."""

    status_code = 400
    error = "invalid_request"
    description = "malformed request"


class InvalidToken(AuthError):
    """The token is malformed, forged, expired, or not meant for this API."""

    status_code = 401
    error = "invalid_token"
    description = "invalid token"


class MalformedToken(InvalidToken):
    description = "malformed token"


class UnsupportedAlgorithm(InvalidToken):
    description = "token algorithm not allowed"


class InvalidTokenType(InvalidToken):
    description = "token is not an access token (typ must be at+jwt)"


class UnknownSigningKey(InvalidToken):
    description = "token signed by an unknown key"


class InvalidSignature(InvalidToken):
    description = "token signature is invalid"


class ExpiredToken(InvalidToken):
    description = "token expired"


class ImmatureToken(InvalidToken):
    description = "token not yet valid"


class InvalidIssuer(InvalidToken):
    description = "token issuer is not trusted"


class IssuerNotVerifiable(InvalidIssuer):
    """The token names a configured issuer whose discovery names another one (IssuerMismatch)."""

    description = "token issuer cannot be verified by this API"


class InvalidAudience(InvalidToken):
    description = "token audience does not match this API"


class InvalidClaim(InvalidToken):
    description = "token claims are invalid"


class InsufficientScope(AuthError):
    """A valid token that lacks a scope (or organization) the route needs: 403."""

    status_code = 403
    error = "insufficient_scope"
    description = "insufficient scope"

    def __init__(self, required: Iterable[str] = (), description: str | None = None) -> None:
        self.required_scopes: tuple[str, ...] = tuple(required)
        super().__init__(description)


class KeySetUnavailable(AuthError):
    """No signing keys can be had from the issuer: a server-side outage, not a bad token.

    Answered with 503 and Retry-After (not 401) so M2M clients do not storm Logto for new tokens.
    """

    status_code = 503
    error = "temporarily_unavailable"
    description = "signing keys are temporarily unavailable"
    retry_after: int = 5

    def __init__(self, description: str | None = None, *, retry_after: float | None = None) -> None:
        if retry_after is not None:
            self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(description)


class SigningKeyNotYetKnown(KeySetUnavailable):
    """An unknown `kid` on a token possibly newer than our keys, while a refetch must wait.

    The key may have been published since the latest fetch (a rotation during a kid flood), so
    this is not a 401: a 401 makes M2M clients fetch new tokens, signed by that same new key.
    `retry_after` is the time left until the next refetch is allowed.
    """

    description = "token signed by a key not fetched yet; retry later"
