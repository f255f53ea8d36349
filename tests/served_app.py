"""A protected Starlette app for tests/test_servers.py, which serves it with real ASGI servers
(Hypercorn, Granian) in processes of their own. Configured from the environment:
LOGTO_GUARD_TEST_ISSUER (the test provider's issuer) and LOGTO_GUARD_TEST_AUDIENCE.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from logto_guard import LogtoGuard, get_access_token, require_scopes


@require_scopes("read:products")
async def products(request: Request) -> JSONResponse:
    token = get_access_token(request)
    return JSONResponse({"sub": token.sub, "scopes": sorted(token.scopes)})


@require_scopes("write:products")
async def create(request: Request) -> JSONResponse:  # pragma: no cover - only 403 here
    return JSONResponse({}, status_code=201)


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/products", products),
        Route("/products", create, methods=["POST"]),
        Route("/health", health),
    ]
)
app.add_middleware(
    LogtoGuard,
    issuer=os.environ["LOGTO_GUARD_TEST_ISSUER"],
    audience=os.environ["LOGTO_GUARD_TEST_AUDIENCE"],
    public_paths=["/health"],
)
