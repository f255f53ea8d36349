"""Markdown tables for the README from results/compare.json and results/growth.json.

.venv/bin/python bench/report.py [--quick]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
README = RESULTS.parent.parent / "README.md"
GUARD = "logto-guard"


def peers_table(data: dict[str, Any]) -> str:
    es, rs = data["ES384"], data["RS256"]
    lines = [
        "| | first-seen ES384 | first-seen RS256 | reused ES384 | reused RS256 "
        "| uvicorn req/s ES384 | uvicorn req/s RS256 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def e2e(part: dict[str, Any], name: str) -> str:
        variants = part.get("end_to_end", {}).get("variants", {})
        found = [v for v in variants.values() if v["name"] == name]
        return f"{found[0]['rps_ratio_to_guard']['median']:.2f}x" if found else "-"

    g_es, g_rs = es["first_seen"]["guard_over_raw"], rs["first_seen"]["guard_over_raw"]
    lines.append(
        f"| **logto-guard** (vs the raw OpenSSL check) | **{g_es['median']:.3f}x** raw "
        f"| **{g_rs['median']:.3f}x** raw | {es['reused']['median_us'][GUARD]:.2f} us "
        f"| {rs['reused']['median_us'][GUARD]:.2f} us | 1 | 1 |"
    )
    for name, q in es["first_seen"]["peer_over_guard"].items():
        r_q = rs["first_seen"]["peer_over_guard"][name]
        lines.append(
            f"| {name} | {q['median']:.2f}x | {r_q['median']:.2f}x "
            f"| {es['reused']['peer_over_guard'][name]['median']:,.0f}x "
            f"| {rs['reused']['peer_over_guard'][name]['median']:,.0f}x "
            f"| {e2e(es, name)} | {e2e(rs, name)} |"
        )
    return "\n".join(lines)


def requests_table(data: dict[str, Any]) -> str:
    lines = ["| in-process, FastAPI app | ES384 | RS256 |", "|---|---:|---:|"]
    names = list(data["ES384"]["in_process"]["vs_fastapi_bare"])
    for name in names:
        cells = [
            f"{data[a]['in_process']['vs_fastapi_bare'][name]['throughput_ratio']['median']:.3f}x"
            for a in ("ES384", "RS256")
        ]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    m = data["ES384"]["in_process"]["middleware"]
    bare = data["ES384"]["in_process"]["median_us"]["Starlette bare"]
    lines.append(
        f"\nStarlette + LogtoGuard + `require_scopes`, reused token: "
        f"{m['throughput_ratio']['median']:.3f}x the bare app's throughput "
        f"(IQR {m['throughput_ratio']['q1']:.3f}-{m['throughput_ratio']['q3']:.3f}), "
        f"+{m['extra_us']['median']:.2f} us on a {bare:.2f} us request."
    )
    for alg in ("ES384", "RS256"):
        variants = data[alg].get("end_to_end", {}).get("variants", {})
        if variants:
            row = ", ".join(
                f"{v['name']} {v['rps_ratio_to_bare']['median']:.3f}x" for v in variants.values()
            )
            lines.append(f"\nuvicorn, {alg}, req/s vs the bare app: {row}.")
    return "\n".join(lines)


def conformance_table(data: dict[str, Any]) -> str:
    rows = data["ES384"]["conformance"]
    names = list(rows[0]["outcome"])
    lines = [
        "| token | rule | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for row in rows:
        cells = []
        for name in names:
            outcome = row["outcome"][name]
            wrong = (outcome == "accepted") == row["must_refuse"]
            cells.append(f"**{outcome}**" if wrong else outcome)
        lines.append(f"| {row['case']} | {row['rule']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def growth_table(data: dict[str, Any]) -> str:
    lines = ["| tokens | N (tokens seen) | " + " | ".join(data["cache_sizes"]) + " |"]
    lines.append("|---|---|" + "---:|" * len(data["cache_sizes"]))
    for pattern, part in data["patterns"].items():
        for span, row in part["ranges"].items():
            cells = [
                f"{v['us_per_token']:.1f} us ({v['ratio_to_no_cache']['median']:.3f}x)"
                for v in row.values()
            ]
            lines.append(f"| {pattern} | {span} | " + " | ".join(cells) + " |")
        mem = [
            f"{list(r['bytes_after'].values())[-1] / 2**20:.1f} MiB"
            for r in part["memory"].values()
        ]
        lines.append(
            f"| {pattern} | memory after {data['sizes'][-1]:,} | " + " | ".join(mem) + " |"
        )
    return "\n".join(lines)


def first_seen_text(data: dict[str, Any]) -> str:
    lines = ["| key | logto-guard / raw OpenSSL check (IQR of per-token ratios) | target |"]
    lines.append("|---|---:|---:|")
    for alg, target in (("ES384", 1.10), ("RS256", 1.5)):
        q = data[alg]["first_seen"]["guard_over_raw"]
        verdict = "met" if q["median"] <= target else "**missed**"
        lines.append(
            f"| {alg} | {q['median']:.3f}x ({q['q1']:.3f}-{q['q3']:.3f}, {q['n']} tokens) "
            f"| <= {target:.2f}x, {verdict} |"
        )
    steps = RESULTS / "profiles" / "steps.txt"
    if steps.exists():
        lines.append(
            "\nEach step alone, median of passes over distinct tokens (bench/profile_steps.py; "
            "`results/profiles/steps.txt`; the pyinstrument and cProfile reports are beside it):\n"
        )
        lines.append("| step | ES384 | RS256 |")
        lines.append("|---|---:|---:|")
        rows: dict[str, list[str]] = {}
        step = re.compile(r"^  (.+?)\s+([\d.]+) us\s+([\d.]+)x raw$")
        for line in steps.read_text().splitlines():
            match = step.match(line)
            if match:
                cell = f"{float(match.group(2)):.1f} us ({float(match.group(3)):.3f}x)"
                rows.setdefault(match.group(1), []).append(cell)
        lines += [f"| {name} | {' | '.join(cells)} |" for name, cells in rows.items()]
    return "\n".join(lines)


def sections(suffix: str) -> dict[str, str]:
    compare = json.loads((RESULTS / f"compare{suffix}.json").read_text())
    out = {
        "peers": peers_table(compare),
        "conformance": conformance_table(compare),
        "requests": requests_table(compare),
        "first-seen": first_seen_text(compare),
    }
    growth_file = RESULTS / f"growth{suffix}.json"
    if growth_file.exists():
        out["growth"] = growth_table(json.loads(growth_file.read_text()))
    return out


def main() -> None:
    suffix = "-quick" if "--quick" in sys.argv else ""
    found = sections(suffix)
    if "--readme" not in sys.argv:
        print("\n\n".join(found.values()))
        return
    text = README.read_text(encoding="utf-8")
    for name, body in found.items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.DOTALL)
        text, count = pattern.subn(lambda m, b=body: m.group(1) + b + "\n" + m.group(2), text)
        if count != 1:
            raise SystemExit(f"README.md: no single bench:{name} section")
    README.write_text(text, encoding="utf-8")
    print(f"README.md: {', '.join(found)} updated from results{suffix}")


if __name__ == "__main__":
    main()
