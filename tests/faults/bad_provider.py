"""A REAL loopback HTTP server impersonating a Logto issuer, switchable into fault modes.

`BadProvider` speaks HTTP/1.1 itself, on asyncio streams in a background thread (its own event
loop), so it can misbehave at byte level: answer late, drip a body one byte per 100 ms, send
10 MB, redirect, lie in its discovery document, or stop listening (connection refused). It owns
real key pairs (EC P-384, the Logto default, plus an RSA-2048 key) and signs tokens with them.

    bad = BadProvider()
    bad.start()
    token = bad.sign()                       # ES384, Logto-shaped, valid for an hour
    bad.set_fault("drip", on=("jwks",))      # only the JWKS endpoint misbehaves
    bad.set_fault("stopped")                 # nothing listens on the port any more
    bad.heal()                               # healthy again, same port and keys
    bad.close()

`CountingServer` is a second tiny server (the target of the redirect fault) that answers every
request with a fixed JSON document and counts the requests it gets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm, get_default_algorithms

try:  # tests/ on sys.path (pytest's default "prepend" import mode)
    from unit.fake_issuer import b64
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests.unit.fake_issuer import b64

API = "https://shopping.api"

# Every fault mode. "healthy" is the absence of a fault; "stopped" closes the listening socket.
FAULTS = (
    "slow",  # accept, then answer nothing for `slow_seconds` (30 s)
    "drip",  # headers at once, then the (valid) body one byte per `drip_interval` (100 ms)
    "http_500",  # 500 with a JSON error body
    "html",  # 200 text/html: a proxy's or login page instead of the document
    "invalid_json",  # 200 application/json, truncated JSON
    "not_an_object",  # 200 application/json, a JSON array
    "huge",  # 200, a valid document padded to 10 MB, with Content-Length
    "huge_chunked",  # the same 10 MB, chunked (no Content-Length): only a streaming cap helps
    "use_enc",  # the real keys, marked "use": "enc"
    "oct_only",  # a single symmetric key (kty oct) carrying the signing kid
    "dup_kid",  # the real key and another key under the same kid (plus the RSA key)
    "redirect",  # 302 to another host (`redirect_to`), which serves the valid document
    "issuer_mismatch",  # discovery names another issuer
    "poisoned_key",  # the valid keys plus one malformed JWK (crv is a list)
    "stopped",  # connection refused
)
ENDPOINTS = ("discovery", "jwks")
HUGE_SIZE = 10 * 1024 * 1024

_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    404: "Not Found",
    500: "Internal Server Error",
}


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Response:
    """What a handler sends: a status, headers and a body, optionally dripped or chunked."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
        *,
        delay: float = 0.0,
        drip_interval: float | None = None,
        chunked: bool = False,
    ) -> None:
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = dict(headers or {})
        self.delay, self.drip_interval, self.chunked = delay, drip_interval, chunked


