"""The cached token, and one refresh for every caller that finds it stale.

Why the flow is written once as a generator of *steps*: httpx drives auth with generators
(`Auth.sync_auth_flow` / `Auth.async_auth_flow`), and the sync and async drivers differ in
exactly two places, how to take a lock (``threading.Lock`` vs ``asyncio.Lock``) and how to read
a response body (``read()`` vs ``await aread()``). So the logic (cache, double-checked refresh,
one retry after a 401) is a plain generator that yields requests plus "lock"/"unlock" markers,
and each driver here only interprets those markers. The steps hold requests of whatever client
family the caller uses (`._http`); nothing here depends on which.

The lock is never held while the API request itself is in flight, and a cached, fresh token is
read without any lock at all (one attribute read of an immutable object), so the hot path costs
nothing.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from ._http import httpx
from ._token_endpoint import IssuedToken

_T = TypeVar("_T")


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


LOCK: Final = _Marker("lock")
UNLOCK: Final = _Marker("unlock")


@dataclass(frozen=True, slots=True)
class Fetch:
    """A token request: the driver sends it and reads the whole body before handing it back."""

    request: httpx.Request


# What a flow yields: a marker for the driver, a token request, or the API request itself.
# The driver answers a marker with None and a request with its response.
Step = _Marker | Fetch | httpx.Request
Steps = Generator[Step, "httpx.Response | None", _T]


def response(sent: httpx.Response | None) -> httpx.Response:
    if sent is None:  # pragma: no cover - a broken driver, not a runtime condition
        raise RuntimeError("auth flow driver sent no response for a request")
    return sent


class TokenCache:
    """One token shared by threads and coroutines, refreshed once however many find it stale.

    Threads share one refresh, and so do coroutines of one event loop; a thread and a
    coroutine that find the cache empty at the same moment may each fetch a token.
    """

    def __init__(self) -> None:
        self.token: IssuedToken | None = None
        self._thread_lock = threading.Lock()
        # One asyncio.Lock per event loop: a lock that has waited in one loop refuses to be
        # used in another, and one credentials object often outlives a loop (tests,
        # repeated asyncio.run()).
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._loop_locks = weakref.WeakKeyDictionary()
        self._loop_locks_guard = threading.Lock()

    def usable(self, now: float, rejected: IssuedToken | None = None) -> IssuedToken | None:
        token = self.token
        if token is None or token is rejected or now >= token.refresh_at:
            return None
        return token

    def obtain(
        self,
        clock: Callable[[], float],
        fetch: Callable[[], Steps[IssuedToken]],
        rejected: IssuedToken | None = None,
    ) -> Steps[IssuedToken]:
        """A fresh token that is not `rejected`, fetched by `fetch` at most once for all."""
        token = self.usable(clock(), rejected)  # hot path: no lock
        if token is not None:
            return token
        yield LOCK
        # Double-checked: whoever held the lock before us may have refreshed already.
        token = self.usable(clock(), rejected)
        if token is None:
            token = yield from fetch()
            self.token = token
        yield UNLOCK
        return token

    # -- drivers -----------------------------------------------------------------------------

    def run_sync(
        self, steps: Steps[_T], *, locked: bool = True
    ) -> Generator[httpx.Request, httpx.Response, _T]:
        """Drive `steps` for a sync client (with the thread lock unless `locked` is false)."""
        lock = self._thread_lock if locked else None
        held = False
        try:
            sent: httpx.Response | None = None
            while True:
                try:
                    step = steps.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                sent = None
                if step is LOCK:
                    if lock is not None:
                        lock.acquire()
                        held = True
                elif step is UNLOCK:
                    if held and lock is not None:
                        lock.release()
                        held = False
                elif isinstance(step, Fetch):
                    sent = yield step.request
                    sent.read()
                else:
                    sent = yield cast(httpx.Request, step)
        finally:
            if held and lock is not None:
                lock.release()
            steps.close()

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._loop_locks.get(loop)
        if lock is None:
            with self._loop_locks_guard:
                lock = self._loop_locks.setdefault(loop, asyncio.Lock())
        return lock

    async def run_async(self, steps: Steps[Any]) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Drive `steps` for an async client, with this event loop's lock."""
        lock: asyncio.Lock | None = None
        try:
            sent: httpx.Response | None = None
            while True:
                try:
                    step = steps.send(sent)
                except StopIteration:
                    return
                sent = None
                if step is LOCK:
                    candidate = self._loop_lock()
                    await candidate.acquire()
                    lock = candidate
                elif step is UNLOCK:
                    if lock is not None:
                        lock.release()
                        lock = None
                elif isinstance(step, Fetch):
                    sent = yield step.request
                    await sent.aread()
                else:
                    sent = yield cast(httpx.Request, step)
        finally:
            if lock is not None:
                lock.release()
            steps.close()


def capture(steps: Steps[_T], box: list[_T]) -> Steps[None]:
    """`steps` with its result put in `box` (async generators cannot return a value)."""
    box.append((yield from steps))
