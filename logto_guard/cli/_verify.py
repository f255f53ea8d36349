"""``logto-guard verify``: a token checked the way a protected API would, plus what an API
cannot afford: a look at the issuer when a token is refused for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any
from urllib.parse import urlsplit

from ..errors import (
    AuthError,
    ConfigurationError,
    InsufficientScope,
    InvalidIssuer,
    KeySetUnavailable,
)
from ..jwks_cache import JWKSCache
from ..verifier import TokenVerifier
from ._shared import (
    ENV_API_RESOURCE,
    ENV_ENDPOINT,
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    PROG,
    check_endpoint,
    library_logging,
    print_json,
    read_token,
    seconds,
    setting,
    split,
    usage,
)


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The ``verify`` subcommand and its flags, next to the code that reads them."""
    verify = commands.add_parser(
        "verify",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="clock skew allowed on exp, nbf and iat, 0 to 300 (default 60)",
    )
    return verify


def _cmd_verify(args: argparse.Namespace) -> int:
    token = read_token(args.token)
    issuers = _verify_issuers(args)
    audiences = split(args.audience)
    if not audiences:
        audiences = [setting(None, ENV_API_RESOURCE, "audience", "--audience")]
    required = split(args.require_scope)
    caches: list[JWKSCache] = []
    with library_logging(args.verbose):
        try:
            caches = [JWKSCache(issuer, timeout=args.timeout) for issuer in issuers]
            claims = asyncio.run(_verify(token, caches, audiences, required, args))
        except ConfigurationError as exc:  # IssuerMismatch included: a wrong endpoint
            usage(str(exc))
        except AuthError as exc:
            _print_auth_error(exc, next((c.last_error for c in caches if c.last_error), None))
            return EXIT_UNAVAILABLE if isinstance(exc, KeySetUnavailable) else EXIT_REJECTED
    print_json(claims)
    return EXIT_OK


def _verify_issuers(args: argparse.Namespace) -> list[str]:
    """The issuers of --issuer, or of --endpoint (or LOGTO_ENDPOINT), each checked."""
    if args.issuer:
        for issuer in args.issuer:
            check_endpoint(issuer, "--issuer")
        return list(dict.fromkeys(args.issuer))
    endpoints = args.endpoint or [setting(None, ENV_ENDPOINT, "Logto endpoint", "--endpoint")]
    for endpoint in endpoints:
        check_endpoint(endpoint, "--endpoint")
        if urlsplit(endpoint).path.rstrip("/").endswith("/oidc"):
            usage(
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
