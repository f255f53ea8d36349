"""Strict JSON for untrusted bytes (RFC 8725 §3.7, RFC 7515 §10.12).

Python's `json` accepts UTF-16/32 bytes, a BOM, NaN/Infinity and duplicate names (last wins):
each is a parser differential an attacker can use. This loader refuses all of them and turns
every parser failure (deep nesting, 4,300-digit integers) into one `ValueError`.
"""

from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name in JSON object")
    return obj


_decoder = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_reject_constant)


def loads_object(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 bytes that must hold one JSON object; raise ValueError otherwise."""
    try:
        text = data.decode("utf-8")
        value = _decoder.decode(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError("invalid JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("JSON value is not an object")
    return value
