"""pytest fixtures for testing an API protected by logto-guard, with no Logto tenant.

Opt in from the root ``conftest.py`` (pytest only honours ``pytest_plugins`` there)::

    pytest_plugins = ["logto_guard.testing.pytest_plugin"]

Then point your app's guards at ``logto_verifier`` and send it tokens from ``logto_token``.
The fixtures are synchronous, so plain pytest and pytest-asyncio (strict or auto) alike run
them; Starlette's ``TestClient`` needs ``httpx2`` (the ``testing`` extra brings it)::

    @pytest.fixture
    def client(logto_verifier):
        # `app` already carries LogtoGuard for the real tenant: swap, don't wrap.
        with swap_verifier(app, logto_verifier), TestClient(app) as client:
            yield client

    def test_list_products(client, logto_token):
        token = logto_token(scopes=["read:products"])
        response = client.get("/products", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200

    def test_needs_the_scope(client, logto_token):
        token = logto_token(scopes=[])
        response = client.get("/products", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403

An app without a guard of its own takes ``app.add_middleware(LogtoGuard,
verifier=logto_verifier)`` instead.

Fixtures (all function-scoped, so keys and caches never leak between tests):

- ``logto_issuer``: a fresh `LocalIssuer` (ES384, issuer ``https://logto.test/oidc``); use it
  for expired or organization tokens, key rotation, or its token endpoint.
- ``logto_audience``: the API identifier, ``"https://shopping.api"``; override this fixture to
  use yours and every other fixture follows.
- ``logto_token``: ``logto_token(scopes=[...], **kw) -> str``, `LocalIssuer.mint` with the
  audience defaulted to ``logto_audience``.
- ``logto_transport``: an httpx transport that reaches the issuer in-process, for wiring your
  own ``httpx.AsyncClient`` into a verifier or a `ClientCredentials` client.
- ``logto_verifier``: a `TokenVerifier` for ``logto_issuer`` and ``logto_audience`` that
  fetches discovery and JWKS through ``logto_transport``.
- ``logto_served_issuer``: a `LocalIssuer` listening on ``http://127.0.0.1:<free port>``, for
  code that can only be configured with a URL (a subprocess, an app reading its settings).

Nothing is registered automatically (no ``pytest11`` entry point): the fixtures exist only
where a project asks for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .._http import MockTransport
from .issuer import DEFAULT_AUDIENCE, DEFAULT_SCOPES, LocalIssuer

if TYPE_CHECKING:
    from ..verifier import TokenVerifier

TokenFactory = Callable[..., str]
"""``(scopes=..., **LocalIssuer.mint keywords) -> str``."""

__all__ = [
    "TokenFactory",
    "logto_audience",
    "logto_issuer",
    "logto_served_issuer",
    "logto_token",
    "logto_transport",
    "logto_verifier",
]


@pytest.fixture
def logto_issuer() -> LocalIssuer:
    """A fresh in-process Logto look-alike with its own ES384 key."""
    return LocalIssuer()


@pytest.fixture
def logto_audience() -> str:
    """The API identifier tokens are minted for and the verifier expects; override freely."""
    return DEFAULT_AUDIENCE


@pytest.fixture
def logto_token(logto_issuer: LocalIssuer, logto_audience: str) -> TokenFactory:
    """A factory of valid access tokens: ``logto_token(scopes=["read:products"])``."""

    def mint(scopes: Iterable[str] | None = DEFAULT_SCOPES, **kwargs: Any) -> str:
        kwargs.setdefault("audience", logto_audience)
        return logto_issuer.mint(scopes=scopes, **kwargs)

    return mint


@pytest.fixture
def logto_transport(logto_issuer: LocalIssuer) -> MockTransport:
    """Reaches ``logto_issuer`` in-process from sync and async httpx2 and httpx clients."""
    return logto_issuer.transport()


@pytest.fixture
def logto_verifier(logto_issuer: LocalIssuer, logto_audience: str) -> TokenVerifier:
    """The library's real verifier, trusting ``logto_issuer`` for ``logto_audience``."""
    return logto_issuer.verifier(audience=logto_audience)


@pytest.fixture
def logto_served_issuer() -> Iterator[LocalIssuer]:
    """A `LocalIssuer` on a free loopback port for the duration of the test."""
    issuer = LocalIssuer()
    with issuer.serve():
        yield issuer
