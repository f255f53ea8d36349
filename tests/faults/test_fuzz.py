"""Hypothesis over tokens: the verifier accepts the intact token and refuses everything else
with an `InvalidToken` subclass, never another exception (never a 500, never a 503 while the
keys are healthy).

Three sources of real tokens: the real oidc-provider (ES384, session fixture) and the loopback
`BadProvider` in health (ES384 and RS256). One warm verifier per source is reused across
examples; the async verifier is driven on an event loop of the test session (`run`).

Bounded by default (the file runs in well under 20 s). For a long run:

    LOGTO_GUARD_FUZZ=long .venv/bin/python -m pytest tests/faults -q -k fuzz
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from logto_guard.errors import InvalidToken
from logto_guard.jwks_cache import DEFAULT_ALGORITHMS
from logto_guard.keys import parse_jwk, parse_jwks
from logto_guard.token import AccessToken

from .bad_provider import API, BadProvider, decode_segment, sign_segments
from .fuzzing import (
    B64URL,
    CLAIM_NAMES,
    FUZZ,
    HEADER_NAMES,
    Runner,
    Sample,
    b64,
    encode_json,
    json_values,
    junk_chars,
    mutations,
    outcome,
)

TYPES = frozenset({"at+jwt", "application/at+jwt"})
LEEWAY = 60.0


# -- properties -------------------------------------------------------------------------------


def assert_only_an_original_passes(
    run: Runner, sample: Sample, samples: list[Sample], token: str
) -> None:
    result = outcome(run, sample.verifier, token)
    if isinstance(result, InvalidToken):
        return
    # Accepted: then header and payload are byte for byte those of a real token this verifier
    # accepts (a splice may rebuild another sample whole); only the signature may be another
    # encoding of an equivalent signature (an ECDSA high-S twin).
    segments = token.split(".")
    assert len(segments) == 3
    header, payload = decode_segment(segments[0]), decode_segment(segments[1])
    originals = [s for s in samples if s.verifier is sample.verifier]
    matching = [s for s in originals if (s.header, s.payload) == (header, payload)]
    assert matching, f"accepted a token whose header/payload no real token has: {token}"
    assert dict(result.claims) == matching[0].claims


@FUZZ
@given(data=st.data())
def test_mutated_real_tokens(run: Runner, samples: list[Sample], data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(samples), label="source")
    others = [s.token for s in samples if s is not sample]
    token = data.draw(mutations(sample, others), label="token")
    assert_only_an_original_passes(run, sample, samples, token)


@FUZZ
@given(
    text=st.one_of(st.text(), st.text(junk_chars), st.binary().map(lambda b: b.decode("latin-1")))
)
def test_arbitrary_strings(run: Runner, samples: list[Sample], text: str) -> None:
    for sample in samples[:2]:
        result = outcome(run, sample.verifier, text)
        assert isinstance(result, InvalidToken), repr(result)


@st.composite
def jws_shaped(draw: st.DrawFn) -> str:
    """Dotted base64url soup, and headers that are real JSON with random members."""
    segment = st.text(st.sampled_from(B64URL), max_size=40)
    kind = draw(st.sampled_from(["soup", "json-header"]))
    if kind == "soup":
        return ".".join(draw(st.lists(segment, min_size=1, max_size=6)))
    header = draw(st.dictionaries(st.sampled_from(HEADER_NAMES) | st.text(max_size=5), json_values))
    if draw(st.booleans()):
        header |= {"alg": draw(st.sampled_from(["ES384", "RS256", "none", "HS256"]))}
        header |= {"typ": draw(st.sampled_from(["at+jwt", "JWT"]))}
    parts = [b64(encode_json(draw, header)), draw(segment), draw(segment)]
    return ".".join(parts)


@FUZZ
@given(token=jws_shaped())
def test_jws_shaped_garbage(run: Runner, samples: list[Sample], token: str) -> None:
    for sample in samples[:2]:
        result = outcome(run, sample.verifier, token)
        assert isinstance(result, InvalidToken), repr(result)


# -- correctly signed tokens with random headers and claims: an oracle -----------------------

_ABSENT = object()


def _time_values(now: int) -> st.SearchStrategy[Any]:
    offsets = [-7200, -3600, -120, -30, 0, 30, 120, 3600]
    return st.one_of(
        st.sampled_from([now + o for o in offsets]),
        st.sampled_from([now + o + 0.5 for o in offsets]),
        st.sampled_from([2**62, 2**1000, 10**400, -(10**400), 1e308, -1e308, 0, True, False]),
        st.sampled_from([str(now), None, [now + 3600], {"t": now}]),
    )


def _claim_values(name: str, issuer: str, now: int) -> st.SearchStrategy[Any]:
    by_name: dict[str, list[Any]] = {
        "iss": [issuer, issuer + "/", issuer.upper(), "", [issuer], None, 1],
        "aud": [
            API,
            [API],
            [API, "urn:other"],
            ["urn:other"],
            [],
            "urn:other",
            API + "/",
            API.upper(),
            [API, 1],
            [[API]],
            None,
            1,
        ],
        "sub": ["m2m-app", "", "x" * 300, 1, None, ["m2m-app"], {}],
        "scope": ["read:products write:products", "", " ", "a\tb", 1, None, ["read:products"]],
        "organization_id": ["org-1", "", None, 1, ["org-1"]],
        "cnf": [{"jkt": "abc"}, {}, None],
    }
    if name in ("exp", "iat", "nbf"):
        return _time_values(now)
    values = by_name.get(name) or by_name["sub"]
    return st.sampled_from(values) | json_values


def expected_header_ok(header: dict[str, Any], algorithm: str, kid: str) -> bool:
    """RFC 9068 §2.1/§4 and RFC 7515 §4.1 (R15-R21) for a token signed with `kid`'s key."""
    typ = header.get("typ")
    ok = header.get("alg") == algorithm
    ok = ok and isinstance(typ, str) and typ.lower() in TYPES
    ok = ok and "crit" not in header and "cty" not in header
    ok = ok and header.get("b64", True) is True
    # R21/R27: kid absent (only one key per algorithm here) or exactly the key's kid; a kid
    # that is present must be a string (null is refused).
    return ok and ("kid" not in header or header["kid"] == kid)


