"""Access-token verification, framework-free: RFC 9068 §4 as a checklist.

`TokenVerifier.verify` runs the steps in the order an attacker pays for them: shape and size,
header (algorithm allow-list, `typ`, `crit`), the unverified `iss` (which picks the issuer's
key set) and `aud` (tokens of other tenants or APIs cost no key lookup), key lookup,
signature, and only then the claims (`iss`, `aud`, `exp`, `nbf`, `iat`, required members,
`scope`). Nothing read before the signature grants anything. PyJWT provides the signature
primitive; everything around it is done here because PyJWT alone accepts tokens a resource
server must refuse (no `typ` check, a missing or string `exp`, duplicate claim names, UTF-16
JSON...).

M2M clients reuse one token for up to an hour, so tokens that passed are kept in a bounded cache
until their `exp`, from their second verification on (a token seen once never enters it: scans
and one-off tokens cost no cache churn). A hit still re-checks expiry and that the key set it
was verified with is still the current one (a JWKS change drops every entry, so a removed key's
tokens go through the full check and fail); the per-route scope check always runs afterwards, in
the framework adapter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from . import telemetry
from ._lru import LRUCache
from .errors import (
    ConfigurationError,
    ExpiredToken,
    ImmatureToken,
    InvalidAudience,
    InvalidClaim,
    InvalidIssuer,
    InvalidSignature,
    InvalidTokenType,
    MalformedToken,
    UnsupportedAlgorithm,
)
from .issuers import IssuerSet, resolve_issuers
from .jwks_cache import DEFAULT_ALGORITHMS, JWKSCache
from .jws import DEFAULT_MAX_TOKEN_LENGTH, parse_compact
from .keys import MAX_KID_LENGTH, KeySet
from .token import AccessToken, parse_scope

ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_REQUIRED_STRINGS = ("sub", "client_id", "jti")
_FORBIDDEN_HEADERS = ("crit", "cty")

_Verified = tuple[AccessToken, float, KeySet, JWKSCache]


class TokenVerifier:
    """Verifies Logto access tokens for one or more issuers and one or more API identifiers.

    `endpoint` is the Logto URL users know (`https://tenant.logto.app`); the issuer is
    `endpoint + "/oidc"`. Give `issuer` instead for a custom layout; it is compared exactly.
    Either may be a list (custom domains, several tenants): each issuer gets its own JWKS cache
    and the token's `iss` picks one. `issuer`, `jwks` and `token_endpoint` are the first's.
    """

    #: Every token it has not verified before goes through `parse_compact`, whose alphabet
    #: (base64url and dots) is a subset of RFC 6750's b64token, and only such tokens are cached:
    #: the Bearer layer need not scan the token again on every request (`_asgi.authenticate`).
    checks_token_syntax = True

    def __init__(
        self,
        issuer: str | Sequence[str] | None = None,
        *,
        endpoint: str | Sequence[str] | None = None,
        audience: str | Sequence[str],
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        leeway: float = 60.0,
        jwks: JWKSCache | Sequence[JWKSCache] | None = None,
        jwks_uri: str | None = None,
        allow_insecure_http: bool = False,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        issuers = resolve_issuers(issuer, endpoint)
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not audiences or not all(isinstance(a, str) and a.strip() for a in audiences):
            raise ConfigurationError("audience must be one or more non-empty API identifiers")
        if not (math.isfinite(leeway) and 0 <= leeway <= 300):
            raise ConfigurationError("leeway must be between 0 and 300 seconds")
        bad = {a for a in algorithms if a == "none" or a.startswith("HS")}
        if bad or not algorithms:
            raise ConfigurationError("algorithms must be asymmetric signature algorithms")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError(
                f"cache_size must be 0 (no verified-token cache) or more, not {cache_size!r}"
            )
        if jwks_uri is not None and len(issuers) > 1:
            raise ConfigurationError("jwks_uri= needs a single issuer (give jwks= caches instead)")

        self.audiences = audiences
        self._audience_set = frozenset(audiences)
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.max_token_length = max_token_length
        self._clock = clock
        given = (jwks,) if isinstance(jwks, JWKSCache) else tuple(jwks or ())
        caches = {cache.issuer: cache for cache in given}
        if stray := sorted(set(caches) - set(issuers)):
            raise ConfigurationError(f"JWKS cache for an issuer not configured: {stray[0]!r}")
        self._issuers = IssuerSet(
            {
                iss: caches.get(iss)
                or JWKSCache(
                    iss,
                    jwks_uri=jwks_uri,
                    algorithms=self.algorithms,
                    allow_insecure_http=allow_insecure_http,
                )
                for iss in issuers
            }
        )
        self.issuers: tuple[str, ...] = issuers
        self.issuer = issuers[0]
        self.jwks = self._issuers.primary
        # token -> (claims, deadline = exp + leeway, key set that held the signing key, its
        # cache). An LRU, not a TTL cache: the hit path checks the deadline itself, which is
        # several times cheaper than TLRUCache's bookkeeping, and expired entries age out.
        self._verified: LRUCache[str, _Verified] | None = (
            LRUCache(cache_size) if cache_size else None
        )

    @property
    def token_endpoint(self) -> str:
        """Logto's token endpoint of the primary issuer (its layout is fixed: issuer + /token)."""
        return self.issuer + "/token"

    @property
    def jwks_caches(self) -> tuple[JWKSCache, ...]:
        """One JWKS cache per configured issuer, in configuration order."""
        return tuple(self._issuers)

    async def verify(self, token: str) -> AccessToken:
        """The claims of a valid access token; raises an `AuthError` subclass otherwise."""
        cached = self._verified.get(token) if self._verified is not None else None
        # A hit needs the same key set (a JWKS change that drops keys replaces it) and time left.
        if cached is not None and cached[2] is cached[3].current() and self._clock() < cached[1]:
            return cached[0]
        return await self._verify_signed(token)

    async def _verify_signed(self, token: str) -> AccessToken:
        telemetry.hooks.cache_miss()
        jws = parse_compact(token, self.max_token_length)
        algorithm, kid = self._check_header(jws.header)
        claims = jws.claims()
        # Unverified iss and aud only refuse (never grant): no key lookup, no fetch for tokens
        # of other tenants or other APIs. The signed claims are checked again below.
        jwks = self._issuers.select(claims.get("iss"))
        self._check_audience(claims.get("aud"))
        key = await jwks.get_key(kid, algorithm, min_age=self._min_age(claims))
        keys = jwks.keys
        if not key.verify(jws.signing_input, jws.signature):
            raise InvalidSignature()
        access_token = self._check_claims(claims, jwks.issuer)
        if keys is not None and self._verified is not None:  # cached from its second sighting
            deadline = access_token.expires_at + self.leeway
            self._verified.offer(token, (access_token, deadline, keys, jwks))
        return access_token

    def _min_age(self, claims: dict[str, Any]) -> float | None:
        """How old the token is at least (its unverified iat, skew included), for the cache."""
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, (int, float)):
            return None
        try:
            issued = float(iat)
        except OverflowError:  # an integer beyond float range: refused later, as a claim
            return None
        return self._clock() - issued - self.leeway if math.isfinite(issued) else None

    # -- the checklist ------------------------------------------------------------------------

    def _check_header(self, header: dict[str, Any]) -> tuple[str, str | None]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise UnsupportedAlgorithm()
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidTokenType()
        # crit: we understand no extension (RFC 7515 §4.1.11); cty: no nested JWTs.
        if any(name in header for name in _FORBIDDEN_HEADERS):
            raise MalformedToken("token header uses an unsupported extension")
        if header.get("b64", True) is not True:
            raise MalformedToken("token payload must be base64url encoded (b64)")
        kid = header.get("kid")
        if "kid" in header and (not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH):
            raise MalformedToken("token kid is invalid")
        # jku, x5u, jwk, x5c are never read: keys come from the issuer's JWKS only.
        return alg, kid

    def _check_claims(self, claims: dict[str, Any], issuer: str) -> AccessToken:
        if claims.get("iss") != issuer:
            raise InvalidIssuer()
        self._check_audience(claims.get("aud"))
        now = self._clock()
        exp = _numeric_date(claims, "exp")
        if exp is None:
            raise InvalidClaim("token has no exp claim")
        if now >= exp + self.leeway:
            raise ExpiredToken()
        iat = _numeric_date(claims, "iat")
        if iat is None:
            raise InvalidClaim("token has no iat claim")
        if iat > now + self.leeway:
            raise ImmatureToken("token issued in the future")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and nbf > now + self.leeway:
            raise ImmatureToken()
        for name in _REQUIRED_STRINGS:
            if not isinstance(claims.get(name), str):
                raise InvalidClaim(f"token {name} claim is missing or not a string")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidClaim("token scope claim is not a string")
        org = claims.get("organization_id")
        if org is not None and not isinstance(org, str):
            raise InvalidClaim("token organization_id claim is not a string")
        if "cnf" in claims:
            # A sender-constrained token (DPoP, mTLS) must not be accepted as a bearer token.
            raise InvalidClaim("token is sender-constrained (cnf), bearer use is not allowed")
        return AccessToken.from_claims(claims, parse_scope(scope))

    def _check_audience(self, aud: Any) -> None:
        if isinstance(aud, str):
            ok = aud in self._audience_set
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            ok = not self._audience_set.isdisjoint(aud)
        else:
            ok = False
        if not ok:
            raise InvalidAudience()

    async def aclose(self) -> None:
        for jwks in self._issuers:
            await jwks.aclose()


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """RFC 7519 §2 NumericDate: a finite JSON number (a bool is not one, nor a string)."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidClaim(f"token {name} claim is not a number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        finite = False
    if not finite:
        raise InvalidClaim(f"token {name} claim is not a finite number")
    return value
