"""`python -m example_app --mcp`: the MCP server and two M2M agents, on the embedded issuer.

The MCP server's URL is only known once its loopback port is bound, and it is also the API
resource's identifier in Logto; so the port is bound first, then the tenant's apps are given
roles on that resource, then the server starts.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from logto_guard import TokenVerifier
from logto_guard.testing import LocalIssuer, LoopbackServer

from .mcp_agent import run_agents
from .mcp_server import create_mcp_app

READER = ("shop-reader", "reader-secret-for-the-demo")
WRITER = ("shop-writer", "writer-secret-for-the-demo")

EXPECTED = {
    "reader list_products": "ok",
    "reader create_product": "refused",
    "writer create_product": "ok",
    "no token": "401",
}


class _Deferred:
    """An ASGI app set after the socket is bound (the app needs its own URL)."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the app is set before the server starts"
        await self.app(scope, receive, send)


def run_mcp_demo() -> int:
    issuer = LocalIssuer()
    with issuer.serve() as endpoint:
        print(f"Embedded local issuer at {endpoint}/oidc (ES384)")
        deferred = _Deferred()
        server = LoopbackServer(deferred, lifespan="on")
        mcp_url = server.url + "/mcp"
        issuer.register_app(*READER, {mcp_url: ["read:products"]})
        issuer.register_app(*WRITER, {mcp_url: ["read:products", "write:products"]})
        verifier = TokenVerifier(endpoint=endpoint, audience=mcp_url)
        deferred.app = create_mcp_app(verifier, mcp_url)
        with server:
            print(f"MCP server on {mcp_url} (API resource {mcp_url}; create_product needs")
            print("write:products, everything needs read:products)\n")
            outcomes = asyncio.run(
                run_agents(mcp_url, issuer=issuer.issuer, reader=READER, writer=WRITER)
            )
    wrong = {k: v for k, v in outcomes.items() if EXPECTED.get(k) != v}
    print("\nAll steps answered as expected." if not wrong else f"\nUnexpected answers: {wrong}")
    return 0 if not wrong else 1
