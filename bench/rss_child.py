"""Resident memory of a process whose verified-token cache is full (run by bench/run.py).

    python bench/rss_child.py ISSUER AUDIENCE TOKEN_FILE

Builds a `TokenVerifier` with the default cache size against the loopback issuer, verifies one
token (keys fetched, imports done), then every token in TOKEN_FILE, and prints one JSON line:
RSS before and after filling the cache (token strings included), the peak (VmHWM), and the
cache's entry count.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from logto_guard import TokenVerifier  # noqa: E402


def status_kib() -> dict[str, int]:
    """VmRSS and VmHWM from /proc/self/status, in KiB."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


async def main(issuer: str, audience: str, blob: str) -> dict[str, object]:
    verifier = TokenVerifier(issuer, audience=audience, allow_insecure_http=True)
    await verifier.verify(blob[: blob.index("\n")])
    gc.collect()
    before = status_kib()
    # The token strings are made here, as a server makes them from headers: the cache keeps
    # them alive (they are its keys), so they count in the growth.
    tokens = blob.split()
    for token in tokens:
        await verifier.verify(token)
        await verifier.verify(token)  # cached from its second sighting
    gc.collect()
    after = status_kib()
    entries = len(verifier._verified)  # the cache: no public size accessor
    await verifier.aclose()
    return {
        "tokens": len(tokens),
        "entries": entries,
        "cache_size": verifier._verified.maxsize,
        "rss_before_kib": before["VmRSS"],
        "rss_after_kib": after["VmRSS"],
        "hwm_kib": after["VmHWM"],
    }


if __name__ == "__main__":
    issuer, audience, token_file = sys.argv[1:4]
    blob = Path(token_file).read_text()
    print(json.dumps(asyncio.run(main(issuer, audience, blob))))