def expected_claims_ok(claims: dict[str, Any], issuer: str, now: float) -> bool:
    def number(name: str) -> float | bool | None:
        value = claims.get(name, _ABSENT)
        if value is _ABSENT:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        try:
            return float(value)  # RFC 7519 §2: a finite number
        except OverflowError:
            return False

    aud = claims.get("aud")
    if isinstance(aud, str):
        aud_ok = aud == API
    else:
        aud_ok = (
            isinstance(aud, list)
            and bool(aud)
            and all(isinstance(a, str) for a in aud)
            and API in aud
        )
    exp, iat, nbf = number("exp"), number("iat"), number("nbf")
    return (
        claims.get("iss") == issuer
        and aud_ok
        and isinstance(exp, float)
        and now < exp + LEEWAY
        and isinstance(iat, float)
        and iat <= now + LEEWAY
        and (nbf is None or (isinstance(nbf, float) and nbf <= now + LEEWAY))
        and all(isinstance(claims.get(n), str) for n in ("sub", "client_id", "jti"))
        and isinstance(claims.get("scope", ""), str)
        and isinstance(claims.get("organization_id", ""), (str, type(None)))
        and "cnf" not in claims
    )


@st.composite
def signed_tokens(draw: st.DrawFn, provider: BadProvider) -> tuple[str, dict[str, Any], bool]:
    """A token signed with the provider's real key, some header members and claims changed;
    and whether RFC 9068 says a resource server must accept it."""
    kid = draw(st.sampled_from([provider.kid, provider.rsa_kid]), label="key")
    algorithm = provider.algorithm_of(kid)
    now = int(time.time())
    header: dict[str, Any] = {"alg": algorithm, "typ": "at+jwt", "kid": kid}
    for name in draw(st.lists(st.sampled_from([*HEADER_NAMES, "x5t", "x-foo"]), max_size=2)):
        header[name] = draw(
            st.sampled_from(
                {
                    "alg": ["ES384", "RS256", "ES256", "PS256", "none", "HS256", "es384", None],
                    "typ": [
                        "at+jwt",
                        "AT+JWT",
                        "application/at+jwt",
                        "Application/AT+JWT",
                        "JWT",
                        "jwt",
                        "at+jwt ",
                        "",
                        None,
                        ["at+jwt"],
                    ],
                    "kid": [kid, kid.upper(), kid + " ", "", None, 1, [kid], "x" * 300],
                    "b64": [True, False, "true", None],
                    "crit": [[], ["exp"], ["b64"]],
                }.get(name, [None, "https://attacker.example/keys", {"kty": "EC"}, 1])
            )
        )
    claims = provider.claims()
    for name in draw(
        st.lists(
            st.sampled_from([*CLAIM_NAMES, "client_id", "organization_id", "x-extra"]),
            max_size=3,
            unique=True,
        )
    ):
        if draw(st.integers(0, 4)) == 0:
            claims.pop(name, None)
        else:
            claims[name] = draw(_claim_values(name, provider.issuer, now))
    token = sign_segments(
        json.dumps(header).encode(), json.dumps(claims).encode(), provider.private[kid], algorithm
    )
    accept = expected_header_ok(header, algorithm, kid) and expected_claims_ok(
        claims, provider.issuer, time.time()
    )
    return token, claims, accept


