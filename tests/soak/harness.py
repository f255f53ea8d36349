"""Soak harness: uvicorn on loopback, many async clients, a provider that rotates and restarts.

`run_soak` serves the shopping API behind `LogtoGuard` with a short-TTL verifier, and for a
bounded time sends a mix of valid and invalid requests from concurrent httpx clients while the
provider goes through a staged key rotation (add a key, wait past TTL and cooldown, promote it,
later remove the old one) and one stop/start. Every request is classified against what it must
get; the counts come back in a `SoakReport`.

What counts as a failure:

- a valid token refused: a token signed by a key that was published when it was minted and has
  not been deliberately removed since (the kid of every token is tracked);
- an invalid token (forged, expired, wrong audience...) accepted, or a token lacking the scope
  let through, or any other answer than the exact one expected;
- a 5xx, or a transport error;
- a removed key's token still accepted well after the verifier must have seen the removal.

Every loop is bounded in count and in time; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logto_guard.jwks_cache import JWKSCache
from logto_guard.middleware import LogtoGuard, get_access_token
from logto_guard.scopes import require_scopes
from logto_guard.testing import LoopbackServer
from logto_guard.verifier import TokenVerifier

if TYPE_CHECKING:
    from oidc_provider import OidcProvider

SHOP = "https://shopping.api"
READ_WRITE = "read:products write:products"
MAX_REQUESTS_PER_WORKER = 2_000_000
HARD_EXTRA_SECONDS = 60.0  # the load stops at duration + this, whatever the schedule does
POOL_SIZE = 256  # recent valid tokens kept for reuse
STICKY_PER_KID = 4  # tokens of every kid kept for the whole run (to replay after removal)

_T = TypeVar("_T")


def rss_mb() -> float:
    """Resident set size of this process (server thread, clients and verifier), in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_kid(token: str) -> str | None:
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


# -- the served app ------------------------------------------------------------------------------


def build_app(verifier: TokenVerifier) -> LogtoGuard:
    @require_scopes("read:products")
    async def list_products(request: Request) -> JSONResponse:
        return JSONResponse({"sub": get_access_token(request).sub})

    @require_scopes("write:products")
    async def create_product(request: Request) -> JSONResponse:
        return JSONResponse({"created_by": get_access_token(request).sub})

    app = Starlette(
        routes=[
            Route("/products", list_products, methods=["GET"]),
            Route("/products", create_product, methods=["POST"]),
        ]
    )
    return LogtoGuard(app, verifier=verifier)


# -- tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Minted:
    token: str
    kid: str | None
    writer: bool  # has write:products


@dataclass(frozen=True)
class Shot:
    """One request to send and the one answer it must get."""

    kind: str
    method: str
    headers: list[tuple[str, str]]
    expect: int
    kid: str | None = None  # for valid tokens: the signing key
    valid: bool = False  # a genuine token that must be accepted (unless its key was removed)


class TokenPools:
    """Valid tokens (recent + a few of every kid) and pre-built invalid ones. Thread-safe."""

    def __init__(self, rng: random.Random) -> None:
        self._lock = threading.Lock()
        self._rng = rng
        self.recent: list[Minted] = []
        self.sticky: dict[str | None, list[Minted]] = {}
        self.invalid: list[tuple[str, str]] = []  # (kind, token)
        self.minted = Counter[str]()

    def add_valid(self, minted: Minted, source: str) -> None:
        with self._lock:
            self.minted[source] += 1
            self.recent.append(minted)
            if len(self.recent) > POOL_SIZE:
                del self.recent[: len(self.recent) - POOL_SIZE]
            kept = self.sticky.setdefault(minted.kid, [])
            if len(kept) < STICKY_PER_KID:
                kept.append(minted)

    def add_invalid(self, kind: str, token: str) -> None:
        with self._lock:
            self.invalid.append((kind, token))
            if len(self.invalid) > 4 * POOL_SIZE:
                del self.invalid[: len(self.invalid) - 4 * POOL_SIZE]

    def pick_valid(self, *, writer: bool | None = None) -> Minted:
        with self._lock:
            if self._rng.random() < 0.1:  # now and then an old token, maybe of a removed key
                group = self._rng.choice(list(self.sticky.values()))
            else:
                group = self.recent[-64:]
            choices = [m for m in group if writer is None or m.writer == writer]
            if not choices:  # every mint round adds both kinds, so `recent` has some
                choices = [m for m in self.recent if writer is None or m.writer == writer]
            return self._rng.choice(choices)

    def pick_invalid(self) -> tuple[str, str]:
        with self._lock:
            return self._rng.choice(self.invalid)


