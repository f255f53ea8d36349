"""Hypercorn and Granian serve a protected app (tests/served_app.py) on 127.0.0.1: real server
processes, real HTTP requests, real tokens from the real test provider, whose keys the app
fetches over loopback. (uvicorn has tests/test_e2e_uvicorn.py.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

try:
    from oidc_provider import SHOP, OidcProvider
except ImportError:  # pragma: no cover - tests/ imported as a package
    from .oidc_provider import SHOP, OidcProvider

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command(server: str, port: int) -> list[str]:
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "served_app:app"]
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "served_app:app",
    ]  # fmt: skip


@pytest.fixture(scope="module", params=["hypercorn", "granian"])
def server(request: pytest.FixtureRequest, oidc_provider: OidcProvider) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "LOGTO_GUARD_TEST_ISSUER": oidc_provider.issuer,
        "LOGTO_GUARD_TEST_AUDIENCE": SHOP,
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command(request.param, port), cwd=TESTS, env=env, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            with httpx.Client(base_url=url, timeout=2) as client:
                while True:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        output = log.read().decode(errors="replace")[-3000:]
                        pytest.fail(f"{request.param} did not start on {url}:\n{output}")
                    try:
                        if client.get("/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.05)
            yield url
        finally:
            process.send_signal(signal.SIGINT)  # a graceful stop runs the lifespan shutdown
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                process.kill()
                process.wait(5)


@pytest.fixture(scope="module")
def reader(oidc_provider: OidcProvider) -> str:
    return oidc_provider.token("shop-reader", scope="read:products")


def get(url: str, path: str, token: str | None = None, method: str = "GET") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, timeout=10) as client:
        return client.request(method, path, headers=headers)


def test_token_reaches_the_handler(server: str, reader: str) -> None:
    response = get(server, "/products", reader)
    assert response.status_code == 200
    assert response.json() == {"sub": "shop-reader", "scopes": ["read:products"]}


def test_no_token_is_401_with_challenge(server: str) -> None:
    response = get(server, "/products")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="api"')


def test_forged_token_is_401_invalid_token(server: str, reader: str) -> None:
    header, payload, signature = reader.split(".")
    response = get(server, "/products", f"{header}.{payload}.{signature[::-1]}")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_missing_scope_is_403(server: str, reader: str) -> None:
    response = get(server, "/products", reader, method="POST")
    assert response.status_code == 403
    assert 'scope="write:products"' in response.headers["www-authenticate"]


def test_rfc9728_metadata_is_served(server: str, oidc_provider: OidcProvider) -> None:
    response = get(server, "/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    assert response.json()["authorization_servers"] == [oidc_provider.issuer]
