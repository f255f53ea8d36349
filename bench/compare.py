"""logto-guard against the libraries a FastAPI user could pick instead (bench/peers.py).

    .venv/bin/python bench/compare.py            # full mode (about 5 minutes)
    .venv/bin/python bench/compare.py --quick    # smoke test (about a minute)
    .venv/bin/python bench/compare.py --no-e2e   # without uvicorn + wrk

Everything runs in one process (part E: one server per variant), interleaved, on ES384 (Logto's
default) and RS256 (RSA-2048), and is reported as ratios of neighbouring measurements:

  A. conformance: tokens a resource server must refuse (or that logto-guard refuses by its own
     rule), and which library accepts them;
  B. first-seen tokens: per token, the raw OpenSSL check, logto-guard and every peer, in an order
     that rotates with the token (thread CPU time);
  C. a reused token: per round, a batch of calls of each, rotating order;
  D. whole requests in-process (ASGI calls, no server): Starlette bare vs LogtoGuard +
     `require_scopes` (the middleware's own cost), FastAPI bare vs LogtoGuard, `LogtoSecurity`
     and each peer as a dependency;
  E. the same FastAPI variants under uvicorn, driven by wrk.

Writes results/compare.json (compare-quick.json) and results/peers.png.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import peers  # noqa: E402
import run  # noqa: E402
import server  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from logto_guard import LogtoGuard, TokenVerifier, require_scopes  # noqa: E402
from logto_guard.testing.issuer import LocalIssuer  # noqa: E402
from logto_guard.testing.keys import b64url, compact_json  # noqa: E402

AUDIENCE = run.AUDIENCE
SCOPES = [peers.REQUIRED_SCOPE]
ALGORITHMS = ("ES384", "RS256")
GUARD = "logto-guard"
RAW = "raw OpenSSL check"


@dataclass(frozen=True)
class Plan:
    mode: str
    first_seen_tokens: dict[str, int]  # per algorithm, per round
    first_seen_rounds: int
    reused_calls: dict[str, int]  # peer calls per round; logto-guard does 100x as many
    reused_rounds: int
    requests: dict[str, int]  # in-process requests per round for a variant that verifies
    cheap_requests: int  # ... for bare apps and cache hits
    request_rounds: int
    e2e_seconds: int
    e2e_rounds: int
    e2e_fresh_tokens: int


FULL = Plan(
    "full", {"ES384": 200, "RS256": 500}, 5, {"ES384": 60, "RS256": 400}, 7,
    {"ES384": 150, "RS256": 800}, 20_000, 7, 2, 4, 3000,
)  # fmt: skip
QUICK = Plan(
    "quick", {"ES384": 40, "RS256": 100}, 2, {"ES384": 20, "RS256": 100}, 3,
    {"ES384": 40, "RS256": 200}, 5_000, 3, 1, 1, 600,
)  # fmt: skip


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quartiles(values: list[float]) -> dict[str, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values * 3)
    return {"median": q2, "q1": q1, "q3": q3, "n": len(values)}


# -- A. conformance --------------------------------------------------------------------------


def sign_raw(issuer: LocalIssuer, header: dict[str, Any], payload_json: str) -> str:
    """A token over payload text given verbatim (for duplicate member names)."""
    key = issuer._keys[issuer.signing_kid]  # the issuer's signing key, as `sign` uses it
    signing_input = f"{b64url(compact_json(header))}.{b64url(payload_json.encode())}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode('ascii')))}"


def conformance_tokens(issuer: LocalIssuer) -> list[tuple[str, str, bool, str]]:
    """(case, token, must be refused, rule) — the controls first."""
    now = int(time.time())
    mint = issuer.mint
    good = {"audience": AUDIENCE, "scopes": SCOPES}
    header = {"alg": issuer.algorithm, "typ": "at+jwt", "kid": issuer.signing_kid}
    claims = {
        "jti": "j1", "sub": "app", "iat": now, "exp": now + 3600, "scope": "read:products",
        "client_id": "app", "iss": issuer.issuer, "aud": AUDIENCE,
    }  # fmt: skip
    dup = json.dumps(claims, separators=(",", ":"))[:-1] + ',"scope":"read:products admin"}'
    dup = dup.replace('"scope":"read:products"', '"scope":""', 1)
    forged = run.forge(mint(**good))
    return [
        ("valid token (control)", mint(**good), False, "-"),
        ("aud is a list holding ours (control)", mint(audience=[AUDIENCE, "x"], scopes=SCOPES),
         False, "R36"),
        ("bad signature", forged, True, "R31"),
        ("other issuer", mint(**good, claims={"iss": "https://evil.example/oidc"}), True, "R35"),
        ("other audience", mint(audience="https://other.api", scopes=SCOPES), True, "R36"),
        ("expired 2 h ago", mint(**good, now=now - 7200 - 3600), True, "R37"),
        ("scope lacks the route's", mint(audience=AUDIENCE, scopes=["write:x"]), True, "R45"),
        ("no exp", mint(**good, claims={"exp": None}), True, "R37"),
        ("typ missing (ID-token header)", mint(**good, header={"typ": None}), True, "R16"),
        ('typ "JWT"', mint(**good, header={"typ": "JWT"}), True, "R16"),
        ("crit names an unknown extension", mint(**good, header={"crit": ["x"], "x": 1}), True,
         "R17"),
        ("exp is a string", mint(**good, claims={"exp": str(now + 3600)}), True, "R38"),
        ("nbf 1 h ahead", mint(**good, claims={"nbf": now + 3600}), True, "R39"),
        ("no iat", mint(**good, claims={"iat": None}), True, "R40"),
        ("iat 1 h ahead", mint(**good, claims={"iat": now + 3600}), True, "R40 (we)"),
        ("no jti", mint(**good, claims={"jti": None}), True, "R41"),
        ("no sub", mint(**good, claims={"sub": None}), True, "R41"),
        ("no client_id", mint(**good, claims={"client_id": None}), True, "R41"),
        ("scope is a JSON array", mint(**good, claims={"scope": ["read:products"]}), True, "R44"),
        ("duplicate claim name (scope)", sign_raw(issuer, header, dup), True, "R13 (we)"),
        ("cnf (sender-constrained)", mint(**good, claims={"cnf": {"jkt": "x"}}), True, "R55 (we)"),
    ]  # fmt: skip


async def conformance(issuer: LocalIssuer, algorithm: str) -> list[dict[str, Any]]:
    verifier = run.new_verifier(issuer)
    libraries = peers.build_peers(
        issuer.issuer, issuer.jwks_uri, issuer.jwks(), AUDIENCE, algorithm
    )
    rows = []
    for case, token, refuse, rule in conformance_tokens(issuer):
        outcome: dict[str, str] = {}
        try:
            access = await verifier.verify(token)
            outcome[GUARD] = "accepted" if access.has_scopes(SCOPES) else "refused"
        except Exception as exc:
            outcome[GUARD] = (
                "refused"
                if type(exc).__module__.startswith("logto_guard")
                else (f"crash ({type(exc).__name__})")
            )
        for peer in libraries:
            try:
                peer.verify(token)
                outcome[peer.name] = "accepted"
            except (AttributeError, TypeError, KeyError) as exc:
                outcome[peer.name] = f"crash ({type(exc).__name__})"
            except Exception:
                outcome[peer.name] = "refused"
        rows.append({"case": case, "must_refuse": refuse, "rule": rule, "outcome": outcome})
    await verifier.aclose()
    return rows


# -- B, C. the verifiers alone ---------------------------------------------------------------


async def first_seen(issuer: LocalIssuer, algorithm: str, plan: Plan) -> dict[str, Any]:
    count = plan.first_seen_tokens[algorithm]
    tokens = [issuer.mint(audience=AUDIENCE, scopes=SCOPES) for _ in range(count)]
    shared = run.new_verifier(issuer)
    await shared.verify(tokens[0])
    keys = shared.jwks.keys
    assert keys is not None
    key = keys.find(issuer.signing_kid, algorithm)
    assert key is not None
    check = run.raw_check(algorithm, key.public_key)
    raw_args = []
    for token in tokens:
        data, sig = run.signed_parts(token)
        raw_args.append((run.baseline_signature(algorithm, sig), data))
    libraries = peers.build_peers(
        issuer.issuer, issuer.jwks_uri, issuer.jwks(), AUDIENCE, algorithm
    )
    for peer in libraries:
        peer.verify(tokens[0])  # PyJWKClient fetches the JWKS here
    names = [RAW, GUARD, *(p.name for p in libraries)]
    times: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names if name != GUARD}
    clock = time.thread_time
    for round_ in range(plan.first_seen_rounds):
        verifier = TokenVerifier(issuer.issuer, audience=AUDIENCE, jwks=shared.jwks)
        gc.collect()
        for index, token in enumerate(tokens):
            sample: dict[str, float] = {}
            shift = (index + round_) % len(names)
            for name in names[shift:] + names[:shift]:
                if name == RAW:
                    sig, data = raw_args[index]
                    t0 = clock()
                    check(sig, data)
                    sample[name] = clock() - t0
                elif name == GUARD:
                    t0 = clock()
                    access = await verifier.verify(token)
                    if not access.has_scopes(SCOPES):
                        raise AssertionError("scope check failed")
                    sample[name] = clock() - t0
                else:
                    peer = libraries[names.index(name) - 2]
                    t0 = clock()
                    peer.verify(token)
                    sample[name] = clock() - t0
            if min(sample.values()) <= 0:
                continue
            for name in names:
                times[name].append(sample[name] * 1e6)
            for name in ratios:
                # raw: logto-guard / raw check; a peer: the peer / logto-guard
                ratios[name].append(
                    sample[GUARD] / sample[RAW] if name == RAW else sample[name] / sample[GUARD]
                )
        # first-seen tokens never enter the cache (its doorkeeper): a repeated one would
        assert not verifier._verified, "every token must have been first-seen, a cache miss"
    await shared.aclose()
    return {
        "tokens_per_round": count,
        "rounds": plan.first_seen_rounds,
        "token_length": len(tokens[0]),
        "median_us": {name: statistics.median(v) for name, v in times.items()},
        "guard_over_raw": quartiles(ratios.pop(RAW)),
        "peer_over_guard": {name: quartiles(v) for name, v in ratios.items()},
    }


async def reused(issuer: LocalIssuer, algorithm: str, plan: Plan) -> dict[str, Any]:
    token = issuer.mint(audience=AUDIENCE, scopes=SCOPES)
    verifier = run.new_verifier(issuer)
    await verifier.verify(token)
    libraries = peers.build_peers(
        issuer.issuer, issuer.jwks_uri, issuer.jwks(), AUDIENCE, algorithm
    )
    for peer in libraries:
        peer.verify(token)
    calls = plan.reused_calls[algorithm]
    guard_calls = calls * 100

    async def guard() -> int:
        verify = verifier.verify
        for _ in range(guard_calls):
            if not (await verify(token)).has_scopes(SCOPES):
                raise AssertionError
        return guard_calls

    def batch(peer: Any) -> Callable[[], Awaitable[int]]:
        async def body() -> int:
            for _ in range(calls):
                peer.verify(token)
            return calls

        return body

    bodies: dict[str, Callable[[], Awaitable[int]]] = {GUARD: guard}
    bodies.update({p.name: batch(p) for p in libraries})
    names = list(bodies)
    per_call: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(plan.reused_rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            t0 = time.thread_time()
            ops = await bodies[name]()
            per_call[name].append((time.thread_time() - t0) / ops * 1e6)
    await verifier.aclose()
    ratios = {
        name: quartiles([p / g for p, g in zip(per_call[name], per_call[GUARD], strict=True)])
        for name in names[1:]
    }
    return {
        "calls_per_round": calls,
        "guard_calls_per_round": guard_calls,
        "rounds": plan.reused_rounds,
        "median_us": {name: statistics.median(v) for name, v in per_call.items()},
        "peer_over_guard": ratios,
    }


# -- D. whole requests in-process ------------------------------------------------------------


def asgi_scope(token: str) -> dict[str, Any]:
    """What uvicorn (h11) puts in the scope of `GET /products` with a Bearer token."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
        "scheme": "http", "method": "GET", "root_path": "", "path": "/products",
        "raw_path": b"/products", "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {token}".encode("ascii")),
        ],
        "state": {},
    }  # fmt: skip