def mint_round(provider: OidcProvider, pools: TokenPools, evil: str, *, real: bool) -> None:
    """Mint fresh tokens: locally signed with the current key, and (if `real`) from /oidc/token;
    and forged ones, some signed by `evil`, a key the provider never publishes.

    Called with the provider lock held, in a worker thread.
    """
    for writer in (False, True):
        claims = {"client_id": "shop-writer", "scope": READ_WRITE} if writer else None
        token = provider.sign(claims)
        pools.add_valid(Minted(token, token_kid(token), writer), "signed")
    if real and provider.running:
        for client_id, scope, writer in (
            ("shop-reader", "read:products", False),
            ("shop-writer", READ_WRITE, True),
        ):
            try:
                token = provider.token(client_id, scope=scope)
            except Exception as exc:  # stopping concurrently: try again next round
                pools.minted[f"token_endpoint_failed_{type(exc).__name__}"] += 1
            else:
                pools.add_valid(Minted(token, token_kid(token), writer), "token_endpoint")
    now = int(time.time())
    forged = {
        "expired": provider.sign({"iat": now - 7200, "exp": now - 3600}),
        "other_audience": provider.sign({"aud": "https://other.api"}),
        "other_issuer": provider.sign({"iss": "https://evil.example/oidc"}),
        "alg_none": provider.sign(alg="none"),
        "hs256_public_key": provider.sign(alg="HS256"),
        "no_typ_id_token": provider.sign({"aud": "shop-reader"}, header={"typ": None}),
        "crit": provider.sign(header={"crit": ["x-evil"]}),
        "attacker_key_real_kid": provider.sign(kid=evil, header={"kid": provider.current_kid}),
        "attacker_key_random_kid": provider.sign(kid=evil, header={"kid": secrets.token_hex(8)}),
        "attacker_key_no_kid": provider.sign(kid=evil, header={"kid": None}),
    }
    for kind, token in forged.items():
        pools.add_invalid(kind, token)


def flip_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64(bytes(raw))}"


def tamper_scope(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = READ_WRITE
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def next_shot(pools: TokenPools, rng: random.Random) -> Shot:
    roll = rng.random()
    if roll < 0.45:
        m = pools.pick_valid()
        return Shot("valid_get", "GET", _bearer(m.token), 200, m.kid, True)
    if roll < 0.55:
        m = pools.pick_valid(writer=True)
        return Shot("valid_post", "POST", _bearer(m.token), 200, m.kid, True)
    if roll < 0.63:
        m = pools.pick_valid(writer=False)
        return Shot("reader_post_no_scope", "POST", _bearer(m.token), 403, m.kid, False)
    if roll < 0.68:
        m = pools.pick_valid()
        return Shot("flipped_signature", "GET", _bearer(flip_signature(m.token)), 401)
    if roll < 0.72:
        m = pools.pick_valid(writer=False)
        return Shot("tampered_scope", "POST", _bearer(tamper_scope(m.token)), 401)
    if roll < 0.75:
        garbage = b64(secrets.token_bytes(rng.randint(1, 600)))
        return Shot("garbage", "GET", _bearer(garbage), 401)
    if roll < 0.77:
        m = pools.pick_valid()
        headers = _bearer(m.token) * 2
        return Shot("duplicate_header", "GET", headers, 400)
    if roll < 0.79:
        return Shot("no_credentials", "GET", [], 401)
    kind, token = pools.pick_invalid()
    return Shot(kind, "GET", _bearer(token), 401)


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


# -- bookkeeping ---------------------------------------------------------------------------------


@dataclass
class SoakReport:
    duration: float = 0.0
    requests: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    valid_sent: int = 0
    valid_accepted: int = 0
    valid_rejected: int = 0  # must be 0
    removed_key_accepted: int = 0  # a removed key's token, still in the verifier's grace
    removed_key_rejected: int = 0
    removed_key_accepted_late: int = 0  # must be 0: accepted long after the removal
    invalid_sent: int = 0
    invalid_accepted: int = 0  # must be 0 (a 2xx for anything that must be refused)
    wrong_status: int = 0  # must be 0 (e.g. 401 where 400 was due)
    server_errors: int = 0  # must be 0 (5xx)
    transport_errors: int = 0  # must be 0
    jwks_fetches: int = 0
    kids: Counter[str] = field(default_factory=Counter)  # valid requests per kid (short)
    minted: Counter[str] = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)  # the first few failures, for diagnosis

    def failures(self) -> dict[str, int]:
        return {
            "valid_rejected": self.valid_rejected,
            "invalid_accepted": self.invalid_accepted,
            "wrong_status": self.wrong_status,
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "removed_key_accepted_late": self.removed_key_accepted_late,
        }

    def summary(self) -> str:
        rate = self.requests / self.duration if self.duration else 0.0
        lines = [
            f"soak: {self.requests} requests in {self.duration:.1f} s ({rate:.0f}/s)",
            f"  valid: sent {self.valid_sent}, accepted {self.valid_accepted}, "
            f"REJECTED {self.valid_rejected}",
            f"  removed key: accepted {self.removed_key_accepted} (grace), rejected "
            f"{self.removed_key_rejected}, accepted late {self.removed_key_accepted_late}",
            f"  invalid: sent {self.invalid_sent}, ACCEPTED {self.invalid_accepted}, "
            f"wrong status {self.wrong_status}",
            f"  5xx {self.server_errors}, transport errors {self.transport_errors}, "
            f"JWKS fetches {self.jwks_fetches}",
            "  rss MiB: " + ", ".join(f"{k} {v:.1f}" for k, v in self.rss_mb.items()),
            "  valid requests per kid: "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.kids.items())),
            "  minted: " + ", ".join(f"{k}={v}" for k, v in sorted(self.minted.items())),
            "  by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(self.by_kind.items())),
            "  events: " + "; ".join(self.events),
        ]
        if self.samples:
            lines.append("  first failures: " + " | ".join(self.samples))
        return "\n".join(lines)


