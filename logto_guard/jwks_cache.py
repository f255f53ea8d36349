"""The issuer's signing keys, fetched once and kept fresh without ever blocking a request twice.

Logto serves its JWKS with `Cache-Control: no-cache`; honouring that literally would fetch keys
on every request. Instead keys are fresh for `ttl`, then revalidated in the background with the
ETag (a 304 costs nothing) while requests keep using the keys in hand. Fetches are
single-flight (1,000 concurrent cold requests cause one fetch).

An unknown `kid` refetches at once, whenever the last fetch was: Logto rotates immediately by
default, so the very next token is signed by a key published a moment ago. Only a refetch that
did not find the kid it was made for arms the `cooldown` (no other refetch for that long, shared
by all callers), so a random-kid flood costs one fetch per cooldown while a real rotation costs
one fetch and no refusal. During a cooldown an unknown kid on a token older than our latest
fetch is a removed key (401); on a newer token it may be a key published since, and the answer
is 503 with Retry-After (`SigningKeyNotYetKnown`), which sends no client to Logto for a new token.

When Logto is down or answers garbage the last good keys stay in use for up to `max_stale`
(stale-if-error), with failed fetches backing off. A discovery document naming another issuer
is a configuration mistake (`IssuerMismatch`), logged once at ERROR, never an outage.

Monotonic time drives every TTL here (RFC 8725 via R59): wall-clock jumps do not expire keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any, NoReturn

from . import telemetry
from ._fetch import FetchError, FetchResult, check_url, fetch_json
from ._http import AnyAsyncClient, httpx
from .errors import (
    IssuerMismatch,
    IssuerNotVerifiable,
    KeySetUnavailable,
    SigningKeyNotYetKnown,
    UnknownSigningKey,
)
from .keys import KeySet, VerificationKey, parse_jwks

logger = logging.getLogger("logto_guard.jwks")

DEFAULT_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "PS256"})


MAX_ABSENT_KIDS = 1024  # kids a refetch showed absent, remembered during one cooldown


class JWKSCache:
    """Keys of one issuer. Share one instance across requests (the verifier does)."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        http_client: AnyAsyncClient | None = None,
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
        self._client = http_client  # the caller's client, used as is and never closed here
        self._ssl_context: ssl.SSLContext | None = None  # built once, off the event loop

        self.keys: KeySet | None = None
        self._document: dict[str, Any] | None = None
        self._etag: str | None = None
        self._fresh_until = 0.0  # keys younger than this need no revalidation
        self._stale_until = 0.0  # keys older than this are no longer trusted
        self._fetched_at = -float("inf")  # start of the latest successful fetch
        self._cooldown_until = 0.0  # armed by a refetch that did not find its kid
        self._absent: set[str] = set()  # kids that refetch showed absent
        self._removed: set[str | None] = set()  # kids we held that a later fetch no longer lists
        self._retry_at = 0.0  # after a failure, no new fetch before this
        self._failures = 0
        self._inflight: asyncio.Task[None] | None = None
        self._discovery_check: asyncio.Task[None] | None = None
        self.fetch_count = 0
        self.last_error: str | None = None  # why the latest fetch failed (safe to log or show)
        self.config_error: IssuerMismatch | None = None  # discovery named another issuer

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

    async def get_key(
        self, kid: str | None, algorithm: str, *, min_age: float | None = None
    ) -> VerificationKey:
        """The key for a token header, fetching only when it cannot be answered from memory.

        `min_age`: how old the token is at least, in seconds, clock skew included (from its
        unverified `iat`); it decides 401 or 503 when the cooldown refuses a refetch. None
        means unknown and counts as old (401).
        """
        keys = self.current()
        if keys is None:
            return await self._cold_key(kid, algorithm)
        key = keys.find(kid, algorithm)
        if key is not None:
            return key
        if kid is None:
            raise UnknownSigningKey()
        return await self._refetch_for(kid, algorithm, min_age)

    async def _cold_key(self, kid: str | None, algorithm: str) -> VerificationKey:
        """No trusted keys (cold start, or past max_stale): fetch, unless backing off."""
        if self._clock() < self._retry_at and self._inflight is None:
            self._raise_unavailable()
        await self._fetch_shared()
        keys = self.keys
        if keys is None or self._clock() >= self._stale_until:
            self._raise_unavailable()
        key = keys.find(kid, algorithm)
        if key is None:
            raise UnknownSigningKey()
        return key

    async def _refetch_for(
        self, kid: str, algorithm: str, min_age: float | None
    ) -> VerificationKey:
        """An unknown kid: refetch now (single-flight), unless a fruitless refetch forbids it."""
        if kid in self._removed:
            raise UnknownSigningKey()  # we held this key and Logto dropped it: no refetch
        arrived = self._clock()
        for _ in range(2):  # a second time only if the fetch joined predates this request
            if kid in self._absent and self._clock() < self._cooldown_until:
                raise UnknownSigningKey()  # a refetch after this kid was first seen lacked it
            if arrived < self._cooldown_until or self._clock() < self._retry_at:
                self._refuse(min_age)
            await self._fetch_shared()
            keys = self.keys
            if keys is not None and self._clock() < self._stale_until:
                key = keys.find(kid, algorithm)
                if key is not None:
                    return key
            if self._fetched_at >= arrived:
                break
        if self._fetched_at < arrived:
            self._refuse(min_age)  # the refetch failed: we cannot tell
        self._arm_cooldown(kid)
        raise UnknownSigningKey()

    def _arm_cooldown(self, kid: str) -> None:
        if self._clock() >= self._cooldown_until:
            self._cooldown_until = self._fetched_at + self.cooldown
            self._absent = set()
        if len(self._absent) < MAX_ABSENT_KIDS:
            self._absent.add(kid)

    def _refuse(self, min_age: float | None) -> NoReturn:
        """No refetch allowed now: 401 if our latest fetch would have listed the key, else 503."""
        now = self._clock()
        if min_age is None or now - min_age < self._fetched_at:
            raise UnknownSigningKey()
        raise SigningKeyNotYetKnown(retry_after=max(self._cooldown_until, self._retry_at) - now)

    def _raise_unavailable(self) -> NoReturn:
        if self.config_error is not None:
            raise IssuerNotVerifiable()
        raise KeySetUnavailable()

    # -- fetching -----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Fetch now (joining a fetch in flight); raises if no keys result.

        Raises `IssuerMismatch` when discovery names another issuer, else `KeySetUnavailable`.
        """
        await self._fetch_shared()
        if self.config_error is not None:
            raise self.config_error
        if self.keys is None:
            raise KeySetUnavailable()

    def check_discovery_soon(self) -> None:
        """Check in the background that discovery names our issuer, once (no JWKS fetch).

        Called when a token names an issuer nobody configured: if the configured endpoint is
        wrong, this is what names the mistake in the log, without fetching any keys.
        """
        if self.jwks_uri is None and self.config_error is None and self._discovery_check is None:
            self._discovery_check = asyncio.get_running_loop().create_task(self._check_discovery())

    async def _check_discovery(self) -> None:
        try:
            async with self._http() as client:
                self.jwks_uri = await self._discover(client)
        except IssuerMismatch as exc:
            self._note_mismatch(exc)
        except Exception as exc:  # an outage here is for the next real fetch to report
            logger.debug("discovery check for %s failed: %s", self.issuer, type(exc).__name__)

    def _start_fetch(self) -> asyncio.Task[None]:
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            # The start is when the fetch is decided, not when the task first runs: earlier is
            # the safe side for "did a fetch after this request prove the kid absent?".
            task = asyncio.get_running_loop().create_task(self._fetch(self._clock()))
            self._inflight = task
        return task

    async def _fetch_shared(self) -> None:
        # shield: a caller that is cancelled (client went away) must not cancel everyone's fetch.
        await asyncio.shield(self._start_fetch())

    async def _fetch(self, started: float) -> None:
        self.fetch_count += 1
        span, changed = telemetry.hooks.jwks_fetch_started(self), False
        try:
            try:
                # One deadline for discovery and JWKS together: a cold start waits at most that.
                result = await asyncio.wait_for(self._fetch_documents(), self.timeout)
            except TimeoutError:
                raise FetchError(f"fetching keys took longer than {self.timeout:g} s") from None
            if result.document is not None and result.document != self._document:
                # Same content keeps the same KeySet object: the verified-token cache stays valid.
                keys = parse_jwks(result.document, self.algorithms, self.max_keys)
                self._note_removed(self.keys, keys)
                self.keys = keys
                self._document = result.document
                changed = True  # logged by telemetry, with the kids
            if result.document is not None:
                self._etag = result.etag
        except IssuerMismatch as exc:
            self._note_mismatch(exc)
            telemetry.hooks.jwks_fetch_done(self, span, "failed")
            self._retry_at = started + self.ttl  # Logto's configuration may be fixed meanwhile
        except (FetchError, ValueError) as exc:
            self.last_error = str(exc)
            self._failures += 1
            backoff = min(self.cooldown * 2 ** (self._failures - 1), 300.0)
            self._retry_at = started + min(backoff, self.ttl)
            telemetry.hooks.jwks_fetch_done(self, span, "failed")
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
                extra={"issuer": self.issuer, "reason": "fetch_failed"},
            )
        except Exception as exc:
            self.last_error = f"unexpected {type(exc).__name__}"
            self._failures += 1
            self._retry_at = started + self.cooldown
            telemetry.hooks.jwks_fetch_done(self, span, "failed")
            logger.exception(
                "unexpected error while fetching the JWKS of %s",
                self.issuer,
                extra={"issuer": self.issuer, "reason": "fetch_failed"},
            )
        else:
            self.last_error = None
            self.config_error = None
            self._failures = 0
            self._retry_at = 0.0
            self._fetched_at = started
            self._fresh_until = started + self.ttl
            self._stale_until = started + self.max_stale
            status = "updated" if result.document is not None else "not_modified"
            telemetry.hooks.jwks_fetch_done(self, span, status, changed=changed)
        finally:
            self._inflight = None

    def _note_removed(self, old: KeySet | None, new: KeySet) -> None:
        """Remember the kids a new key set dropped: their tokens are 401 without a refetch."""
        if old is not None:
            if len(self._removed) > MAX_ABSENT_KIDS:
                self._removed = set()
            self._removed |= old.kids - new.kids
        self._removed -= new.kids

    def _note_mismatch(self, exc: IssuerMismatch) -> None:
        self.last_error = str(exc)
        if self.config_error is None or str(self.config_error) != str(exc):
            logger.error("%s: fix the endpoint/issuer setting", exc)  # once per distinct mistake
        self.config_error = exc

    async def _fetch_documents(self) -> FetchResult:
        async with self._http() as client:
            if self.jwks_uri is None:
                self.jwks_uri = await self._discover(client)
            return await fetch_json(
                client,
                self.jwks_uri,
                etag=self._etag if self.keys is not None else None,
                timeout=self.timeout,
                max_bytes=self.max_bytes,
            )

    async def _discover(self, client: AnyAsyncClient) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        result = await fetch_json(client, url, timeout=self.timeout, max_bytes=self.max_bytes)
        doc = result.document or {}
        if doc.get("issuer") != self.issuer:
            raise IssuerMismatch(doc.get("issuer"), self.issuer)
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchError("discovery document has no jwks_uri")
        try:
            return check_url(jwks_uri, allow_insecure_http=self._allow_insecure_http)
        except ValueError as exc:
            raise FetchError(str(exc)) from None

    @asynccontextmanager
    async def _http(self) -> AsyncIterator[AnyAsyncClient]:
        """The caller's client, or one of our own for this fetch only (closed right after).

        Fetches are minutes apart, so keeping a pool open buys nothing and would leave sockets
        (and a ResourceWarning) behind whenever nobody calls `aclose`. Loading the CA bundle
        (~0.1 s of CPU) happens once, off the event loop.
        """
        if self._client is not None:
            yield self._client
            return
        if self._ssl_context is None:
            self._ssl_context = await asyncio.to_thread(httpx.create_ssl_context)
        async with httpx.AsyncClient(
            verify=self._ssl_context, timeout=self.timeout, follow_redirects=False
        ) as client:
            yield client

    async def aclose(self) -> None:
        """Nothing stays open between fetches; a fetch or discovery check still running is
        cancelled, and its client closed on the way out, before this returns."""
        loop = asyncio.get_running_loop()
        for task in (self._inflight, self._discovery_check):
            if task is not None and not task.done() and task.get_loop() is loop:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
