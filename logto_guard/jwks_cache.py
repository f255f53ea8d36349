"""The issuer's signing keys, fetched once and kept fresh without ever blocking a request twice.

Logto serves its JWKS with `Cache-Control: no-cache`; honouring that literally would fetch keys
on every request. Instead keys are fresh for `ttl`, then revalidated in the background with the
ETag (a 304 costs nothing) while requests keep using the keys in hand. Fetches are
single-flight (1,000 concurrent cold requests cause one fetch); an unknown `kid` refetches at
most once per `cooldown`, shared by all callers, so random-kid floods cannot make us hammer
Logto; and when Logto is down or answers garbage the last good keys stay in use for up to
`max_stale` (stale-if-error), with failed fetches backing off.

Monotonic time drives every TTL here (RFC 8725 via R59): wall-clock jumps do not expire keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

import httpx

from ._fetch import FetchError, FetchResult, check_url, fetch_json
from .errors import KeySetUnavailable, UnknownSigningKey
from .keys import KeySet, VerificationKey, parse_jwks

logger = logging.getLogger("logto_guard.jwks")

DEFAULT_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "PS256"})


class JWKSCache:
    """Keys of one issuer. Share one instance across requests (the verifier does)."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        http_client: httpx.AsyncClient | None = None,
        ttl: float = 600.0,
        cooldown: float = 30.0,
        max_stale: float = 86_400.0,
        timeout: float = 5.0,
        max_bytes: int = 512 * 1024,
        max_keys: int = 64,
        allow_insecure_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = check_url(issuer, allow_insecure_http=allow_insecure_http)
        self._allow_insecure_http = allow_insecure_http
        self.jwks_uri = (
            check_url(jwks_uri, allow_insecure_http=allow_insecure_http) if jwks_uri else None
        )
        self.algorithms = frozenset(algorithms)
        self.ttl, self.cooldown, self.max_stale = ttl, cooldown, max_stale
        self.timeout, self.max_bytes, self.max_keys = timeout, max_bytes, max_keys
        self._clock = clock
        self._client = http_client
        self._owns_client = http_client is None
        self._client_loop: asyncio.AbstractEventLoop | None = None

        self.keys: KeySet | None = None
        self._document: dict[str, Any] | None = None
        self._etag: str | None = None
        self._fresh_until = 0.0  # keys younger than this need no revalidation
        self._stale_until = 0.0  # keys older than this are no longer trusted
        self._last_fetch = -float("inf")  # start of the latest fetch, for the kid cooldown
        self._retry_at = 0.0  # after a failure, no new fetch before this
        self._failures = 0
        self._inflight: asyncio.Task[None] | None = None
        self.fetch_count = 0
        self.last_error: str | None = None  # why the latest fetch failed (safe to log or show)

    # -- the per-request path -------------------------------------------------------------

    def current(self) -> KeySet | None:
        """The keys trusted now (None past `max_stale`), starting a revalidation that is due.

        Cheap enough for every verified-token cache hit: a clock read and a few compares. Hits
        must call it too, or a removed key would stay trusted as long as its tokens are cached.
        """
        now = self._clock()
        if now >= self._fresh_until and now >= self._retry_at and self._inflight is None:
            self._start_fetch()  # in the background; callers answer with the keys in hand
        return self.keys if now < self._stale_until else None

    async def get_key(self, kid: str | None, algorithm: str) -> VerificationKey:
        """The key for a token header, fetching only when it cannot be answered from memory."""
        keys = self.current()
        now = self._clock()
        if keys is not None:
            key = keys.find(kid, algorithm)
            if key is not None:
                return key
            if kid is None or now - self._last_fetch < self.cooldown or now < self._retry_at:
                raise UnknownSigningKey()
            await self._fetch_shared()
        else:
            if now < self._retry_at and self._inflight is None:
                raise KeySetUnavailable()
            await self._fetch_shared()
        keys = self.keys
        if keys is None or self._clock() >= self._stale_until:
            raise KeySetUnavailable()
        key = keys.find(kid, algorithm)
        if key is None:
            raise UnknownSigningKey()
        return key

    # -- fetching -----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Fetch now (joining a fetch in flight); raises KeySetUnavailable if no keys result."""
        await self._fetch_shared()
        if self.keys is None:
            raise KeySetUnavailable()

    def _start_fetch(self) -> asyncio.Task[None]:
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.get_running_loop().create_task(self._fetch())
            self._inflight = task
        return task

    async def _fetch_shared(self) -> None:
        # shield: a caller that is cancelled (client went away) must not cancel everyone's fetch.
        await asyncio.shield(self._start_fetch())

    async def _fetch(self) -> None:
        started = self._last_fetch = self._clock()
        self.fetch_count += 1
        try:
            try:
                # One deadline for discovery and JWKS together: a cold start waits at most that.
                result = await asyncio.wait_for(self._fetch_documents(), self.timeout)
            except TimeoutError:
                raise FetchError(f"fetching keys took longer than {self.timeout:g} s") from None
            if result.document is not None and result.document != self._document:
                # Same content keeps the same KeySet object: the verified-token cache stays valid.
                self.keys = parse_jwks(result.document, self.algorithms, self.max_keys)
                self._document = result.document
                logger.debug("JWKS of %s loaded: %d usable keys", self.issuer, len(self.keys))
            if result.document is not None:
                self._etag = result.etag
        except (FetchError, ValueError) as exc:
            self.last_error = str(exc)
            self._failures += 1
            backoff = min(self.cooldown * 2 ** (self._failures - 1), 300.0)
            self._retry_at = started + min(backoff, self.ttl)
            level = logging.WARNING if started < self._stale_until else logging.ERROR
            logger.log(
                level,
                "JWKS fetch for %s failed (%s); %s; next try in %.1f s",
                self.issuer,
                exc,
                "no keys yet"
                if self.keys is None
                else "keeping the last good keys"
                if started < self._stale_until
                else "the last good keys are past max_stale",
                self._retry_at - started,
            )
        except Exception as exc:
            self.last_error = f"unexpected {type(exc).__name__}"
            self._failures += 1
            self._retry_at = started + self.cooldown
            logger.exception("unexpected error while fetching the JWKS of %s", self.issuer)
        else:
            self.last_error = None
            self._failures = 0
            self._retry_at = 0.0
            self._fresh_until = started + self.ttl
            self._stale_until = started + self.max_stale
        finally:
            self._inflight = None

    async def _fetch_documents(self) -> FetchResult:
        client = await self._http_client()
        if self.jwks_uri is None:
            self.jwks_uri = await self._discover(client)
        return await fetch_json(
            client,
            self.jwks_uri,
            etag=self._etag if self.keys is not None else None,
            timeout=self.timeout,
            max_bytes=self.max_bytes,
        )

    async def _discover(self, client: httpx.AsyncClient) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        result = await fetch_json(client, url, timeout=self.timeout, max_bytes=self.max_bytes)
        doc = result.document or {}
        if doc.get("issuer") != self.issuer:
            raise FetchError(
                "discovery document names another issuer: check the configured endpoint/issuer"
            )
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchError("discovery document has no jwks_uri")
        try:
            return check_url(jwks_uri, allow_insecure_http=self._allow_insecure_http)
        except ValueError as exc:
            raise FetchError(str(exc)) from None

    async def _http_client(self) -> httpx.AsyncClient:
        if not self._owns_client:
            assert self._client is not None
            return self._client
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # A client's connections belong to one event loop (tests and TestClient use several).
            # Building one loads the CA bundle (~0.1 s of CPU): off the event loop.
            self._client = await asyncio.to_thread(
                httpx.AsyncClient, timeout=self.timeout, follow_redirects=False
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            if self._client_loop is asyncio.get_running_loop():
                await client.aclose()
