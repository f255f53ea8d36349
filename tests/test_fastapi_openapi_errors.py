"""document_errors: secured operations list their 401/403 answers with the error body schema."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Security
from starlette.testclient import TestClient

from logto_guard import AccessToken
from logto_guard.fastapi import ERROR_SCHEMA_NAME, LogtoSecurity, document_errors
from logto_guard.testing import LocalIssuer

REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}


def build() -> tuple[FastAPI, LocalIssuer]:
    issuer = LocalIssuer()
    guard = LogtoSecurity(issuer.verifier(), scopes={"read:products": "Read products"})
    app = FastAPI()

    @app.get("/products")
    async def products(token: AccessToken = Security(guard, scopes=["read:products"])) -> Any:  # noqa: B008
        return []

    @app.get("/whoami")
    async def whoami(token: AccessToken = Security(guard)) -> Any:  # noqa: B008
        return {}

    @app.get("/mine", responses={403: {"description": "mine"}})
    async def mine(token: AccessToken = Security(guard, scopes=["read:products"])) -> Any:  # noqa: B008
        return {}

    @app.get("/health")
    async def health() -> Any:
        return {}

    document_errors(app)
    return app, issuer


def schema_of(response: dict[str, Any]) -> Any:
    return response["content"]["application/json"]["schema"]


def test_operations_list_401_and_403() -> None:
    app, _ = build()
    paths = app.openapi()["paths"]
    responses = paths["/products"]["get"]["responses"]
    assert schema_of(responses["401"]) == REF and schema_of(responses["403"]) == REF
    assert "403" not in paths["/whoami"]["get"]["responses"]  # no scopes: never 403
    assert schema_of(paths["/whoami"]["get"]["responses"]["401"]) == REF
    assert paths["/mine"]["get"]["responses"]["403"] == {"description": "mine"}
    assert "401" not in paths["/health"]["get"]["responses"]


def test_the_schema_describes_the_bodies_actually_sent() -> None:
    app, issuer = build()
    schema = app.openapi()["components"]["schemas"][ERROR_SCHEMA_NAME]
    assert schema["required"] == ["error", "error_description"]
    with TestClient(app) as client:
        missing = client.get("/products").json()
        scope = client.get(
            "/products", headers={"Authorization": f"Bearer {issuer.mint(scopes=[])}"}
        ).json()
        served = client.get("/openapi.json").json()
    for body in (missing, scope):
        assert set(body) == set(schema["properties"])
    assert missing["error"] is None and scope["error"] == "insufficient_scope"
    content = served["paths"]["/products"]["get"]["responses"]["403"]["content"]
    example = content["application/json"]["example"]  # what Swagger UI shows for the 403
    assert example["error"] == scope["error"] and set(example) == set(scope)
