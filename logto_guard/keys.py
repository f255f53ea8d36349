"""Turning a JWK Set into verification keys, each bound to exactly one algorithm (RFC 8725 §3.1).

Keys are parsed once per JWKS fetch, never per request. A key the token cannot misuse is one
whose algorithm the server decides: EC keys get the algorithm of their curve, RSA keys (Logto
publishes them without `alg`) get RS256 unless the JWK says otherwise. Keys that are for
encryption, symmetric, private, too small, off-curve or self-contradictory are skipped, so an
`oct` key can never turn into an HMAC secret.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from .errors import UnsupportedAlgorithm

logger = logging.getLogger("logto_guard.keys")

MAX_KID_LENGTH = 256
EC_CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_IMPLEMENTATIONS: dict[str, Algorithm] = get_default_algorithms()
_PRIVATE_REASON = "JWK carries private key material (refused; the issuer leaked a key?)"


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """A public key and the one algorithm it may be used with.

    The signature parameters (ECDSA with its hash, or the RSA padding) are built once per key:
    rebuilding them per token, as a generic JWT library does, costs more than every other
    non-cryptographic step of a verification together.
    """

    kid: str | None
    algorithm: str
    public_key: Any
    _params: Any = field(init=False, repr=False)
    _ec_size: int = field(init=False, repr=False)  # bytes of R (and of S); 0 for RSA

    def __post_init__(self) -> None:
        digest = _HASHES[self.algorithm[2:]]()
        family = self.algorithm[:2]
        ec_size = 0
        if family == "ES":
            params: Any = ec.ECDSA(digest)
            ec_size = (self.public_key.curve.key_size + 7) // 8
        elif family == "RS":
            params = (padding.PKCS1v15(), digest)
        else:  # PS: salt as long as the digest, like RFC 7518 §3.5 and PyJWT
            params = (padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_ec_size", ec_size)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        size = self._ec_size
        try:
            if size:
                # JWS carries raw R||S of a fixed length (RFC 7518 §3.4); anything else (DER, a
                # stripped byte) fails here. r = 0, s = 0 and values >= n fail in OpenSSL
                # (the CVE-2022-21449 class) as InvalidSignature, never as a crash.
                if len(signature) != 2 * size:
                    return False
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                self.public_key.verify(encode_dss_signature(r, s), signing_input, self._params)
            else:
                self.public_key.verify(signature, signing_input, *self._params)
        except InvalidSignature:
            return False
        return True


class KeySet:
    """The usable keys of one JWKS document, indexed for an O(1) lookup by (kid, alg)."""

    __slots__ = ("_by_id", "_kids")

    def __init__(self, keys: list[VerificationKey]) -> None:
        by_id: dict[tuple[str | None, str], VerificationKey | None] = {}
        for key in keys:
            # A kid-less token may use a key only when it is the single key of its algorithm;
            # a (kid, alg) pair listed twice is ambiguous and stays unusable (None).
            for ident in {(key.kid, key.algorithm), (None, key.algorithm)}:
                if ident not in by_id:
                    by_id[ident] = key
                    continue
                by_id[ident] = None
                if ident[0] is not None:
                    logger.warning("JWKS lists one kid twice for %s; refusing it", key.algorithm)
        self._by_id = by_id
        self._kids = frozenset(key.kid for key in keys)

    def __len__(self) -> int:
        return len(self._kids)

    @property
    def kids(self) -> frozenset[str | None]:
        return self._kids

    def find(self, kid: str | None, algorithm: str) -> VerificationKey | None:
        """The key for (kid, alg); None when unknown. Raises when the kid is known for another
        algorithm (algorithm confusion) or is ambiguous: refetching would not help either."""
        ident = (kid, algorithm)
        try:
            key = self._by_id[ident]
        except KeyError:
            if kid is not None and kid in self._kids:
                raise UnsupportedAlgorithm("token algorithm does not match its key") from None
            return None
        if key is None:
            raise UnsupportedAlgorithm("token key is ambiguous") from None
        return key


def parse_jwk(
    jwk: Mapping[str, Any], allowed_algorithms: Collection[str]
) -> VerificationKey | None:
    """One JWK to a key, or None (with a debug log) when it must not be used for tokens."""
    reason = _unusable_reason(jwk)
    if reason:
        # Private material in a public JWKS means the issuer leaked a key: say it loudly.
        level = logging.WARNING if reason == _PRIVATE_REASON else logging.DEBUG
        logger.log(level, "skipping JWK: %s", reason)
        return None
    kty = jwk["kty"]
    declared = jwk.get("alg")
    if kty == "EC":
        crv = jwk.get("crv")
        algorithm = EC_CURVE_ALGORITHMS.get(crv) if isinstance(crv, str) else None
        if algorithm is None or (declared is not None and declared != algorithm):
            logger.debug("skipping EC JWK: unsupported curve or alg/crv mismatch")
            return None
    else:
        algorithm = "RS256" if declared is None else declared
        if algorithm not in RSA_ALGORITHMS:
            logger.debug("skipping RSA JWK: alg %r is not an RSA signature algorithm", declared)
            return None
    if algorithm not in allowed_algorithms:
        logger.debug("skipping JWK: algorithm %s is not allowed", algorithm)
        return None
    impl = _IMPLEMENTATIONS[algorithm]
    try:
        public_key = impl.from_jwk(dict(jwk))
    except (InvalidKeyError, ValueError, TypeError, KeyError) as exc:
        logger.debug("skipping JWK: %s", type(exc).__name__)
        return None
    if isinstance(public_key, RSAPublicKey):
        numbers = public_key.public_numbers()
        if public_key.key_size < 2048 or numbers.e < 3:
            logger.debug("skipping RSA JWK: too weak")
            return None
    return VerificationKey(jwk.get("kid"), algorithm, public_key)


def _unusable_reason(jwk: Mapping[str, Any]) -> str:
    if not isinstance(jwk, Mapping):
        return "not an object"
    if jwk.get("kty") not in ("EC", "RSA"):
        return "key type is not EC or RSA"
    if jwk.get("use", "sig") != "sig":
        return "key is not for signatures"
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return "key_ops lacks verify"
    if _PRIVATE_MEMBERS.intersection(jwk):
        return _PRIVATE_REASON
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH):
        return "kid is not a short string"
    alg = jwk.get("alg")
    if alg is not None and not isinstance(alg, str):
        return "alg is not a string"
    return ""


def parse_jwks(
    document: Mapping[str, Any], allowed_algorithms: Collection[str], max_keys: int = 64
) -> KeySet:
    """A JWKS document to a KeySet; ValueError when the document itself is unusable."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise ValueError("JWKS has no 'keys' array")
    if len(keys) > max_keys:
        raise ValueError(f"JWKS has more than {max_keys} keys")
    parsed = [k for k in (_parse_or_skip(jwk, allowed_algorithms) for jwk in keys) if k]
    if not parsed:
        raise ValueError("JWKS has no usable signing key")
    return KeySet(parsed)


def _parse_or_skip(jwk: Any, allowed_algorithms: Collection[str]) -> VerificationKey | None:
    # One malformed JWK (odd member types a check above did not foresee) must not discard the
    # whole key set: skip it like any other unusable key.
    try:
        return parse_jwk(jwk, allowed_algorithms)
    except Exception as exc:
        logger.debug("skipping malformed JWK: %s", type(exc).__name__)
        return None
