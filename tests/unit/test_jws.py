"""Strict compact-JWS parsing: one shape only, before any cryptography."""

from __future__ import annotations

import base64
import json

import pytest

from logto_guard.errors import MalformedToken
from logto_guard.jws import b64url_decode, parse_compact


def seg(data: bytes | dict[str, object]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


HEADER = seg({"alg": "ES384", "typ": "at+jwt", "kid": "k"})
PAYLOAD = seg({"iss": "x"})
SIG = seg(b"\x01" * 96)


def test_parses_header_and_keeps_signing_input() -> None:
    jws = parse_compact(f"{HEADER}.{PAYLOAD}.{SIG}")
    assert jws.header == {"alg": "ES384", "typ": "at+jwt", "kid": "k"}
    assert jws.signing_input == f"{HEADER}.{PAYLOAD}".encode()
    assert jws.signature == b"\x01" * 96
    assert jws.claims() == {"iss": "x"}


@pytest.mark.parametrize(
    "token",
    [
        f"{HEADER}.{PAYLOAD}",  # 2 segments
        f"{HEADER}.{PAYLOAD}.{SIG}.{SIG}",  # 4 segments
        f"{HEADER}.{PAYLOAD}.{SIG}.{SIG}.{SIG}",  # JWE shape
        f"{HEADER}.{PAYLOAD}.",  # stripped signature
        f"{HEADER}.{PAYLOAD}.{SIG}=",  # padding
        f"{HEADER}.{PAYLOAD}.{SIG[:-2]}+/",  # standard alphabet
        f"{HEADER}.{PAYLOAD}.{SIG} ",  # whitespace
        f"{HEADER}.{PAYLOAD}.{SIG}\n",
        f"{HEADER}.{PAYLOAD}.{SIG}!!",
        "opaque-token-without-dots",
        "",
        '{"payload":"x","signatures":[]}',  # JSON serialization
        f"{HEADER}.{PAYLOAD}.{SIG}é",
    ],
)
def test_rejects_other_shapes(token: str) -> None:
    with pytest.raises(MalformedToken):
        parse_compact(token)


def test_size_cap_before_decoding() -> None:
    with pytest.raises(MalformedToken, match="too large"):
        parse_compact(f"{HEADER}.{'A' * 9000}.{SIG}")


def test_non_canonical_trailing_bits_rejected() -> None:
    assert b64url_decode("QQ") == b"A"
    with pytest.raises(MalformedToken):
        b64url_decode("QR")  # same bytes, non-zero unused bits
    with pytest.raises(MalformedToken):
        b64url_decode("QUJ")  # "AB" is "QUI"
    with pytest.raises(MalformedToken):
        b64url_decode("QUJDR")  # length 1 mod 4 cannot be base64


@pytest.mark.parametrize(
    "header",
    [
        b'{"alg":"ES384","alg":"none"}',  # duplicate names
        b"[1,2]",  # not an object
        b'"string"',
        b"42",
        b'{"alg": NaN}',
        b'{"alg":"ES384"} trailing',
        '{"alg":"ES384"}'.encode("utf-16"),  # UTF-16 is not UTF-8
        b"\xef\xbb\xbf{}",  # BOM
        b'{"a":"\xff"}',  # invalid UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
    ],
)
def test_strict_json_header(header: bytes) -> None:
    with pytest.raises(MalformedToken):
        parse_compact(f"{seg(header)}.{PAYLOAD}.{SIG}", max_length=10**7)


def test_payload_is_parsed_strictly_too() -> None:
    duplicated = seg(b'{"exp":1,"exp":2}')
    jws = parse_compact(f"{HEADER}.{duplicated}.{SIG}")
    with pytest.raises(MalformedToken):
        jws.claims()
