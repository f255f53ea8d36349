"""CORS on the local issuer's endpoints, the way oidc-provider (inside Logto) answers it.

A browser-based client such as Swagger UI's "Authorize" button posts to the token endpoint
from the API's origin, so the issuer must answer the preflight and put
`Access-Control-Allow-Origin` on the token answer. oidc-provider answers every preflight (it
cannot know the client yet) and, on the token request itself, checks the origin against the
authenticated client: Logto allows the origins listed in the M2M app's "CORS allowed origins".
Discovery and JWKS are open to any origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["PREFLIGHT_MAX_AGE", "allowed_origins", "origin_headers", "preflight_headers"]

PREFLIGHT_MAX_AGE = 3600  # oidc-provider's


def allowed_origins(origins: Iterable[str]) -> frozenset[str]:
    """Normalised origins (`scheme://host[:port]`, no trailing slash), checked for shape."""
    found: set[str] = set()
    for origin in [origins] if isinstance(origins, str) else origins:
        value = origin.rstrip("/")
        scheme, sep, rest = value.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ValueError(
                f"a CORS origin is scheme://host[:port] without a path, not {origin!r}"
            )
        found.add(value.lower())
    return frozenset(found)


def preflight_headers(headers: Mapping[str, str], methods: str) -> dict[str, str] | None:
    """The 204 answer's headers to an `OPTIONS` preflight, or None if it is not one."""
    if not headers.get("access-control-request-method"):
        return None
    answer = {
        "Access-Control-Allow-Origin": headers.get("origin") or "*",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        "Access-Control-Allow-Methods": methods,
        "Vary": "Origin",
    }
    requested = headers.get("access-control-request-headers")
    if requested:
        answer["Access-Control-Allow-Headers"] = requested
    return answer


def origin_headers(origin: str) -> dict[str, str]:
    """Headers of an allowed cross-origin token answer (success or error)."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": "WWW-Authenticate",
        "Vary": "Origin",
    }
