"""Where the time goes: the library's own steps timed alone, profiles, and instruction counts.

    .venv/bin/python bench/profile_steps.py               # steps.txt + pyinstrument reports
    .venv/bin/python bench/profile_steps.py --callgrind   # + instructions.txt (valgrind, ~2 min)

Everything calls logto_guard itself (no copies): `parse_compact`, `ParsedJWS.claims`,
`TokenVerifier._check_header` / `_check_claims`, `VerificationKey.verify`, `verify()` and a
whole request through `LogtoGuard`. Outputs go to bench/results/profiles/:

* `steps.txt`: each step of a first-seen verification alone (thread CPU time, median of passes
  over distinct tokens), next to the raw OpenSSL check: the Python floor of a first-seen token;
* `verify-first-seen-{es384,rs256}.txt`: pyinstrument over first-seen verifications;
* `request-reused-token.txt`: cProfile of requests through LogtoGuard + `require_scopes`;
* `instructions.txt` (`--callgrind`): instructions per request, bare Starlette app vs the same
  behind LogtoGuard + `require_scopes` (with the OpenTelemetry API's hooks, and without them),
  from `valgrind --tool=callgrind` at two request counts (their difference cancels start-up).
  Instruction counts do not move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import compare  # noqa: E402
import run  # noqa: E402

from logto_guard import TokenVerifier, telemetry  # noqa: E402
from logto_guard.jws import parse_compact  # noqa: E402
from logto_guard.testing.issuer import LocalIssuer  # noqa: E402

AUDIENCE = run.AUDIENCE
OUT = BENCH / "results" / "profiles"


def median_us(fn: Callable[[Any], object], args: Sequence[Any], passes: int) -> float:
    samples = []
    for _ in range(passes):
        start = time.thread_time()
        for arg in args:
            fn(arg)
        samples.append((time.thread_time() - start) / len(args) * 1e6)
    return statistics.median(samples)


def steps(algorithm: str, count: int = 300, passes: int = 11) -> str:
    issuer = LocalIssuer(algorithm=algorithm)  # type: ignore[arg-type]
    tokens = [issuer.mint(audience=AUDIENCE) for _ in range(count)]
    verifier = issuer.verifier(AUDIENCE)
    asyncio.run(verifier.verify(tokens[0]))
    keys = verifier.jwks.keys
    assert keys is not None
    key = keys.find(issuer.signing_kid, algorithm)
    assert key is not None
    check = run.raw_check(algorithm, key.public_key)
    raw = [
        (run.baseline_signature(algorithm, sig), data)
        for data, sig in (run.signed_parts(t) for t in tokens)
    ]
    parsed = [parse_compact(t) for t in tokens]
    claims = [p.claims() for p in parsed]
    rows = [
        ("raw OpenSSL check (cryptography verify)", median_us(lambda a: check(*a), raw, passes)),
        (
            "VerificationKey.verify (raw R, S to DER + the same call)",
            median_us(lambda p: key.verify(p.signing_input, p.signature), parsed, passes),
        ),
        (
            "parse_compact (shape, header JSON, signature bytes)",
            median_us(parse_compact, tokens, passes),
        ),
        (
            "ParsedJWS.claims (payload base64url + strict JSON)",
            median_us(lambda p: p.claims(), parsed, passes),
        ),
        ("_check_header", median_us(lambda p: verifier._check_header(p.header), parsed, passes)),
        (
            "_check_claims (incl. AccessToken.from_claims)",
            median_us(lambda c: verifier._check_claims(c, c["iss"]), claims, passes),
        ),
    ]

    async def first_seen() -> float:
        samples = []
        for _ in range(passes):
            fresh = TokenVerifier(issuer.issuer, audience=AUDIENCE, jwks=verifier.jwks)
            start = time.thread_time()
            for token in tokens:
                await fresh.verify(token)
            samples.append((time.thread_time() - start) / len(tokens) * 1e6)
        return statistics.median(samples)

    rows.append(("verify(), first seen (all of the above + key lookup)", asyncio.run(first_seen())))
    base = rows[0][1]
    python = sum(us for _, us in rows[2:6])
    lines = [f"{algorithm}: {count} distinct tokens, median of {passes} passes, each step alone"]
    lines += [f"  {name:58} {us:8.2f} us  {us / base:6.3f}x raw" for name, us in rows]
    lines.append(
        f"  Python steps alone (parse, claims, header, claims check): {python:.1f} us = "
        f"{python / base:.3f}x the raw check; floor of a verifier with these checks in Python: "
        f"{(base + python) / base:.3f}x"
    )
    return "\n".join(lines)


def pyinstrument_first_seen(algorithm: str, count: int = 400) -> Path:
    from pyinstrument import Profiler

    issuer = LocalIssuer(algorithm=algorithm)  # type: ignore[arg-type]
    tokens = [issuer.mint(audience=AUDIENCE) for _ in range(count)]
    shared = issuer.verifier(AUDIENCE)

    async def main() -> str:
        await shared.verify(tokens[0])
        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
        for _ in range(3):
            verifier = TokenVerifier(issuer.issuer, audience=AUDIENCE, jwks=shared.jwks)
            for token in tokens:
                await verifier.verify(token)
        profiler.stop()
        return str(profiler.output_text(unicode=False, color=False, show_all=False))

    out = OUT / f"verify-first-seen-{algorithm.lower()}.txt"
    out.write_text(asyncio.run(main()))
    return out


def request_loop(which: str, count: int) -> None:
    """`count` requests through one of compare.starlette_apps, reused token ("guard-plain": the
    hooks of an install without `opentelemetry-api`)."""
    if which == "guard-plain":
        telemetry.configure(enabled=False)
    issuer = LocalIssuer()
    token = issuer.mint(audience=AUDIENCE, scopes=compare.SCOPES)
    apps = compare.starlette_apps(issuer.verifier(AUDIENCE))
    app = apps["Starlette bare" if which == "bare" else "Starlette + LogtoGuard + require_scopes"]
    driver = compare.Requests(app, token)

    async def main() -> None:
        await driver(5)
        await driver(count)

    asyncio.run(main())


def cprofile_request(count: int = 30_000) -> Path:
    profile = cProfile.Profile()
    profile.runcall(request_loop, "guard", count)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
    out = OUT / "request-reused-token.txt"
    out.write_text(text.getvalue())
    return out


def instructions(which: str, low: int = 1000, high: int = 4000) -> float:
    """Instructions per request from callgrind, at two counts (start-up cancels out)."""
    totals = []
    for count in (low, high):
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--loop", which, str(count)],
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        found = re.search(r"Collected : (\d+)", proc.stderr)
        assert found, proc.stderr[-500:]
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / (high - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callgrind", action="store_true", help="instruction counts (valgrind)")
    parser.add_argument("--loop", nargs=2, metavar=("APP", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        request_loop(args.loop[0], int(args.loop[1]))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join(steps(alg) for alg in ("ES384", "RS256")) + "\n"
    (OUT / "steps.txt").write_text(text)
    print(text)
    for alg in ("ES384", "RS256"):
        print(f"pyinstrument: {pyinstrument_first_seen(alg)}")
    print(f"cProfile: {cprofile_request()}")
    if args.callgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind not found: apt-get install valgrind")
        bare, guard, plain = (instructions(w) for w in ("bare", "guard", "guard-plain"))
        report = (
            f"instructions per request (valgrind --tool=callgrind), reused token:\n"
            f"  Starlette bare:                          {bare:9,.0f}\n"
            f"  Starlette + LogtoGuard + require_scopes: {guard:9,.0f}\n"
            f"  LogtoGuard's own: {guard - bare:,.0f} instructions = {guard / bare - 1:.1%} of the "
            f"bare request; bare / guarded = {bare / guard:.3f}\n"
            f"  the same without opentelemetry-api:     {plain:9,.0f} "
            f"({plain - bare:,.0f} own = {plain / bare - 1:.1%}; bare / guarded = "
            f"{bare / plain:.3f})\n"
        )
        (OUT / "instructions.txt").write_text(report)
        print(report)


if __name__ == "__main__":
    main()
