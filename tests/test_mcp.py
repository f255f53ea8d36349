"""MCP servers protected by Logto: the real `mcp` SDK (server and client) against the real test
provider, over loopback HTTP (uvicorn).

Two servers for the module, the two ways the README offers:

- "sdk": `MCPServer(token_verifier=LogtoTokenVerifier(...), auth=AuthSettings(...))`, the SDK's
  own bearer middleware, plus `ToolScopes` for `create_product` (the shop example's app);
- "guard": an `MCPServer` without auth behind `LogtoGuard` + `LogtoAuthContext` + `ToolScopes`.

The MCP server's URL is the API resource's identifier (what MCP clients send as `resource`), so
each server's port is bound first and the resource is then added to the provider.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.auth.utils import build_oauth_authorization_server_metadata_discovery_urls
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.shared.auth import OAuthMetadata
from starlette.types import ASGIApp, Receive, Scope, Send

from example_app.mcp_server import create_mcp_app
from logto_guard import ConfigurationError, LogtoGuard, TokenVerifier
from logto_guard.mcp import (
    LogtoAuthContext,
    LogtoTokenVerifier,
    MemoryTokenStorage,
    ToolScopes,
    client_credentials_auth,
)
from logto_guard.testing import LoopbackServer

try:
    from oidc_provider import CLIENT_SECRETS, OidcProvider
    from real_logto import load
except ImportError:  # pragma: no cover - tests/ as a package
    from .oidc_provider import CLIENT_SECRETS, OidcProvider
    from .real_logto import load

SCOPES = ["read:products", "write:products"]
ACCEPT = {"Accept": "application/json, text/event-stream"}
TOOL_SCOPES = {"list_products": "read:products", "create_product": "write:products"}
NEW_PRODUCT = {"name": "Cable", "price": 5.0}


class Deferred:
    """An ASGI app set once the socket is bound: the app needs its own URL."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


@dataclass
class Site:
    route: str  # "sdk" or "guard"
    url: str  # the MCP endpoint, also the API identifier
    origin: str
    issuer: str


def add_resource(provider: OidcProvider, resource: str) -> None:
    """Make `resource` one of the provider's API resources, with roles for the shop's apps."""
    grants = {"shop-reader": ["read:products"], "shop-writer": SCOPES}
    response = httpx.post(
        f"{provider.control_url}/resources",
        json={"resource": resource, "scopes": SCOPES, "grants": grants},
    )
    response.raise_for_status()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def guarded_app(verifier: TokenVerifier, mcp_url: str, *, warm_start: bool = True) -> ASGIApp:
    """The LogtoGuard route: an MCPServer without auth of its own."""
    server = MCPServer("shop-guarded", log_level="WARNING")

    @server.tool()
    def list_products() -> list[dict[str, Any]]:
        return [{"id": 1, "name": "Keyboard"}]

    @server.tool()
    def create_product(name: str, price: float) -> dict[str, Any]:
        token = get_access_token()  # the SDK's accessor, fed by LogtoAuthContext
        return {
            "id": 2,
            "name": name,
            "price": price,
            "created_by": token.subject if token else None,
        }

    # `public_url` (where clients reach the API) is the MCP URL itself here, so it changes
    # nothing: the identifier already is the server's address. The challenge must name a
    # document this server serves.
    return LogtoGuard(
        LogtoAuthContext(ToolScopes(server.streamable_http_app(), TOOL_SCOPES)),
        verifier=verifier,
        scopes_supported=SCOPES,
        public_url=mcp_url,
        warm_start=warm_start,
    )


@contextlib.contextmanager
def serve_site(provider: OidcProvider, route: str, *, warm_start: bool = True) -> Iterator[Site]:
    deferred = Deferred()
    loopback = LoopbackServer(deferred, lifespan="on")
    url = loopback.url + "/mcp"
    add_resource(provider, url)
    verifier = TokenVerifier(provider.issuer, audience=url)
    deferred.app = (
        create_mcp_app(verifier, url)
        if route == "sdk"
        else guarded_app(verifier, url, warm_start=warm_start)
    )
    with loopback:
        yield Site(route=route, url=url, origin=loopback.url, issuer=provider.issuer)


