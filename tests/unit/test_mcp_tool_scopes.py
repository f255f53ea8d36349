"""`ToolScopes` one piece at a time: what it reads, what it refuses, what it passes on.

The MCP app behind it is an echo app (it answers with the body it received), the tokens come
from an in-process `LocalIssuer`. The flows with the real SDK and provider are tests/test_mcp.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from logto_guard import ConfigurationError, LogtoGuard
from logto_guard.mcp import LogtoTokenVerifier, ToolScopes
from logto_guard.testing import LocalIssuer

MCP_URL = "https://mcp.example.com/mcp"
CALL_CREATE = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": "create_product", "arguments": {"name": "Cable"}},
}


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"echo:" + body})


@pytest.fixture
def issuer() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture
async def client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    verifier = issuer.verifier(MCP_URL)
    app = ToolScopes(
        echo, {"create_product": ["write:products"]}, verifier=verifier, resource_server_url=MCP_URL
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as c:
        yield c
    await verifier.aclose()


def bearer(issuer: LocalIssuer, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(audience=MCP_URL, scopes=scopes)}"}


async def test_a_call_with_the_scope_reaches_the_app_with_its_body(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    raw = json.dumps(CALL_CREATE).encode()
    response = await client.post("/mcp", content=raw, headers=bearer(issuer, "write:products"))
    assert response.status_code == 200
    assert response.content == b"echo:" + raw


async def test_a_call_without_the_scope_is_a_403_json_rpc_error(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    response = await client.post("/mcp", json=CALL_CREATE, headers=bearer(issuer, "read:products"))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", '
        'error_description="the tool create_product needs write:products", '
        'scope="write:products", '
        'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"'
    )
    body = response.json()
    assert body["id"] == 3 and body["error"]["code"] == -32001
    assert body["error"]["message"] == (
        "insufficient_scope: the tool create_product needs write:products"
    )


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {**CALL_CREATE, "params": {"name": "list_products"}},  # a tool without scopes
        {**CALL_CREATE, "method": "resources/read"},
        {**CALL_CREATE, "params": {"name": 5}},  # the SDK refuses it; not ours to judge
        {**CALL_CREATE, "params": "create_product"},
    ],
)
async def test_other_messages_pass_untouched(
    client: httpx.AsyncClient, message: dict[str, Any]
) -> None:
    raw = json.dumps(message).encode()
    response = await client.post("/mcp", content=raw)  # no token: the MCP app decides
    assert response.status_code == 200
    assert response.content == b"echo:" + raw


async def test_other_paths_and_methods_are_not_read(client: httpx.AsyncClient) -> None:
    raw = json.dumps(CALL_CREATE).encode()
    assert (await client.post("/webhook", content=raw)).content == b"echo:" + raw
    assert (await client.get("/mcp")).content == b"echo:"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
            b'"params":{"name":"create_product","name":"list_products"}}',
            "a duplicate name: Python's json (the SDK's) keeps the last, another parser the first",
        ),
        (b'{"method":"tools/call","params":{"name":"create_product"},"x":NaN}', "NaN"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" + json.dumps(CALL_CREATE).encode() + b"]", "a batch (MCP has none)"),
        (b"{", "truncated"),
    ],
)
async def test_a_body_that_is_not_one_strict_json_object_is_refused(
    client: httpx.AsyncClient, raw: bytes, why: str
) -> None:
    response = await client.post("/mcp", content=raw)
    assert response.status_code == 400, why
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error"},
    }


async def test_a_body_over_the_limit_is_413(issuer: LocalIssuer) -> None:
    app = ToolScopes(echo, {"create_product": "write:products"}, max_body_size=64)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as c:
        response = await c.post("/mcp", content=b" " * 65)
    assert response.status_code == 413


async def test_a_body_in_chunks_is_read_whole_and_replayed_whole(issuer: LocalIssuer) -> None:
    raw = json.dumps(CALL_CREATE).encode()
    chunks = [raw[:10], raw[10:40], raw[40:]]
    received: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < 2} for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return received.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    verifier = issuer.verifier(MCP_URL)
    app = ToolScopes(echo, {"create_product": "write:products"}, verifier=verifier)
    token = issuer.mint(audience=MCP_URL, scopes=["write:products"])
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    await app(scope, receive, send)
    await verifier.aclose()
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"echo:" + raw


async def test_fails_closed_without_any_verifier() -> None:
    """No LogtoGuard outside and no verifier: a scoped tool cannot be checked, so it is refused."""
    app = ToolScopes(echo, {"create_product": "write:products"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as c:
        response = await c.post("/mcp", json=CALL_CREATE, headers={"Authorization": "Bearer x.y.z"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="mcp"'


async def test_behind_logto_guard_it_uses_its_token_and_challenge(issuer: LocalIssuer) -> None:
    verifier = issuer.verifier(MCP_URL)
    app = LogtoGuard(ToolScopes(echo, {"create_product": "write:products"}), verifier=verifier)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as c:
        response = await c.post("/mcp", json=CALL_CREATE, headers=bearer(issuer, "read:products"))
    await verifier.aclose()
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="api", error="insufficient_scope"')
    assert 'scope="write:products"' in challenge and "resource_metadata=" in challenge


async def test_a_logto_token_verifier_is_accepted_as_the_verifier(issuer: LocalIssuer) -> None:
    adapter = LogtoTokenVerifier(issuer.verifier(MCP_URL))
    app = ToolScopes(echo, {"create_product": "write:products"}, verifier=adapter)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as c:
        allowed = await c.post("/mcp", json=CALL_CREATE, headers=bearer(issuer, "write:products"))
        refused = await c.post("/mcp", json=CALL_CREATE, headers=bearer(issuer))
    await adapter.aclose()
    assert (allowed.status_code, refused.status_code) == (200, 403)


@pytest.mark.parametrize(
    ("scopes", "options", "match"),
    [
        ({"create_product": "write products"}, {}, "valid scope names"),
        ({"create_product": []}, {}, "valid scope names"),
        ({"create_product": ["ok", 'bad"quote']}, {}, "valid scope names"),
        ({"create_product": "write:products"}, {"path": "mcp"}, "must start with '/'"),
        ({"create_product": "write:products"}, {"resource_server_url": "mcp.example.com"}, "http"),
    ],
)
def test_configuration_errors_are_named(
    scopes: dict[str, Any], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ToolScopes(echo, scopes, **options)


class _Crashing:
    """A verifier that fails in an unplanned way (a bug, not a bad token)."""

    issuer = "https://logto.test/oidc"
    audiences = (MCP_URL,)
    token_endpoint = issuer + "/token"

    async def verify(self, token: str) -> Any:
        raise RuntimeError(f"boom with {token}")

    async def aclose(self) -> None:
        pass


async def test_verify_token_survives_a_crashing_verifier(caplog: pytest.LogCaptureFixture) -> None:
    adapter = LogtoTokenVerifier(_Crashing())
    assert await adapter.verify_token("secret.token.value") is None
    assert "unexpected RuntimeError while verifying an MCP token" in caplog.text
    assert "secret.token.value" not in caplog.text
