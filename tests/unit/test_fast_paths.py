"""The per-request fast paths keep the exact behaviour of what they replaced."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logto_guard._asgi import authenticate
from logto_guard._lru import Doorkeeper, LRUCache
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


def test_doorkeeper_admits_at_the_second_sighting_and_starts_over_when_full() -> None:
    door = Doorkeeper(3)
    assert [door.admit("a"), door.admit("a"), door.admit("a")] == [False, True, True]
    assert not door.admit("b") and not door.admit("c")  # three hashes held: full
    assert not door.admit("d")  # started over: only "d" is remembered
    assert not door.admit("a") and door.admit("d")
    assert Doorkeeper(0).size == 1  # cache_size=0 never consults it, but it stays usable


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
