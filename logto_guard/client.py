"""The caller's side: get Logto M2M access tokens and attach them to httpx requests.

Why this lives next to the verifier: a service that is protected by logto-guard usually also
calls other Logto-protected APIs (or Logto's Management API), and the same mistakes hurt on both
sides. Getting a token per request hammers Logto's token endpoint; caching without a lock lets
N concurrent requests on a cold cache fetch N tokens; a token kept until its very last second
gets rejected by a verifier whose clock runs a little ahead. `ClientCredentials` is an
``httpx.Auth`` so that one object fixes this for `httpx.Client` and `httpx.AsyncClient` alike.

Why the flow is written once as a generator of *steps*: httpx drives auth with generators
(`Auth.sync_auth_flow` / `Auth.async_auth_flow`), but the two drivers differ in exactly two
places, how to take a lock (``threading.Lock`` vs ``asyncio.Lock``) and how to read a response
body (``read()`` vs ``await aread()``). So the logic (cache, double-checked refresh, one retry
after a 401) is `_flow`, a plain generator that yields requests plus "lock"/"unlock" markers,
and each driver only interprets those markers. The lock is never held while the API request
itself is in flight, and a cached, fresh token is read without any lock at all (one attribute
read of an immutable object), so the hot path costs nothing.

Why secrets are kept out of every repr, message and log line: tokens and app secrets end up in
logs and bug reports through exception messages far more often than through anything else.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from .errors import ConfigurationError, LogtoGuardError

__all__ = ["ClientCredentials", "TokenRequestError"]

logger = logging.getLogger("logto_guard.client")

AuthMethod = Literal["basic", "body"]

MANAGEMENT_API_SCOPE: Final = "all"
SELF_HOSTED_MANAGEMENT_API: Final = "https://default.logto.app/api"

_T = TypeVar("_T")


class TokenRequestError(LogtoGuardError):
    """Logto's token endpoint refused to issue a token, or answered something unusable.

    `error` and `error_description` are Logto's (RFC 6749 §5.2: ``invalid_client``,
    ``invalid_target``, ``invalid_request``, ``access_denied``, ...); both are ``None`` when the
    answer was not a JSON error object. Nothing here ever contains the app secret or a token.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error = error
        self.error_description = error_description

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, "
            f"error={self.error!r})"
        )


@dataclass(frozen=True, slots=True)
class _Token:
    """A cached token. Replaced as a whole, never mutated, so readers need no lock."""

    value: str = field(repr=False)
    refresh_at: float  # on the credentials' clock: expiry minus leeway


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_LOCK: Final = _Marker("lock")
_UNLOCK: Final = _Marker("unlock")


@dataclass(frozen=True, slots=True)
class _Fetch:
    """A token request: the driver sends it and reads the whole body before handing it back."""

    request: httpx.Request


# What `_flow` yields: a marker for the driver, a token request, or the API request itself.
# The driver answers a marker with None and a request with its response.
_Step = _Marker | _Fetch | httpx.Request
_Steps = Generator[_Step, "httpx.Response | None", _T]


def _response(sent: httpx.Response | None) -> httpx.Response:
    if sent is None:  # pragma: no cover - a broken driver, not a runtime condition
        raise RuntimeError("auth flow driver sent no response for a request")
    return sent


def _can_replay(request: httpx.Request) -> bool:
    # A body given as bytes, form or JSON (or already read) can be sent twice; a streaming
    # upload cannot, so a 401 to it is returned instead of retried.
    return isinstance(request.stream, httpx.ByteStream)


