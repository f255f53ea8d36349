"""The verifier's interface answering from a table: unit tests of the framework adapters.

The flow tests use the real `TokenVerifier` against a real provider; these tests only need
"this string is a valid token with these claims" and "that one fails like so".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logto_guard.errors import InvalidSignature
from logto_guard.token import AccessToken

ISSUER = "https://tenant.logto.app/oidc"
SHOP = "https://shopping.api"


def access_token(
    scope: str = "read:products", sub: str = "app", organization_id: str | None = None
) -> AccessToken:
    """Logto-shaped claims for an M2M app, as the verifier would return them."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": SHOP,
        "sub": sub,
        "client_id": sub,
        "scope": scope,
        "iat": 1_700_000_000,
        "exp": 4_000_000_000,
        "jti": f"jti-{sub}",
    }
    if organization_id is not None:
        claims["organization_id"] = organization_id
    return AccessToken.from_claims(claims, frozenset(scope.split(" ")) - {""})


class TableVerifier:
    """`verify(token)` looks the token up: an `AccessToken` is returned, an exception raised,
    anything else is a bad signature. Records what it was asked and how often it was closed."""

    issuer = ISSUER
    token_endpoint = ISSUER + "/token"

    def __init__(
        self,
        tokens: Mapping[str, AccessToken | BaseException] | None = None,
        audiences: tuple[str, ...] = (SHOP,),
    ) -> None:
        self.tokens = dict(tokens or {})
        self.audiences = audiences
        self.seen: list[str] = []
        self.closed = 0

    async def verify(self, token: str) -> AccessToken:
        self.seen.append(token)
        found = self.tokens.get(token)
        if found is None:
            raise InvalidSignature()
        if isinstance(found, BaseException):
            raise found
        return found

    async def aclose(self) -> None:
        self.closed += 1
