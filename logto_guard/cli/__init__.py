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
import asyncio
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from ._fetch import check_url
from ._http import httpx
from ._token_endpoint import scrub_secret
from ._version import __version__
from .client import ClientCredentials, TokenRequestError
from .errors import (
    AuthError,
    ConfigurationError,
    InsufficientScope,
    InvalidIssuer,
    KeySetUnavailable,
    MalformedToken,
)
from .jwks_cache import JWKSCache
from .jws import parse_compact
from .verifier import TokenVerifier

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

# OAuth errors (RFC 6749 §4.1.2.1) and statuses that mean "Logto is not serving right now".
_UNAVAILABLE_ERRORS: Final = frozenset({"server_error", "temporarily_unavailable"})

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


def _usage(message: str) -> NoReturn:
    raise CliError(EXIT_USAGE, message)


# -- the parser ------------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--timeout",
        type=_positive_seconds,
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
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # -- token
    token = commands.add_parser(
        "token",
        parents=[common],
        formatter_class=formatter,
        help="get an M2M access token with client credentials",
        description=(
            "Get an access token from Logto with the client credentials grant and print it\n"
            "(only the token, so that it can be used as $(logto-guard token)).\n"
            "Flags win over the environment."
        ),
        epilog=(
            "environment:\n"
            f"  {ENV_ENDPOINT}      --endpoint\n"
            f"  {ENV_APP_ID}        --app-id\n"
            f"  {ENV_APP_SECRET}    --app-secret (prefer this: command lines are visible)\n"
            f"  {ENV_API_RESOURCE}  --resource (ignored with --management-api)\n"
            f"  {ENV_SCOPES}        --scope, space-separated (ignored with --management-api)\n"
            "\n"
            "examples:\n"
            f"  {ENV_APP_SECRET}=... {PROG} token --endpoint https://t.logto.app \\\n"
            "      --app-id my-app --resource https://api.example.com --scope 'read write'\n"
            f"  {PROG} token --management-api --tenant-id my-tenant --json\n"
            "\n" + EXIT_CODES_HELP
        ),
    )
    token.add_argument(
        "--endpoint",
        metavar="URL",
        help=f"Logto endpoint, https://<tenant>.logto.app (env {ENV_ENDPOINT})",
    )
    token.add_argument("--app-id", metavar="ID", help=f"M2M app ID (env {ENV_APP_ID})")
    token.add_argument(
        "--app-secret",
        metavar="SECRET",
        help=f"M2M app secret (env {ENV_APP_SECRET}, preferred)",
    )
    token.add_argument(
        "--resource",
        metavar="API",
        help=(
            f"API identifier to get a token for (env {ENV_API_RESOURCE}); without one Logto "
            "uses the tenant's default API, if any"
        ),
    )
    token.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help=(
            f"scope to request; repeat it or give several separated by spaces (env {ENV_SCOPES})"
        ),
    )
    token.add_argument(
        "--management-api",
        action="store_true",
        help="get a token for Logto's Management API (scope 'all')",
    )
    token.add_argument(
        "--tenant-id",
        metavar="ID",
        help=(
            "with --management-api on Logto Cloud: the tenant ID (the API is "
            "https://<tenant-id>.logto.app/api); self-hosted Logto needs none"
        ),
    )
    token.add_argument(
        "--auth-method",
        choices=("basic", "body"),
        default="basic",
        help="send the credentials as HTTP Basic (default) or as form fields",
    )
    token.add_argument(
        "--json",
        action="store_true",
        help="print Logto's whole token response as JSON instead of only the token",
    )
    token.set_defaults(handler=_cmd_token)

    # -- verify
    verify = commands.add_parser(
        "verify",
        parents=[common],
        formatter_class=formatter,
        help="verify an access token and print its claims",
        description=(
            "Verify an access token the way an API protected by logto-guard would (signature\n"
            "with the issuer's published keys, typ at+jwt, issuer, audience, expiry) and print\n"
            "its claims as JSON. On failure, print the RFC 6750 error the API would answer\n"
            "({error, error_description, status}) on stderr. Flags win over the environment.\n"
            "Plain http is accepted only for loopback issuers."
        ),
        epilog=(
            "environment:\n"
            f"  {ENV_ENDPOINT}      --endpoint\n"
            f"  {ENV_API_RESOURCE}  --audience\n"
            "\n"
            "examples:\n"
            f"  {PROG} verify - --endpoint https://t.logto.app --audience https://api.example.com"
            " < token.txt\n"
            f'  {PROG} verify "$TOKEN" --require-scope read:products\n'
            "\n" + EXIT_CODES_HELP
        ),
    )
    verify.add_argument("token", metavar="TOKEN", help="the access token, or - to read stdin")
    where = verify.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint",
        action="append",
        metavar="URL",
        help=(
            f"Logto endpoint; the issuer is <URL>/oidc (env {ENV_ENDPOINT}); repeatable "
            "(custom domains, several tenants)"
        ),
    )
    where.add_argument(
        "--issuer",
        action="append",
        metavar="URL",
        help="the exact issuer (iss) instead of --endpoint, for a custom layout; repeatable",
    )
    verify.add_argument(
        "--audience",
        action="append",
        default=[],
        metavar="API",
        help=f"API identifier the token must be for; repeatable (env {ENV_API_RESOURCE})",
    )
    verify.add_argument(
        "--require-scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="scope the token must have; repeat it or give several separated by spaces",
    )
    verify.add_argument(
        "--leeway",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="clock skew allowed on exp, nbf and iat, 0 to 300 (default 60)",
    )
    verify.set_defaults(handler=_cmd_verify)

    # -- inspect
    inspect = commands.add_parser(
        "inspect",
        formatter_class=formatter,
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
    inspect.set_defaults(handler=_cmd_inspect, verbose=False)
    return parser


# -- helpers ---------------------------------------------------------------------------------


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _setting(flag_value: str | None, env_name: str, what: str, flag: str) -> str:
    value = flag_value if flag_value else _env(env_name)
    if not value:
        _usage(f"no {what}: pass {flag} or set {env_name}")
    return value


def _split(values: Sequence[str]) -> list[str]:
    """Repeated flags, each possibly holding several space-separated values, deduplicated."""
    return list(dict.fromkeys(part for value in values for part in value.split() if part))


def _check_endpoint(url: str, flag: str) -> None:
    """An absolute https URL, or http on loopback only (what the verifier accepts)."""
    try:
        check_url(url)
    except ConfigurationError:
        _usage(f"{flag} {url!r} must be an absolute https:// URL (plain http only on loopback)")
    if urlsplit(url).query or urlsplit(url).fragment:
        _usage(f"{flag} {url!r} must not have a query or fragment")


def _read_token(value: str) -> str:
    if value == "-":
        value = sys.stdin.read()
        source = "stdin"
    else:
        source = "the command line"
    token = value.strip()
    if not token:
        _usage(f"no token on {source}")
    return token


def _print_json(value: Any, stream: Any = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=stream or sys.stdout)


@contextmanager
def _library_logging(verbose: bool) -> Iterator[None]:
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


# -- token -----------------------------------------------------------------------------------


def _cmd_token(args: argparse.Namespace) -> int:
    endpoint = _setting(args.endpoint, ENV_ENDPOINT, "Logto endpoint", "--endpoint")
    app_id = _setting(args.app_id, ENV_APP_ID, "app ID", "--app-id")
    app_secret = _setting(args.app_secret, ENV_APP_SECRET, "app secret", "--app-secret")
    # The secret travels in this request: refuse plain http anywhere but on loopback.
    _check_endpoint(endpoint, "--endpoint")
    scopes = _split(args.scope)
    try:
        if args.management_api:
            if args.resource:
                _usage("--resource cannot be combined with --management-api")
            if scopes:
                _usage("--scope cannot be combined with --management-api (its scope is 'all')")
            credentials = ClientCredentials.management_api(
                app_id,
                app_secret,
                endpoint=endpoint,
                tenant_id=args.tenant_id,
                auth_method=args.auth_method,
            )
        else:
            if args.tenant_id is not None:
                _usage("--tenant-id is only used with --management-api")
            credentials = ClientCredentials(
                app_id,
                app_secret,
                endpoint=endpoint,
                resource=args.resource or _env(ENV_API_RESOURCE),
                scopes=scopes or _split([_env(ENV_SCOPES) or ""]),
                auth_method=args.auth_method,
            )
    except ConfigurationError as exc:
        _usage(scrub_secret(str(exc), app_secret))

    responses: list[httpx.Response] = []
    with (
        _library_logging(args.verbose),
        httpx.Client(
            timeout=args.timeout,
            follow_redirects=False,
            event_hooks={"response": [responses.append]},
        ) as http,
    ):
        try:
            access_token = credentials.get_token(http)
        except TokenRequestError as exc:
            code = EXIT_REJECTED
            if (
                exc.status_code is not None and (exc.status_code >= 500 or exc.status_code == 429)
            ) or exc.error in _UNAVAILABLE_ERRORS:
                code = EXIT_UNAVAILABLE
            raise CliError(code, exc.message) from None  # scrubbed already
        except httpx.TimeoutException as exc:
            raise CliError(
                EXIT_UNAVAILABLE,
                f"Logto did not answer within {args.timeout:g} s "
                f"({type(exc).__name__}, POST {credentials.token_endpoint})",
            ) from None
        except httpx.HTTPError as exc:
            detail = scrub_secret(str(exc), app_secret)
            raise CliError(
                EXIT_UNAVAILABLE,
                f"cannot reach Logto at {credentials.token_endpoint}: "
                f"{type(exc).__name__}{': ' + detail if detail else ''}",
            ) from None
    if args.json:
        # The token endpoint's answer, already checked by ClientCredentials (a JSON object with
        # a Bearer access_token).
        _print_json(responses[-1].json())
    else:
        print(access_token)
    return EXIT_OK


# -- verify ----------------------------------------------------------------------------------


def _cmd_verify(args: argparse.Namespace) -> int:
    token = _read_token(args.token)
    issuers = _verify_issuers(args)
    audiences = _split(args.audience)
    if not audiences:
        audiences = [_setting(None, ENV_API_RESOURCE, "audience", "--audience")]
    required = _split(args.require_scope)
    caches: list[JWKSCache] = []
    with _library_logging(args.verbose):
        try:
            caches = [JWKSCache(issuer, timeout=args.timeout) for issuer in issuers]
            claims = asyncio.run(_verify(token, caches, audiences, required, args))
        except ConfigurationError as exc:  # IssuerMismatch included: a wrong endpoint
            _usage(str(exc))
        except AuthError as exc:
            _print_auth_error(exc, next((c.last_error for c in caches if c.last_error), None))
            return EXIT_UNAVAILABLE if isinstance(exc, KeySetUnavailable) else EXIT_REJECTED
    _print_json(claims)
    return EXIT_OK


def _verify_issuers(args: argparse.Namespace) -> list[str]:
    """The issuers of --issuer, or of --endpoint (or LOGTO_ENDPOINT), each checked."""
    if args.issuer:
        for issuer in args.issuer:
            _check_endpoint(issuer, "--issuer")
        return list(dict.fromkeys(args.issuer))
    endpoints = args.endpoint or [_setting(None, ENV_ENDPOINT, "Logto endpoint", "--endpoint")]
    for endpoint in endpoints:
        _check_endpoint(endpoint, "--endpoint")
        if urlsplit(endpoint).path.rstrip("/").endswith("/oidc"):
            _usage(
                f"--endpoint {endpoint!r} looks like the issuer (it ends in /oidc): give the "
                "Logto endpoint without /oidc, or pass it as --issuer"
            )
    return list(dict.fromkeys(endpoint.rstrip("/") + "/oidc" for endpoint in endpoints))


async def _verify(
    token: str,
    caches: list[JWKSCache],
    audiences: list[str],
    required: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    verifier = TokenVerifier(
        [cache.issuer for cache in caches], audience=audiences, jwks=caches, leeway=args.leeway
    )
    try:
        try:
            access_token = await verifier.verify(token)
        except InvalidIssuer:
            await _diagnose_issuers(caches)
            raise
    finally:
        await verifier.aclose()
    if required and not access_token.has_scopes(required):
        missing = [scope for scope in required if scope not in access_token.scopes]
        raise InsufficientScope(
            required=required, description=f"token lacks scope: {' '.join(missing)}"
        )
    return dict(access_token.claims)


async def _diagnose_issuers(caches: list[JWKSCache]) -> None:
    """A token refused for its issuer: is the configured endpoint wrong, or unreachable?

    An API refuses such tokens without any fetch; a one-shot command can afford to look, and
    raises `IssuerMismatch` (exit 2) or `KeySetUnavailable` (exit 3) rather than blame the token.
    """
    for cache in caches:
        if cache.config_error is not None:
            raise cache.config_error
    for cache in caches:
        await cache.refresh()


def _print_auth_error(exc: AuthError, reason: str | None) -> None:
    """The RFC 6750 error an API would answer, as one JSON line on stderr."""
    body: dict[str, Any] = {
        "error": exc.error,
        "error_description": exc.description,
        "status": exc.status_code,
    }
    if isinstance(exc, InsufficientScope) and exc.required_scopes:
        body["scope"] = " ".join(exc.required_scopes)
    if isinstance(exc, KeySetUnavailable):
        body["retry_after"] = exc.retry_after
        if reason:
            body["reason"] = reason
    print(json.dumps(body, ensure_ascii=False), file=sys.stderr)


# -- inspect ---------------------------------------------------------------------------------


def _cmd_inspect(args: argparse.Namespace) -> int:
    token = _read_token(args.token)
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
    _print_json(result)
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


# -- entry point -----------------------------------------------------------------------------


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
