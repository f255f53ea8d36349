"""The caller's side: get Logto M2M access tokens and attach them to httpx / httpx2 requests.

Why this lives next to the verifier: a service that is protected by logto-guard usually also
calls other Logto-protected APIs (or Logto's Management API), and the same mistakes hurt on both
sides. Getting a token per request hammers Logto's token endpoint; caching without a lock lets
N concurrent requests on a cold cache fetch N tokens; a token kept until its very last second
gets rejected by a verifier whose clock runs a little ahead. `ClientCredentials` is an auth
class that both client families accept, so that one object fixes this for `Client` and
`AsyncClient` of httpx2 and httpx alike.

The pieces: `._token_endpoint` builds the token request and reads Logto's answer (errors,
granted scopes); `._single_flight` holds the cached token and drives one flow for sync and
async clients; `._http` knows the two client families. This module is the glue: configuration,
the auth flow (token, request, one retry after a 401), and `get_token` / `aget_token`.

Why secrets are kept out of every repr, message and log line: tokens and app secrets end up in
logs and bug reports through exception messages far more often than through anything else.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from typing import Any, Final, cast
from urllib.parse import urlsplit

from ._http import DEFAULT, AnyAsyncClient, AnyClient, Auth, Family, family_of, httpx
from ._single_flight import Fetch, Steps, TokenCache, capture, response
from ._token_endpoint import AuthMethod, IssuedToken, TokenEndpoint, TokenRequestError, logger
from ._token_endpoint import split_scopes as _split_scopes
from .errors import ConfigurationError

__all__ = ["ClientCredentials", "TokenRequestError"]

MANAGEMENT_API_SCOPE: Final = "all"
SELF_HOSTED_MANAGEMENT_API: Final = "https://default.logto.app/api"


def _can_replay(family: Family, request: httpx.Request) -> bool:
    # A body given as bytes, form or JSON (or already read) can be sent twice; a streaming
    # upload cannot, so a 401 to it is returned instead of retried.
    return isinstance(request.stream, family.ByteStream)


class ClientCredentials(Auth):
    """OAuth 2.0 client credentials for a Logto machine-to-machine app, as an auth class.

    ``httpx2.Client(auth=ClientCredentials(app_id, app_secret, endpoint=..., resource=...))``
    (or ``httpx.Client``, ``httpx2.AsyncClient``, ``httpx.AsyncClient``, or ``auth=`` on one
    request) attaches ``Authorization: Bearer <token>`` to every request. The token is fetched
    from Logto on first use, shared by all requests (threads and coroutines alike) until
    ``expires_in - leeway``, refreshed once however many callers find it stale, and refetched
    once (with one retry of the request) when the API answers 401.

    The token request is sent through the same client as the API request, so its transport,
    proxies, mounts and timeout apply to it as well.

    - `endpoint` is the Logto endpoint (``https://<tenant>.logto.app``); `token_endpoint` is
      for anything else. Give exactly one.
    - `resource` is the API identifier; ``None`` lets Logto use the tenant's default API.
    - `organization_id`: ask for an organization token (Logto's ``organization_id``
      parameter; the app must be a member), with or without a `resource`.
    - `scopes`: an iterable, or one space-separated string. Logto silently leaves out scopes
      the app's roles do not grant; `granted_scopes` says what it granted, and a WARNING names
      the missing ones (once per distinct shortfall).
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
        organization_id: str | None = None,
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
        if organization_id is not None and (
            not isinstance(organization_id, str) or not organization_id
        ):
            raise ConfigurationError("organization_id must be a non-empty string (or None)")
        if auth_method not in ("basic", "body"):
            raise ConfigurationError("auth_method must be 'basic' or 'body'")
        if (
            isinstance(leeway, bool)
            or not isinstance(leeway, int | float)
            or not (math.isfinite(leeway) and leeway >= 0)
        ):
            raise ConfigurationError("leeway must be a finite number of seconds >= 0")
        scope_list = _split_scopes(scopes)
        for scope in scope_list:
            if not isinstance(scope, str) or " " in scope:
                raise ConfigurationError("scopes must be strings without spaces")

        self.app_id: Final = app_id
        self.token_endpoint: Final = token_endpoint
        self.resource: Final = resource
        self.organization_id: Final = organization_id
        self.scopes: Final = tuple(dict.fromkeys(s for s in scope_list if s))
        self.auth_method: Final = auth_method
        self.leeway: Final = float(leeway)
        self.clock = clock
        self._endpoint = TokenEndpoint(
            token_endpoint,
            app_id,
            app_secret,
            resource=resource,
            organization_id=organization_id,
            scopes=self.scopes,
            auth_method=auth_method,
            leeway=self.leeway,
        )
        self._cache = TokenCache()
        self._granted: frozenset[str] | None = None

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
            + (f"organization_id={self.organization_id!r}, " if self.organization_id else "")
            + f"scopes={self.scopes!r}, auth_method={self.auth_method!r})"
        )

    @property
    def granted_scopes(self) -> frozenset[str] | None:
        """The scopes of the last token Logto issued (``None`` before the first one).

        Logto answers 200 with fewer scopes than asked when the app's roles do not grant them
        (or the API resource does not define them); compare with `scopes`.
        """
        return self._granted

    def invalidate(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self._cache.token = None

    # -- the flow, shared by every driver and both client families ---------------------------

    def _obtain(
        self, family: Family, timeout: Any, rejected: IssuedToken | None = None
    ) -> Steps[IssuedToken]:
        """A fresh token that is not `rejected`, fetched at most once by all callers."""
        return self._cache.obtain(
            self.clock, lambda: self._fetch(family, timeout), rejected=rejected
        )

    def _fetch(self, family: Family, timeout: Any) -> Steps[IssuedToken]:
        started = self.clock()
        logger.debug(
            "requesting token from %s (app %s, resource %s, scopes %s, auth %s)",
            self.token_endpoint,
            self.app_id,
            self.resource,
            " ".join(self.scopes) or "-",
            self.auth_method,
        )
        answer = response((yield Fetch(self._endpoint.request(family, timeout))))
        token = self._endpoint.accept(answer, started)
        self._granted = token.scopes
        return token

    def _flow(self, request: httpx.Request) -> Steps[None]:
        family = family_of(request)
        timeout = request.extensions.get("timeout")
        token = yield from self._obtain(family, timeout)
        _authorize(request, token)
        answer = response((yield request))
        if answer.status_code != 401:
            return
        if not _can_replay(family, request):
            logger.debug("API answered 401 to a streamed request; not retrying")
            return
        logger.debug("API answered 401; fetching a new token and retrying once")
        token = yield from self._obtain(family, timeout, rejected=token)
        _authorize(request, token)
        yield request

    # -- what the clients call ---------------------------------------------------------------

    # Each method serves requests of both families; its annotations name httpx2's types, which
    # cannot also match httpx.Auth's (see ._http), hence the ignores.

    def auth_flow(  # type: ignore[override]
        self,
        request: httpx.Request,  # type: ignore[override]
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """The whole flow without locking, for a caller that drives it by hand.

        The clients call `sync_auth_flow` / `async_auth_flow` instead, which add locks.
        """
        return self._cache.run_sync(self._flow(request), locked=False)

    def sync_auth_flow(  # type: ignore[override]
        self,
        request: httpx.Request,  # type: ignore[override]
    ) -> Generator[httpx.Request, httpx.Response, None]:
        return self._cache.run_sync(self._flow(request))

    def async_auth_flow(  # type: ignore[override]
        self,
        request: httpx.Request,  # type: ignore[override]
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        return self._cache.run_async(self._flow(request))

    # -- just a token ------------------------------------------------------------------------

    def get_token(self, client: AnyClient | None = None) -> str:
        """The current access token, fetched through `client` (or a throwaway one) if needed.

        `client` is an ``httpx2.Client`` or an ``httpx.Client``. Its own auth is bypassed for
        the token request, so passing a client built with ``auth=<this object>`` is fine.
        """
        token = self._cache.usable(self.clock())
        if token is not None:
            return token.value
        family = _family_of_client(client, "get_token", asynchronous=False)
        owned = client is None
        http = family.Client() if client is None else client
        try:
            flow = self._cache.run_sync(self._obtain(family, http.timeout.as_dict()))
            try:
                request = next(flow)
                while True:
                    answer = cast(httpx.Response, http.send(cast(Any, request), auth=None))
                    request = flow.send(answer)
            except StopIteration as stop:
                result: IssuedToken = stop.value
                return result.value
            finally:
                flow.close()
        finally:
            if owned:
                http.close()

    async def aget_token(self, client: AnyAsyncClient | None = None) -> str:
        """Like `get_token`, for an ``httpx2.AsyncClient`` or an ``httpx.AsyncClient``.

        Coroutines on an empty cache share one fetch.
        """
        token = self._cache.usable(self.clock())
        if token is not None:
            return token.value
        family = _family_of_client(client, "aget_token", asynchronous=True)
        owned = client is None
        http = family.AsyncClient() if client is None else client
        box: list[IssuedToken] = []
        steps = capture(self._obtain(family, http.timeout.as_dict()), box)
        flow = self._cache.run_async(steps)
        try:
            try:
                request = await flow.__anext__()
                while True:
                    answer = cast(httpx.Response, await http.send(cast(Any, request), auth=None))
                    request = await flow.asend(answer)
            except StopAsyncIteration:
                return box[0].value
            finally:
                await flow.aclose()
        finally:
            if owned:
                await http.aclose()


def _authorize(request: httpx.Request, token: IssuedToken) -> None:
    request.headers["Authorization"] = f"Bearer {token.value}"


def _family_of_client(client: object, method: str, *, asynchronous: bool) -> Family:
    """The family of `client` (the default one for None), refusing the wrong kind by name."""
    if client is None:
        return DEFAULT
    try:
        family = family_of(client)
    except TypeError:
        family = None
    wanted = "AsyncClient" if asynchronous else "Client"
    if family is None or not isinstance(
        client, family.AsyncClient if asynchronous else family.Client
    ):
        other = "get_token" if asynchronous else "aget_token"
        raise TypeError(
            f"{method}() needs an httpx2.{wanted} or an httpx.{wanted}, got "
            + (f"{family.name}.{type(client).__name__}" if family else type(client).__qualname__)
            + (f" (use {other}() for it)" if family is not None else "")
        )
    return family


def _check_url(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string URL")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(f"{name} must be an absolute http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name} must not have a query or fragment")
