"""README.md's fenced code blocks, for tests that run them exactly as written.

A test claims a block with `block("<marker>")`, where the marker is a string found in that block
and in no other; it then runs the returned text verbatim. `tests/test_readme.py` fails for any
block that no test under tests/ claims this way, so the README cannot gain an untested example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence


def blocks(path: Path = README) -> list[Block]:
    source = path.read_text(encoding="utf-8")
    return [
        Block(m.group(1), m.group(2), source.count("\n", 0, m.start()) + 1)
        for m in _FENCE.finditer(source)
    ]


def block(marker: str, path: Path = README) -> str:
    """The text of the one README block containing `marker`."""
    found = [b for b in blocks(path) if marker in b.text]
    if len(found) != 1:
        lines = [b.line for b in found]
        raise LookupError(f"{len(found)} README blocks contain {marker!r} (at lines {lines})")
    return found[0].text
