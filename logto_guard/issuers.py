"""Which issuers a verifier trusts, and which one a token names.

A Logto Cloud tenant answers on its default domain and on a custom domain, and the token's `iss`
follows the domain the client used; a SaaS API may accept several tenants. So a verifier can
trust several issuers, each with its own JWKS cache (as Spring Security's
`JwtIssuerAuthenticationManagerResolver` does). The token's unverified `iss` only *selects* the
key set; the signature check that follows is what makes the claim true. A token naming any other
issuer is refused here, before any key lookup or network I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .errors import ConfigurationError, InvalidIssuer
from .jwks_cache import JWKSCache


def resolve_issuers(
    issuer: str | Sequence[str] | None, endpoint: str | Sequence[str] | None
) -> tuple[str, ...]:
    """The issuers from `issuer=` or `endpoint=` (one string or a sequence; `endpoint + /oidc`)."""
    if (issuer is None) == (endpoint is None):
        raise ConfigurationError("give exactly one of issuer= or endpoint=")
    if endpoint is not None:
        return tuple(url.rstrip("/") + "/oidc" for url in _strings(endpoint, "endpoint"))
    assert issuer is not None
    return _strings(issuer, "issuer")


def _strings(value: str | Sequence[str], name: str) -> tuple[str, ...]:
    values = (value,) if isinstance(value, str) else tuple(value)
    if not values:
        raise ConfigurationError(f"{name} is empty: give one URL or a list of them")
    for item in values:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{name} {item!r} is empty or not a string")
    if len(set(values)) != len(values):
        raise ConfigurationError(f"{name} lists the same URL twice: {list(values)!r}")
    return values


class IssuerSet:
    """The trusted issuers, in configuration order (the first is the primary), with their keys."""

    def __init__(self, caches: Mapping[str, JWKSCache]) -> None:
        self._caches = dict(caches)
        self.issuers: tuple[str, ...] = tuple(self._caches)

    @property
    def primary(self) -> JWKSCache:
        return self._caches[self.issuers[0]]

    def select(self, iss: Any) -> JWKSCache:
        """The key set for the token's unverified `iss`; InvalidIssuer for anything else."""
        cache = self._caches.get(iss) if isinstance(iss, str) else None
        if cache is None:
            for other in self._caches.values():
                other.check_discovery_soon()  # names a wrong endpoint in the log; no key fetch
            raise InvalidIssuer()
        return cache

    def __iter__(self) -> Iterator[JWKSCache]:
        return iter(self._caches.values())

    def __len__(self) -> int:
        return len(self._caches)
