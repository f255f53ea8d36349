"""keys.py: ROCA-weak RSA keys (CVE-2017-15361) are refused, once per key, by their kid."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from logto_guard import keys
from logto_guard.jwks_cache import DEFAULT_ALGORITHMS
from logto_guard.jws import b64url_decode
from logto_guard.keys import VerificationKey, is_roca_weak, parse_jwk, parse_jwks
from logto_guard.testing import LocalIssuer

FIXTURES = Path(__file__).parent.parent / "fixtures"
ROCA = json.loads((FIXTURES / "wycheproof" / "jws_rsa_roca_key.json").read_text())
ROCA_JWK: dict[str, Any] = ROCA["public"]["keys"][0]


def modulus(jwk: dict[str, Any]) -> int:
    return int.from_bytes(b64url_decode(jwk["n"]), "big")


def recorded_logto_rsa_jwk() -> dict[str, Any]:
    doc = json.loads((FIXTURES / "real_logto" / "06-rotation-rsa-and-back.json").read_text())
    for item in doc["exchanges"]:
        if item["id"] == "jwks_after_rsa":
            found: dict[str, Any] = next(
                k for k in json.loads(item["response"]["body_raw"])["keys"] if k["kty"] == "RSA"
            )
            return found
    raise AssertionError("jwks_after_rsa is recorded in 06")


def test_the_wycheproof_key_is_otherwise_a_usable_rs256_key() -> None:
    """Without the ROCA check this key would verify tcId 7's signature: the check matters."""
    (case,) = ROCA["tests"]
    assert (case["tcId"], case["comment"], case["result"]) == (
        7,
        "rejectsKeyWithRocaVulnerability",
        "invalid",
    )
    public_key = RSAAlgorithm.from_jwk(json.dumps(ROCA_JWK))
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= 2048
    header, payload, signature = case["jws"].split(".")
    key = VerificationKey(ROCA_JWK["kid"], "RS256", public_key)
    assert key.verify(f"{header}.{payload}".encode(), b64url_decode(signature))
    assert is_roca_weak(modulus(ROCA_JWK))


def test_a_roca_key_is_skipped_with_a_warning_naming_its_kid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="logto_guard.keys"):
        assert parse_jwk(ROCA_JWK, DEFAULT_ALGORITHMS) is None
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'kid-rsa-roca-sign'" in record.getMessage()
    assert "ROCA" in record.getMessage()


def test_a_roca_key_next_to_good_keys_leaves_only_the_good_ones() -> None:
    issuer = LocalIssuer()
    document = {"keys": [ROCA_JWK, *issuer.jwks()["keys"]]}
    key_set = parse_jwks(document, DEFAULT_ALGORITHMS)
    assert key_set.kids == {issuer.signing_kid}
    assert key_set.find("kid-rsa-roca-sign", "RS256") is None
    with pytest.raises(ValueError, match="no usable signing key"):
        parse_jwks({"keys": [ROCA_JWK]}, DEFAULT_ALGORITHMS)


def test_no_false_positive_on_the_recorded_logto_rsa_key() -> None:
    jwk = recorded_logto_rsa_jwk()
    assert not is_roca_weak(modulus(jwk))
    parsed = parse_jwk(jwk, DEFAULT_ALGORITHMS)
    assert parsed is not None and parsed.algorithm == "RS256"


@pytest.mark.parametrize("size", [2048, 2048, 2048, 3072, 4096])
def test_no_false_positive_on_freshly_generated_keys(size: int) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=size)
    assert not is_roca_weak(key.public_key().public_numbers().n)


def test_the_fingerprint_is_specific() -> None:
    n = modulus(ROCA_JWK)
    # Moving the modulus off the 65537 subgroup for any one small prime clears the mark.
    assert not is_roca_weak(n + 2 * 3 * 5 * 7)  # n mod 11 changes, the rest may not
    assert not all(is_roca_weak(n + 2 * k) for k in range(1, 20))


async def test_checked_once_per_key_not_per_token(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = keys.is_roca_weak

    def counting(n: int) -> bool:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(keys, "is_roca_weak", counting)
    issuer = LocalIssuer(algorithm="RS256")
    verifier = issuer.verifier("https://shopping.api")
    try:
        for _ in range(5):
            token = issuer.mint(audience="https://shopping.api")  # five distinct tokens
            assert (await verifier.verify(token)).client_id == "m2m-app"
    finally:
        await verifier.aclose()
    assert len(calls) == 1
