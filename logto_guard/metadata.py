"""RFC 9728 OAuth 2.0 Protected Resource Metadata.

Tells clients (MCP clients in particular) which authorization server issues tokens for this API
and which scopes exist. The document's URL is derived from the configured resource identifier,
or from the API's public URL when the identifier is not a reachable address (`https://shopping.api`
names an API, no host answers there); never from the request's `Host` header, so a forged host
cannot redirect clients elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .bearer import is_scope_token
from .errors import ConfigurationError

__all__ = ["WELL_KNOWN_PATH", "ProtectedResourceMetadata", "metadata_url"]

WELL_KNOWN_PATH = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str, *, what: str = "the resource identifier") -> str:
    """The metadata URL of a resource: the well-known path inserted between host and path.

    `https://api.example.com/v1` gives
    `https://api.example.com/.well-known/oauth-protected-resource/v1` (RFC 9728 §3.1).
    `what` names the setting in errors.
    """
    parts = urlsplit(resource)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(f"{what} must be an absolute http(s) URL, not {resource!r}")
    if parts.query or parts.fragment or "?" in resource or "#" in resource:
        raise ConfigurationError(f"{what} must not have a query or fragment: {resource!r}")
    path = "" if parts.path == "/" else parts.path
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN_PATH}{path}"


class ProtectedResourceMetadata:
    """The metadata document, and a small ASGI app that serves it (GET and HEAD).

    `public_url` is where clients reach the API (`https://api.example.com`); the document is
    then served under it (`https://api.example.com/.well-known/oauth-protected-resource`) while
    its `resource` stays the API identifier that tokens carry in `aud`. Without it the URL is
    derived from `resource` itself, which is right when the identifier is the API's address.
    """

    def __init__(
        self,
        resource: str,
        *,
        public_url: str | None = None,
        authorization_servers: Sequence[str],
        scopes_supported: Iterable[str] = (),
        bearer_methods_supported: Sequence[str] = ("header",),
        resource_name: str | None = None,
    ) -> None:
        self.url = metadata_url(resource)  # also validates it: RFC 9728 wants an http(s) URL
        if public_url is not None:
            self.url = metadata_url(public_url, what="public_url")
        #: where this server answers; compared with the request path as received
        self.path = urlsplit(self.url).path
        scopes = list(dict.fromkeys(scopes_supported))
        for scope in scopes:
            if not is_scope_token(scope):
                raise ConfigurationError(f"invalid scope name {scope!r}")
        # RFC 9728 §3.2: omit parameters with zero values.
        document: dict[str, Any] = {"resource": resource}
        if authorization_servers:
            document["authorization_servers"] = list(authorization_servers)
        if scopes:
            document["scopes_supported"] = scopes
        if bearer_methods_supported:
            document["bearer_methods_supported"] = list(bearer_methods_supported)
        if resource_name:
            document["resource_name"] = resource_name
        self.resource = resource
        self.document = document
        self.body = json.dumps(document, separators=(",", ":")).encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Public, static data: any origin may read it (browser-based MCP clients do).
        headers = {"Access-Control-Allow-Origin": "*"}
        if scope.get("method") in ("GET", "HEAD"):
            response = Response(self.body, headers=headers, media_type="application/json")
        else:
            headers["Allow"] = "GET, HEAD"
            response = Response(status_code=405, headers=headers)
        await response(scope, receive, send)
