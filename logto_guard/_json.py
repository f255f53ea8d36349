"""Strict JSON for untrusted bytes (RFC 8725 §3.7, RFC 7515 §10.12).

Python's `json` accepts UTF-16/32 bytes, a BOM, NaN/Infinity and duplicate names (last wins):
each is a parser differential an attacker can use. This loader refuses all of them and turns
every parser failure (4,300-digit integers, ...) into one `ValueError`. It also refuses what
would parse but could not be written back as JSON, so no route that returns claims as JSON
can fail on them:

* numbers beyond float range (`1e400` would become `inf`);
* strings holding a lone UTF-16 surrogate (`"\\ud800"` is valid JSON text, but no UTF-8
  encoder accepts the result).

Nesting is limited to `MAX_DEPTH` before the parser runs. The interpreter's own limit is not a
limit one can rely on: Python 3.11 and 3.12 raise `RecursionError` near 1,000 levels, 3.13
parses 2,500 and more. Logto's tokens nest 2 levels deep and a JWKS 3, so 32 is far from
anything real and the same on every version.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32

# A JSON string (valid or not: invalid text fails in the parser anyway) and the brackets.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# An escaped UTF-16 surrogate, the only way a lone one can get into the parsed value (strict
# UTF-8 decoding refuses encoded surrogates). Most texts have none, so the walk is skipped.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("JSON number is out of range")
    return value


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name in JSON object")
    return obj


_decoder = json.JSONDecoder(
    object_pairs_hook=_unique_object,
    parse_constant=_reject_constant,
    parse_float=_finite_float,
)


def nesting_depth(text: str) -> int:
    """The deepest array/object nesting of a JSON text, counting brackets outside strings."""
    # Fast path: a text with few brackets cannot nest deeper than their number.
    opening = text.count("[") + text.count("{")
    if opening <= MAX_DEPTH:
        return opening
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates in any string (member names included), iteratively."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads_object(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 bytes that must hold one JSON object; raise ValueError otherwise."""
    try:
        text = data.decode("utf-8")
        if nesting_depth(text) > MAX_DEPTH:
            raise ValueError("JSON nested too deeply")
        value = _decoder.decode(text)
        if "\\u" in text and _ESCAPED_SURROGATE.search(text):
            _check_strings(value)
    except (ValueError, RecursionError) as exc:  # Unicode errors are ValueErrors
        raise ValueError("invalid JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("JSON value is not an object")
    return value
