"""README "MCP servers": every block run as written.

The blocks name `https://tenant.logto.app` and `https://mcp.example.com`. Here the tenant is a
`LocalIssuer` pinned at that endpoint and served on a loopback port, the MCP app is served by
uvicorn on another, and an `httpx2` transport plays DNS: it sends each request for those hosts
to its loopback port, keeping the URL's Host header. `TokenVerifier(endpoint=TENANT, ...)` in
the blocks gets the issuer's keys through the issuer's own transport (the only substitution:
where the bytes come from, never what the block says).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

import logto_guard
from logto_guard.testing import LocalIssuer, LoopbackServer

try:
    from readme import block
except ImportError:  # pragma: no cover - tests/ as a package
    from .readme import block

ROOT = Path(__file__).resolve().parent.parent
TENANT = "https://tenant.logto.app"
MCP_URL = "https://mcp.example.com/mcp"
SCOPES = ["read:products", "write:products"]
_RealAsyncClient = httpx2.AsyncClient


class Hosts(httpx2.AsyncBaseTransport):
    """Requests for the README's hosts go to loopback ports (the Host header stays)."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[request.url.host]
        routed = httpx2.Request(
            request.method,
            request.url.copy_with(scheme="http", host="127.0.0.1", port=port),
            headers=request.headers,  # Host: the README's host
            stream=request.stream,
            extensions=request.extensions,
        )
        return await self.inner.handle_async_request(routed)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class World:
    issuer: LocalIssuer
    ports: dict[str, int]

    def client(self, **kwargs: Any) -> httpx2.AsyncClient:
        # A client that brings its own transport (LocalIssuer's verifier) keeps it.
        kwargs.setdefault("transport", Hosts(self.ports))
        return _RealAsyncClient(**kwargs)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    issuer = LocalIssuer(TENANT)
    issuer.register_app("<app id>", "<app secret>", {MCP_URL: SCOPES})

    def token_verifier(
        issuer_url: str | None = None, *, endpoint: str | None = None, **options: Any
    ) -> logto_guard.TokenVerifier:
        assert issuer_url is None and endpoint == TENANT
        return issuer.verifier(**options)

    monkeypatch.setattr(logto_guard, "TokenVerifier", token_verifier)
    with LoopbackServer(issuer.asgi_app, lifespan="off") as url:
        yield World(issuer, {"tenant.logto.app": int(urlsplit(url).port or 0)})


def sdk_route() -> str:
    return block("token_verifier=LogtoTokenVerifier(verifier)")


def guard_route() -> str:
    return block("LogtoAuthContext(")


def whoami_tool() -> str:
    return block("token.subject == token.client_id")


@contextlib.contextmanager
def serve_block(world: World, *sources: str) -> Iterator[dict[str, Any]]:
    """Run README blocks in one namespace, as one module; serve its `app`."""
    namespace: dict[str, Any] = {"__name__": "readme_block"}
    for source in sources:
        exec(source, namespace)  # noqa: S102 - the README's own code
    with LoopbackServer(namespace["app"], lifespan="on") as url:
        world.ports["mcp.example.com"] = int(urlsplit(url).port or 0)
        yield namespace


@contextlib.asynccontextmanager
async def connect(world: World, token: str) -> AsyncIterator[Client]:
    http = world.client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(MCP_URL, http_client=http)) as client:
        yield client


@pytest.mark.parametrize(
    ("source", "scopes_supported"),
    [(sdk_route, ["read:products"]), (guard_route, SCOPES)],
    ids=["sdk", "guard"],
)
async def test_the_two_server_blocks(
    world: World, source: Any, scopes_supported: list[str]
) -> None:
    reader = world.issuer.mint(audience=MCP_URL, scopes=["read:products"])
    writer = world.issuer.mint(audience=MCP_URL, scopes=SCOPES)
    with serve_block(world, source(), whoami_tool()):
        async with world.client() as http:
            anonymous = await http.post(MCP_URL, json={}, headers={"Accept": "application/json"})
            metadata = await http.get(
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
            )
        async with connect(world, reader) as client:
            tools = await client.list_tools()
            listed = await client.call_tool("list_products", {})
            who = await client.call_tool("whoami", {})
            with pytest.raises(MCPError, match="insufficient_scope"):
                await client.call_tool("create_product", {"name": "Cable", "price": 5.0})
        async with connect(world, writer) as client:
            created = await client.call_tool("create_product", {"name": "Cable", "price": 5.0})
    assert anonymous.status_code == 401
    assert (
        'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"'
        in (anonymous.headers["www-authenticate"])
    )
    document = metadata.json()
    assert document["resource"] == MCP_URL
    assert document["authorization_servers"] == [TENANT + "/oidc"]
    assert document["scopes_supported"] == scopes_supported
    assert {tool.name for tool in tools.tools} == {"list_products", "create_product", "whoami"}
    assert listed.structured_content == {"result": [{"id": 1, "name": "Keyboard", "price": 49.0}]}
    assert json.loads(who.content[0].text) == {  # type: ignore[union-attr]
        "subject": "m2m-app",
        "client_id": "m2m-app",
        "is_m2m": True,
        "scopes": ["read:products"],
    }
    assert json.loads(created.content[0].text) == {"id": 2, "name": "Cable", "price": 5.0}  # type: ignore[union-attr]


def test_the_agent_block(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(httpx2, "AsyncClient", lambda **kwargs: world.client(**kwargs))
    with serve_block(world, sdk_route()):
        exec(block("client_credentials_auth("), {"__name__": "readme_agent"})  # noqa: S102
    printed = capsys.readouterr().out
    assert printed.strip() == (
        "['list_products', 'create_product'] "
        "{'result': [{'id': 1, 'name': 'Keyboard', 'price': 49.0}]}"
    )
    token_requests = [r for r in world.issuer.requests if r.path == "/oidc/token"]
    assert [r.status for r in token_requests] == [200]


def test_the_demo_command() -> None:
    command = block("scripts/demo --mcp")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOGTO_")}
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=300
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "/.well-known/oauth-protected-resource/mcp -> 200" in out
    assert "/oidc/.well-known/openid-configuration -> 200" in out
    assert 'scope="write:products"' in out
    assert "create_product   -> refused: insufficient_scope" in out
    assert "(scope 'read:products write:products')" in out
    assert "All steps answered as expected." in out
