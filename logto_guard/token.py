"""The verified access token handed to routes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

ORGANIZATION_AUDIENCE_PREFIX = "urn:logto:organization:"


def parse_scope(value: str) -> frozenset[str]:
    """Split an RFC 6749 §3.3 scope string on U+0020 only (tabs are not delimiters)."""
    return frozenset(part for part in value.split(" ") if part)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """Claims of a token whose signature and RFC 9068 §4 checks have passed.

    `scopes` is what Starlette's `requires()` reads from `request.auth`, so this object can be
    the request's `auth` as is.
    """

    sub: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    issuer: str
    expires_at: float
    issued_at: float
    jti: str
    organization_id: str | None
    claims: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_claims(cls, claims: dict[str, Any], scopes: frozenset[str]) -> AccessToken:
        """Build from claims the verifier has already type-checked."""
        aud = claims["aud"]
        audience = (aud,) if isinstance(aud, str) else tuple(aud)
        org = claims.get("organization_id")
        if org is None:
            org = next(
                (
                    a[len(ORGANIZATION_AUDIENCE_PREFIX) :]
                    for a in audience
                    if a.startswith(ORGANIZATION_AUDIENCE_PREFIX)
                ),
                None,
            )
        return cls(
            sub=claims["sub"],
            client_id=claims["client_id"],
            scopes=scopes,
            audience=audience,
            issuer=claims["iss"],
            expires_at=claims["exp"],
            issued_at=claims["iat"],
            jti=claims["jti"],
            organization_id=org,
            claims=MappingProxyType(claims),
        )

    @property
    def is_m2m(self) -> bool:
        """Logto's own rule: an app's token has `sub == client_id` (no user behind it)."""
        return self.sub == self.client_id

    def has_scopes(self, required: Iterable[str]) -> bool:
        return self.scopes.issuperset(required)

    def has_any_scope(self, candidates: Iterable[str]) -> bool:
        return not self.scopes.isdisjoint(candidates)
