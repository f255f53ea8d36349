"""An M2M agent calling the shop's MCP tools: the MCP SDK's client with its client-credentials
extension, talking to Logto.

The SDK does the whole dance by itself: its first request gets 401 with `resource_metadata`, it
reads that document (the authorization server is the Logto issuer), finds Logto's metadata
under the issuer, and asks Logto's token endpoint for a token with `resource` = the MCP server's
URL and the advertised scopes. When a tool answers 403 `insufficient_scope`, it asks again with
the scope named in the challenge added. Prints each step so a newcomer sees the wire.
"""

from __future__ import annotations

from typing import Any

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from logto_guard.mcp import client_credentials_auth


async def _show_wire(response: httpx2.Response) -> None:
    """Print the OAuth side of the conversation (MCP calls only when refused)."""
    request = response.request
    path = request.url.path
    if response.is_success and "/.well-known/" not in path and not path.endswith("/token"):
        return
    line = f"     {request.method} {request.url} -> {response.status_code}"
    if path.endswith("/token") and response.is_success:
        await response.aread()
        line += f" (scope {response.json().get('scope', '')!r})"
    if response.status_code == 403:
        line += f"\n       WWW-Authenticate: {response.headers.get('www-authenticate')}"
    print(line)


def _text(result: Any) -> str:
    content = getattr(result, "content", None) or []
    return " ".join(getattr(part, "text", "") for part in content).replace("\n", "")[:90]


async def call_tools(
    mcp_url: str, issuer: str, app: tuple[str, str], calls: list[tuple[str, dict[str, Any]]]
) -> dict[str, str]:
    """Connect as `app`, list the tools, make `calls`; the outcome of each, by tool."""
    outcomes: dict[str, str] = {}
    hooks = {"response": [_show_wire]}
    auth = client_credentials_auth(mcp_url, *app, issuer=issuer)
    http = httpx2.AsyncClient(auth=auth, event_hooks=hooks)
    async with http, Client(streamable_http_client(mcp_url, http_client=http)) as client:
        tools = await client.list_tools()
        print(f"   tools: {', '.join(tool.name for tool in tools.tools)}")
        for name, arguments in calls:
            try:
                result = await client.call_tool(name, arguments)
            except MCPError as exc:
                outcomes[name] = "refused"
                print(f"   {name:<16} -> refused: {exc}")
            else:
                outcomes[name] = "error" if result.is_error else "ok"
                print(f"   {name:<16} -> {outcomes[name]}: {_text(result)}")
    return outcomes


async def run_agents(
    mcp_url: str, *, issuer: str, reader: tuple[str, str], writer: tuple[str, str]
) -> dict[str, str]:
    """The demo's steps; the outcome of each, by step."""
    outcomes: dict[str, str] = {}
    new = {"name": "Cable", "price": 5.0}
    print(f"1. agent {reader[0]!r} (read:products only) connects")
    calls = [("list_products", {}), ("create_product", new)]
    seen = await call_tools(mcp_url, issuer, reader, calls)
    outcomes["reader list_products"] = seen["list_products"]
    outcomes["reader create_product"] = seen["create_product"]

    print(f"2. agent {writer[0]!r} (read:products write:products) connects")
    seen = await call_tools(mcp_url, issuer, writer, [("create_product", new)])
    outcomes["writer create_product"] = seen["create_product"]

    print("3. a client without a token")
    async with httpx2.AsyncClient() as anonymous:
        response = await anonymous.post(
            mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    print(f"   POST {mcp_url} -> {response.status_code}")
    print(f"     WWW-Authenticate: {response.headers.get('www-authenticate')}")
    outcomes["no token"] = str(response.status_code)
    return outcomes
