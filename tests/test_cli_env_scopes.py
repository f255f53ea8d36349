"""`logto-guard token` takes its scopes from LOGTO_SCOPES when no --scope is given."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from logto_guard.cli import main

try:
    from oidc_provider import SHOP, OidcProvider
except ImportError:  # pragma: no cover - tests/ imported as a package
    from .oidc_provider import SHOP, OidcProvider


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


@pytest.fixture
def writer_env(monkeypatch: pytest.MonkeyPatch, oidc_provider: OidcProvider) -> None:
    monkeypatch.setenv("LOGTO_ENDPOINT", oidc_provider.endpoint)
    monkeypatch.setenv("LOGTO_APP_ID", "shop-writer")
    monkeypatch.setenv("LOGTO_APP_SECRET", "writer-secret")
    monkeypatch.setenv("LOGTO_API_RESOURCE", SHOP)


def token(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["token", *argv]) == 0
    return claims(capsys.readouterr().out.strip())


@pytest.mark.usefixtures("writer_env")
def test_scopes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGTO_SCOPES", " read:products  write:products ")
    assert set(token(capsys)["scope"].split()) == {"read:products", "write:products"}


@pytest.mark.usefixtures("writer_env")
def test_the_flag_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGTO_SCOPES", "read:products write:products")
    assert token(capsys, "--scope", "write:products")["scope"] == "write:products"


@pytest.mark.usefixtures("writer_env")
def test_no_scopes_anywhere_requests_none(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGTO_SCOPES", "   ")
    assert "scope" not in token(capsys)