@dataclass
class Removal:
    kid: str
    at: float  # monotonic, marked just before the provider stops publishing the key


class Run:
    """Shared state of one soak run."""

    def __init__(self, grace: float) -> None:
        self.report = SoakReport()
        self.removed: dict[str, Removal] = {}
        self.grace = grace  # how long a removed key may still verify (TTL, backoff, latency)
        self.t0 = time.monotonic()

    def event(self, text: str) -> None:
        self.report.events.append(f"{time.monotonic() - self.t0:.2f}s {text}")

    def sample(self, text: str) -> None:
        if len(self.report.samples) < 8:
            self.report.samples.append(text)

    def classify(self, shot: Shot, status: int, body: bytes, sent_at: float) -> None:
        r = self.report
        r.requests += 1
        r.by_kind[shot.kind] += 1
        if status == 503 and shot.kind == "attacker_key_random_kid":
            # A fresh token with a kid we cannot refetch yet (cooldown, or the provider down):
            # 503 + Retry-After by design (README, "Key rotation"); refused, like a 401.
            r.invalid_sent += 1
            return
        if status >= 500:
            r.server_errors += 1
            self.sample(f"{shot.kind}: {status} {body[:120]!r}")
            return
        removal = self.removed.get(shot.kid) if shot.kid is not None else None
        if shot.valid:
            r.valid_sent += 1
            if shot.kid is not None:
                r.kids[shot.kid[:8]] += 1
            if removal is not None:
                if status == 200:
                    r.removed_key_accepted += 1
                    if sent_at > removal.at + self.grace:
                        r.removed_key_accepted_late += 1
                        self.sample(f"{shot.kind}: removed kid accepted late")
                else:
                    r.removed_key_rejected += 1
                return
            if status == 200:
                r.valid_accepted += 1
            else:
                r.valid_rejected += 1
                self.sample(f"{shot.kind} kid={shot.kid}: {status} {body[:120]!r}")
            return
        r.invalid_sent += 1
        if removal is not None and shot.expect == 403 and status == 401:
            return  # a no-scope token whose key is gone: 401 is right too
        if 200 <= status < 300:
            r.invalid_accepted += 1
            self.sample(f"{shot.kind}: ACCEPTED {status}")
        elif status != shot.expect:
            r.wrong_status += 1
            self.sample(f"{shot.kind}: {status} (expected {shot.expect}) {body[:120]!r}")


# -- the run -------------------------------------------------------------------------------------