@pytest.fixture(scope="module")
def sdk_site(oidc_provider: OidcProvider) -> Iterator[Site]:
    with serve_site(oidc_provider, "sdk") as site:
        yield site


@pytest.fixture(scope="module")
def guard_site(oidc_provider: OidcProvider) -> Iterator[Site]:
    with serve_site(oidc_provider, "guard") as site:
        yield site


@pytest.fixture(params=["sdk", "guard"])
def site(request: pytest.FixtureRequest) -> Site:
    found: Site = request.getfixturevalue(f"{request.param}_site")
    return found


@dataclass
class Agent:
    client: Client
    storage: MemoryTokenStorage
    wire: list[tuple[str, str, int]]  # (method, path, status) of every HTTP exchange


@contextlib.asynccontextmanager
async def agent(site: Site, app_id: str) -> AsyncIterator[Agent]:
    """An M2M agent: the SDK's client with its client-credentials extension."""
    wire: list[tuple[str, str, int]] = []

    async def record(response: httpx2.Response) -> None:
        wire.append((response.request.method, response.request.url.path, response.status_code))

    endpoint = site.issuer.removesuffix("/oidc")
    auth = client_credentials_auth(site.url, app_id, CLIENT_SECRETS[app_id], endpoint=endpoint)
    storage = auth.context.storage
    assert isinstance(storage, MemoryTokenStorage)
    http = httpx2.AsyncClient(auth=auth, event_hooks={"response": [record]})
    async with http, Client(streamable_http_client(site.url, http_client=http)) as client:
        yield Agent(client, storage, wire)


