"""The two HTTP client families, httpx2 and httpx, and everything that differs between them.

httpx2 is the maintained continuation of httpx 0.28.1: the same API under another name, so
every class exists twice and the two sets do not mix. An ``httpx2.Client`` accepts only an
``httpx2.Auth`` as ``auth=`` (an ``isinstance`` check, else ``TypeError: Invalid "auth"
argument``), sends only requests whose stream is an httpx2 stream (else "Attempted to send a
sync request with an AsyncClient instance"), asserts that a transport answers httpx2 responses,
and raises httpx2 exceptions that an ``except httpx.HTTPError`` does not catch; and the other way
round. A library that accepts "an httpx client" therefore builds every request, response and
error in the family of the object it was handed. This module is the only place that knows
there are two: callers ask `family_of(obj)` and use what it returns, and get `Auth` and
`MockTransport` base classes that both families accept.

httpx2 is the runtime dependency (README, "HTTP clients": maintained, and what Starlette's
TestClient uses); httpx is supported whenever it is installed. The library's own modules
import the default family from here (``from ._http import httpx``), so the choice is made once.
Static types are httpx2's (one consistent set, as httpx2's migration guide advises); httpx
objects are the same shapes at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import httpx2
import httpx2 as httpx  # the default family, for the library's own clients

__all__ = [
    "DEFAULT",
    "FAMILIES",
    "HTTP_ERRORS",
    "AnyAsyncClient",
    "AnyClient",
    "Auth",
    "Family",
    "MockTransport",
    "Reply",
    "Unreachable",
    "family_of",
    "httpx",
]


@dataclass(frozen=True, eq=False)
class Family:
    """One client family's classes, under the names both families give them."""

    name: str  # the import name: "httpx2" or "httpx"
    Auth: type[httpx2.Auth]
    Request: type[httpx2.Request]
    Response: type[httpx2.Response]
    ByteStream: type[httpx2.ByteStream]
    Client: type[httpx2.Client]
    AsyncClient: type[httpx2.AsyncClient]
    BaseTransport: type[httpx2.BaseTransport]
    AsyncBaseTransport: type[httpx2.AsyncBaseTransport]
    HTTPError: type[httpx2.HTTPError]
    ConnectError: type[httpx2.ConnectError]

    @classmethod
    def of_module(cls, module: Any) -> Family:
        return cls(
            module.__name__,
            module.Auth,
            module.Request,
            module.Response,
            module.ByteStream,
            module.Client,
            module.AsyncClient,
            module.BaseTransport,
            module.AsyncBaseTransport,
            module.HTTPError,
            module.ConnectError,
        )

    def owns(self, obj: object) -> bool:
        """Whether `obj` is a request, response or client of this family."""
        return isinstance(obj, self.Request | self.Response | self.Client | self.AsyncClient)

    def __repr__(self) -> str:
        return f"<HTTP client family {self.name}>"


def _legacy_httpx() -> Any:
    # Typed as Any on purpose: static types are httpx2's (see the module docstring).
    try:
        return importlib.import_module("httpx")
    except ModuleNotFoundError:
        return None


HTTPX2: Final = Family.of_module(httpx2)
_legacy = _legacy_httpx()
HTTPX: Final[Family | None] = Family.of_module(_legacy) if _legacy is not None else None

DEFAULT: Final = HTTPX2
"""The family of the clients the library builds itself."""

FAMILIES: Final[tuple[Family, ...]] = (HTTPX2,) if HTTPX is None else (HTTPX2, HTTPX)
"""Every installed family, the default (httpx2) first."""

HTTP_ERRORS: Final[tuple[type[httpx2.HTTPError], ...]] = tuple(f.HTTPError for f in FAMILIES)
"""``except HTTP_ERRORS`` catches a transport or protocol error of either family."""


def family_of(obj: object) -> Family:
    """The family of a request, response or client; `TypeError` for anything else."""
    for family in FAMILIES:
        if family.owns(obj):
            return family
    names = " or ".join(f"{f.name}.Client/{f.name}.AsyncClient" for f in FAMILIES)
    raise TypeError(f"expected an {names} (or its request/response), got {type(obj).__name__}")


def _bases(*names: str) -> tuple[type, ...]:
    return tuple(getattr(family, name) for family in FAMILIES for name in names)


if TYPE_CHECKING:
    # Static types are httpx2's; the bases name httpx's too, so that a user's type checker
    # accepts the auth class and the transport in either family's client.
    import httpx as _httpx

    class _AuthBase(httpx2.Auth, _httpx.Auth):  # type: ignore[misc]
        pass

    class _TransportBase(  # type: ignore[misc]
        httpx2.BaseTransport,
        httpx2.AsyncBaseTransport,
        _httpx.BaseTransport,
        _httpx.AsyncBaseTransport,
    ):
        pass

    AnyClient: TypeAlias = httpx2.Client | _httpx.Client
    AnyAsyncClient: TypeAlias = httpx2.AsyncClient | _httpx.AsyncClient

else:
    _AuthBase = type("_AuthBase", _bases("Auth"), {"__module__": __name__})
    _TransportBase = type(
        "_TransportBase", _bases("BaseTransport", "AsyncBaseTransport"), {"__module__": __name__}
    )
    # Only for annotations (which are never evaluated at run time here).
    AnyClient = httpx2.Client
    AnyAsyncClient = httpx2.AsyncClient


class Auth(_AuthBase):
    """A base for auth classes that every installed family accepts as ``auth=``.

    It subclasses ``httpx2.Auth`` and, when httpx is installed, ``httpx.Auth``, because each
    family's client checks ``isinstance(auth, <its own Auth>)``. A subclass implements
    `sync_auth_flow` / `async_auth_flow` for requests of either family (`family_of(request)`).
    """


Reply = tuple[int, Mapping[str, str] | Sequence[tuple[str, str]], bytes]
"""What a `MockTransport` handler answers: status, headers, body."""


class Unreachable(Exception):
    """Raised by a `MockTransport` handler: the client sees its family's ``ConnectError``."""


class MockTransport(_TransportBase):
    """An in-process transport for sync and async clients of both families.

    Like ``httpx.MockTransport``, but the handler answers a family-neutral `Reply` (or raises
    `Unreachable`), and the transport turns it into a response, or a ``ConnectError``, of the
    family of the request it was given.
    """

    def __init__(self, handler: Callable[[httpx2.Request], Reply]) -> None:
        self.handler = handler

    # Requests of both families; annotated with httpx2's types (see the module docstring).
    def handle_request(self, request: httpx2.Request) -> httpx2.Response:  # type: ignore[override]
        request.read()
        return self._answer(request)

    async def handle_async_request(  # type: ignore[override]
        self,
        request: httpx2.Request,  # type: ignore[override]
    ) -> httpx2.Response:
        await request.aread()
        return self._answer(request)

    def _answer(self, request: httpx2.Request) -> httpx2.Response:
        family = family_of(request)
        try:
            status, headers, body = self.handler(request)
        except Unreachable as exc:
            raise family.ConnectError(str(exc), request=request) from None
        return family.Response(status, headers=headers, content=body, request=request)
