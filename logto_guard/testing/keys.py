"""Signing keys for the local issuer, shaped as Logto generates and publishes them.

EC P-384 by default (ES384), RSA after a rotation (RS256, published without `alg`), and the
newer EC curves; `kid` is the RFC 7638 thumbprint, as in Logto. `KeyRing` is the published set
and its rotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

Algorithm = Literal["ES256", "ES384", "ES512", "RS256"]
"""Signing algorithms Logto uses: EC P-384 by default, RSA after a rotation, newer EC curves."""

ALGORITHMS: frozenset[str] = frozenset(get_args(Algorithm))
# name -> (curve, JWK crv, hash, coordinate/scalar size in bytes)
_EC_PARAMS: dict[str, tuple[type[ec.EllipticCurve], str, type[hashes.HashAlgorithm], int]] = {
    "ES256": (ec.SECP256R1, "P-256", hashes.SHA256, 32),
    "ES384": (ec.SECP384R1, "P-384", hashes.SHA384, 48),
    "ES512": (ec.SECP521R1, "P-521", hashes.SHA512, 66),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def int_bytes(value: int, length: int | None = None) -> bytes:
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint: Logto's `kid` for every key it generates."""
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class SigningKey:
    """One signing key with the public JWK Logto would publish for it."""

    kid: str
    algorithm: str
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = field(repr=False)
    public_jwk: dict[str, str]

    @classmethod
    def generate(cls, algorithm: str, rsa_key_size: int) -> SigningKey:
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"unsupported algorithm {algorithm!r}; use one of {sorted(ALGORITHMS)}"
            )
        jwk: dict[str, str]
        private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if algorithm == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_key_size)
            rsa_numbers = private_key.public_key().public_numbers()
            # Logto publishes RSA keys with `use` but without `alg`.
            jwk = {
                "kty": "RSA",
                "e": b64url(int_bytes(rsa_numbers.e)),
                "n": b64url(int_bytes(rsa_numbers.n)),
            }
        else:
            curve, crv, _hash, size = _EC_PARAMS[algorithm]
            private_key = ec.generate_private_key(curve())
            ec_numbers = private_key.public_key().public_numbers()
            jwk = {
                "kty": "EC",
                "crv": crv,
                "x": b64url(int_bytes(ec_numbers.x, size)),
                "y": b64url(int_bytes(ec_numbers.y, size)),
            }
        kid = thumbprint(jwk)
        # Logto's member order: kty, use, kid, then alg (EC only: RSA keys come without it),
        # then the key's own members (recorded in tests/fixtures/real_logto/).
        published = {"kty": jwk["kty"], "use": "sig", "kid": kid}
        if jwk["kty"] == "EC":
            published["alg"] = algorithm
        published.update((name, value) for name, value in jwk.items() if name != "kty")
        return cls(kid=kid, algorithm=algorithm, private_key=private_key, public_jwk=published)

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        _curve, _crv, hash_cls, size = _EC_PARAMS[self.algorithm]
        der = self.private_key.sign(message, ec.ECDSA(hash_cls()))
        r, s = decode_dss_signature(der)
        return int_bytes(r, size) + int_bytes(s, size)  # JWS wants raw R||S (RFC 7518 §3.4)


class KeyRing:
    """A tenant's published signing keys: one signs, the others stay in the JWKS.

    Logto's rotation is this set's life: a new key is added (staged), promoted to sign, and
    the previous one removed once no token it signed is in use. Thread-safe.
    """

    def __init__(self, algorithm: Algorithm, rsa_key_size: int) -> None:
        self.rsa_key_size = rsa_key_size
        self._lock = threading.RLock()
        first = SigningKey.generate(algorithm, rsa_key_size)
        self._keys: dict[str, SigningKey] = {first.kid: first}
        self._signing_kid = first.kid
        self._signed = False

    @property
    def signing_kid(self) -> str:
        """The key new tokens are signed with (Logto's "current" key)."""
        return self._signing_kid

    @property
    def algorithm(self) -> str:
        """The algorithm of the current signing key."""
        with self._lock:
            return self._keys[self._signing_kid].algorithm

    @property
    def kids(self) -> tuple[str, ...]:
        """Every published key id in JWKS order: the signing key first, then oldest first."""
        with self._lock:
            return tuple(key.kid for key in self._published())

    def _key(self, kid: str | None) -> SigningKey:
        with self._lock:
            key = self._keys.get(kid or self._signing_kid)
        if key is None:
            raise KeyError(f"no published key {kid!r}")
        return key

    def _published(self) -> list[SigningKey]:
        signing = self._keys[self._signing_kid]
        return [signing, *(key for key in self._keys.values() if key is not signing)]

    def add_key(self, algorithm: Algorithm | None = None) -> str:
        """Publish a new key without signing with it yet (a staged rotation's "next" key)."""
        key = SigningKey.generate(algorithm or self.algorithm, self.rsa_key_size)
        with self._lock:
            self._keys[key.kid] = key
        return key.kid

    def promote(self, kid: str) -> None:
        """Sign new tokens with a published key; the old one stays published."""
        with self._lock:
            if kid not in self._keys:
                raise KeyError(f"no published key {kid!r}")
            self._signing_kid = kid

    def remove_key(self, kid: str) -> None:
        """Unpublish a key: tokens it signed no longer verify once a verifier refetches."""
        with self._lock:
            if kid not in self._keys:
                raise KeyError(f"no published key {kid!r}")
            if kid == self._signing_kid:
                raise ValueError("cannot remove the signing key; promote or rotate first")
            del self._keys[kid]

    def rotate(self, algorithm: Algorithm | None = None) -> str:
        """Logto's "rotate": a new current key; the previous stays published until removed."""
        kid = self.add_key(algorithm)
        self.promote(kid)
        return kid

    def jwks(self) -> dict[str, Any]:
        """The public JWK set, as `/oidc/jwks` serves it."""
        with self._lock:
            return {"keys": [dict(key.public_jwk) for key in self._published()]}

    def private_key(self, kid: str | None = None) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        """A signing key, for tests that build tokens by other means."""
        with self._lock:
            return self._keys[kid or self._signing_kid].private_key

    def sign(
        self, header: Mapping[str, Any], claims: Mapping[str, Any], *, kid: str | None = None
    ) -> str:
        """Sign header and claims exactly as given (no defaults), with key `kid` or the current.

        The signature always uses the key's own algorithm, whatever `header["alg"]` says, so a
        test can forge an alg-confusion token on purpose.
        """
        key = self._key(kid)
        with self._lock:
            self._signed = True
        signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(claims))}"
        signature = key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"
