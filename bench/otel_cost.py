"""What OpenTelemetry costs on the reused-token request path: with the SDK and a reader attached
vs without OpenTelemetry, measured interleaved in one run.

    .venv/bin/python bench/otel_cost.py                 # both parts (about two minutes)
    .venv/bin/python bench/otel_cost.py --rounds 3 --requests 500 --seconds 2   # quick look
    .venv/bin/python bench/otel_cost.py --in-process-only   # part 2 only (no wrk needed)

A request carries a token the guard has verified before (a verified-token cache hit).

1. End to end: two uvicorn servers (this script with `--serve`), the same Starlette route behind
   `LogtoGuard`, one without OpenTelemetry and one with it, both loaded by wrk in turn. The
   figure is the servers' CPU time per request (from /proc), which other processes sharing the
   CPU do not inflate the way they do requests per second.
2. In process: raw ASGI calls of `LogtoGuard` in front of (a) a bare ASGI app, the strictest
   case since nothing else dilutes the guard's cost, and (b) a Starlette app with one route.
   Thread CPU time, including one collection by the reader per round.

"Without OpenTelemetry" is `telemetry.configure(enabled=False)`: the same hooks that are chosen
when `opentelemetry-api` is not installed. "With" is the SDK's `MeterProvider` with a reader
(end to end: a `PeriodicExportingMetricReader` exporting every second to a console exporter
writing to /dev/null; in process: an `InMemoryMetricReader`) and a `TracerProvider`
(verification spans off, the default).

The machine is shared and noisy: each round runs both variants back to back in a shuffled order;
the figure is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.types import Message, Receive, Scope, Send  # noqa: E402

from logto_guard import LogtoGuard, telemetry  # noqa: E402
from logto_guard.testing import LocalIssuer  # noqa: E402


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def requester(guard: LogtoGuard, token: str) -> Callable[[int], Any]:
    headers = [(b"host", b"api.test"), (b"authorization", f"Bearer {token}".encode())]
    template: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run(count: int) -> None:
        statuses.clear()
        for _ in range(count):
            await guard(dict(template), receive, send)
        if statuses != [200] * count:
            raise SystemExit(f"unexpected answers: {sorted(set(statuses))}")

    return run


async def measure(rounds: int, requests: int) -> dict[str, dict[str, float]]:
    issuer = LocalIssuer()
    token = issuer.mint()
    apps = {
        "bare ASGI app": bare_app,
        "Starlette route": Starlette(routes=[Route("/hello", hello)]),
    }
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    # What configure() installs, built once and swapped per round.
    variants = {
        "plain": telemetry.configure(enabled=False),
        "otel": telemetry.configure(meter_provider=provider, tracer_provider=TracerProvider()),
    }
    results: dict[str, dict[str, float]] = {}
    for label, app in apps.items():
        guard = LogtoGuard(app, verifier=issuer.verifier())
        run = requester(guard, token)
        for variant in ("plain", "otel"):  # warm up both: JWKS fetch, caches, attribute dicts
            telemetry.hooks = variants[variant]
            await run(requests)
        per_round: dict[str, list[float]] = {"plain": [], "otel": []}
        ratios = []
        for _ in range(rounds):
            order = ["plain", "otel"]
            random.shuffle(order)
            for variant in order:
                telemetry.hooks = variants[variant]
                gc.collect()
                began = time.thread_time()
                await run(requests)
                if variant == "otel":
                    reader.get_metrics_data()  # the collection is part of the cost
                per_round[variant].append((time.thread_time() - began) / requests * 1e6)
            ratios.append(per_round["otel"][-1] / per_round["plain"][-1])
        await guard.verifier.aclose()
        results[label] = {
            "plain_us": statistics.median(per_round["plain"]),
            "otel_us": statistics.median(per_round["otel"]),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    counted = sum(
        point.value
        for resource in (reader.get_metrics_data() or _empty()).resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "logto_guard.verifications"
        for point in metric.data.data_points
    )
    expected = len(apps) * requests * (rounds + 1)
    if counted != expected:  # the reader really saw every otel request
        raise SystemExit(f"the reader counted {counted} verifications, expected {expected}")
    telemetry.configure()
    provider.shutdown()
    return results


def _empty() -> Any:
    class Empty:
        resource_metrics: tuple[()] = ()

    return Empty()


# -- end to end ---------------------------------------------------------------------------------


def serve(variant: str, port: int, issuer: str) -> None:
    """The server side of part 1 (run by this script with --serve)."""
    import uvicorn

    from logto_guard import TokenVerifier

    if variant == "otel":
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            PeriodicExportingMetricReader,
        )

        sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the server
        exporter = ConsoleMetricExporter(out=sink)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=1000)
        telemetry.configure(
            meter_provider=MeterProvider(metric_readers=[reader]), tracer_provider=TracerProvider()
        )
    else:
        telemetry.configure(enabled=False)
    verifier = TokenVerifier(issuer, audience="https://shopping.api")
    app = LogtoGuard(Starlette(routes=[Route("/hello", hello)]), verifier=verifier)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Server:
    def __init__(self, variant: str, issuer: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.variant = variant
        self.url = f"http://127.0.0.1:{self.port}/hello"
        argv = [sys.executable, __file__, "--serve", variant, str(self.port), issuer]
        self.proc = subprocess.Popen(argv)

    def wait_ready(self, token: str, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.variant} server exited with {self.proc.returncode}")
            try:
                answer = httpx.get(self.url, headers={"Authorization": f"Bearer {token}"})
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if answer.status_code != 200:
                raise SystemExit(f"{self.variant} server answered {answer.status_code}")
            return
        raise SystemExit(f"{self.variant} server did not start")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def wrk(server: Server, token: str, seconds: int, connections: int) -> tuple[int, float]:
    """(requests, server CPU µs per request) of one wrk run; every answer must be a 200."""
    before = server.cpu_seconds()
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["-H", f"Authorization: Bearer {token}", server.url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    cpu = server.cpu_seconds() - before
    found = re.search(r"(\d+) requests in", done.stdout)
    if done.returncode != 0 or found is None or "Non-2xx" in done.stdout:
        raise SystemExit(f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    requests = int(found.group(1))
    return requests, cpu / requests * 1e6


def end_to_end(rounds: int, seconds: int, connections: int) -> dict[str, float]:
    issuer = LocalIssuer()
    issuer.start()
    token = issuer.mint()
    servers = {variant: Server(variant, issuer.issuer) for variant in ("plain", "otel")}
    try:
        for server in servers.values():
            server.wait_ready(token)
        for server in servers.values():  # warm up
            wrk(server, token, 1, connections)
        per_round: dict[str, list[float]] = {"plain": [], "otel": []}
        ratios = []
        for _ in range(rounds):
            order = list(servers)
            random.shuffle(order)
            for variant in order:
                per_round[variant].append(wrk(servers[variant], token, seconds, connections)[1])
            ratios.append(per_round["otel"][-1] / per_round["plain"][-1])
    finally:
        for server in servers.values():
            server.stop()
        issuer.stop()
    return {
        "plain_us": statistics.median(per_round["plain"]),
        "otel_us": statistics.median(per_round["otel"]),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=2000, help="in process, per round")
    parser.add_argument("--seconds", type=int, default=4, help="end to end, per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--in-process-only", action="store_true", help="skip part 1 (no wrk)")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 100 and 10 <= args.requests <= 100_000):
        parser.error("--rounds must be 1-100 and --requests 10-100000")
    if not (1 <= args.seconds <= 60 and 1 <= args.connections <= 256):
        parser.error("--seconds must be 1-60 and --connections 1-256")
    rows = {}
    if not args.in_process_only:
        rows["HTTP (uvicorn + wrk)"] = end_to_end(args.rounds, args.seconds, args.connections)
    rows.update(asyncio.run(measure(args.rounds, args.requests)))
    print(f"reused-token request path, {args.rounds} interleaved rounds; CPU time per request")
    print(f"{'path':<22}{'without OTel':>14}{'with SDK':>12}{'median ratio':>15}  range")
    for label, r in rows.items():
        print(
            f"{label:<22}{r['plain_us']:>11.2f} µs{r['otel_us']:>9.2f} µs{r['ratio']:>14.2f}x"
            f"  {r['ratio_min']:.2f}-{r['ratio_max']:.2f}"
        )


if __name__ == "__main__":
    main()
