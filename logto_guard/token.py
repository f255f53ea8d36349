"""The verified access token handed to routes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

ORGANIZATION_AUDIENCE_PREFIX = "urn:logto:organization:"


def parse_scope(value: str) -> frozenset[str]:
    """Split an RFC 6749 §3.3 scope string on U+0020 only (tabs are not delimiters)."""
    return frozenset(part for part in value.split(" ") if part)


class FrozenDict(dict[str, Any]):
    """A JSON object no one can change: every mutator raises TypeError.

    A dict subclass, not a `MappingProxyType`, so `json.dumps`, Starlette's `JSONResponse` and
    FastAPI's encoder take it as the object it is. `dict(claims)` gives a mutable shallow copy.
    """

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("token claims are read-only")

    __setitem__ = __delitem__ = __ior__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly

    def __reduce__(self) -> tuple[Any, ...]:  # copy, deepcopy and pickle rebuild it frozen
        return (type(self), (dict(self),))


class FrozenList(list[Any]):
    """A JSON array no one can change (a list, so it compares equal to one and is JSON)."""

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("token claims are read-only")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _readonly
    append = extend = insert = remove = pop = clear = sort = reverse = _readonly

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self),))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def freeze(value: Any) -> Any:
    """A deeply read-only copy of parsed JSON: objects become FrozenDict, arrays FrozenList."""
    if isinstance(value, dict):
        return FrozenDict({k: v if type(v) in _SCALARS else freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList([v if type(v) in _SCALARS else freeze(v) for v in value])
    return value


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
            # Frozen deeply: a cached token's claims are shared by every request that sends it.
            claims=freeze(claims),
        )

    @property
    def is_m2m(self) -> bool:
        """Logto's own rule: an app's token has `sub == client_id` (no user behind it)."""
        return self.sub == self.client_id

    def has_scopes(self, required: str | Iterable[str]) -> bool:
        """Whether the token has every one of `required` (a single string is one scope)."""
        return self.scopes.issuperset((required,) if isinstance(required, str) else required)

    def has_any_scope(self, candidates: str | Iterable[str]) -> bool:
        """Whether the token has at least one of `candidates` (a single string is one scope)."""
        return not self.scopes.isdisjoint(
            (candidates,) if isinstance(candidates, str) else candidates
        )
