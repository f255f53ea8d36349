"""Bounded GETs of JSON documents from the issuer (discovery, JWKS).

httpx timeouts apply per read, so a server dripping one byte at a time never trips them; the
whole fetch therefore runs under one total deadline, the body is capped while it streams, and
redirects are refused (RFC 8725 §3.10: keys come from the configured issuer only).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import telemetry
from ._http import HTTP_ERRORS, AnyAsyncClient
from ._json import loads_object
from ._version import __version__
from .errors import ConfigurationError

USER_AGENT = f"logto-guard/{__version__}"


class FetchError(Exception):
    """A discovery or JWKS fetch failed; the message is safe to log."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    document: dict[str, Any] | None  # None when the server answered 304 Not Modified
    etag: str | None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """Refuse anything but https (http only on loopback, or when explicitly allowed)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigurationError(f"not an absolute URL: {url!r}")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and (allow_insecure_http or is_loopback(parts.hostname)):
        return url
    raise ConfigurationError(
        f"{url!r} must use https (plain http is allowed on loopback or with allow_insecure_http)"
    )


async def fetch_json(
    client: AnyAsyncClient,
    url: str,
    *,
    etag: str | None = None,
    timeout: float = 5.0,
    max_bytes: int = 512 * 1024,
) -> FetchResult:
    try:
        with telemetry.hooks.http_get(url) as span:
            return await asyncio.wait_for(_fetch(client, url, etag, max_bytes, span), timeout)
    except TimeoutError:
        raise FetchError(f"GET {url} took longer than {timeout:g} s") from None
    except HTTP_ERRORS as exc:  # either client family's
        raise FetchError(f"GET {url} failed: {type(exc).__name__}") from None


async def _fetch(
    client: AnyAsyncClient, url: str, etag: str | None, max_bytes: int, span: telemetry.Span
) -> FetchResult:
    headers = {"Accept": "application/json, application/jwk-set+json", "User-Agent": USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    async with client.stream("GET", url, headers=headers, follow_redirects=False) as response:
        span.status(response.status_code)
        if response.status_code == 304 and etag:
            return FetchResult(None, etag)
        if response.status_code != 200:
            raise FetchError(f"GET {url} answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "")
        if "json" not in content_type.lower():
            raise FetchError(f"GET {url} answered {content_type or 'no content type'}, not JSON")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"GET {url} body exceeds {max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise FetchError(f"GET {url} body exceeds {max_bytes} bytes")
    try:
        document = loads_object(bytes(body))
    except ValueError:
        raise FetchError(f"GET {url} answered invalid JSON") from None
    return FetchResult(document, response.headers.get("etag"))
