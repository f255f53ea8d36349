"""`python -m example_app`: the whole M2M flow on one machine, in one command.

With LOGTO_ENDPOINT, LOGTO_API_RESOURCE, LOGTO_APP_ID and LOGTO_APP_SECRET set, it uses that
Logto tenant (LOGTO_WRITER_APP_ID / LOGTO_WRITER_APP_SECRET optionally add a second app with
write:products). With nothing set, it starts an embedded local issuer (logto_guard.testing's
LocalIssuer, Logto-shaped tokens and endpoints on a loopback port) with two apps.
Then it serves the shopping API with uvicorn on a free loopback port and runs the client flow.
`--serve` only serves the API (port from --port, 0 for a free one) until Ctrl-C, and prints
what to paste into Swagger UI's Authorize dialog.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from logto_guard import TokenVerifier
from logto_guard.testing import LocalIssuer, LoopbackServer

from .api import create_app
from .client import API_RESOURCE, run_flow

READER = ("shop-reader", "reader-secret-for-the-demo")
WRITER = ("shop-writer", "writer-secret-for-the-demo")
READER_SCOPES = {API_RESOURCE: ["read:products"]}
WRITER_SCOPES = {API_RESOURCE: ["read:products", "write:products"]}


@dataclass
class Tenant:
    endpoint: str
    resource: str
    reader: tuple[str, str]
    writer: tuple[str, str] | None
    local: LocalIssuer | None = None  # the embedded issuer, when no tenant was configured

    def allow_browser(self, api_url: str) -> list[str]:
        """Let Swagger UI on `api_url` get tokens: CORS for its origins (Logto: the app's
        "CORS allowed origins"). The embedded issuer already defaults `resource`."""
        origins = [api_url, api_url.replace("://127.0.0.1:", "://localhost:")]
        if self.local is not None:
            self.local.register_app(*READER, READER_SCOPES, cors_origins=origins)
            self.local.register_app(*WRITER, WRITER_SCOPES, cors_origins=origins)
        return list(dict.fromkeys(origins))


def serve_api(verifier: TokenVerifier, port: int = 0) -> LoopbackServer:
    """The shopping API on a loopback port (`with serve_api(...) as url:`)."""
    return LoopbackServer(create_app(verifier), port=port, lifespan="on")


@contextlib.contextmanager
def tenant() -> Iterator[Tenant]:
    env = os.environ
    names = ("LOGTO_ENDPOINT", "LOGTO_API_RESOURCE", "LOGTO_APP_ID", "LOGTO_APP_SECRET")
    if all(env.get(n) for n in names):
        writer = None
        if env.get("LOGTO_WRITER_APP_ID") and env.get("LOGTO_WRITER_APP_SECRET"):
            writer = (env["LOGTO_WRITER_APP_ID"], env["LOGTO_WRITER_APP_SECRET"])
        print(f"Using the Logto tenant at {env['LOGTO_ENDPOINT']}")
        yield Tenant(
            env["LOGTO_ENDPOINT"],
            env["LOGTO_API_RESOURCE"],
            (env["LOGTO_APP_ID"], env["LOGTO_APP_SECRET"]),
            writer,
        )
        return
    if any(env.get(n) for n in names):
        missing = [n for n in names if not env.get(n)]
        raise SystemExit(f"set all of {', '.join(names)} (missing: {', '.join(missing)})")
    # default_resource: Swagger UI cannot send `resource`; Logto uses its default API then.
    issuer = LocalIssuer(default_resource=API_RESOURCE)
    issuer.register_app(*READER, READER_SCOPES)
    issuer.register_app(*WRITER, WRITER_SCOPES)
    with issuer.serve() as endpoint:
        print(f"No LOGTO_* variables set: embedded local issuer at {endpoint}/oidc (ES384)")
        yield Tenant(endpoint, API_RESOURCE, READER, WRITER, issuer)


def serve(found: Tenant, verifier: TokenVerifier, port: int) -> int:
    with serve_api(verifier, port) as url:
        origins = found.allow_browser(url)
        print(f"Shopping API on {url} (docs at {url}/docs); Ctrl-C stops it")
        if found.local is not None:
            print(
                "Swagger UI: Authorize, then paste\n"
                f"  client_id {WRITER[0]}  client_secret {WRITER[1]}"
                "  (read:products write:products)\n"
                f"  client_id {READER[0]}  client_secret {READER[1]}  (read:products)\n"
                f"The embedded issuer allows CORS from {' and '.join(origins)} and defaults "
                f"resource to {found.resource}.",
                flush=True,
            )
        else:
            print(
                "Swagger UI: Authorize with your M2M app's id and secret. The tenant needs "
                f"{found.resource} as its default API and {' or '.join(origins)} in the app's "
                "CORS allowed origins.",
                flush=True,
            )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__)
    parser.add_argument("--serve", action="store_true", help="only serve the API")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (0: any)")
    parser.add_argument(
        "--mcp", action="store_true", help="the MCP flavour: tools and M2M agents (embedded issuer)"
    )
    args = parser.parse_args(argv)
    if args.mcp:
        from .mcp_demo import run_mcp_demo  # needs the mcp extra

        return run_mcp_demo()
    with tenant() as found:
        verifier = TokenVerifier(endpoint=found.endpoint, audience=found.resource)
        if args.serve:
            return serve(found, verifier, args.port)
        with serve_api(verifier) as url:
            print(f"Shopping API on {url}, protected by LogtoGuard (audience {found.resource})\n")
            statuses = run_flow(
                url,
                endpoint=found.endpoint,
                resource=found.resource,
                reader=found.reader,
                writer=found.writer,
            )
    expected = {
        "GET /products (read:products)": 200,
        "GET /whoami": 200,
        "POST /products with a read-only token": 403,
        "GET /products without a token": 401,
        "GET /products with a forged token": 401,
    }
    if found.writer is not None:
        expected["POST /products with write:products"] = 201
    wrong = {k: v for k, v in statuses.items() if expected.get(k) != v}
    print("\nAll steps answered as expected." if not wrong else f"\nUnexpected answers: {wrong}")
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
