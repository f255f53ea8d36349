"""``logto-guard inspect``: a token decoded WITHOUT verifying it, its times made readable.

No settings and no network: it answers "what is this token?" (including "not a JWT at all")
before anyone asks whether to trust it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import UTC, datetime
from typing import Any

from ..errors import MalformedToken
from ..jws import parse_compact
from ._shared import EXIT_CODES_HELP, EXIT_OK, EXIT_REJECTED, PROG, CliError, print_json, read_token


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """The ``inspect`` subcommand; without the common flags, as it makes no request."""
    inspect = commands.add_parser(
        "inspect",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="decode a token WITHOUT verifying it",
        description=(
            "Decode a token's header and claims WITHOUT verifying anything (no signature,\n"
            "issuer, audience or expiry check) and print them as JSON, with iat/nbf/exp as\n"
            "dates. Says NOT VERIFIED on stderr. Use 'verify' to know whether to trust it.\n"
            "Needs no settings and makes no network request."
        ),
        epilog=(
            "examples:\n"
            f'  {PROG} inspect "$TOKEN"\n'
            f"  {PROG} token | {PROG} inspect -\n"
            "\n" + EXIT_CODES_HELP
        ),
    )
    inspect.add_argument("token", metavar="TOKEN", help="the token, or - to read stdin")
    inspect.set_defaults(verbose=False)
    return inspect


def _cmd_inspect(args: argparse.Namespace) -> int:
    token = read_token(args.token)
    try:
        jws = parse_compact(token)
        claims = jws.claims()
    except MalformedToken as exc:
        raise CliError(EXIT_REJECTED, _malformed(token, exc)) from None

    print(
        f"{PROG}: NOT VERIFIED: decoded without checking the signature, issuer, audience or "
        "expiry; do not trust these claims (use 'verify')",
        file=sys.stderr,
    )
    now = time.time()
    result: dict[str, Any] = {"verified": False, "header": jws.header, "claims": claims}
    times = {
        name: _describe_time(value, now)
        for name in ("iat", "nbf", "exp")
        if (value := _numeric(claims.get(name))) is not None
    }
    if times:
        result["times"] = times
    exp = _numeric(claims.get("exp"))
    if exp is not None:
        result["expired"] = now >= exp
        if now >= exp:
            print(f"{PROG}: token expired: exp {times['exp']}", file=sys.stderr)
    elif "exp" not in claims:
        result["expired"] = None
    print_json(result)
    return EXIT_OK


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _describe_time(value: float, now: float) -> str:
    try:
        when = datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "out of range"
    delta = value - now
    span = _span(abs(delta))
    return f"{when} (in {span})" if delta > 0 else f"{when} ({span} ago)"


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def _malformed(token: str, exc: MalformedToken) -> str:
    segments = token.count(".") + 1
    if segments == 1:
        return (
            "not a JWT (no '.'): an opaque token? Logto issues opaque access tokens when no "
            "API resource is requested"
        )
    if segments == 5:
        return "an encrypted JWT (JWE, 5 segments), not a signed access token (JWS)"
    if segments != 3:
        return f"not a JWT: {segments} segments separated by '.', expected 3"
    return f"malformed token: {exc.description}"
