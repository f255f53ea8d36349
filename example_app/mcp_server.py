"""The shopping example as an MCP server: what an MCP server author writes with logto-guard.

Tools `list_products` (needs `read:products`, which every request needs) and `create_product`
(needs `write:products` too). The MCP SDK's own bearer middleware checks tokens through
`LogtoTokenVerifier`; `ToolScopes` adds the per-tool scope. In Logto, the API resource's
identifier is the MCP server's URL (`mcp_url`): MCP clients ask for a token for exactly that
resource.
"""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from starlette.types import ASGIApp

from logto_guard import TokenVerifier
from logto_guard.mcp import LogtoTokenVerifier, ToolScopes

TOOL_SCOPES = {"list_products": "read:products", "create_product": "write:products"}


def create_mcp_server(verifier: TokenVerifier, mcp_url: str) -> MCPServer:
    server = MCPServer(
        "shop",
        log_level="WARNING",
        token_verifier=LogtoTokenVerifier(verifier),
        auth=AuthSettings(
            issuer_url=verifier.issuer,  # type: ignore[arg-type]  # pydantic parses the str
            resource_server_url=mcp_url,  # type: ignore[arg-type]
            required_scopes=["read:products"],
            validate_token_resource=True,
        ),
    )
    products: list[dict[str, Any]] = [
        {"id": 1, "name": "Keyboard", "price": 49.0},
        {"id": 2, "name": "Mouse", "price": 19.0},
    ]

    @server.tool()
    def list_products() -> list[dict[str, Any]]:
        """The shop's products."""
        return products

    @server.tool()
    def create_product(name: str, price: float) -> dict[str, Any]:
        """Add a product; needs write:products."""
        token = get_access_token()
        item = {"id": len(products) + 1, "name": name, "price": price}
        item["created_by"] = token.subject if token is not None else None
        products.append(item)
        return item

    return server


def create_mcp_app(verifier: TokenVerifier, mcp_url: str) -> ASGIApp:
    """The Streamable HTTP app at `/mcp`, with `create_product` needing `write:products`."""
    server = create_mcp_server(verifier, mcp_url)
    return ToolScopes(
        server.streamable_http_app(),
        {"create_product": TOOL_SCOPES["create_product"]},
        verifier=verifier,
        resource_server_url=mcp_url,
    )
