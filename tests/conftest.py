"""Shared fixtures: a real Logto-like OpenID provider (oidc-provider on Node) on loopback.

- `oidc_provider` (session): one process for the whole run. Don't rotate its keys or stop it;
  call `reset_stats()` before counting its requests.
- `fresh_provider` (function): a process of the test's own, with its own keys and port; rotate,
  stop and start it at will.

A Node start takes about half a second (mostly loading oidc-provider), so the next
`fresh_provider` is started in the background while the current test runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

try:  # tests/ as a plain directory on sys.path (pytest's default "prepend" import mode)
    from oidc_provider import OidcProvider
except ImportError:  # tests/ as a package
    from .oidc_provider import OidcProvider


class _StandbyPool:
    """Keeps one started OidcProvider ready for the next `fresh_provider`."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._ready: OidcProvider | None = None
        self._error: BaseException | None = None

    def _build(self) -> None:
        provider = OidcProvider()
        try:
            provider.start()
        except BaseException as exc:
            provider.close()
            self._error = exc
        else:
            self._ready = provider

    def prepare(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._build, daemon=True)
            self._thread.start()

    def take(self) -> OidcProvider:
        if self._thread is None:
            self._build()
        else:
            self._thread.join()
        self._thread = None
        provider, error = self._ready, self._error
        self._ready = self._error = None
        if provider is None:
            # A failed background start: try once more in the foreground for a clean traceback.
            if error is not None:
                provider = OidcProvider()
                try:
                    provider.start()
                except BaseException:
                    provider.close()
                    raise
            else:  # pragma: no cover - _build always sets one of them
                raise RuntimeError("standby provider vanished")
        return provider

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._ready is not None:
            self._ready.close()
            self._ready = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak", action="store_true", default=False, help="run the long tests marked soak"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        # The marker, not item.keywords: "soak" is also the name of the tests/soak package.
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """One provider process for the whole run (see module docstring)."""
    provider = OidcProvider()
    try:
        provider.start()
        yield provider
    finally:
        provider.close()


@pytest.fixture(scope="session")
def _fresh_provider_pool() -> Iterator[_StandbyPool]:
    pool = _StandbyPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def fresh_provider(_fresh_provider_pool: _StandbyPool) -> Iterator[OidcProvider]:
    """A provider process of this test's own, with its own keys (rotate, stop/start at will)."""
    provider = _fresh_provider_pool.take()
    _fresh_provider_pool.prepare()
    try:
        yield provider
    finally:
        provider.close()