class ClientCredentials(httpx.Auth):
    """OAuth 2.0 client credentials for a Logto machine-to-machine app, as an ``httpx.Auth``.

    ``httpx.Client(auth=ClientCredentials(app_id, app_secret, endpoint=..., resource=...))``
    attaches ``Authorization: Bearer <token>`` to every request. The token is fetched from
    Logto on first use, shared by all requests (threads and coroutines alike) until
    ``expires_in - leeway``, refreshed once however many callers find it stale, and refetched
    once (with one retry of the request) when the API answers 401.

    The token request is sent through the same client as the API request, so its transport,
    proxies, mounts and timeout apply to it as well.

    - `endpoint` is the Logto endpoint (``https://<tenant>.logto.app``); `token_endpoint` is
      for anything else. Give exactly one.
    - `resource` is the API identifier; ``None`` lets Logto use the tenant's default API.
    - `scopes`: an iterable, or one space-separated string.
    - `auth_method`: ``"basic"`` (HTTP Basic, the default) or ``"body"`` (``client_id`` and
      ``client_secret`` form fields).
    - `leeway`: seconds before expiry at which a token counts as stale (at most half its
      lifetime, so short-lived tokens are still reused).
    - `clock`: monotonic seconds; the attribute of the same name can be swapped in tests.

    Threads share one refresh, and so do coroutines of one event loop; a thread and a
    coroutine that find the cache empty at the same moment may each fetch a token.
    """

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        *,
        endpoint: str | None = None,
        token_endpoint: str | None = None,
        resource: str | None = None,
        scopes: str | Iterable[str] = (),
        auth_method: AuthMethod = "basic",
        leeway: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(app_id, str) or not app_id:
            raise ConfigurationError("app_id must be a non-empty string")
        if not isinstance(app_secret, str) or not app_secret:
            raise ConfigurationError("app_secret must be a non-empty string")
        if (endpoint is None) == (token_endpoint is None):
            raise ConfigurationError("give exactly one of endpoint= and token_endpoint=")
        if endpoint is not None:
            _check_url("endpoint", endpoint)
            if urlsplit(endpoint).path.rstrip("/").endswith("/oidc"):
                raise ConfigurationError(
                    "endpoint must be the Logto endpoint (https://<tenant>.logto.app), not the "
                    "issuer ending in /oidc; or pass token_endpoint="
                )
            token_endpoint = endpoint.rstrip("/") + "/oidc/token"
        assert token_endpoint is not None
        _check_url("token_endpoint", token_endpoint)
        if resource is not None and not resource:
            raise ConfigurationError("resource must be non-empty (or None for the default API)")
        if auth_method not in ("basic", "body"):
            raise ConfigurationError("auth_method must be 'basic' or 'body'")
        if (
            isinstance(leeway, bool)
            or not isinstance(leeway, int | float)
            or not (math.isfinite(leeway) and leeway >= 0)
        ):
            raise ConfigurationError("leeway must be a finite number of seconds >= 0")
        scope_list = scopes.split(" ") if isinstance(scopes, str) else list(scopes)
        for scope in scope_list:
            if not isinstance(scope, str) or " " in scope:
                raise ConfigurationError("scopes must be strings without spaces")

        self.app_id: Final = app_id
        self._app_secret: Final = app_secret
        self.token_endpoint: Final = token_endpoint
        self.resource: Final = resource
        self.scopes: Final = tuple(dict.fromkeys(s for s in scope_list if s))
        self.auth_method: Final = auth_method
        self.leeway: Final = float(leeway)
        self.clock = clock

        self._token: _Token | None = None
        self._thread_lock = threading.Lock()
        # One asyncio.Lock per event loop: a lock that has waited in one loop refuses to be
        # used in another, and one credentials object often outlives a loop (tests,
        # repeated asyncio.run()).
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._loop_locks = weakref.WeakKeyDictionary()
        self._loop_locks_guard = threading.Lock()

    @classmethod
    def management_api(
        cls,
        app_id: str,
        app_secret: str,
        *,
        endpoint: str,
        tenant_id: str | None = None,
        auth_method: AuthMethod = "basic",
        leeway: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> ClientCredentials:
        """Credentials for Logto's Management API (scope ``all``).

        Logto Cloud names the API after the tenant (``https://<tenant-id>.logto.app/api``) even
        behind a custom domain, so give `tenant_id` there; self-hosted Logto always uses
        ``https://default.logto.app/api``.
        """
        if tenant_id is not None and not tenant_id:
            raise ConfigurationError("tenant_id must be non-empty (or None for self-hosted)")
        resource = (
            f"https://{tenant_id}.logto.app/api"
            if tenant_id is not None
            else SELF_HOSTED_MANAGEMENT_API
        )
        return cls(
            app_id,
            app_secret,
            endpoint=endpoint,
            resource=resource,
            scopes=(MANAGEMENT_API_SCOPE,),
            auth_method=auth_method,
            leeway=leeway,
            clock=clock,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(app_id={self.app_id!r}, "
            f"token_endpoint={self.token_endpoint!r}, resource={self.resource!r}, "
            f"scopes={self.scopes!r}, auth_method={self.auth_method!r})"
        )

    # -- the cache ---------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self._token = None

    def _usable(self, rejected: _Token | None) -> _Token | None:
        token = self._token
        if token is None or token is rejected or self.clock() >= token.refresh_at:
            return None
        return token

    # -- the flow, shared by every driver ----------------------------------------------------

    def _obtain(self, rejected: _Token | None, timeout: Any) -> _Steps[_Token]:
        """A token that is fresh and is not `rejected`, fetched at most once by all callers."""
        token = self._usable(rejected)  # hot path: no lock
        if token is not None:
            return token
        yield _LOCK
        # Double-checked: whoever held the lock before us may have refreshed already.
        token = self._usable(rejected)
        if token is None:
            started = self.clock()
            logger.debug(
                "requesting token from %s (app %s, resource %s, scopes %s, auth %s)",
                self.token_endpoint,
                self.app_id,
                self.resource,
                " ".join(self.scopes) or "-",
                self.auth_method,
            )
            response = _response((yield _Fetch(self._token_request(timeout))))
            token = self._accept(response, started)
            self._token = token
        yield _UNLOCK
        return token

    def _flow(self, request: httpx.Request) -> _Steps[None]:
        timeout = request.extensions.get("timeout")
        token = yield from self._obtain(None, timeout)
        self._authorize(request, token)
        response = _response((yield request))
        if response.status_code != 401:
            return
        if not _can_replay(request):
            logger.debug("API answered 401 to a streamed request; not retrying")
            return
        logger.debug("API answered 401; fetching a new token and retrying once")
        token = yield from self._obtain(token, timeout)
        self._authorize(request, token)
        yield request

    @staticmethod
    def _authorize(request: httpx.Request, token: _Token) -> None:
        request.headers["Authorization"] = f"Bearer {token.value}"

    def _token_request(self, timeout: Any) -> httpx.Request:
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if self.resource is not None:
            form["resource"] = self.resource
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        headers = {"Accept": "application/json"}
        if self.auth_method == "basic":
            # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            pair = f"{quote(self.app_id, safe='')}:{quote(self._app_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.app_id
            form["client_secret"] = self._app_secret
        extensions = {"timeout": timeout} if timeout is not None else {}
        return httpx.Request(
            "POST", self.token_endpoint, data=form, headers=headers, extensions=extensions
        )

    def _accept(self, response: httpx.Response, started: float) -> _Token:
        """Turn a token endpoint answer (body already read) into a token, or raise."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            content_type = response.headers.get("content-type", "none")
            what = "a non-JSON answer" if body is None else "JSON that is not an object"
            raise self._fail(
                f"token endpoint answered HTTP {status} with {what} (content-type {content_type})",
                status,
            )
        if status != 200 or "error" in body:
            error = body.get("error")
            description = body.get("error_description")
            error = self._scrub(error) if isinstance(error, str) else None
            description = self._scrub(description) if isinstance(description, str) else None
            message = f"token request refused: HTTP {status}"
            if error:
                message += f", {error}"
            if description:
                message += f": {description}"
            raise self._fail(message, status, error, description)

        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise self._fail("token endpoint answered HTTP 200 without an access_token", status)
        token_type = body.get("token_type")
        if token_type is not None and (
            not isinstance(token_type, str) or token_type.lower() != "bearer"
        ):
            raise self._fail(
                f"token endpoint issued a {self._scrub(str(token_type))!r} token, not Bearer",
                status,
            )
        expires_in = body.get("expires_in")
        lifetime = _seconds(expires_in)
        if expires_in is not None and lifetime is None:
            raise self._fail("token endpoint answered an invalid expires_in", status)
        if lifetime is None:
            # RFC 6749 makes expires_in optional; without it the token is used once, not cached.
            logger.debug("token response has no expires_in; the token will not be reused")
            lifetime = 0.0
        # A leeway longer than half the lifetime would make a short-lived token stale at birth.
        refresh_at = started + lifetime - min(self.leeway, lifetime / 2)
        logger.debug(
            "token obtained for app %s (expires in %ss, scope %r)",
            self.app_id,
            expires_in,
            self._scrub(str(body.get("scope", ""))),
        )
        return _Token(access_token, refresh_at)

    def _fail(
        self,
        message: str,
        status: int,
        error: str | None = None,
        description: str | None = None,
    ) -> TokenRequestError:
        logger.debug("token request failed for app %s: %s", self.app_id, message)
        return TokenRequestError(
            message, status_code=status, error=error, error_description=description
        )

    def _scrub(self, text: str) -> str:
        # Logto never echoes the secret, but a proxy or a misconfigured server might.
        return text.replace(self._app_secret, "[secret]")

    # -- httpx drivers -----------------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The whole flow without locking, for a caller that drives it by hand.

        httpx's clients call `sync_auth_flow` / `async_auth_flow` instead, which add locks.
        """
        return self._run_sync(self._flow(request), None)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        return self._run_sync(self._flow(request), self._thread_lock)

    def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        return self._run_async(self._flow(request))

    @staticmethod
    def _run_sync(
        steps: _Steps[_T], lock: threading.Lock | None
    ) -> Generator[httpx.Request, httpx.Response, _T]:
        held = False
        try:
            sent: httpx.Response | None = None
            while True:
                try:
                    step = steps.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                sent = None
                if step is _LOCK:
                    if lock is not None:
                        lock.acquire()
                        held = True
                elif step is _UNLOCK:
                    if held and lock is not None:
                        lock.release()
                        held = False
                elif isinstance(step, _Fetch):
                    sent = yield step.request
                    sent.read()
                else:
                    assert isinstance(step, httpx.Request)
                    sent = yield step
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

    async def _run_async(self, steps: _Steps[Any]) -> AsyncGenerator[httpx.Request, httpx.Response]:
        lock: asyncio.Lock | None = None
        try:
            sent: httpx.Response | None = None
            while True:
                try:
                    step = steps.send(sent)
                except StopIteration:
                    return
                sent = None
                if step is _LOCK:
                    candidate = self._loop_lock()
                    await candidate.acquire()
                    lock = candidate
                elif step is _UNLOCK:
                    if lock is not None:
                        lock.release()
                        lock = None
                elif isinstance(step, _Fetch):
                    sent = yield step.request
                    await sent.aread()
                else:
                    assert isinstance(step, httpx.Request)
                    sent = yield step
        finally:
            if lock is not None:
                lock.release()
            steps.close()

    # -- just a token ------------------------------------------------------------------------

    def get_token(self, client: httpx.Client | None = None) -> str:
        """The current access token, fetched through `client` (or a throwaway one) if needed.

        The client's own auth is bypassed for the token request, so passing a client that was
        built with ``auth=<this object>`` is fine.
        """
        token = self._usable(None)
        if token is not None:
            return token.value
        owned = client is None
        http = httpx.Client() if client is None else client
        try:
            flow = self._run_sync(self._obtain(None, http.timeout.as_dict()), self._thread_lock)
            try:
                request = next(flow)
                while True:
                    response = http.send(request, auth=None)
                    request = flow.send(response)
            except StopIteration as stop:
                result: _Token = stop.value
                return result.value
            finally:
                flow.close()
        finally:
            if owned:
                http.close()

    async def aget_token(self, client: httpx.AsyncClient | None = None) -> str:
        """Like `get_token`, for async code; coroutines on an empty cache share one fetch."""
        token = self._usable(None)
        if token is not None:
            return token.value
        owned = client is None
        http = httpx.AsyncClient() if client is None else client
        box: list[_Token] = []
        flow = self._run_async(_capture(self._obtain(None, http.timeout.as_dict()), box))
        try:
            try:
                request = await flow.__anext__()
                while True:
                    response = await http.send(request, auth=None)
                    request = await flow.asend(response)
            except StopAsyncIteration:
                return box[0].value
            finally:
                await flow.aclose()
        finally:
            if owned:
                await http.aclose()


def _capture(steps: _Steps[_T], box: list[_T]) -> _Steps[None]:
    box.append((yield from steps))


def _check_url(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string URL")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(f"{name} must be an absolute http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name} must not have a query or fragment")


def _seconds(value: object) -> float | None:
    """`expires_in` as seconds: a positive number, or a string of digits from lax servers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return None
