"""The shopping API: what an API author writes with logto-guard.

`GET /products` needs `read:products`, `POST /products` needs `write:products`, `GET /whoami`
shows who called, `GET /orgs/{org_id}/products` needs a token for that Logto organization, and
`/health` is public. The middleware verifies every token; the routes only state what they need.
The docs (`/docs`, `/redoc`) load Swagger UI and ReDoc from the files the `fastapi-offline`
package ships, not from a CDN, so they work offline.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Security
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from logto_guard import AccessToken, TokenVerifier
from logto_guard.fastapi import LogtoSecurity, document_errors
from logto_guard.middleware import LogtoGuard

SCOPES = {"read:products": "Read products", "write:products": "Create products"}
DOCS_STATIC = "/static-offline-docs"  # where fastapi-offline serves Swagger UI's and ReDoc's files
PUBLIC_PATHS = ["/health", "/docs", "/redoc", "/openapi.json", DOCS_STATIC]


class NewProduct(BaseModel):
    name: str
    price: float


def create_app(verifier: TokenVerifier) -> FastAPI:
    app: FastAPI = FastAPIOffline(title="Online shopping API", version="1.0")
    guard = LogtoSecurity(verifier, scopes=SCOPES)
    products: list[dict[str, Any]] = [
        {"id": 1, "name": "Keyboard", "price": 49.0},
        {"id": 2, "name": "Mouse", "price": 19.0},
    ]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/products")
    async def list_products(
        token: AccessToken = Security(guard, scopes=["read:products"]),  # noqa: B008
    ) -> list[dict[str, Any]]:
        return products

    @app.post("/products", status_code=201)
    async def create_product(
        product: NewProduct,
        token: AccessToken = Security(guard, scopes=["write:products"]),  # noqa: B008
    ) -> dict[str, Any]:
        item = {"id": len(products) + 1, **product.model_dump(), "created_by": token.client_id}
        products.append(item)
        return item

    @app.get("/whoami")
    async def whoami(token: AccessToken = Security(guard)) -> dict[str, Any]:  # noqa: B008
        return {
            "sub": token.sub,
            "client_id": token.client_id,
            "scopes": sorted(token.scopes),
            "is_m2m": token.is_m2m,
            "organization_id": token.organization_id,
        }

    @app.get("/orgs/{org_id}/products")
    async def organization_products(
        org_id: str,
        token: AccessToken = Security(guard.organization("org_id"), scopes=["read:products"]),  # noqa: B008
    ) -> dict[str, Any]:
        return {"organization": org_id, "products": products}

    app.add_middleware(
        LogtoGuard,
        verifier=verifier,
        public_paths=PUBLIC_PATHS,
        scopes_supported=list(SCOPES),
    )
    document_errors(app)
    return app
