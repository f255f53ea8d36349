"""The libraries a FastAPI user could pick instead of logto-guard, each set up as a resource server
must use it: the issuer's keys pre-loaded, one algorithm allowed, and `iss`, `aud`, `exp` and the
route's scope checked. Used by bench/compare.py (timing, conformance) and bench/server.py.

* PyJWT, as Logto's Python docs use it: `PyJWKClient(jwks_uri)` + `jwt.decode`, with
  `require=["exp", "iss", "aud"]` (the docs check the audience by hand; PyJWT does the same).
* joserfc (Authlib's author's JOSE library): `jwt.decode` on a `KeySet` + `JWTClaimsRegistry`.
* python-jose (what FastAPI's tutorial used for years): `jwt.decode` with the key of the
  header's `kid`, built once.
* Authlib's RFC 9068 validator (`JWTBearerTokenValidator`), the one peer that knows access
  tokens. It takes no algorithm list and joserfc's default allows ES256/RS256 only, so ES384
  needs joserfc's process-wide list extended (`allow_authlib_es384`).
* jwcrypto (Latchset, the fourth JOSE library on PyPI by downloads, used by e.g. FreeIPA and
  Keycloak clients): `jwt.JWT(..., check_claims=...)` on a `JWKSet`.

Every `verify(token)` returns the claims or raises; none of them caches a verified token, so a
reused token costs them what a first-seen one does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

REQUIRED_SCOPE = "read:products"


class ScopeMissing(Exception):
    pass


def require_scope(claims: Mapping[str, Any]) -> None:
    """The route's check, as each peer's user writes it: split the scope string on spaces."""
    scope = claims.get("scope")
    if not isinstance(scope, str) or REQUIRED_SCOPE not in scope.split(" "):
        raise ScopeMissing()


class PyJWTRecipe:
    name = "PyJWT (PyJWKClient + jwt.decode)"
    key = "pyjwt"

    def __init__(self, issuer: str, jwks_uri: str, audience: str, algorithm: str) -> None:
        import jwt

        self._jwt = jwt
        self.client = jwt.PyJWKClient(jwks_uri)
        self.issuer, self.audience, self.algorithms = issuer, audience, [algorithm]

    def verify(self, token: str) -> Mapping[str, Any]:
        signing_key = self.client.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = self._jwt.decode(
            token,
            signing_key.key,
            algorithms=self.algorithms,
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iss", "aud"]},
        )
        require_scope(claims)
        return claims


class Joserfc:
    name = "joserfc"
    key = "joserfc"

    def __init__(self, issuer: str, jwks: Mapping[str, Any], audience: str, algorithm: str) -> None:
        from joserfc import jwt
        from joserfc.jwk import KeySet

        self._jwt = jwt
        self.keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        self.claims = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
        )
        self.algorithms = [algorithm]

    def verify(self, token: str) -> Mapping[str, Any]:
        decoded = self._jwt.decode(token, self.keys, algorithms=self.algorithms)
        self.claims.validate(decoded.claims)
        require_scope(decoded.claims)
        return decoded.claims


class PythonJose:
    name = "python-jose"
    key = "jose"

    def __init__(self, issuer: str, jwks: Mapping[str, Any], audience: str, algorithm: str) -> None:
        from jose import jwk, jwt

        self._jwt = jwt
        self.keys = {k["kid"]: jwk.construct(k, algorithm) for k in jwks["keys"]}
        self.issuer, self.audience, self.algorithms = issuer, audience, [algorithm]

    def verify(self, token: str) -> Mapping[str, Any]:
        kid = self._jwt.get_unverified_header(token).get("kid")
        claims: dict[str, Any] = self._jwt.decode(
            token,
            self.keys[kid],
            algorithms=self.algorithms,
            audience=self.audience,
            issuer=self.issuer,
            options={"require_exp": True, "require_iss": True, "require_aud": True},
        )
        require_scope(claims)
        return claims


def allow_authlib_es384() -> None:
    """Authlib's validator calls joserfc's `jwt.decode` without an algorithm list, so only
    joserfc's "recommended" algorithms pass (HS256, RS256, ES256). Logto signs with ES384 by
    default: this adds it, for the whole process (the joserfc peer names its algorithm itself)."""
    from joserfc.jws import JWSRegistry

    if "ES384" not in JWSRegistry.recommended:
        JWSRegistry.recommended.append("ES384")


class AuthlibRFC9068:
    name = "Authlib (RFC 9068 validator)"
    key = "authlib"

    def __init__(self, issuer: str, jwks: Mapping[str, Any], audience: str, algorithm: str) -> None:
        from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
        from joserfc.jwk import KeySet

        if algorithm == "ES384":
            allow_authlib_es384()
        keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]

        class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
            def get_jwks(self) -> Any:
                return keys  # pre-loaded, as its docs suggest (a cache in front of jwks_uri)

        self.validator = Validator(issuer=issuer, resource_server=audience)

    def verify(self, token: str) -> Mapping[str, Any]:
        claims = self.validator.authenticate_token(token)
        self.validator.validate_token(claims, scopes=[REQUIRED_SCOPE], request=None)
        return dict(claims)


class Jwcrypto:
    name = "jwcrypto"
    key = "jwcrypto"

    def __init__(self, issuer: str, jwks: Mapping[str, Any], audience: str, algorithm: str) -> None:
        from jwcrypto import jwk, jwt

        self._jwt = jwt
        self.keys = jwk.JWKSet.from_json(json.dumps(dict(jwks)))
        self.check_claims = {"iss": issuer, "aud": audience, "exp": None}
        self.algorithms = [algorithm]

    def verify(self, token: str) -> Mapping[str, Any]:
        decoded = self._jwt.JWT(
            jwt=token, key=self.keys, algs=self.algorithms, check_claims=self.check_claims
        )
        claims: dict[str, Any] = json.loads(decoded.claims)
        require_scope(claims)
        return claims


PEER_CLASSES = (PyJWTRecipe, Joserfc, PythonJose, AuthlibRFC9068, Jwcrypto)


def build_peer(
    key: str, issuer: str, jwks_uri: str, jwks: Mapping[str, Any], audience: str, algorithm: str
) -> Any:
    """The peer named `key` (its class's `key`), keys loaded."""
    cls = next(c for c in PEER_CLASSES if c.key == key)
    if cls is PyJWTRecipe:
        return PyJWTRecipe(issuer, jwks_uri, audience, algorithm)
    make: Callable[..., Any] = cls
    return make(issuer, jwks, audience, algorithm)


def build_peers(
    issuer: str, jwks_uri: str, jwks: Mapping[str, Any], audience: str, algorithm: str
) -> list[Any]:
    """One of each, keys loaded (PyJWKClient fetches `jwks_uri` on its first call: the caller
    verifies one token with it before timing)."""
    return [build_peer(c.key, issuer, jwks_uri, jwks, audience, algorithm) for c in PEER_CLASSES]