@contextlib.asynccontextmanager
async def bearer_client(site: Site, token: str) -> AsyncIterator[Client]:
    """The SDK's client with a token obtained elsewhere (what MCP clients of users carry)."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(site.url, http_client=http)) as client:
        yield client


def post(
    site: Site,
    message: dict[str, Any],
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = ACCEPT | (headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return httpx.post(site.url, json=message, headers=sent, timeout=10)


def tools_call(name: str, arguments: dict[str, Any] | None = None, id_: int = 7) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments or {}}
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "1"},
    },
}


def challenge_params(header: str) -> dict[str, str]:
    assert header.startswith("Bearer ")
    params: dict[str, str] = {}
    for part in header[len("Bearer ") :].split('", '):
        name, _, value = part.partition("=")
        params[name] = value.strip('"')
    return params


# ---------------------------------------------------------------------------- tools, M2M agents


async def test_m2m_agent_lists_and_calls_tools(site: Site) -> None:
    async with agent(site, "shop-writer") as a:
        tools = await a.client.list_tools()
        assert {tool.name for tool in tools.tools} == {"list_products", "create_product"}
        listed = await a.client.call_tool("list_products", {})
        assert not listed.is_error and "Keyboard" in listed.content[0].text  # type: ignore[union-attr]
        created = await a.client.call_tool("create_product", NEW_PRODUCT)
        assert not created.is_error
        assert json.loads(created.content[0].text)["created_by"] == "shop-writer"  # type: ignore[union-attr]
        assert a.storage.tokens is not None
        token = claims_of(a.storage.tokens.access_token)
    # Logto's resource parameter came from the metadata: the token is for this MCP server.
    assert token["aud"] == site.url
    assert token["sub"] == token["client_id"] == "shop-writer"
    assert set(token["scope"].split()) == set(SCOPES)
    # The whole discovery ran against the server and the provider, in the spec's order.
    paths = [path for _, path, _ in a.wire]
    assert paths[:2] == ["/mcp", "/.well-known/oauth-protected-resource/mcp"]
    assert "/oidc/.well-known/openid-configuration" in paths and "/oidc/token" in paths
    # The SDK route advertises only the server-wide scope: the agent steps up on the 403.
    step_ups = [status for method, path, status in a.wire if path == "/mcp" and status == 403]
    assert len(step_ups) == (1 if site.route == "sdk" else 0)


async def test_agent_without_the_tool_scope_is_refused(site: Site) -> None:
    async with agent(site, "shop-reader") as a:
        listed = await a.client.call_tool("list_products", {})
        assert not listed.is_error
        with pytest.raises(MCPError) as refused:
            await a.client.call_tool("create_product", NEW_PRODUCT)
    assert "insufficient_scope" in str(refused.value)
    assert "write:products" in str(refused.value)
    # The SDK asked Logto once more with the challenged scope; Logto granted only what the
    # app's roles allow, so the retry was refused too.
    statuses = [status for _, path, status in a.wire if path == "/mcp"]
    assert statuses[-2:] == [403, 403]
    assert a.storage.tokens is not None
    assert claims_of(a.storage.tokens.access_token)["scope"] == "read:products"


def test_missing_tool_scope_is_a_403_step_up_challenge(
    site: Site, oidc_provider: OidcProvider
) -> None:
    token = oidc_provider.token("shop-reader", resource=site.url, scope="read:products")
    response = post(site, tools_call("create_product", NEW_PRODUCT, id_=42), token)
    assert response.status_code == 403
    params = challenge_params(response.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "write:products"
    assert params["resource_metadata"] == f"{site.origin}/.well-known/oauth-protected-resource/mcp"
    body = response.json()
    assert body["id"] == 42 and body["jsonrpc"] == "2.0"
    assert body["error"]["data"] == {
        "error": "insufficient_scope",
        "error_description": "the tool create_product needs write:products",
        "scope": "write:products",
    }


def test_without_a_token_the_answer_is_401_with_resource_metadata(site: Site) -> None:
    response = post(site, INITIALIZE)
    assert response.status_code == 401
    params = challenge_params(response.headers["www-authenticate"])
    metadata = f"{site.origin}/.well-known/oauth-protected-resource/mcp"
    assert params["resource_metadata"] == metadata
    if site.route == "sdk":  # the SDK's middleware: "invalid_token" even with no token at all
        assert params["error"] == "invalid_token"
        assert params["error_description"] == "Authentication required"
    else:  # RFC 6750 §3.1: a request without credentials gets no error code
        assert params == {"realm": "api", "resource_metadata": metadata}
        assert response.json() == {"error": None, "error_description": "a bearer token is required"}
    # A call of a scoped tool without a token is refused before the MCP app, also with 401.
    response = post(site, tools_call("create_product", NEW_PRODUCT))
    assert response.status_code == 401
    assert challenge_params(response.headers["www-authenticate"])["resource_metadata"] == metadata


@pytest.mark.parametrize("kind", ["other resource", "expired", "bad signature"])
def test_bad_tokens_are_refused(
    site: Site, oidc_provider: OidcProvider, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    if kind == "other resource":  # a real token, for the shop's REST API instead
        token = oidc_provider.token(
            "shop-writer", resource=OidcProvider.SHOP, scope=" ".join(SCOPES)
        )
    elif kind == "expired":
        token = oidc_provider.sign({"aud": site.url, "iat": 1_000_000, "exp": 1_003_600})
    else:
        valid = oidc_provider.sign({"aud": site.url})
        token = valid[:-6] + ("AAAAAA" if not valid.endswith("AAAAAA") else "BBBBBB")
    for message in (INITIALIZE, tools_call("create_product", NEW_PRODUCT)):
        response = post(site, message, token)
        assert response.status_code == 401, message
        assert challenge_params(response.headers["www-authenticate"])["error"] == "invalid_token"
    logged = caplog.text
    assert token not in logged and token.split(".")[2] not in logged
    description = challenge_params(response.headers["www-authenticate"])["error_description"]
    if site.route == "sdk":  # the SDK answers "Authentication required"; the log says why
        expected = {"other resource": "InvalidAudience", "expired": "ExpiredToken"}
        assert expected.get(kind, "InvalidSignature") in logged
        assert (
            challenge_params(post(site, INITIALIZE, token).headers["www-authenticate"])[
                "error_description"
            ]
            == "Authentication required"
        )
    else:
        expected = {"other resource": "audience", "expired": "expired"}
        assert expected.get(kind, "signature") in description


def test_token_for_another_configured_audience_is_not_this_servers(
    oidc_provider: OidcProvider,
) -> None:
    """`resource` is the audience the token matched: with `validate_token_resource` the SDK
    refuses a token the verifier accepts for another of its audiences."""
    import asyncio

    from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
    from starlette.requests import HTTPConnection

    mcp_url = "http://127.0.0.1:9/mcp"

    def authenticate(token: str, resource: str | None) -> Any:
        async def run() -> Any:
            verifier = TokenVerifier(oidc_provider.issuer, audience=[OidcProvider.SHOP, mcp_url])
            adapter = LogtoTokenVerifier(verifier, resource=resource)
            backend = BearerAuthBackend(adapter, resource_server_url=mcp_url)  # type: ignore[arg-type]
            scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]}
            try:
                return await backend.authenticate(HTTPConnection(scope))
            finally:
                await verifier.aclose()

        return asyncio.run(run())

    for_shop = oidc_provider.sign({"aud": OidcProvider.SHOP})
    for_both = oidc_provider.sign({"aud": [OidcProvider.SHOP, mcp_url]})
    assert authenticate(for_shop, mcp_url) is None
    _, user = authenticate(for_both, mcp_url)
    assert user.access_token.resource == mcp_url
    # Without `resource=`, the first configured audience the token names is its resource.
    assert authenticate(for_both, None) is None
    with pytest.raises(ConfigurationError, match="not one of the verifier's audiences"):
        LogtoTokenVerifier(TokenVerifier(oidc_provider.issuer, audience=mcp_url), resource="x")


# ---------------------------------------------------------------------------- token shapes


async def test_user_tokens_work_too(site: Site, oidc_provider: OidcProvider) -> None:
    """MCP clients acting for a user carry `sub` = the user, `client_id` = the client app."""
    token = oidc_provider.sign(
        {"sub": "user-7f3a", "client_id": "mcp-desktop", "aud": site.url, "scope": " ".join(SCOPES)}
    )
    async with bearer_client(site, token) as client:
        created = await client.call_tool("create_product", NEW_PRODUCT)
    assert not created.is_error
    assert json.loads(created.content[0].text)["created_by"] == "user-7f3a"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("sub", "client_id"), [("shop-writer", "shop-writer"), ("user-7f3a", "mcp-desktop")]
)
async def test_verify_token_maps_both_shapes(
    oidc_provider: OidcProvider, sub: str, client_id: str
) -> None:
    mcp_url = "https://mcp.example.com/mcp"
    token = oidc_provider.sign(
        {
            "sub": sub,
            "client_id": client_id,
            "aud": mcp_url,
            "scope": "write:products read:products",
        }
    )
    verifier = LogtoTokenVerifier(TokenVerifier(oidc_provider.issuer, audience=mcp_url))
    try:
        mapped = await verifier.verify_token(token)
        refused = await verifier.verify_token(token[:-4] + "AAAA")
    finally:
        await verifier.aclose()
    assert mapped is not None and refused is None
    assert (mapped.subject, mapped.client_id) == (sub, client_id)
    assert mapped.scopes == ["read:products", "write:products"]
    assert mapped.resource == mcp_url
    assert mapped.token == token
    assert mapped.expires_at == claims_of(token)["exp"]
    assert mapped.claims is not None and mapped.claims["iss"] == oidc_provider.issuer


# ---------------------------------------------------------------------------- metadata


def test_metadata_document_points_at_logto(site: Site, oidc_provider: OidcProvider) -> None:
    url = challenge_params(post(site, INITIALIZE).headers["www-authenticate"])["resource_metadata"]
    assert url.startswith(site.origin + "/")  # reachable on the server's own URL
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["resource"] == site.url
    assert document["authorization_servers"] == [oidc_provider.issuer]
    assert document["bearer_methods_supported"] == ["header"]
    # The SDK route lists its server-wide scopes only; LogtoGuard lists every scope.
    assert document["scopes_supported"] == (["read:products"] if site.route == "sdk" else SCOPES)


def test_the_sdk_client_finds_logtos_metadata(oidc_provider: OidcProvider) -> None:
    """Of the SDK's candidate URLs for the issuer `<endpoint>/oidc`, Logto (and the provider)
    answer the OpenID Connect one; the RFC 8414 path-inserted ones are 404s that it skips."""
    urls = build_oauth_authorization_server_metadata_discovery_urls(oidc_provider.issuer, "")
    statuses = [httpx.get(url).status_code for url in urls]
    assert urls[-1] == oidc_provider.issuer + "/.well-known/openid-configuration"
    assert statuses == [404, 404, 200]
    metadata = OAuthMetadata.model_validate_json(httpx.get(urls[-1]).content)
    assert str(metadata.issuer) == oidc_provider.issuer  # the SDK compares them as strings
    assert str(metadata.token_endpoint) == oidc_provider.issuer + "/token"
    assert "client_credentials" in (metadata.grant_types_supported or [])


@pytest.mark.parametrize("exchange_id", ["discovery", "oauth_authorization_server"])
def test_real_logtos_discovery_documents_satisfy_the_sdk(exchange_id: str) -> None:
    doc = load("09-discovery-jwks-headers.json")
    recorded = next(e for e in doc["exchanges"] if e["id"] == exchange_id)
    metadata = OAuthMetadata.model_validate_json(recorded["response"]["body_raw"])
    assert str(metadata.issuer) == doc["issuer"]
    urls = build_oauth_authorization_server_metadata_discovery_urls(doc["issuer"], "")
    assert doc["issuer"] + "/.well-known/openid-configuration" in urls


# ------------------------------------------------------------------ what the routes differ in


def test_sessions_are_bound_to_the_caller(site: Site, oidc_provider: OidcProvider) -> None:
    """The SDK lets a session be used only with the credential that opened it; behind
    LogtoGuard that needs `LogtoAuthContext` (without it every caller would be "nobody")."""
    writer = oidc_provider.token("shop-writer", resource=site.url, scope=" ".join(SCOPES))
    reader = oidc_provider.token("shop-reader", resource=site.url, scope="read:products")
    opened = post(site, INITIALIZE, writer)
    assert opened.status_code == 200
    session = {"mcp-session-id": opened.headers["mcp-session-id"]}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    assert post(site, listing, reader, session).status_code == 404
    assert post(site, listing, writer, session).status_code == 200


@pytest.mark.parametrize("route", ["sdk", "guard"])
def test_logto_unreachable(
    fresh_provider: OidcProvider, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No signing keys to be had (Logto down before the first fetch; LogtoGuard's warm start,
    which would have fetched them at startup, is off): LogtoGuard answers 503 + Retry-After
    (clients keep their token); the SDK's middleware can only answer 401, and the adapter logs
    why."""
    caplog.set_level(logging.INFO)
    with serve_site(fresh_provider, route, warm_start=False) as site:
        token = fresh_provider.sign({"aud": site.url})
        fresh_provider.stop()
        response = post(site, INITIALIZE, token)
    if route == "sdk":
        assert response.status_code == 401
        assert "MCP token not verified: signing keys are temporarily unavailable" in caplog.text
    else:
        assert response.status_code == 503
        assert "www-authenticate" not in response.headers
        assert int(response.headers["retry-after"]) > 0