@FUZZ
@given(data=st.data())
def test_signed_tokens_match_the_rfc9068_oracle(
    run: Runner, healthy: BadProvider, samples: list[Sample], data: st.DataObject
) -> None:
    verifier = samples[1].verifier
    token, claims, accept = data.draw(signed_tokens(healthy), label="token")
    result = outcome(run, verifier, token)
    if accept:
        assert isinstance(result, AccessToken), repr(result)
        assert dict(result.claims) == claims
    else:
        assert isinstance(result, InvalidToken), f"accepted: {claims}"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_signed_numeric_date_beyond_float_range(
    run: Runner, healthy: BadProvider, samples: list[Sample], claim: str
) -> None:
    """A NumericDate beyond float range is refused like any non-finite one (was OverflowError
    out of verify before cbc3e4c)."""
    token = healthy.sign({claim: 10**400})
    result = outcome(run, samples[1].verifier, token)
    assert isinstance(result, InvalidToken)


# -- JWK Sets: a document either yields keys or is refused with ValueError ------------------

JWK_MEMBERS = ["kty", "crv", "alg", "use", "key_ops", "kid", "x", "y", "n", "e", "d", "k", "ext"]


@st.composite
def jwks_documents(draw: st.DrawFn, provider: BadProvider) -> Any:
    keys: list[Any] = [dict(jwk) for jwk in provider.healthy_jwks()["keys"]]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "delete", "add", "replace", "swap"]))
        i = draw(st.integers(0, max(len(keys) - 1, 0)))
        if op == "add" or not keys:
            keys.append(dict(draw(st.sampled_from(provider.healthy_jwks()["keys"]))))
        elif op == "replace":
            keys[i] = draw(json_values)
        elif isinstance(keys[i], dict):
            name = draw(st.sampled_from(JWK_MEMBERS) | st.text(max_size=4))
            if op == "delete":
                keys[i].pop(name, None)
            elif op == "swap":  # a member of another key: x of one curve point, n of another
                donor = draw(st.sampled_from(provider.healthy_jwks()["keys"]))
                keys[i][name] = donor.get(name)
            else:
                keys[i][name] = draw(
                    st.sampled_from(
                        [
                            "EC",
                            "RSA",
                            "oct",
                            "OKP",
                            "P-384",
                            "P-256",
                            "P-521",
                            "secp256k1",
                            "ES384",
                            "RS256",
                            "HS256",
                            "none",
                            "sig",
                            "enc",
                            ["verify"],
                            ["sign"],
                            [],
                            "AQAB",
                            "AQ",
                            "",
                            "AA",
                        ]
                    )
                    | json_values
                )
    document: Any = {"keys": keys}
    if draw(st.integers(0, 9)) == 0:
        document = draw(st.sampled_from([{"keys": {}}, {"keys": None}, {}, {"keys": "x"}]))
    return document


@FUZZ
@given(data=st.data())
def test_jwks_documents(healthy: BadProvider, data: st.DataObject) -> None:
    """A JWK Set yields a KeySet or is refused with ValueError; each JWK on its own is a key or
    None (skipped), without leaning on parse_jwks' catch-all for odd member types."""
    document = data.draw(jwks_documents(healthy), label="jwks")
    keys_in = document.get("keys") if isinstance(document, dict) else None
    if isinstance(keys_in, list):
        for jwk in keys_in:
            key = parse_jwk(jwk, DEFAULT_ALGORITHMS)
            assert key is None or key.algorithm in DEFAULT_ALGORITHMS
    try:
        keys = parse_jwks(document, DEFAULT_ALGORITHMS)
    except ValueError:
        event("refused")
        return
    event(f"{len(keys)} kids")
    for kid in keys.kids:
        assert kid is None or isinstance(kid, str)
