"""The ``logto-guard`` command: get a Logto M2M access token, verify one, or look inside one.

    logto-guard token   [--endpoint URL] [--app-id ID] [--app-secret SECRET]
                        [--resource API | --management-api [--tenant-id ID]]
                        [--scope SCOPE ...] [--auth-method basic|body] [--json]
    logto-guard verify  TOKEN|- [--endpoint URL ... | --issuer URL ...] [--audience API ...]
                        [--require-scope SCOPE ...] [--leeway SECONDS]
    logto-guard inspect TOKEN|-

Settings come from the flags, else from the environment: ``LOGTO_ENDPOINT``, ``LOGTO_APP_ID``,
``LOGTO_APP_SECRET``, ``LOGTO_API_RESOURCE``, ``LOGTO_SCOPES`` (space-separated). Prefer
``LOGTO_APP_SECRET`` to ``--app-secret`` (command lines are visible to other users of the
machine), and ``-`` (read from stdin) to a token on the command line.

Exit codes:

- 0: success.
- 1: the token is invalid, or Logto refused the request: ``verify`` rejected the token (any
  ``invalid_token`` or ``insufficient_scope``), ``inspect`` could not decode it, or ``token``
  got an OAuth error (``invalid_client``, ``invalid_target``, ...) or an unusable answer.
- 2: usage or configuration error: a bad flag (argparse's own 2), a missing setting, an
  endpoint that is not an absolute https URL (plain http only on loopback), no token given,
  or an endpoint whose discovery document names another issuer ("Logto reports its issuer as
  X but Y is configured").
- 3: network or server unavailable: Logto unreachable or timing out, the token endpoint
  answering 5xx / 429 / ``server_error`` / ``temporarily_unavailable``, or ``verify`` getting no
  signing keys from the issuer (the 503 ``temporarily_unavailable`` an API would answer).
- 130: interrupted (Ctrl-C); 141: stdout was closed early (what a shell reports for SIGPIPE).

Expected failures print one line on stderr, never a traceback, and never the app secret.
Standard library only (argparse, json, asyncio) on top of the library's own pieces.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ._inspect import _cmd_inspect
from ._inspect import add_command as _add_inspect
from ._shared import (
    DEFAULT_TIMEOUT,
    ENV_API_RESOURCE,
    ENV_APP_ID,
    ENV_APP_SECRET,
    ENV_ENDPOINT,
    ENV_SCOPES,
    EXIT_BROKEN_PIPE,
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    PROG,
    CliError,
    positive_seconds,
)
from ._token import _cmd_token
from ._token import add_command as _add_token
from ._verify import _cmd_verify
from ._verify import add_command as _add_verify

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line. Each command's module adds its own subcommand and flags; the
    handlers are wired here, so that `main` dispatches through this module's names."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"network timeout for each request to Logto (default {DEFAULT_TIMEOUT:g})",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log what the library does (requests to Logto, key fetches) to stderr",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Get, verify and inspect Logto machine-to-machine (M2M) access tokens.\n"
            f"Run '{PROG} COMMAND --help' for the options of each command."
        ),
        epilog=(
            "environment:\n"
            f"  {ENV_ENDPOINT}      Logto endpoint, e.g. https://your-tenant.logto.app\n"
            f"  {ENV_APP_ID}        M2M app ID (token)\n"
            f"  {ENV_APP_SECRET}    M2M app secret (token)\n"
            f"  {ENV_API_RESOURCE}  API identifier (token: resource, verify: audience)\n"
            f"  {ENV_SCOPES}        scopes to request, space-separated (token)\n"
            "\n" + EXIT_CODES_HELP
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_token(commands, common).set_defaults(handler=_cmd_token)
    _add_verify(commands, common).set_defaults(handler=_cmd_verify)
    _add_inspect(commands).set_defaults(handler=_cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.handler(args)
    except CliError as exc:
        print(f"{PROG} {args.command}: error: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`logto-guard token | head -c 0`): nothing left to say.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE
    return code
