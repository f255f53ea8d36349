"""Compact JWS parsing, strict, before any cryptography (RFC 7515 §5.2, RFC 8725 §3).

Only one shape is accepted: three base64url segments with no padding, no foreign characters and
canonical trailing bits, under a size cap. JWE (five segments), JSON serialization and opaque
tokens fail here, which removes the whole JWE CVE family. The payload is parsed only after the
signature has been checked (`ParsedJWS.claims`), so unauthenticated input never reaches the
claims parser.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from typing import Any

from ._json import loads_object
from .errors import MalformedToken

DEFAULT_MAX_TOKEN_LENGTH = 8192

_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# The last character of a segment whose length is 2 or 3 (mod 4) carries unused bits that must
# be zero; otherwise several strings decode to the same bytes.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}


def b64url_decode(segment: str) -> bytes:
    """Decode one base64url segment already known to use only the URL-safe alphabet."""
    rem = len(segment) % 4
    if rem == 1 or (rem and segment[-1] not in _CANONICAL_LAST[rem]):
        raise MalformedToken()
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        raise MalformedToken() from None


@dataclass(frozen=True, slots=True)
class ParsedJWS:
    header: dict[str, Any]
    payload_segment: str
    signing_input: bytes
    signature: bytes

    def claims(self) -> dict[str, Any]:
        """Decode the payload; call only once the signature is known to be valid."""
        try:
            return loads_object(b64url_decode(self.payload_segment))
        except ValueError:
            raise MalformedToken("token claims are not a JSON object") from None


@functools.lru_cache(maxsize=64)
def _parse_header(segment: str) -> dict[str, Any]:
    """The header of a segment. Every token an issuer signs with one key has the same header
    segment, byte for byte, so the few in use are parsed once (a pure function of the segment:
    a flood of odd headers only evicts entries). Callers must not mutate the dict."""
    try:
        return loads_object(b64url_decode(segment))
    except ValueError:
        raise MalformedToken("token header is not a JSON object") from None


def parse_compact(token: str, max_length: int = DEFAULT_MAX_TOKEN_LENGTH) -> ParsedJWS:
    if len(token) > max_length:
        raise MalformedToken("token too large")
    if _COMPACT.fullmatch(token) is None:
        raise MalformedToken()
    header_segment, payload_segment, signature_segment = token.split(".")
    return ParsedJWS(
        header=_parse_header(header_segment),
        payload_segment=payload_segment,
        signing_input=f"{header_segment}.{payload_segment}".encode("ascii"),
        signature=b64url_decode(signature_segment),
    )
