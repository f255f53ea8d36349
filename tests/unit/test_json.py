"""The strict JSON layer: nesting limit, out-of-range numbers, lone surrogates."""

from __future__ import annotations

import json
import sys

import pytest

from logto_guard._json import MAX_DEPTH, loads_object, nesting_depth


def nested_object(depth: int) -> bytes:
    """An object `depth` levels deep: {"a":[[...]]} with depth-1 arrays inside."""
    return ('{"a":' + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()


def test_depth_up_to_the_limit_parses() -> None:
    assert nesting_depth(nested_object(MAX_DEPTH).decode()) == MAX_DEPTH
    assert loads_object(nested_object(MAX_DEPTH))["a"] is not None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 2_500, 100_000])
def test_deeper_is_refused_on_every_python(depth: int) -> None:
    # 2,500 is the depth Python 3.13 parses and 3.11/3.12 do not: refused by our own limit.
    with pytest.raises(ValueError, match="invalid JSON") as refused:
        loads_object(nested_object(depth))
    assert isinstance(refused.value.__cause__, ValueError)
    assert "nested too deeply" in str(refused.value.__cause__)
    assert not isinstance(refused.value.__cause__, RecursionError)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 10_000 + "{" * 100, "b": ['"\\[', "]]]"]})
    assert nesting_depth(text) == 2
    assert loads_object(text.encode())["a"].startswith("[[[")


def test_many_brackets_side_by_side_are_not_deep() -> None:
    # A JWKS with 64 keys has 65+ brackets but nests 3 levels deep: the precise count runs.
    jwks = {"keys": [{"kty": "EC", "key_ops": ["verify"]} for _ in range(64)]}
    text = json.dumps(jwks)
    assert nesting_depth(text) == 4
    assert len(loads_object(text.encode())["keys"]) == 64


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5e309", "2E+999"])
def test_numbers_beyond_float_range_are_refused(number: str) -> None:
    assert json.loads(number) in (float("inf"), float("-inf"))  # what Python alone would give
    with pytest.raises(ValueError, match="invalid JSON"):
        loads_object(f'{{"x":{number}}}'.encode())
    with pytest.raises(ValueError):
        loads_object(f'{{"x":[1,{{"y":{number}}}]}}'.encode())


def test_large_but_finite_numbers_and_big_integers_parse() -> None:
    doc = loads_object(b'{"a":1e308,"b":-2.5e-320,"c":123456789012345678901234567890}')
    assert doc == {"a": 1e308, "b": -2.5e-320, "c": 123456789012345678901234567890}
    json.dumps(doc, allow_nan=False)  # what Starlette's JSONResponse does


@pytest.mark.parametrize(
    "text",
    [
        r'{"name":"\ud800"}',
        r'{"name":"ok \udfff"}',
        r'{"\udbff":1}',  # in a member name
        r'{"roles":["a",["\uDC00"]]}',  # deep inside arrays, upper-case hex
        r'{"pair":"\ude00\ud83d"}',  # a low surrogate before a high one is no pair
    ],
)
def test_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid JSON"):
        loads_object(text.encode())


def test_surrogate_pairs_and_non_ascii_parse() -> None:
    doc = loads_object(r'{"emoji":"\ud83d\ude00","raw":"é😀","esc":"\u00e9"}'.encode())
    assert doc == {"emoji": "😀", "raw": "é😀", "esc": "é"}
    assert json.dumps(doc, ensure_ascii=False).encode("utf-8")


def test_everything_parsed_can_be_written_back_as_strict_json() -> None:
    doc = loads_object(b'{"a":[1,2.5,{"b":null,"c":true}],"d":"x"}')
    assert json.loads(json.dumps(doc, allow_nan=False, ensure_ascii=False).encode()) == doc


def test_the_limit_does_not_depend_on_the_recursion_limit() -> None:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        with pytest.raises(ValueError):
            loads_object(nested_object(3_000))
    finally:
        sys.setrecursionlimit(old)
