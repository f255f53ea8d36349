"""Shared pieces of the fuzz tests: hypothesis profiles, the event-loop runner, real-token
samples and the token-mutation strategies.

The profile comes from the environment: unset, a bounded run; `LOGTO_GUARD_FUZZ=long`, many
more examples:

    LOGTO_GUARD_FUZZ=long .venv/bin/python -m pytest tests/faults -q -k fuzz
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import string
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st

from logto_guard.errors import InvalidToken
from logto_guard.token import AccessToken
from logto_guard.verifier import TokenVerifier

from .bad_provider import decode_segment

# -- profiles ---------------------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,  # a refetch on a random kid may take a network round trip
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("fuzz", max_examples=250, **_COMMON)
settings.register_profile("long", max_examples=10_000, **_COMMON)
_PROFILE = os.environ.get("LOGTO_GUARD_FUZZ", "") or "fuzz"
if _PROFILE not in ("fuzz", "long"):
    raise pytest.UsageError(f"LOGTO_GUARD_FUZZ={_PROFILE!r}: use 'long' (or leave it unset)")
FUZZ = settings.get_profile(_PROFILE)

T = TypeVar("T")
B64URL = string.ascii_letters + string.digits + "-_"
P384_ORDER = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
    16,
)


@dataclass
class Sample:
    """A real token, the verifier that accepts it, and its decoded parts."""

    name: str
    token: str
    verifier: TokenVerifier
    header: bytes
    payload: bytes
    claims: dict[str, Any]
    algorithm: str


class Runner:
    """Drives coroutines on one event loop of this module (hypothesis tests are sync)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


def outcome(run: Runner, verifier: TokenVerifier, token: str) -> AccessToken | InvalidToken:
    """verify(); an InvalidToken is returned, any other exception fails the example."""
    try:
        result: AccessToken | InvalidToken = run(verifier.verify(token))
    except InvalidToken as exc:
        result = exc
    if currently_in_test_context():
        event(type(result).__name__)  # the mix of outcomes: --hypothesis-show-statistics
    return result


# -- strategies -------------------------------------------------------------------------------

junk_chars = st.one_of(
    st.sampled_from(B64URL),
    st.sampled_from(".=+/ \t\r\n\x00,\"'\\%~"),
    st.characters(),  # any code point but surrogates
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
HEADER_NAMES = ["alg", "typ", "kid", "crit", "cty", "b64", "jku", "jwk", "x5u", "x5c", "zip", "enc"]
CLAIM_NAMES = ["iss", "aud", "exp", "iat", "nbf", "sub", "client_id", "jti", "scope", "cnf"]


def encode_json(draw: st.DrawFn, obj: Any) -> bytes:
    """Any serialisation of obj: separators, key order, escapes, indentation, encodings."""
    text = json.dumps(
        obj,
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")])),
        sort_keys=draw(st.booleans()),
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, None, 0, 2])),
        allow_nan=True,
    )
    text = draw(st.sampled_from(["", " ", "\n"])) + text + draw(st.sampled_from(["", " ", "\n"]))
    return text.encode(draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "utf-32"])))


def _rejson(draw: st.DrawFn, raw: bytes, names: list[str]) -> bytes:
    obj = json.loads(raw)
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(names) | st.text(max_size=6))
        if draw(st.booleans()) and name in obj:
            del obj[name]
        else:
            obj[name] = draw(json_values)
    data = encode_json(draw, obj)
    if draw(st.integers(0, 9)) == 0:  # a duplicate member, appended by hand
        data = data.rstrip().removesuffix(b"}") + b', "%s": 1}' % names[0].encode()
    return data


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _high_s_twin(signature: str) -> str:
    """The other valid ECDSA signature (r, n - s) of the same P-384 input: a different
    signature segment over byte-identical header and payload."""
    raw = decode_segment(signature)
    r, s = int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big")
    twin = encode_dss_signature(r, P384_ORDER - s)
    r2, s2 = decode_dss_signature(twin)
    return b64(r2.to_bytes(48, "big") + s2.to_bytes(48, "big"))


@st.composite
def mutations(draw: st.DrawFn, sample: Sample, others: list[str]) -> str:
    """1-3 random edits of a real token."""
    token = sample.token
    for _ in range(draw(st.integers(1, 3))):
        op = draw(
            st.sampled_from(
                [
                    "flip",
                    "insert",
                    "delete",
                    "truncate",
                    "swap",
                    "dots",
                    "rejson_header",
                    "rejson_payload",
                    "splice",
                    "case",
                    "pad",
                    "twin",
                ]
            )
        )
        n = len(token)
        parts = token.split(".")
        if op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            token = token[:i] + draw(junk_chars) + token[i + 1 :]
        elif op == "insert":
            i = draw(st.integers(0, n))
            token = token[:i] + draw(st.text(junk_chars, min_size=1, max_size=3)) + token[i:]
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            token = token[:i] + token[i + draw(st.integers(1, 8)) :]
        elif op == "truncate":
            token = token[: draw(st.integers(0, max(n - 1, 0)))]
        elif op == "swap":
            token = ".".join(draw(st.permutations(parts)))
        elif op == "dots":
            where = draw(st.sampled_from(["double", "lead", "trail", "extra"]))
            if where == "double" and "." in token:
                k = draw(st.integers(0, token.count(".") - 1))
                pieces = token.split(".")
                token = ".".join(pieces[: k + 1]) + ".." + ".".join(pieces[k + 1 :])
            elif where == "lead":
                token = "." + token
            elif where == "trail":
                token = token + "."
            else:
                token = token + "." + draw(st.text(st.sampled_from(B64URL), max_size=12))
        elif op in ("rejson_header", "rejson_payload") and len(parts) == 3:
            index = 0 if op == "rejson_header" else 1
            try:
                raw = decode_segment(parts[index])
                json.loads(raw)
            except ValueError:
                continue
            names = HEADER_NAMES if index == 0 else CLAIM_NAMES
            parts[index] = b64(_rejson(draw, raw, names))
            token = ".".join(parts)
        elif op == "splice" and len(parts) == 3:
            donor = draw(st.sampled_from(others)).split(".")
            index = draw(st.integers(0, 2))
            parts[index] = donor[index]
            token = ".".join(parts)
        elif op == "case" and n:
            i = draw(st.integers(0, n - 1))
            token = token[:i] + token[i].swapcase() + token[i + 1 :]
        elif op == "pad":
            suffix = draw(st.sampled_from(["=", "==", " ", "\n", "\r\n", "\x00", "\u200b"]))
            i = draw(st.sampled_from([0, len(parts[0]), n]))
            token = token[:i] + suffix + token[i:]
        elif op == "twin" and sample.algorithm == "ES384" and len(parts) == 3:
            try:
                parts[2] = _high_s_twin(parts[2])
            except ValueError:
                continue
            token = ".".join(parts)
    return token
