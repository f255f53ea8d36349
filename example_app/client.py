"""The caller's half of Logto's M2M guide: get a token with client credentials, call the API.

Prints each step so a newcomer sees what happened on the wire.
"""

from __future__ import annotations

import httpx2

from logto_guard import ClientCredentials

API_RESOURCE = "https://shopping.api"


BODY_WIDTH = 96


def _show(label: str, response: httpx2.Response) -> None:
    challenge = response.headers.get("www-authenticate")
    body = response.text
    if len(body) > BODY_WIDTH:  # cut at a comma, and say so
        cut = body.rfind(",", 0, BODY_WIDTH - 3) + 1 or BODY_WIDTH - 3
        body = body[:cut] + "..."
    print(f"  {label:<44} -> {response.status_code} {body}")
    if challenge:
        print(f"  {'':<44}    WWW-Authenticate: {challenge}")


def run_flow(
    api_url: str,
    *,
    endpoint: str,
    resource: str,
    reader: tuple[str, str],
    writer: tuple[str, str] | None = None,
) -> dict[str, int]:
    """Run the guide's flow and return the status codes seen, by step."""
    statuses: dict[str, int] = {}
    read_auth = ClientCredentials(
        reader[0], reader[1], endpoint=endpoint, resource=resource, scopes=["read:products"]
    )
    print(f"1. token for app {reader[0]!r}: POST {endpoint}/oidc/token (client_credentials)")
    token = read_auth.get_token()
    print(f"   got an access token ({len(token)} chars), scope read:products")

    with httpx2.Client(base_url=api_url, auth=read_auth) as api:
        print("2. calling the API with Authorization: Bearer <token>")
        for label, method, path in (
            ("GET /products (read:products)", "GET", "/products"),
            ("GET /whoami", "GET", "/whoami"),
            ("POST /products with a read-only token", "POST", "/products"),
        ):
            response = api.request(method, path, json={"name": "Cable", "price": 5.0})
            statuses[label] = response.status_code
            _show(label, response)

    with httpx2.Client(base_url=api_url) as anonymous:
        print("3. calling the API without a token, and with a forged one")
        response = anonymous.get("/products")
        statuses["GET /products without a token"] = response.status_code
        _show("GET /products without a token", response)
        forged = token[:-8] + ("AAAAAAAA" if not token.endswith("AAAAAAAA") else "BBBBBBBB")
        response = anonymous.get("/products", headers={"Authorization": f"Bearer {forged}"})
        statuses["GET /products with a forged token"] = response.status_code
        _show("GET /products with a forged token", response)

    if writer is not None:
        write_auth = ClientCredentials(
            writer[0],
            writer[1],
            endpoint=endpoint,
            resource=resource,
            scopes=["read:products", "write:products"],
        )
        print(f"4. token for app {writer[0]!r} with read:products write:products")
        with httpx2.Client(base_url=api_url, auth=write_auth) as api:
            response = api.post("/products", json={"name": "Cable", "price": 5.0})
            statuses["POST /products with write:products"] = response.status_code
            _show("POST /products with write:products", response)
    return statuses
