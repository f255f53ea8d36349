"""The per-request fast paths keep the exact behaviour of what they replaced."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logto_guard._asgi import authenticate
from logto_guard._lru import LRUCache
from logto_guard.bearer import _is_b64token, extract_token
from logto_guard.errors import InvalidRequest, MalformedToken
from logto_guard.jws import parse_compact
from logto_guard.testing.issuer import LocalIssuer

# The regex that bearer.extract_token used before (RFC 6750 §2.1 b64token).
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
ALPHABET = 'AZaz09-._~+/= ,"\\é\x00\t'


@given(st.text(alphabet=ALPHABET, max_size=40))
def test_b64token_check_equals_the_rfc_regex(value: str) -> None:
    assert _is_b64token(value) == (B64TOKEN.fullmatch(value) is not None)


def test_b64token_check_on_edge_cases() -> None:
    assert _is_b64token("abc==")
    assert not _is_b64token("==")
    assert not _is_b64token("")
    assert not _is_b64token("ab=c")
    assert not _is_b64token("aé")


def test_lru_evicts_the_least_recently_used() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # "a" is now the most recent
    cache["c"] = 3
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)


def test_lru_of_size_zero_keeps_nothing() -> None:
    cache: LRUCache[str, int] = LRUCache(0)
    cache["a"] = 1
    assert cache.get("a") is None and len(cache) == 0


def test_an_offer_is_admitted_at_its_second_sighting_and_offers_start_over_when_full() -> None:
    cache: LRUCache[str, int] = LRUCache(3)
    cache.offer("a", 1)
    assert cache.get("a") is None  # seen once: not admitted
    cache.offer("a", 1)
    assert cache.get("a") == 1  # seen twice: admitted
    cache.offer("b", 2)
    cache.offer("c", 3)  # three hashes remembered: full
    cache.offer("d", 4)  # started over: only "d" is remembered
    cache.offer("b", 2)
    assert cache.get("b") is None  # "b" was forgotten: a first offer again
    cache.offer("d", 4)
    assert cache.get("d") == 4
    nothing: LRUCache[str, int] = LRUCache(0)
    for _ in range(3):
        nothing.offer("a", 1)
    assert len(nothing) == 0  # maxsize 0 keeps nothing, offered or not


async def test_verifier_with_cache_size_zero_verifies_every_time() -> None:
    issuer = LocalIssuer()
    verifier = issuer.verifier(cache_size=0)
    token = issuer.mint()
    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert first == second and first is not second  # verified twice, nothing cached
    await verifier.aclose()


def test_header_memo_returns_equal_headers_and_still_refuses_bad_ones() -> None:
    issuer = LocalIssuer()
    one, two = issuer.mint(), issuer.mint()
    assert one.split(".")[0] == two.split(".")[0]
    assert (
        parse_compact(one).header
        == parse_compact(two).header
        == {
            "alg": "ES384",
            "typ": "at+jwt",
            "kid": issuer.signing_kid,
        }
    )
    bad = "bm90anNvbg." + one.split(".", 1)[1]  # "notjson"
    for _ in range(2):  # a failure is not memoised
        with pytest.raises(MalformedToken):
            parse_compact(bad)


# -- the Bearer layer leaves the b64token scan to a verifier that checks a stricter shape -----

NOT_B64TOKEN = ["abc def", "a,b.c.d", "tok\u00e9n.a.b", 'a"b.c.d', "a.b.c\\", "a\tb.c.d"]


class _RecordingVerifier:
    """A Verifier that trusts nothing about the token's syntax (no `checks_token_syntax`)."""

    issuer = "https://issuer.example"
    audiences = ("https://api",)
    token_endpoint = issuer + "/token"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def verify(self, token: str) -> Any:
        self.seen.append(token)
        raise AssertionError("the bearer layer must refuse first")

    async def aclose(self) -> None:
        pass


def _scope(credentials: str) -> dict[str, Any]:
    return {
        "type": "http",
        "headers": [(b"authorization", f"Bearer {credentials}".encode("latin-1"))],
    }


@pytest.mark.parametrize("credentials", NOT_B64TOKEN)
async def test_a_token_breaking_b64token_is_malformed_whoever_checks_it(credentials: str) -> None:
    # TokenVerifier: parse_compact's alphabet (base64url and dots) refuses it, as MalformedToken.
    issuer = LocalIssuer()
    verifier = issuer.verifier()
    assert verifier.checks_token_syntax
    with pytest.raises(MalformedToken):
        await authenticate(_scope(credentials), verifier)
    await verifier.aclose()
    # Any other verifier: the Bearer layer refuses before verify() sees it.
    other = _RecordingVerifier()
    with pytest.raises(MalformedToken):
        await authenticate(_scope(credentials), other)
    assert other.seen == []


@pytest.mark.parametrize("name", [b"authorization", b"Authorization", b"AUTHORIZATION"])
def test_the_authorization_header_is_found_whatever_its_case(name: bytes) -> None:
    assert extract_token([(b"host", b"h"), (name, b"Bearer abc.def")]) == "abc.def"
    with pytest.raises(InvalidRequest):
        extract_token([(name, b"Bearer a"), (b"authorization", b"Bearer b")])


def test_skipping_the_syntax_check_returns_the_credentials_as_sent() -> None:
    headers = [(b"authorization", b"Bearer  abc def ")]
    assert extract_token(headers, check_syntax=False) == "abc def"
    with pytest.raises(MalformedToken):
        extract_token(headers)