async def run_soak(
    provider: OidcProvider,
    *,
    duration: float,
    workers: int,
    ttl: float,
    cooldown: float,
    seed: int = 1234,
) -> SoakReport:
    lock = threading.Lock()  # one provider operation at a time (minting vs rotation)

    async def locked(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        def call() -> _T:
            with lock:
                return fn(*args, **kwargs)

        return await asyncio.to_thread(call)

    jwks = JWKSCache(provider.issuer, ttl=ttl, cooldown=cooldown)
    verifier = TokenVerifier(issuer=provider.issuer, audience=SHOP, jwks=jwks)
    # A long keep-alive: with uvicorn's 5 s default, a connection idle for a moment on a loaded
    # machine can be closed just as the client reuses it (RemoteProtocolError).
    server = LoopbackServer(build_app(verifier), lifespan="on", backlog=512, timeout_keep_alive=300)
    pools = TokenPools(random.Random(seed + 1))
    run = Run(grace=2 * ttl + cooldown + 1.0)
    report = run.report

    evil = await locked(provider.generate_key, "EC")
    await locked(mint_round, provider, pools, evil, real=True)
    server.start()
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    stop_load = asyncio.Event()
    schedule_done = asyncio.Event()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, trust_env=False, timeout=15.0, limits=limits
        ) as client:
            # Warm up (cold JWKS fetch, connections) before the first RSS reading.
            for _ in range(20):
                m = pools.pick_valid()
                warm = await client.get("/products", headers=_bearer(m.token))
                assert warm.status_code == 200, warm.text
            gc.collect()
            report.rss_mb["start"] = rss_mb()
            run.t0 = time.monotonic()

            async def worker(index: int) -> None:
                wrng = random.Random(seed * 1000 + index)
                for _ in range(MAX_REQUESTS_PER_WORKER):
                    if stop_load.is_set():
                        return
                    shot = next_shot(pools, wrng)
                    sent_at = time.monotonic()
                    try:
                        response = await client.request(
                            shot.method, "/products", headers=shot.headers
                        )
                    except httpx.HTTPError as exc:
                        report.transport_errors += 1
                        run.sample(f"{shot.kind}: {type(exc).__name__} {exc}")
                        continue
                    run.classify(shot, response.status_code, response.content, sent_at)

            async def minter() -> None:
                rounds = int((duration + HARD_EXTRA_SECONDS) / 0.25) + 1
                for _ in range(rounds):
                    if stop_load.is_set():
                        return
                    await locked(mint_round, provider, pools, evil, real=True)
                    await asyncio.sleep(0.25)

            async def sleep_until(offset: float) -> None:
                await asyncio.sleep(max(0.0, run.t0 + offset - time.monotonic()))

            async def schedule() -> None:
                old = provider.current_kid
                await sleep_until(max(0.2, 0.05 * duration))
                new = await locked(provider.add_key, "EC")
                run.event(f"add_key {new[:8]} (staged)")
                # Past TTL and cooldown: the verifier has revalidated and holds the new key.
                await asyncio.sleep(max(ttl + cooldown + 0.3, 0.2 * duration))
                await locked(provider.promote, new)
                run.event(f"promote {new[:8]} (old {old[:8]} still published)")
                await asyncio.sleep(max(0.3, 0.1 * duration))
                await locked(provider.stop)
                run.event("provider stopped")
                await asyncio.sleep(max(ttl + cooldown + 0.2, 0.1 * duration))
                await locked(provider.start)
                run.event("provider restarted")
                await asyncio.sleep(max(0.3, 0.1 * duration))
                run.removed[old] = Removal(old, time.monotonic())
                await locked(provider.remove_key, old)
                run.event(f"remove_key {old[:8]}")
                schedule_done.set()

            async def clock() -> None:
                await sleep_until(duration / 2)
                gc.collect()
                report.rss_mb["middle"] = rss_mb()
                # The load runs for `duration`, and on past the schedule's last step long
                # enough to see the removal take effect; never past the hard limit.
                hard = asyncio.create_task(sleep_until(duration + HARD_EXTRA_SECONDS))
                done = asyncio.create_task(schedule_done.wait())
                await asyncio.wait({hard, done}, return_when=asyncio.FIRST_COMPLETED)
                if done.done():
                    await asyncio.sleep(run.grace + 0.5)
                await sleep_until(duration)
                hard.cancel()
                done.cancel()
                stop_load.set()

            tasks = [asyncio.create_task(worker(i)) for i in range(workers)]
            tasks += [asyncio.create_task(t()) for t in (minter, clock)]
            scheduler = asyncio.create_task(schedule())
            try:
                await asyncio.gather(*tasks)
            finally:
                if not scheduler.done():
                    scheduler.cancel()
                    run.event("schedule NOT finished within the time limit")
                await asyncio.gather(scheduler, return_exceptions=True)
            report.duration = time.monotonic() - run.t0
            gc.collect()
            report.rss_mb["end"] = rss_mb()
            report.jwks_fetches = jwks.fetch_count
            report.minted = pools.minted
    finally:
        server.stop()
    return report