class LoopbackServer:
    """A minimal HTTP/1.1 server on 127.0.0.1 in a background thread (keep-alive, GET only).

    Subclasses implement `handle(path, headers)`. `stop()` closes the listening socket AND every
    open connection (so a pooled keep-alive connection cannot hide the outage); `start()` after a
    `stop()` listens on the same port again.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = _free_port(host)
        self.base_url = f"http://{host}:{self.port}"
        self.hits: Counter[str] = Counter()  # path -> requests received
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, lower-cased headers)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"loopback-{self.port}", daemon=True
        )
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[tuple[asyncio.Task[None], asyncio.StreamWriter]] = set()
        self._closed = False

    # -- lifecycle (called from the test thread) ------------------------------------------------

    def _call(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("server is closed")
        if self._server is None:
            deadline = time.monotonic() + 5.0
            while True:
                try:
                    self._server = self._call(self._listen())
                    return
                except OSError:  # the port lingers for a moment after a stop
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._shutdown())
            self._server = None

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._loop.close()

    def reset_stats(self) -> None:
        self.hits.clear()
        self.requests.clear()

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside the server loop -----------------------------------------------------------------

    async def _listen(self) -> asyncio.base_events.Server:
        return await asyncio.start_server(
            self._serve_connection, self.host, self.port, reuse_address=True
        )

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task, writer in list(self._connections):
            writer.close()
            task.cancel()
        await self._server.wait_closed()
        for task, _ in list(self._connections):
            with contextlib.suppress(BaseException):
                await task

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        entry = (task, writer)
        self._connections.add(entry)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")
                parts = request_line.split(" ")
                if len(parts) != 3:
                    return
                path = parts[1]
                headers = {}
                for line in lines:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                self.hits[path] += 1
                self.requests.append((path, headers))
                response = await self.handle(path, headers)
                await self._send(writer, response)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(entry)
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, response: Response) -> None:
        if response.delay:
            await asyncio.sleep(response.delay)
        lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
        headers = dict(response.headers)
        if response.content_type:
            headers["Content-Type"] = response.content_type
        if response.chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(response.body))
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        body = response.body
        if response.drip_interval is not None:
            for i in range(len(body)):
                writer.write(body[i : i + 1])
                await writer.drain()
                await asyncio.sleep(response.drip_interval)
        elif response.chunked:
            step = 64 * 1024
            for i in range(0, len(body), step):
                chunk = body[i : i + step]
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        else:
            writer.write(body)
            await writer.drain()

    async def handle(self, path: str, headers: dict[str, str]) -> Response:
        raise NotImplementedError


class CountingServer(LoopbackServer):
    """Answers every GET with a JSON document, `document_for(path)`, and counts the requests."""

    def __init__(self, document_for: Callable[[str], dict[str, Any]] = lambda path: {}) -> None:
        super().__init__()
        self.document_for = document_for

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())

    async def handle(self, path: str, headers: dict[str, str]) -> Response:
        return Response(200, json.dumps(self.document_for(path)).encode())


class BadProvider(LoopbackServer):
    """A Logto look-alike issuer (discovery + JWKS) whose misbehaviour the test scripts.

    `issuer` is `http://127.0.0.1:<port>/oidc`; tokens from `sign()` carry it, audience `API`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.issuer = f"{self.base_url}/oidc"
        self.discovery_path = "/oidc/.well-known/openid-configuration"
        self.jwks_path = "/oidc/jwks"
        self.jwks_uri = self.base_url + self.jwks_path

        self.private: dict[str, Any] = {}
        self.published: list[dict[str, Any]] = []
        self.kid = self.add_key("EC")  # the signing key, what Logto uses by default
        self.rsa_kid = self.add_key("RSA")
        # Another P-384 key that the dup_kid fault publishes under `self.kid` too.
        self.impostor = ec.generate_private_key(ec.SECP384R1())
        self.oct_secret = secrets.token_bytes(32)

        self.mode = "healthy"
        self.fault_on: frozenset[str] = frozenset(ENDPOINTS)
        self.slow_seconds = 30.0
        self.drip_interval = 0.1
        self.delay = 0.0  # added to every answer, healthy or not
        self.redirect_to: str | None = None  # base URL the redirect fault points at
        self.redirect_status = 302

    # -- keys and tokens ------------------------------------------------------------------------

    def add_key(self, kty: str = "EC") -> str:
        """Generate and publish a key (appended: the current signing key does not change)."""
        kid = f"{kty.lower()}-{uuid.uuid4().hex[:12]}"
        if kty == "EC":
            key: Any = ec.generate_private_key(ec.SECP384R1())
            jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "ES384"}
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)  # Logto: no alg
        jwk |= {"kid": kid, "use": "sig"}
        self.private[kid] = key
        self.published.append(jwk)
        return kid

    def remove_key(self, kid: str) -> None:
        """Stop publishing a key (its private half stays, to sign tokens nobody should accept)."""
        self.published = [jwk for jwk in self.published if jwk["kid"] != kid]

    def algorithm_of(self, kid: str) -> str:
        return "ES384" if isinstance(self.private[kid], ec.EllipticCurvePrivateKey) else "RS256"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        body: dict[str, Any] = {
            "jti": uuid.uuid4().hex,
            "sub": "m2m-app",
            "iat": now,
            "exp": now + 3600,
            "scope": "read:products",
            "client_id": "m2m-app",
            "iss": self.issuer,
            "aud": API,
        }
        body |= overrides
        return {k: v for k, v in body.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        header: dict[str, Any] | None = None,
        kid: str | None = None,
        *,
        key: Any = None,
    ) -> str:
        """A Logto-shaped access token signed with a real key (`key` overrides the kid's key)."""
        kid = kid or self.kid
        signing_key = key if key is not None else self.private[kid]
        alg = "ES384" if isinstance(signing_key, ec.EllipticCurvePrivateKey) else "RS256"
        head = {"alg": alg, "typ": "at+jwt", "kid": kid} | (header or {})
        head = {k: v for k, v in head.items() if v is not None}
        return sign_segments(
            json.dumps(head).encode(),
            json.dumps(self.claims(**(claims or {}))).encode(),
            signing_key,
            alg,
        )

    def healthy_jwks(self) -> dict[str, Any]:
        return {"keys": [dict(jwk) for jwk in self.published]}

    def mirror(self) -> CountingServer:
        """A started second server serving this provider's healthy documents (redirect target).

        Were a redirect followed, it would hand out perfectly good keys: only a client that
        refuses redirects keeps its request count at zero."""

        def document_for(path: str) -> dict[str, Any]:
            if path.endswith("/openid-configuration"):
                return self.discovery()
            return self.healthy_jwks()

        server = CountingServer(document_for)
        server.start()
        return server

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "token_endpoint": self.issuer + "/token",
            "id_token_signing_alg_values_supported": ["ES384"],
        }

    # -- fault switch (from the test thread) ----------------------------------------------------

    def set_fault(self, mode: str, *, on: Iterable[str] = ENDPOINTS) -> None:
        """Misbehave from now on, on the given endpoints ("discovery", "jwks")."""
        if mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}; one of {FAULTS}")
        on = frozenset(on)
        if not on or not on <= set(ENDPOINTS):
            raise ValueError(f"on= must name endpoints among {ENDPOINTS}")
        self.fault_on = on
        if mode == "stopped":
            self.stop()
        else:
            self.start()
        self.mode = mode

    def heal(self) -> None:
        self.mode = "healthy"
        self.fault_on = frozenset(ENDPOINTS)
        self.start()

    @property
    def discovery_hits(self) -> int:
        return self.hits[self.discovery_path]

    @property
    def jwks_hits(self) -> int:
        return self.hits[self.jwks_path]

    # -- answers (server thread) ----------------------------------------------------------------

    async def handle(self, path: str, headers: dict[str, str]) -> Response:
        if path == self.discovery_path:
            endpoint, document = "discovery", self.discovery()
        elif path == self.jwks_path:
            endpoint, document = "jwks", self.healthy_jwks()
        else:
            return Response(404, b'{"error":"not_found"}')
        mode = self.mode if endpoint in self.fault_on else "healthy"
        response = self._answer(mode, endpoint, path, document, headers)
        response.delay += self.delay
        return response

    def _answer(
        self,
        mode: str,
        endpoint: str,
        path: str,
        document: dict[str, Any],
        headers: dict[str, str],
    ) -> Response:
        if mode == "http_500":
            return Response(500, b'{"error":"server_error"}')
        if mode == "html":
            page = b"<!doctype html><html><body><h1>Sign in to the proxy</h1></body></html>"
            return Response(200, page, "text/html; charset=utf-8")
        if mode == "invalid_json":
            return Response(200, json.dumps(document).encode()[:-7])
        if mode == "not_an_object":
            return Response(200, json.dumps([document]).encode())
        if mode == "redirect":
            target = (self.redirect_to or "http://127.0.0.2:9") + path
            return Response(self.redirect_status, b"", None, {"Location": target})
        if mode == "issuer_mismatch" and endpoint == "discovery":
            document = document | {"issuer": self.base_url + "/other-tenant/oidc"}
        if endpoint == "jwks":
            document = self._jwks_variant(mode, document)
        body = json.dumps(document).encode()
        if mode in ("huge", "huge_chunked"):
            # Still a valid document: only a size cap keeps it out.
            pad = HUGE_SIZE - len(body) - len(', "padding": ""')
            body = json.dumps(document | {"padding": "x" * pad}).encode()
            return Response(200, body, chunked=mode == "huge_chunked")
        if mode == "slow":
            return self._document(endpoint, body, headers, delay=self.slow_seconds)
        if mode == "drip":
            return Response(200, body, drip_interval=self.drip_interval)
        return self._document(endpoint, body, headers)

    def _jwks_variant(self, mode: str, document: dict[str, Any]) -> dict[str, Any]:
        keys = document["keys"]
        if mode == "use_enc":
            return {"keys": [k | {"use": "enc"} for k in keys]}
        if mode == "oct_only":
            return {"keys": [{"kty": "oct", "kid": self.kid, "k": b64(self.oct_secret)}]}
        if mode == "dup_kid":
            impostor = ECAlgorithm.to_jwk(self.impostor.public_key(), as_dict=True)
            impostor |= {"alg": "ES384", "kid": self.kid, "use": "sig"}
            return {"keys": [*keys, impostor]}
        if mode == "poisoned_key":
            return {"keys": [*keys, {"kty": "EC", "kid": "broken", "crv": ["P-384"]}]}
        return document

    def _document(
        self, endpoint: str, body: bytes, headers: dict[str, str], delay: float = 0.0
    ) -> Response:
        if endpoint == "discovery":
            return Response(200, body, "application/json; charset=utf-8", delay=delay)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        common = {"ETag": etag, "Cache-Control": "no-cache, max-age=0, must-revalidate"}
        if headers.get("if-none-match") == etag:
            return Response(304, b"", None, common, delay=delay)
        return Response(200, body, "application/jwk-set+json; charset=utf-8", common, delay=delay)


def sign_segments(header: bytes, payload: bytes, key: Any, alg: str) -> str:
    """Sign raw header/payload bytes (any bytes, even invalid JSON) with `alg`."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = get_default_algorithms()[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


def decode_segment(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
