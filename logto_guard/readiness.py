"""Warm start and readiness: keys fetched before the first request, and a probe that says so.

`KeyWarmer.start()` runs in the app's lifespan startup (`LogtoGuard` does it for you; the FastAPI
dependency offers `LogtoSecurity.lifespan`). It fetches every issuer's keys once, so the first
request pays nothing. If Logto is down it logs, lets the app start anyway, and keeps retrying in
the background with backoff: an outage of the issuer must not turn into a crash loop of the API.

`Readiness` is what a Kubernetes readiness probe wants to know: are usable keys loaded, and were
they confirmed by the issuer within `max_stale`? `ReadinessEndpoint` serves it as JSON, 200 when
ready and 503 when not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

from .telemetry import key_age

__all__ = ["IssuerStatus", "KeyWarmer", "Readiness", "ReadinessEndpoint", "verifier_readiness"]

logger = logging.getLogger("logto_guard")


@dataclass(frozen=True, slots=True)
class IssuerStatus:
    """The key state of one issuer."""

    issuer: str
    keys: int  # usable signing keys in hand
    age: float | None  # seconds since the issuer last confirmed them; None: never fetched
    max_stale: float
    last_error: str | None  # why the latest fetch failed; None after a success

    @property
    def ready(self) -> bool:
        return self.keys > 0 and self.age is not None and self.age < self.max_stale


@dataclass(frozen=True, slots=True)
class Readiness:
    """Ready when every issuer is; `bool(status)` is `status.ready`."""

    ready: bool
    issuers: tuple[IssuerStatus, ...]

    def __bool__(self) -> bool:
        return self.ready

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "issuers": [dict(asdict(s), ready=s.ready) for s in self.issuers],
        }


class _KeyCache(Protocol):
    """What readiness needs of a `JWKSCache`."""

    issuer: str
    max_stale: float
    last_error: str | None

    @property
    def keys(self) -> Sequence[Any] | None: ...

    async def refresh(self) -> None: ...


def jwks_caches(verifier: object) -> list[_KeyCache]:
    """The key caches behind a verifier: `jwks_caches` (several issuers) or `jwks` (one)."""
    caches: Iterable[Any] | None = getattr(verifier, "jwks_caches", None)
    if caches is None:
        one = getattr(verifier, "jwks", None)
        caches = () if one is None else (one,)
    return [c for c in caches if callable(getattr(c, "refresh", None))]


def verifier_readiness(verifier: object) -> Readiness:
    """The readiness of the verifier's key caches (ready when it has none)."""
    statuses = tuple(
        IssuerStatus(
            issuer=cache.issuer,
            keys=len(cache.keys) if cache.keys is not None else 0,
            age=key_age(cache),  # type: ignore[arg-type]
            max_stale=cache.max_stale,
            last_error=cache.last_error,
        )
        for cache in jwks_caches(verifier)
    )
    return Readiness(all(s.ready for s in statuses), statuses)


class KeyWarmer:
    """Fetches a verifier's keys at startup, then in the background until they are loaded."""

    def __init__(self, verifier: object, *, retry_min: float = 0.5, retry_max: float = 15.0):
        self.verifier = verifier
        self.retry_min, self.retry_max = retry_min, retry_max
        self._task: asyncio.Task[None] | None = None

    def readiness(self) -> Readiness:
        return verifier_readiness(self.verifier)

    async def start(self) -> None:
        """One fetch per issuer (bounded by the cache's timeout); never raises."""
        failed = await _refresh_all(jwks_caches(self.verifier))
        for cache in failed:
            logger.warning(
                "no signing keys for %s at startup (%s); starting anyway, retrying in the "
                "background",
                cache.issuer,
                cache.last_error,
                extra={"issuer": cache.issuer, "reason": "startup_fetch_failed"},
            )
        if failed:
            self._task = asyncio.get_running_loop().create_task(self._retry(failed))

    async def _retry(self, pending: list[_KeyCache]) -> None:
        delay = self.retry_min
        while pending:
            await asyncio.sleep(delay)
            pending = await _refresh_all(pending)
            delay = min(delay * 2, self.retry_max)
        logger.info("signing keys loaded after a failed startup fetch", extra={"reason": "warm"})

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _refresh_all(caches: list[_KeyCache]) -> list[_KeyCache]:
    """Refresh the caches concurrently; those still without keys."""
    results = await asyncio.gather(*(c.refresh() for c in caches), return_exceptions=True)
    failed = []
    for cache, result in zip(caches, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result  # cancellation and friends
            failed.append(cache)
    return failed


class _HasReadiness(Protocol):
    def readiness(self) -> Readiness: ...


class ReadinessEndpoint:
    """An ASGI app answering 200 (ready) or 503 with the `Readiness` as JSON."""

    def __init__(self, source: _HasReadiness) -> None:
        self.source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = self.source.readiness()
        body = json.dumps(status.to_dict()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200 if status.ready else 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
