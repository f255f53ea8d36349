"""Cost growth: the time per token and the memory of a verifier that sees N distinct tokens.

    .venv/bin/python bench/growth.py           # N up to 100,000 (about 2 minutes)
    .venv/bin/python bench/growth.py --quick   # N up to 5,000

Three verifiers, one per cache setting: the default (`cache_size` 10,000), a tiny cache (16) and
none (`cache_size=0`). Each sees the same RS256 (RSA-2048) tokens in blocks of 250 whose order
of verifiers rotates, so block by block the three share the CPU's speed of the moment. Two
patterns: every token seen once (a scan: the cache's doorkeeper never admits one), and every
token seen twice in a row (admitted at its second sighting, so past `cache_size` every token
costs an insert and an eviction: the cache's worst case, as it never gets a hit). RSA-2048 is
the cheapest signature check Logto issues, so cache bookkeeping shows most there. A second pass,
under tracemalloc, reads the memory each verifier holds after N tokens (the token strings
themselves are made before and not counted, except that the cache keeps the ones it holds alive:
those are counted).

Writes results/growth.json and results/growth.png (-quick for --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import run  # noqa: E402

from logto_guard import TokenVerifier  # noqa: E402
from logto_guard.testing.issuer import LocalIssuer  # noqa: E402

AUDIENCE = run.AUDIENCE
CONFIGS = {"default cache (10,000)": 10_000, "tiny cache (16)": 16, "no cache (0)": 0}
NO_CACHE = "no cache (0)"
BLOCK = 250


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verifiers(issuer: LocalIssuer) -> dict[str, TokenVerifier]:
    return {name: issuer.verifier(AUDIENCE, cache_size=size) for name, size in CONFIGS.items()}


async def timing(issuer: LocalIssuer, tokens: list[str], sightings: int) -> dict[str, Any]:
    chosen = verifiers(issuer)
    for verifier in chosen.values():
        await verifier.verify(issuer.mint(audience=AUDIENCE))  # keys fetched
    names = list(chosen)
    per_token: dict[str, list[float]] = {name: [] for name in names}  # one value per block
    clock = time.thread_time
    gc.collect()
    for index in range(0, len(tokens), BLOCK):
        block = tokens[index : index + BLOCK]
        shift = (index // BLOCK) % len(names)
        for name in names[shift:] + names[:shift]:
            verify = chosen[name].verify
            t0 = clock()
            for token in block:
                for _ in range(sightings):
                    await verify(token)
            per_token[name].append((clock() - t0) / len(block) * 1e6)
    for verifier in chosen.values():
        await verifier.aclose()
    return {"block": BLOCK, "us_per_token_by_block": per_token}


async def memory(
    issuer: LocalIssuer, tokens: list[str], marks: list[int], sightings: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, verifier in verifiers(issuer).items():
        await verifier.verify(issuer.mint(audience=AUDIENCE))
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            readings = {}
            done = 0
            for mark in marks:
                for token in tokens[done:mark]:
                    for _ in range(sightings):
                        await verifier.verify(token)
                done = mark
                gc.collect()
                readings[mark] = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        out[name] = {"bytes_after": readings, "cache_entries": len(verifier._verified or ())}
        await verifier.aclose()
    return out


def summarize(times: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """Per range of N (tokens seen so far): median µs per token, and ratio to no cache."""
    blocks = times["us_per_token_by_block"]
    ranges = {}
    low = 0
    for high in sizes:
        first, last = low // BLOCK, high // BLOCK
        row: dict[str, Any] = {}
        for name, values in blocks.items():
            part = values[first:last]
            base = blocks[NO_CACHE][first:last]
            ratios = [v / b for v, b in zip(part, base, strict=True)]
            q1, q2, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            row[name] = {
                "us_per_token": statistics.median(part),
                "ratio_to_no_cache": {"median": q2, "q1": q1, "q3": q3, "blocks": len(part)},
            }
        ranges[f"{low}-{high}"] = row
        low = high
    return ranges


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = {"default cache (10,000)": "#2a7", "tiny cache (16)": "#e90", NO_CACHE: "#555"}
    for (pattern, part), style in zip(results["patterns"].items(), ("-", "--"), strict=False):
        for name, values in part["timing"]["us_per_token_by_block"].items():
            # a rolling median over 8 blocks (2,000 tokens) keeps the CPU's drift from hiding lines
            smooth = [statistics.median(values[max(0, i - 7) : i + 1]) for i in range(len(values))]
            xs = [(i + 1) * BLOCK for i in range(len(values))]
            label = f"{name}, {pattern}"
            ax.plot(xs, smooth, label=label, color=colors[name], ls=style, lw=1.4)
        for name, reading in part["memory"].items():
            marks = [int(m) for m in reading["bytes_after"]]
            mib = [v / 2**20 for v in reading["bytes_after"].values()]
            label = f"{name}, {pattern}"
            ax2.plot(marks, mib, marker="o", label=label, color=colors[name], ls=style)
    for axis in (ax, ax2):
        axis.set_xscale("log")
        axis.set_xlabel("distinct tokens seen (N)")
        axis.legend(fontsize=7)
    ax.set_ylabel("CPU us per token, all its sightings (rolling median of 2,000)")
    ax.axvline(10_000, color="#2a7", ls=":", lw=1)
    ax.set_ylim(bottom=0)
    ax.set_title("time per token (RS256, RSA-2048)", fontsize=10)
    ax2.set_ylabel("memory held by the verifier, MiB (tracemalloc)")
    ax2.set_title("memory: bounded by cache_size", fontsize=10)
    fig.suptitle(f"bench/growth.py, {results['mode']} mode", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PATTERNS = {"seen once": 1, "seen twice": 2}


async def measure(issuer: LocalIssuer, tokens: list[str], sizes: list[int]) -> dict[str, Any]:
    marks = sorted(
        {m for m in (1000, 2000, 5000, 10_000, 20_000, 50_000, *sizes) if m <= sizes[-1]}
    )
    out: dict[str, Any] = {}
    for pattern, sightings in PATTERNS.items():
        log(f"{pattern}: timing, three verifiers rotating per block")
        times = await timing(issuer, tokens, sightings)
        log(f"{pattern}: memory, tracemalloc")
        out[pattern] = {
            "sightings": sightings,
            "timing": times,
            "memory": await memory(issuer, tokens, marks, sightings),
            "ranges": summarize(times, sizes),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="cost growth with N distinct tokens")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    sizes = [1000, 5000] if args.quick else [1000, 10_000, 100_000]
    started = time.monotonic()
    issuer = LocalIssuer(algorithm="RS256", rsa_key_size=2048)
    log(f"minting {sizes[-1]:,} RS256 tokens")
    tokens = [issuer.mint(audience=AUDIENCE) for _ in range(sizes[-1])]
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": run.machine(),
        "sizes": sizes,
        "cache_sizes": CONFIGS,
        "patterns": asyncio.run(measure(issuer, tokens, sizes)),
    }
    results["seconds"] = time.monotonic() - started
    suffix = "" if not args.quick else "-quick"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"growth{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, args.out / f"growth{suffix}.png")
    for pattern, part in results["patterns"].items():
        for span, row in part["ranges"].items():
            print(f"{pattern}, N {span}:")
            for name, v in row.items():
                r = v["ratio_to_no_cache"]
                print(
                    f"  {name:24} {v['us_per_token']:7.1f} us/token  {r['median']:.3f}x no cache "
                    f"(IQR {r['q1']:.3f}-{r['q3']:.3f}, {r['blocks']} blocks)"
                )
        for name, reading in part["memory"].items():
            last = list(reading["bytes_after"].items())[-1]
            print(f"  memory {name:24} {last[1] / 2**20:6.1f} MiB after {last[0]:,} tokens")
    print(f"{results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
