"""Fixtures of the security tests: one provider process of their own, attacker keys, real tokens.

The catalogue needs an RSA key published next to the EC signing key (RS256/PS256 confusion,
ES384 header on an RSA key), so it runs its own `OidcProvider` instead of changing the keys of
the session-wide one, which other tests rely on. One process serves the whole package.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from oidc_provider import MGMT, OidcProvider  # tests/ is on sys.path (see tests/conftest.py)

from .catalogue import AttackerServer, Ctx


@pytest.fixture(scope="package")
def security_provider() -> Iterator[OidcProvider]:
    provider = OidcProvider("EC")
    try:
        provider.start()
        provider.add_key("RSA")  # published, not signing: RS256 tokens verify too
        yield provider
    finally:
        provider.close()


@pytest.fixture(scope="package")
def ctx(security_provider: OidcProvider) -> Iterator[Ctx]:
    provider = security_provider
    evil_ec = provider.generate_key("EC")
    evil_rsa = provider.generate_key("RSA")
    attacker = AttackerServer({"keys": [provider.public_jwk(evil_ec)]})
    attacker.start()
    try:
        yield Ctx(
            provider=provider,
            ec_kid=provider.current_kid,
            rsa_kid=provider.kids[1],
            evil_ec=evil_ec,
            evil_rsa=evil_rsa,
            reader=provider.token("shop-reader", scope="read:products"),
            writer=provider.token("shop-writer", scope="read:products write:products"),
            mgmt=provider.token("mgmt-client", resource=MGMT, scope="all"),
            attacker=attacker,
        )
    finally:
        attacker.stop()
