"""One FastAPI app, served by uvicorn four ways for bench/run.py's end-to-end part.

    python bench/server.py VARIANT --port P --issuer URL --audience AUD [--cache-size N]

VARIANT is one of:

* ``bare``   - the app alone;
* ``guard``  - the app behind `LogtoGuard(app, verifier=TokenVerifier(...))`;
* ``security`` - the app with `LogtoSecurity` as a FastAPI dependency requiring the route's
  scope (no middleware): one dependency, like each peer below;
* ``pyjwt``, ``joserfc``, ``jose``, ``authlib``, ``jwcrypto`` - the app with that peer library
  (bench/peers.py: keys pre-loaded, `iss`/`aud`/`exp`/scope checked) in an `async` dependency
  on `HTTPBearer`, answering 401 to any failure;
* ``recipe`` - the app with the recipe from Logto's Python docs ("Validate access tokens",
  FastAPI tab): PyJWT's `PyJWKClient` + `jwt.decode` in an `async` FastAPI dependency built on
  `HTTPBearer`, with `algorithms=["ES384"]` instead of the docs' `["RS256"]` (which rejects every
  token of a default, EC-keyed tenant), and the docs' `verify_payload` for global API resources
  (audience and scope checks).

The route is the same function in every variant. The server runs one uvicorn worker on the
asyncio loop with h11 (what the project's dependencies install: no uvloop, no httptools).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # The venv's editable install resolves `logto_guard` only from the repository root.
    sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import Depends, FastAPI, HTTPException, Security  # noqa: E402
from fastapi.params import Depends as DependsParam  # noqa: E402
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer  # noqa: E402
from jwt import PyJWKClient  # noqa: E402

from logto_guard import TokenVerifier  # noqa: E402
from logto_guard.fastapi import LogtoSecurity  # noqa: E402
from logto_guard.middleware import LogtoGuard  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

REQUIRED_SCOPES = ("read:products",)
PRODUCTS = {"products": [{"id": 1, "name": "apple"}, {"id": 2, "name": "pear"}]}


def build_app(dependencies: list[DependsParam] | None = None) -> FastAPI:
    """The benchmarked app: one JSON route. Only its dependencies differ between variants."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/products", dependencies=dependencies or [])
    async def products() -> Any:
        return PRODUCTS

    return app


# -- (d): the recipe from Logto's Python docs, kept as written there ---------------------------


class AuthorizationError(Exception):
    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def recipe_dependency(issuer: str, audience: str, algorithm: str = "ES384") -> DependsParam:
    jwks_client = PyJWKClient(issuer + "/jwks")
    security = HTTPBearer()

    def verify_payload(payload: dict[str, Any]) -> None:
        audiences = payload.get("aud", [])
        if isinstance(audiences, str):
            audiences = [audiences]
        if audience not in audiences:
            raise AuthorizationError("Invalid audience")
        scopes = payload.get("scope", "").split(" ") if payload.get("scope") else []
        if not all(scope in scopes for scope in REQUIRED_SCOPES):
            raise AuthorizationError("Insufficient scope")

    def validate_jwt_token(token: str) -> dict[str, Any]:
        try:
            signing_key = jwks_client.get_signing_key_from_jwt(token)
            payload: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                # the docs say ['RS256']: Logto's default key is EC P-384
                algorithms=[algorithm],
                issuer=issuer,
                options={"verify_aud": False},  # the docs verify the audience manually
            )
            verify_payload(payload)
            return payload
        except jwt.InvalidTokenError as e:
            raise AuthorizationError(f"Invalid token: {e!s}", 401) from None
        except AuthorizationError:
            raise
        except Exception as e:
            raise AuthorizationError(f"Token validation failed: {e!s}", 401) from None

    def create_auth_info(payload: dict[str, Any]) -> dict[str, Any]:
        scopes = payload.get("scope", "").split(" ") if payload.get("scope") else []
        aud = payload.get("aud", [])
        return {
            "sub": payload.get("sub"),
            "client_id": payload.get("client_id"),
            "organization_id": payload.get("organization_id"),
            "scopes": scopes,
            "audience": [aud] if isinstance(aud, str) else aud,
        }

    async def verify_access_token(
        credentials: HTTPAuthorizationCredentials = Depends(security),  # noqa: B008
    ) -> dict[str, Any]:
        try:
            return create_auth_info(validate_jwt_token(credentials.credentials))
        except AuthorizationError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None

    return Depends(verify_access_token)


def peer_dependency(peer: Any) -> DependsParam:
    """A peer library behind `HTTPBearer`, as its user would wire it into FastAPI."""
    security = HTTPBearer()

    async def verify_access_token(
        credentials: HTTPAuthorizationCredentials = Depends(security),  # noqa: B008
    ) -> Any:
        try:
            return peer.verify(credentials.credentials)
        except Exception:
            raise HTTPException(status_code=401, detail="invalid token") from None

    return Depends(verify_access_token)


PEER_VARIANTS = {cls.key: cls for cls in peers.PEER_CLASSES}
VARIANTS = ["bare", "guard", "security", "recipe", *PEER_VARIANTS]


def make_app(
    variant: str,
    issuer: str,
    audience: str,
    cache_size: int,
    algorithm: str = "ES384",
    jwks: dict[str, Any] | None = None,
) -> Any:
    """The app of one variant. `jwks` pre-loads the peers' keys (fetched from the issuer when
    not given)."""
    if variant == "bare":
        return build_app()
    if variant in ("guard", "security"):
        verifier = TokenVerifier(
            issuer, audience=audience, allow_insecure_http=True, cache_size=cache_size
        )
        if variant == "guard":
            return LogtoGuard(build_app(), verifier=verifier)
        guard = LogtoSecurity(verifier)
        return build_app([Security(guard, scopes=list(REQUIRED_SCOPES))])
    if variant == "recipe":
        return build_app([recipe_dependency(issuer, audience, algorithm)])
    if variant in PEER_VARIANTS:
        if jwks is None:
            import httpx

            jwks = httpx.get(issuer + "/jwks", timeout=10).json()
        assert jwks is not None
        peer = peers.build_peer(variant, issuer, issuer + "/jwks", jwks, audience, algorithm)
        return build_app([peer_dependency(peer)])
    raise SystemExit(f"unknown variant {variant!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--cache-size", type=int, default=10_000)
    parser.add_argument("--algorithm", default="ES384", choices=["ES384", "RS256"])
    args = parser.parse_args()
    app = make_app(args.variant, args.issuer, args.audience, args.cache_size, args.algorithm)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="asyncio",
        http="h11",
        ws="none",
        log_level="warning",
        access_log=False,
        backlog=2048,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
