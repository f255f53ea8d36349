"""Signing keys for the local issuer, shaped as Logto generates and publishes them.

EC P-384 by default (ES384), RSA after a rotation (RS256, published without `alg`), and the
newer EC curves; `kid` is the RFC 7638 thumbprint, as in Logto.
"""

from __future__ import annotations

import base64
import hashlib
import json
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