class Requests:
    """Calls an ASGI app like a server would, and checks every answer is a 200."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.template = asgi_scope(token)
        self.statuses: list[int] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.statuses.append(message["status"])

    async def __call__(self, count: int) -> int:
        app, template, receive, send = self.app, self.template, self.receive, self.send
        self.statuses.clear()
        for _ in range(count):
            scope = dict(template)
            scope["state"] = {}
            await app(scope, receive, send)
        if self.statuses != [200] * count:
            raise RuntimeError(f"unexpected answers: {sorted(set(self.statuses))}")
        return count


def starlette_apps(verifier: TokenVerifier) -> dict[str, Any]:
    """The middleware's own cost: the same Starlette route, bare and behind LogtoGuard with
    `require_scopes` (what the middleware adds to a request, scope check included)."""

    async def products(request: Request) -> JSONResponse:
        return JSONResponse(server.PRODUCTS)

    guarded = require_scopes(*SCOPES)(products)
    return {
        "Starlette bare": Starlette(routes=[Route("/products", products)]),
        "Starlette + LogtoGuard + require_scopes": LogtoGuard(
            Starlette(routes=[Route("/products", guarded)]), verifier=verifier
        ),
    }


FASTAPI_VARIANTS = {
    "bare": "FastAPI bare",
    "guard": "LogtoGuard (middleware only)",
    "security": "LogtoSecurity dependency (scope)",
}


async def requests_in_process(issuer: LocalIssuer, algorithm: str, plan: Plan) -> dict[str, Any]:
    token = issuer.mint(audience=AUDIENCE, scopes=SCOPES)
    jwks = issuer.jwks()
    apps: dict[str, Any] = {}
    if algorithm == "ES384":
        apps.update(starlette_apps(run.new_verifier(issuer)))
    for variant, label in FASTAPI_VARIANTS.items():
        apps[label] = server.make_app(variant, issuer.issuer, AUDIENCE, 10_000, algorithm, jwks)
    for cls in peers.PEER_CLASSES:
        apps[cls.name] = server.make_app(cls.key, issuer.issuer, AUDIENCE, 10_000, algorithm, jwks)
    drivers = {name: Requests(app, token) for name, app in apps.items()}
    for driver in drivers.values():
        await driver(3)  # keys fetched, caches warm, every answer a 200
    cheap = {
        "Starlette bare",
        "Starlette + LogtoGuard + require_scopes",
        *FASTAPI_VARIANTS.values(),
    }
    names = list(drivers)
    per_request: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(plan.request_rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            count = plan.cheap_requests if name in cheap else plan.requests[algorithm]
            gc.collect()
            t0 = time.thread_time()
            await drivers[name](count)
            per_request[name].append((time.thread_time() - t0) / count * 1e6)

    def versus(name: str, base: str) -> dict[str, Any]:
        pairs = list(zip(per_request[name], per_request[base], strict=True))
        return {
            "throughput_ratio": quartiles([b / v for v, b in pairs]),
            "extra_us": quartiles([v - b for v, b in pairs]),
        }

    out: dict[str, Any] = {
        "rounds": plan.request_rounds,
        "median_us": {name: statistics.median(v) for name, v in per_request.items()},
        "vs_fastapi_bare": {
            name: versus(name, "FastAPI bare")
            for name in names
            if name != "FastAPI bare" and not name.startswith("Starlette")
        },
    }
    if algorithm == "ES384":
        out["middleware"] = versus("Starlette + LogtoGuard + require_scopes", "Starlette bare")
    return out


# -- E. under uvicorn ------------------------------------------------------------------------


def end_to_end(issuer: LocalIssuer, algorithm: str, plan: Plan, workdir: Path) -> dict[str, Any]:
    two_cpus = len(os.sched_getaffinity(0)) >= 2
    server_cpu, load_cpu = (0, 1) if two_cpus else (None, None)
    token = issuer.mint(audience=AUDIENCE, scopes=SCOPES)
    single = workdir / f"reused-{algorithm}.txt"
    single.write_text(token + "\n")
    fresh = [issuer.mint(audience=AUDIENCE, scopes=SCOPES) for _ in range(plan.e2e_fresh_tokens)]
    many = workdir / f"fresh-{algorithm}.txt"
    many.write_text("\n".join(fresh) + "\n")
    variants = ["bare", "guard", "guard-fresh", "security", *(c.key for c in peers.PEER_CLASSES)]
    labels = {
        "bare": "FastAPI bare",
        "guard": "LogtoGuard, reused token",
        "guard-fresh": "LogtoGuard, fresh token per request",
        "security": "LogtoSecurity dependency, reused token",
        **{c.key: c.name for c in peers.PEER_CLASSES},
    }
    servers = {}
    loads = {}
    try:
        for variant in variants:
            kind = "guard" if variant == "guard-fresh" else variant
            cache = plan.e2e_fresh_tokens // 3 if variant == "guard-fresh" else 10_000
            servers[variant] = run.Server(kind, issuer.issuer, server_cpu, cache, algorithm)
        for variant, srv in servers.items():
            srv.wait_ready()
            codes = run.sanity(srv, None if variant == "bare" else token, run.forge(token))
            expected = {"no_token": 200, "forged": 200} if variant == "bare" else {
                "no_token": 401 if variant in ("guard", "guard-fresh") else 403, "forged": 401,
                "valid": 200,
            }  # fmt: skip
            if variant != "bare" and codes.get("no_token") in (401, 403):
                # HTTPBearer answers 403 (older FastAPI) or 401
                expected["no_token"] = codes["no_token"]
            if codes != expected:
                raise RuntimeError(f"{variant}: status codes {codes}, expected {expected}")
            if variant == "guard-fresh":
                loads[variant] = run.Load(labels[variant], srv, str(many), len(fresh))
            else:
                loads[variant] = run.Load(labels[variant], srv, str(single), 1)
        for load in loads.values():
            run.run_wrk(load, 1, 32, load_cpu)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for round_ in range(plan.e2e_rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for variant in order:
                result = run.run_wrk(loads[variant], plan.e2e_seconds, 32, load_cpu)
                runs[variant].append(result)
                log(
                    f"  {algorithm} round {round_ + 1} {labels[variant]}: {result['rps']:.0f} req/s"
                )
    finally:
        for srv in servers.values():
            srv.stop()
    bare = runs["bare"]
    summary = {}
    for variant in variants:
        results = runs[variant]
        summary[variant] = {
            "name": labels[variant],
            "rps": statistics.median(r["rps"] for r in results),
            "errors": sum(sum(r["errors"].values()) for r in results),
            "server_cpu_us_per_request": statistics.median(
                r["server_cpu_us_per_request"] for r in results
            ),
            "rps_ratio_to_bare": quartiles(
                [r["rps"] / b["rps"] for r, b in zip(results, bare, strict=True)]
            ),
            "rps_ratio_to_guard": quartiles(
                [r["rps"] / g["rps"] for r, g in zip(results, runs["guard"], strict=True)]
            ),
        }
    return {"rounds": plan.e2e_rounds, "seconds_per_run": plan.e2e_seconds, "variants": summary}


# -- report ----------------------------------------------------------------------------------


def print_report(results: dict[str, Any]) -> None:
    for algorithm in ALGORITHMS:
        part = results[algorithm]
        print(f"\n=== {algorithm} ===")
        fs, ru = part["first_seen"], part["reused"]
        g = fs["guard_over_raw"]
        print(
            f"B first-seen: logto-guard / raw OpenSSL = {g['median']:.3f}x "
            f"(IQR {g['q1']:.3f}-{g['q3']:.3f}, n={g['n']}); reused: logto-guard "
            f"{ru['median_us'][GUARD]:.2f} us per verify"
        )
        print(f"  {'peer':34} {'first-seen / logto-guard':>26} {'reused / logto-guard':>22}")
        for name, q in fs["peer_over_guard"].items():
            r = ru["peer_over_guard"][name]
            print(
                f"  {name:34} {q['median']:9.2f}x ({q['q1']:.2f}-{q['q3']:.2f}) "
                f"{r['median']:14,.0f}x ({r['q1']:,.0f}-{r['q3']:,.0f})"
            )
        inproc = part["in_process"]
        if "middleware" in inproc:
            m = inproc["middleware"]
            print(
                f"D middleware (Starlette, reused token): throughput "
                f"{m['throughput_ratio']['median']:.3f}x of bare, "
                f"+{m['extra_us']['median']:.2f} us per request "
                f"(bare {inproc['median_us']['Starlette bare']:.2f} us)"
            )
        for name, v in inproc["vs_fastapi_bare"].items():
            print(f"  in-process FastAPI, {name:40} {v['throughput_ratio']['median']:.3f}x of bare")
        e2e = part.get("end_to_end")
        if e2e:
            for v in e2e["variants"].values():
                print(
                    f"E uvicorn {v['name']:40} {v['rps']:7.0f} req/s  "
                    f"{v['rps_ratio_to_bare']['median']:.3f}x bare  "
                    f"{v['rps_ratio_to_guard']['median']:.3f}x guard  errors {v['errors']}"
                )
        print("A conformance (accepted where a refusal is due):")
        for row in part["conformance"]:
            bad = [n for n, o in row["outcome"].items() if (o == "accepted") == row["must_refuse"]]
            if bad:
                print(f"  {row['case']:36} {', '.join(bad)}")


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, algorithm in zip(axes, ALGORITHMS, strict=True):
        fs = results[algorithm]["first_seen"]["peer_over_guard"]
        names = list(fs)
        values = [fs[n]["median"] for n in names]
        bars = ax.barh(names, values, color="#c55")
        ax.axvline(1.0, color="#2a7", lw=2, label="logto-guard = 1")
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                f"{value:.2f}x",
                (value, bar.get_y() + bar.get_height() / 2),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
            )
        g = results[algorithm]["first_seen"]["guard_over_raw"]["median"]
        ax.set_title(
            f"{algorithm}: first-seen token, CPU time / logto-guard's\n"
            f"(logto-guard = {g:.2f}x the raw OpenSSL check)",
            fontsize=10,
        )
        ax.set_xlim(0, max(values) * 1.2)
        ax.legend(loc="lower right", fontsize=8)
        ax.invert_yaxis()
    fig.suptitle(
        f"bench/compare.py, {results['mode']} mode; a reused token costs the peers "
        "hundreds of times more (no cache): see the README",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def in_process_parts(issuer: LocalIssuer, algorithm: str, plan: Plan) -> dict[str, Any]:
    log(f"{algorithm}: A conformance")
    out: dict[str, Any] = {"conformance": await conformance(issuer, algorithm)}
    log(f"{algorithm}: B first-seen tokens")
    out["first_seen"] = await first_seen(issuer, algorithm, plan)
    log(f"{algorithm}: C reused token")
    out["reused"] = await reused(issuer, algorithm, plan)
    log(f"{algorithm}: D whole requests in-process")
    out["in_process"] = await requests_in_process(issuer, algorithm, plan)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="logto-guard against its peers")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-e2e", action="store_true", help="skip part E (uvicorn + wrk)")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    results: dict[str, Any] = {"mode": plan.mode, "plan": asdict(plan), "machine": run.machine()}
    issuers = {
        "ES384": LocalIssuer(algorithm="ES384"),
        "RS256": LocalIssuer(algorithm="RS256", rsa_key_size=2048),
    }
    try:
        for issuer in issuers.values():
            issuer.start()
        for algorithm, issuer in issuers.items():
            results[algorithm] = asyncio.run(in_process_parts(issuer, algorithm, plan))
        if not args.no_e2e:
            with tempfile.TemporaryDirectory(prefix="logto-compare-") as tmp:
                for algorithm, issuer in issuers.items():
                    log(f"{algorithm}: E uvicorn + wrk")
                    results[algorithm]["end_to_end"] = end_to_end(
                        issuer, algorithm, plan, Path(tmp)
                    )
    finally:
        for issuer in issuers.values():
            issuer.stop()
    results["seconds"] = time.monotonic() - started
    results["machine"]["loadavg_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if plan.mode == "full" else "-quick"
    (args.out / f"compare{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, args.out / f"peers{suffix}.png")
    print_report(results)
    print(f"\n{results['seconds']:.0f} s; written: {args.out / f'compare{suffix}.json'}")


if __name__ == "__main__":
    main()
