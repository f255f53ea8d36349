"""An in-process stand-in for Logto's discovery and JWKS endpoints (unit tests of one piece).

The flow tests use the real oidc-provider; this fake exists to script faults and count calls
precisely with a fake clock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm, get_default_algorithms

ISSUER = "https://tenant.logto.app/oidc"
API = "https://shopping.api"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_raw(header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
    """Sign any header/claims, even ones PyJWT's encoder refuses to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    alg = header.get("alg", "ES384")
    if isinstance(key, bytes):
        sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    else:
        sig = get_default_algorithms()[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(sig)}"


class FakeIssuer:
    def __init__(self) -> None:
        self.private: dict[str, Any] = {}
        self.published: list[dict[str, Any]] = []
        self.jwks_calls = 0
        self.discovery_calls = 0
        self.delay = 0.0
        self.fault: Callable[[httpx.Request], httpx.Response] | None = None
        self.extra_jwks: list[dict[str, Any]] = []
        self.discovery_issuer = ISSUER
        self.add_key("EC")

    def add_key(self, kty: str = "EC", kid: str | None = None) -> str:
        kid = kid or uuid.uuid4().hex
        if kty == "EC":
            key: Any = ec.generate_private_key(ec.SECP384R1())
            jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "ES384"}
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        jwk |= {"kid": kid, "use": "sig"}
        self.private[kid] = key
        self.published.append(jwk)
        return kid

    def remove_key(self, kid: str) -> None:
        self.published = [k for k in self.published if k["kid"] != kid]

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        header: dict[str, Any] | None = None,
        kid: str | None = None,
    ) -> str:
        kid = kid or self.published[0]["kid"]
        key = self.private[kid]
        alg = "ES384" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": API,
            "sub": "m2m-app",
            "client_id": "m2m-app",
            "scope": "read:products",
            "iat": now,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
        }
        body |= claims or {}
        body = {k: v for k, v in body.items() if v is not None}
        head: dict[str, Any] = {"alg": alg, "kid": kid, "typ": "at+jwt"} | (header or {})
        head = {k: v for k, v in head.items() if v is not None}
        return sign_raw(head, body, key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": self.published + self.extra_jwks}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            self.discovery_calls += 1
            return httpx.Response(
                200, json={"issuer": self.discovery_issuer, "jwks_uri": ISSUER + "/jwks"}
            )
        self.jwks_calls += 1
        if self.fault is not None:
            return self.fault(request)
        etag = f'"{hash(str(self.jwks()))}"'
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"etag": etag})
        return httpx.Response(
            200,
            json=self.jwks(),
            headers={
                "etag": etag,
                "cache-control": "no-cache, max-age=0, must-revalidate",
                "content-type": "application/jwk-set+json; charset=utf-8",
            },
        )

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
