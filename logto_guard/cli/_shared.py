"""What every ``logto-guard`` command shares: exit codes, settings from flags or the environment,
argument types, token input, JSON output and the library's logging.

A leaf of the ``cli`` package (it imports none of its siblings), so that each command's module
can use it without import cycles.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from .._fetch import check_url
from ..errors import ConfigurationError

PROG: Final = "logto-guard"

EXIT_OK: Final = 0
EXIT_REJECTED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = 3
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE

ENV_ENDPOINT: Final = "LOGTO_ENDPOINT"
ENV_APP_ID: Final = "LOGTO_APP_ID"
ENV_APP_SECRET: Final = "LOGTO_APP_SECRET"  # noqa: S105 - the variable's name, not a secret
ENV_API_RESOURCE: Final = "LOGTO_API_RESOURCE"
ENV_SCOPES: Final = "LOGTO_SCOPES"

DEFAULT_TIMEOUT: Final = 10.0

EXIT_CODES_HELP: Final = """\
exit codes:
  0  success
  1  token invalid or request refused (verification failed, Logto answered an OAuth error)
  2  usage or configuration error (bad flag, missing setting, insecure endpoint)
  3  network or server unavailable (Logto unreachable, 5xx, no signing keys: 503)"""


class CliError(Exception):
    """An expected failure: one line for stderr and the exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def usage(message: str) -> NoReturn:
    raise CliError(EXIT_USAGE, message)


# -- argument types --------------------------------------------------------------------------


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds: {text!r}")
    return value


# -- settings and input ----------------------------------------------------------------------


def env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def setting(flag_value: str | None, env_name: str, what: str, flag: str) -> str:
    value = flag_value if flag_value else env(env_name)
    if not value:
        usage(f"no {what}: pass {flag} or set {env_name}")
    return value


def split(values: Sequence[str]) -> list[str]:
    """Repeated flags, each possibly holding several space-separated values, deduplicated."""
    return list(dict.fromkeys(part for value in values for part in value.split() if part))


def check_endpoint(url: str, flag: str) -> None:
    """An absolute https URL, or http on loopback only (what the verifier accepts)."""
    try:
        check_url(url)
    except ConfigurationError:
        usage(f"{flag} {url!r} must be an absolute https:// URL (plain http only on loopback)")
    if urlsplit(url).query or urlsplit(url).fragment:
        usage(f"{flag} {url!r} must not have a query or fragment")


def read_token(value: str) -> str:
    if value == "-":
        value = sys.stdin.read()
        source = "stdin"
    else:
        source = "the command line"
    token = value.strip()
    if not token:
        usage(f"no token on {source}")
    return token


# -- output ----------------------------------------------------------------------------------


def print_json(value: Any, stream: Any = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=stream or sys.stdout)


@contextmanager
def library_logging(verbose: bool) -> Iterator[None]:
    """With --verbose, the library's logs go to stderr; without, nowhere (not to Python's
    last-resort handler): failures are reported once, by the command itself."""
    logger = logging.getLogger("logto_guard")
    handler: logging.Handler = logging.NullHandler()
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(name)s: %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
