"""Test helpers for APIs protected by logto-guard: a Logto look-alike issuer, no network needed.

`LocalIssuer` mints tokens shaped exactly like Logto's and serves Logto's discovery, JWKS and
token endpoints in-process (an httpx transport or an ASGI app) or on a loopback port. The pytest
fixtures live in `logto_guard.testing.pytest_plugin` (opt in with
`pytest_plugins = ["logto_guard.testing.pytest_plugin"]`); importing this package does not
import pytest.
"""

from __future__ import annotations

from .issuer import (
    ORGANIZATION_AUDIENCE_PREFIX,
    Algorithm,
    LocalIssuer,
    RecordedRequest,
    RegisteredApp,
)
from .server import LoopbackServer
from .swap import VerifierSwap, swap_verifier

__all__ = [
    "ORGANIZATION_AUDIENCE_PREFIX",
    "Algorithm",
    "LocalIssuer",
    "LoopbackServer",
    "RecordedRequest",
    "RegisteredApp",
    "VerifierSwap",
    "swap_verifier",
]
