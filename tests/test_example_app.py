"""The example app, run the way the README runs it, on both kinds of issuer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

try:
    from oidc_provider import OidcProvider
except ImportError:  # pragma: no cover
    from .oidc_provider import OidcProvider

ROOT = Path(__file__).resolve().parent.parent


def run_example(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOGTO_")}
    return subprocess.run(
        [sys.executable, "-m", "example_app"],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_issuer_flow() -> None:
    result = run_example({})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "embedded local issuer" in out
    assert "GET /products (read:products)                -> 200" in out
    assert "POST /products with a read-only token        -> 403" in out
    assert 'error="insufficient_scope"' in out and 'scope="write:products"' in out
    assert "GET /products without a token                -> 401" in out
    assert "GET /products with a forged token            -> 401" in out
    assert "POST /products with write:products           -> 201" in out
    assert "All steps answered as expected." in out


def test_flow_against_a_real_provider(oidc_provider: OidcProvider) -> None:
    result = run_example(
        {
            "LOGTO_ENDPOINT": oidc_provider.endpoint,
            "LOGTO_API_RESOURCE": OidcProvider.SHOP,
            "LOGTO_APP_ID": "shop-reader",
            "LOGTO_APP_SECRET": "reader-secret",
            "LOGTO_WRITER_APP_ID": "shop-writer",
            "LOGTO_WRITER_APP_SECRET": "writer-secret",
        }
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Using the Logto tenant at {oidc_provider.endpoint}" in result.stdout
    assert "All steps answered as expected." in result.stdout
    assert "reader-secret" not in result.stdout + result.stderr


def test_partial_configuration_is_refused() -> None:
    result = run_example({"LOGTO_ENDPOINT": "https://tenant.logto.app"})
    assert result.returncode != 0
    assert "missing: LOGTO_API_RESOURCE" in result.stderr