def test_client_credentials_auth_needs_the_issuer() -> None:
    with pytest.raises(ConfigurationError, match="exactly one of endpoint= or issuer="):
        client_credentials_auth("https://mcp.example.com/mcp", "app", "secret")


def test_server_wide_scope_refusals(sdk_site: Site, oidc_provider: OidcProvider) -> None:
    """`AuthSettings.required_scopes`: the SDK names the first missing scope in its
    description, without the `scope` parameter a client could step up with."""
    token = oidc_provider.sign({"aud": sdk_site.url, "scope": "write:products"})
    response = post(sdk_site, INITIALIZE, token)
    assert response.status_code == 403
    params = challenge_params(response.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["error_description"] == "Required scope: read:products"
    assert "scope" not in params


def test_two_authorization_headers(site: Site, oidc_provider: OidcProvider) -> None:
    """RFC 6750 allows one method per request: LogtoGuard refuses two headers with 400; the
    SDK's middleware reads the first one."""
    token = oidc_provider.token("shop-writer", resource=site.url, scope=" ".join(SCOPES))
    headers = [*ACCEPT.items(), ("Authorization", f"Bearer {token}"), ("Authorization", "Bearer x")]
    response = httpx.post(site.url, json=INITIALIZE, headers=headers, timeout=10)
    if site.route == "sdk":
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


async def test_the_sdk_client_refuses_metadata_for_another_resource(
    oidc_provider: OidcProvider,
) -> None:
    """Why the API identifier must be the MCP server's URL (or a parent of it)."""
    from mcp.server.auth.settings import AuthSettings

    deferred = Deferred()
    loopback = LoopbackServer(deferred, lifespan="on")
    elsewhere = loopback.url + "/not-mcp"
    verifier = TokenVerifier(oidc_provider.issuer, audience=elsewhere)
    server = MCPServer(
        "misconfigured",
        log_level="WARNING",
        token_verifier=LogtoTokenVerifier(verifier),
        auth=AuthSettings(
            issuer_url=oidc_provider.issuer,  # type: ignore[arg-type]
            resource_server_url=elsewhere,  # type: ignore[arg-type]
            validate_token_resource=True,
        ),
    )
    deferred.app = server.streamable_http_app()
    site = Site("sdk", loopback.url + "/mcp", loopback.url, oidc_provider.issuer)
    with loopback, pytest.raises(BaseException) as failed:  # the SDK raises an exception group
        async with agent(site, "shop-writer"):
            pass
    assert "does not match expected" in repr(failed.value) + "".join(
        repr(e) for e in getattr(failed.value, "exceptions", ())
    )


def test_expiry_leeway(site: Site, oidc_provider: OidcProvider) -> None:
    """Our verifier allows 60 s of clock skew on `exp`; the SDK's middleware then compares
    `expires_at` with its own clock, without leeway."""
    now = int(time.time())
    token = oidc_provider.sign({"aud": site.url, "iat": now - 3600, "exp": now - 30})
    response = post(site, INITIALIZE, token)
    assert response.status_code == (401 if site.route == "sdk" else 200)


def test_the_sdk_refuses_other_hosts_unless_told(oidc_provider: OidcProvider) -> None:
    """Why the README's blocks pass `transport_security`: by default the SDK's Streamable HTTP
    app takes only loopback Host headers (DNS-rebinding protection)."""
    from mcp.server.transport_security import TransportSecuritySettings

    token = oidc_provider.sign({"aud": "https://mcp.example.com/mcp"})
    statuses = []
    for security in (None, TransportSecuritySettings(allowed_hosts=["mcp.example.com"])):
        verifier = TokenVerifier(oidc_provider.issuer, audience="https://mcp.example.com/mcp")
        server = MCPServer("hosts", log_level="WARNING")
        app = LogtoGuard(server.streamable_http_app(transport_security=security), verifier=verifier)
        with LoopbackServer(app, lifespan="on") as url:
            headers = ACCEPT | {"Host": "mcp.example.com", "Authorization": f"Bearer {token}"}
            statuses.append(httpx.post(url + "/mcp", json=INITIALIZE, headers=headers).status_code)
    assert statuses == [421, 200]
