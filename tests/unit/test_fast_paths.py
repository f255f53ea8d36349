"""The per-request fast paths keep the exact behaviour of what they replaced."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logto_guard._lru import LRUCache
from logto_guard.bearer import _is_b64token
from logto_guard.errors import MalformedToken
from logto_guard.jws import parse_compact
from logto_guard.testing.issuer import LocalIssuer

# The regex that bearer.extract_token used before (RFC 6750 §2.1 b64token).
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
ALPHABET = "AZaz09-._~+/= ,\"\\é\x00\t"


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
    assert parse_compact(one).header == parse_compact(two).header == {
        "alg": "ES384",
        "typ": "at+jwt",
        "kid": issuer.signing_kid,
    }
    bad = "bm90anNvbg." + one.split(".", 1)[1]  # "notjson"
    for _ in range(2):  # a failure is not memoised
        with pytest.raises(MalformedToken):
            parse_compact(bad)
