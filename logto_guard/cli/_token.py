"""``logto-guard token``: an M2M access token with the client credentials grant.

The only command that holds the app secret: every message it prints is scrubbed of it.
"""

from __future__ import annotations

import argparse
from typing import Final

from .._http import httpx
from .._token_endpoint import scrub_secret
from ..client import ClientCredentials, TokenRequestError
from ..errors import ConfigurationError
from ._shared import (
    ENV_API_RESOURCE,
    ENV_APP_ID,
    ENV_APP_SECRET,
    ENV_ENDPOINT,
    ENV_SCOPES,
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    PROG,
    CliError,
    check_endpoint,
    env,
    library_logging,
    print_json,
    setting,
    split,
    usage,
)

# OAuth errors (RFC 6749 §4.1.2.1) and statuses that mean "Logto is not serving right now".
_UNAVAILABLE_ERRORS: Final = frozenset({"server_error", "temporarily_unavailable"})


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The ``token`` subcommand and its flags, next to the code that reads them."""
    token = commands.add_parser(
        "token",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    return token


def _cmd_token(args: argparse.Namespace) -> int:
    endpoint = setting(args.endpoint, ENV_ENDPOINT, "Logto endpoint", "--endpoint")
    app_id = setting(args.app_id, ENV_APP_ID, "app ID", "--app-id")
    app_secret = setting(args.app_secret, ENV_APP_SECRET, "app secret", "--app-secret")
    # The secret travels in this request: refuse plain http anywhere but on loopback.
    check_endpoint(endpoint, "--endpoint")
    scopes = split(args.scope)
    try:
        if args.management_api:
            if args.resource:
                usage("--resource cannot be combined with --management-api")
            if scopes:
                usage("--scope cannot be combined with --management-api (its scope is 'all')")
            credentials = ClientCredentials.management_api(
                app_id,
                app_secret,
                endpoint=endpoint,
                tenant_id=args.tenant_id,
                auth_method=args.auth_method,
            )
        else:
            if args.tenant_id is not None:
                usage("--tenant-id is only used with --management-api")
            credentials = ClientCredentials(
                app_id,
                app_secret,
                endpoint=endpoint,
                resource=args.resource or env(ENV_API_RESOURCE),
                scopes=scopes or split([env(ENV_SCOPES) or ""]),
                auth_method=args.auth_method,
            )
    except ConfigurationError as exc:
        usage(scrub_secret(str(exc), app_secret))

    responses: list[httpx.Response] = []
    with (
        library_logging(args.verbose),
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
        print_json(responses[-1].json())
    else:
        print(access_token)
    return EXIT_OK
