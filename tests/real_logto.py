"""The scenarios recorded from a real Logto server (tests/fixtures/real_logto/), as test data.

Each file is one scenario: every HTTP exchange verbatim, plus what a resource server or a client
must conclude (`expect`, `expect_token_endpoint`, `expect_http`). See that folder's README.

`replay_transport` answers requests from a scenario's recorded responses, so the library's real
fetch path (httpx, ETag handling, discovery) runs against exactly what Logto sent.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).parent / "fixtures" / "real_logto"
SCENARIOS = tuple(sorted(p.name for p in FIXTURES.glob("*.json")))

# Hop-by-hop and framing headers: httpx computes its own (see the fixtures' README).
_NOT_REPLAYED = frozenset({"content-encoding", "transfer-encoding", "content-length"})


@functools.cache
def _load(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """A fresh copy of one scenario (by file name, e.g. "01-es384-writer.json")."""
    doc: dict[str, Any] = json.loads(_load(name))
    return doc


def exchange(doc: Mapping[str, Any], exchange_id: str) -> dict[str, Any]:
    """One recorded exchange of a scenario, by its `id`."""
    for item in doc["exchanges"]:
        if item["id"] == exchange_id:
            found: dict[str, Any] = item
            return found
    raise KeyError(exchange_id)


def discovery_before(doc: Mapping[str, Any], exchange_id: str) -> dict[str, Any]:
    """The latest discovery exchange recorded before `exchange_id` (its JWKS's discovery)."""
    latest: dict[str, Any] | None = None
    for item in doc["exchanges"]:
        if item["id"] == exchange_id:
            break
        if item["request"]["path"].endswith("/.well-known/openid-configuration"):
            latest = item
    if latest is None:  # scenarios 06/07 record discovery after some JWKS; use the first one
        latest = next(
            item
            for item in doc["exchanges"]
            if item["request"]["path"].endswith("/.well-known/openid-configuration")
        )
    return latest


def response_of(recorded: Mapping[str, Any], request: httpx.Request) -> httpx.Response:
    """The recorded response of one exchange, as httpx would have received it."""
    response = recorded["response"]
    headers = [
        (name, value)
        for name, value in response["headers_all"]
        if name.lower() not in _NOT_REPLAYED
    ]
    return httpx.Response(
        response["status"],
        headers=headers,
        content=response["body_raw"].encode("utf-8"),
        request=request,
    )


def replay_transport(
    routes: Mapping[str, Mapping[str, Any]] | Callable[[httpx.Request], Mapping[str, Any]],
) -> httpx.MockTransport:
    """A transport answering from recorded exchanges.

    `routes` maps a URL path to the exchange that answers it, or is a function choosing the
    exchange for each request (for ETag and rotation sequences).
    """

    def handler(request: httpx.Request) -> httpx.Response:
        if callable(routes):
            recorded = routes(request)
        else:
            if request.url.path not in routes:
                return httpx.Response(404, request=request)
            recorded = routes[request.url.path]
        return response_of(recorded, request)

    return httpx.MockTransport(handler)
