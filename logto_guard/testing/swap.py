"""Point an existing app's guards at another verifier, for tests.

An app written as the Quick Start says carries `LogtoGuard` (and maybe `LogtoSecurity`
dependencies) configured for the real tenant. Wrapping it in a second guard for the tests does
not help: the inner guard still asks the real tenant for keys and answers 503. `swap_verifier`
instead finds the app's own guards and makes them trust the given verifier (typically the local
issuer's), and puts the original verifiers back when the `with` block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from .._asgi import Verifier
from ..middleware import LogtoGuard

__all__ = ["VerifierSwap", "swap_verifier"]


class VerifierSwap:
    """The guards `swap_verifier` changed; `restore()` (or leaving `with`) undoes it."""

    def __init__(self, swapped: list[tuple[Any, Verifier]]) -> None:
        self.swapped = swapped
        """(guard, its original verifier) pairs: `LogtoGuard`s and `LogtoSecurity`s."""

    def restore(self) -> None:
        for guard, original in reversed(self.swapped):
            guard.verifier = original
        self.swapped = []

    def __enter__(self) -> VerifierSwap:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()


def swap_verifier(app: Any, verifier: Verifier) -> VerifierSwap:
    """Make every `LogtoGuard` and `LogtoSecurity` of `app` use `verifier`.

    `app` is a Starlette or FastAPI app (its middleware, routes and mounted sub-apps are
    searched), a `LogtoGuard`, or a `LogtoSecurity`. A Starlette app's middleware stack is built
    here if no request built it yet, so add every middleware before calling this. The guards
    keep their other settings (public paths, realm, metadata). Raises `LookupError` when
    nothing was found, so a test cannot silently run against the real tenant.

        with swap_verifier(app, logto_verifier), TestClient(app) as client:
            ...
    """
    swapped: list[tuple[Any, Verifier]] = []
    seen: set[int] = set()
    for guard in _guards(app, seen):
        swapped.append((guard, guard.verifier))
        guard.verifier = verifier
    if not swapped:
        raise LookupError(f"no LogtoGuard or LogtoSecurity found in {app!r}")
    return VerifierSwap(swapped)


def _is_security(obj: Any) -> bool:
    # Checked by name so this module does not import FastAPI (an optional extra).
    return any(
        cls.__name__ == "LogtoSecurity" and cls.__module__ == "logto_guard.fastapi"
        for cls in type(obj).__mro__
    )


def _guards(node: Any, seen: set[int]) -> Iterator[Any]:
    """Depth-first over ASGI wrappers (`.app`), routers, routes and FastAPI dependencies."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, LogtoGuard) or _is_security(node):
        yield node
    if getattr(node, "middleware_stack", False) is None and hasattr(node, "build_middleware_stack"):
        node.middleware_stack = node.build_middleware_stack()  # a Starlette app, not yet called
    for name in ("middleware_stack", "app", "router"):
        child = getattr(node, name, None)
        if child is not None and not isinstance(child, type):
            yield from _guards(child, seen)
    for route in getattr(node, "routes", None) or ():
        yield from _guards(route, seen)
    dependant = getattr(node, "dependant", None)
    if dependant is not None:
        yield from _dependency_guards(dependant, seen)


def _dependency_guards(dependant: Any, seen: set[int]) -> Iterator[Any]:
    for dependency in getattr(dependant, "dependencies", ()):
        call = getattr(dependency, "call", None)
        if call is not None and id(call) not in seen and _is_security(call):
            seen.add(id(call))
            yield call
        yield from _dependency_guards(dependency, seen)
