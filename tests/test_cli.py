"""The `logto-guard` command line against the real OpenID provider (oidc-provider, like Logto).

Most tests call `main(argv)` in-process and read capsys; a few run the installed console script
(or `python -m logto_guard`) as a real subprocess, stdin, exit code and all.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from logto_guard import cli
from logto_guard.cli import EXIT_OK, EXIT_REJECTED, EXIT_UNAVAILABLE, EXIT_USAGE, main
from logto_guard.verifier import TokenVerifier

try:
    from oidc_provider import MGMT, SHOP, OidcProvider
except ImportError:  # pragma: no cover - tests/ imported as a package
    from .oidc_provider import MGMT, SHOP, OidcProvider

ENV_VARS = ("LOGTO_ENDPOINT", "LOGTO_APP_ID", "LOGTO_APP_SECRET", "LOGTO_API_RESOURCE")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
WRONG_SECRET = "wrong-secret-7f3a9c"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing from the developer's shell may configure the CLI, and a proxy must not capture
    # loopback traffic.
    for name in ENV_VARS + PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)

    def error(self) -> dict[str, Any]:
        """The RFC 6750 error `verify` prints: one JSON line on stderr."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        body: dict[str, Any] = json.loads(lines[0])
        return body

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    def _run(*argv: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        if stdin is not None:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(sys, "stdin", io.StringIO(stdin))
                code = main(list(argv))
        else:
            code = main(list(argv))
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return Result(code, out, err)

    return _run


def token_args(provider: OidcProvider, client: str = "shop-reader", **extra: str) -> list[str]:
    secrets = {"shop-reader": "reader-secret", "shop-writer": "writer-secret"}
    args = [
        "token",
        "--endpoint",
        provider.endpoint,
        "--app-id",
        client,
        "--app-secret",
        extra.pop("secret", secrets.get(client, "")),
    ]
    for name, value in extra.items():
        args += [f"--{name.replace('_', '-')}", value]
    return args


def verify_args(provider: OidcProvider, token: str, *more: str) -> list[str]:
    return ["verify", token, "--endpoint", provider.endpoint, "--audience", SHOP, *more]


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def library_verify(provider: OidcProvider, token: str, audience: str = SHOP) -> Any:
    verifier = TokenVerifier(endpoint=provider.endpoint, audience=audience)
    try:
        return await verifier.verify(token)
    finally:
        await verifier.aclose()


# -- a stand-in Logto that answers what the test says --------------------------------------------


class FakeLogto:
    def __init__(self) -> None:
        self.status = 503
        self.body = b"<html>Service Unavailable</html>"
        self.content_type = "text/html"
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(outer.status)
                self.send_header("content-type", outer.content_type)
                self.send_header("content-length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def answer(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, json.dumps(body).encode()
        self.content_type = "application/json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fake_logto() -> Iterator[FakeLogto]:
    fake = FakeLogto()
    try:
        yield fake
    finally:
        fake.close()


# -- token -----------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_method", ["basic", "body"])
def test_token_prints_a_jwt_that_verifies(
    run: Any, oidc_provider: OidcProvider, auth_method: str
) -> None:
    result = run(
        *token_args(oidc_provider, resource=SHOP, scope="read:products", auth_method=auth_method)
    )
    assert result.code == EXIT_OK, result
    assert result.err == ""
    token = result.out.strip()
    assert result.out == token + "\n"  # only the token: usable as $(logto-guard token)
    assert token.count(".") == 2
    access = asyncio.run(library_verify(oidc_provider, token))
    assert access.client_id == "shop-reader"
    assert access.scopes == {"read:products"}
    assert "reader-secret" not in result.out + result.err

    # ... and the CLI's own verify agrees.
    verified = run(*verify_args(oidc_provider, token))
    assert verified.code == EXIT_OK, verified
    assert verified.json()["client_id"] == "shop-reader"


def test_token_json_prints_the_whole_response(run: Any, oidc_provider: OidcProvider) -> None:
    result = run(*token_args(oidc_provider, resource=SHOP, scope="read:products"), "--json")
    assert result.code == EXIT_OK, result
    body = result.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read:products"
    assert segment(body["access_token"], 1)["aud"] == SHOP
    assert "reader-secret" not in result.out + result.err


def test_token_config_from_environment(
    run: Any, oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGTO_ENDPOINT", oidc_provider.endpoint)
    monkeypatch.setenv("LOGTO_APP_ID", "shop-reader")
    monkeypatch.setenv("LOGTO_APP_SECRET", "reader-secret")
    monkeypatch.setenv("LOGTO_API_RESOURCE", SHOP)
    result = run("token", "--scope", "read:products")
    assert result.code == EXIT_OK, result
    claims = segment(result.out.strip(), 1)
    assert claims["client_id"] == "shop-reader"
    assert claims["aud"] == SHOP


def test_token_flags_win_over_environment(
    run: Any, oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGTO_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("LOGTO_APP_ID", "shop-reader")
    monkeypatch.setenv("LOGTO_APP_SECRET", WRONG_SECRET)
    monkeypatch.setenv("LOGTO_API_RESOURCE", "https://unknown.api")
    result = run(
        "token",
        "--endpoint",
        oidc_provider.endpoint,
        "--app-id",
        "shop-writer",
        "--app-secret",
        "writer-secret",
        "--resource",
        SHOP,
    )
    assert result.code == EXIT_OK, result
    claims = segment(result.out.strip(), 1)
    assert claims["client_id"] == "shop-writer"
    assert claims["aud"] == SHOP


@pytest.mark.parametrize(
    "scope_args",
    [
        ["--scope", "read:products", "--scope", "write:products"],
        ["--scope", "read:products write:products"],
        ["--scope", " read:products  write:products ", "--scope", "read:products"],
    ],
)
def test_token_scopes_repeatable_or_space_separated(
    run: Any, oidc_provider: OidcProvider, scope_args: list[str]
) -> None:
    result = run(*token_args(oidc_provider, "shop-writer", resource=SHOP), *scope_args)
    assert result.code == EXIT_OK, result
    scopes = set(segment(result.out.strip(), 1)["scope"].split())
    assert scopes == {"read:products", "write:products"}


def test_token_management_api(
    run: Any, oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LOGTO_API_RESOURCE is for the app's own API; --management-api ignores it.
    monkeypatch.setenv("LOGTO_API_RESOURCE", SHOP)
    result = run(
        *token_args(oidc_provider, "mgmt-client", secret="mgmt-secret"),
        "--management-api",
        "--json",
    )
    assert result.code == EXIT_OK, result
    body = result.json()
    assert body["scope"] == "all"
    claims = segment(body["access_token"], 1)
    assert claims["aud"] == MGMT
    assert claims["scope"] == "all"
    access = asyncio.run(library_verify(oidc_provider, body["access_token"], audience=MGMT))
    assert access.client_id == "mgmt-client"


@pytest.mark.parametrize("auth_method", ["basic", "body"])
def test_token_wrong_secret_is_refused(
    run: Any, oidc_provider: OidcProvider, auth_method: str
) -> None:
    result = run(
        *token_args(oidc_provider, secret=WRONG_SECRET, resource=SHOP, auth_method=auth_method),
        "--verbose",
    )
    assert result.code == EXIT_REJECTED, result
    assert result.out == ""
    assert "invalid_client" in result.err
    assert result.err.strip().splitlines()[-1].startswith("logto-guard token: error: ")
    assert WRONG_SECRET not in result.err


def test_token_unknown_resource_is_refused(run: Any, oidc_provider: OidcProvider) -> None:
    result = run(*token_args(oidc_provider, resource="https://unknown.api"))
    assert result.code == EXIT_REJECTED, result
    assert "invalid_target" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_token_unreachable_logto(run: Any) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run("token", "--endpoint", endpoint, "--app-id", "a", "--app-secret", WRONG_SECRET)
    assert result.code == EXIT_UNAVAILABLE, result
    assert result.out == ""
    assert "cannot reach Logto" in result.err
    assert "ConnectError" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert WRONG_SECRET not in result.err


def test_token_logto_not_answering_in_time(run: Any) -> None:
    # A listening socket nobody reads from: the connection opens, no answer ever comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = run(
            "token", "--endpoint", endpoint, "--app-id", "a", "--app-secret", "s",
            "--timeout", "0.3",
        )  # fmt: skip
    assert result.code == EXIT_UNAVAILABLE, result
    assert "did not answer within 0.3 s" in result.err


@pytest.mark.parametrize(
    ("status", "body", "code", "expected"),
    [
        (503, None, EXIT_UNAVAILABLE, "HTTP 503"),
        (502, {"error": "bad_gateway"}, EXIT_UNAVAILABLE, "HTTP 502"),
        (429, {"error": "too_many_requests"}, EXIT_UNAVAILABLE, "HTTP 429"),
        (400, {"error": "temporarily_unavailable"}, EXIT_UNAVAILABLE, "temporarily_unavailable"),
        (400, {"error": "invalid_scope", "error_description": "nope"}, EXIT_REJECTED, "nope"),
        (200, {"token_type": "Bearer"}, EXIT_REJECTED, "without an access_token"),
        (404, None, EXIT_REJECTED, "non-JSON"),
    ],
)
def test_token_endpoint_answers(
    run: Any,
    fake_logto: FakeLogto,
    status: int,
    body: dict[str, Any] | None,
    code: int,
    expected: str,
) -> None:
    if body is None:
        fake_logto.status = status
    else:
        fake_logto.answer(status, body)
    result = run(
        "token", "--endpoint", fake_logto.endpoint, "--app-id", "a", "--app-secret", WRONG_SECRET
    )
    assert result.code == code, result
    assert expected in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert fake_logto.requests == 1


def test_token_secret_echoed_by_a_broken_server_is_scrubbed(
    run: Any, fake_logto: FakeLogto
) -> None:
    fake_logto.answer(401, {"error": "invalid_client", "error_description": WRONG_SECRET})
    result = run(
        "token", "--endpoint", fake_logto.endpoint, "--app-id", "a", "--app-secret", WRONG_SECRET
    )
    assert result.code == EXIT_REJECTED, result
    assert "invalid_client" in result.err
    assert WRONG_SECRET not in result.err


@pytest.mark.parametrize("missing", ["--endpoint", "--app-id", "--app-secret"])
def test_token_missing_config(run: Any, oidc_provider: OidcProvider, missing: str) -> None:
    given = {
        "--endpoint": oidc_provider.endpoint,
        "--app-id": "shop-reader",
        "--app-secret": "reader-secret",
    }
    env_var = {
        "--endpoint": "LOGTO_ENDPOINT",
        "--app-id": "LOGTO_APP_ID",
        "--app-secret": "LOGTO_APP_SECRET",
    }[missing]
    del given[missing]
    result = run("token", *(item for pair in given.items() for item in pair))
    assert result.code == EXIT_USAGE, result
    assert missing in result.err
    assert env_var in result.err
    assert "reader-secret" not in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--endpoint", "http://logto.example.com"], "https"),
        (["--endpoint", "logto.example.com"], "https"),
        (["--endpoint", "https://t.logto.app/oidc"], "/oidc"),
        (["--endpoint", "https://t.logto.app?x=1"], "query"),
        (["--management-api", "--resource", SHOP], "--resource"),
        (["--management-api", "--scope", "read"], "--scope"),
        (["--tenant-id", "t1"], "--management-api"),
        (["--management-api", "--tenant-id", ""], "tenant_id"),
    ],
)
def test_token_configuration_errors(run: Any, extra: list[str], message: str) -> None:
    result = run(
        "token", "--endpoint", "https://t.logto.app", "--app-id", "a",
        "--app-secret", WRONG_SECRET, *extra,
    )  # fmt: skip
    assert result.code == EXIT_USAGE, result
    assert message in result.err
    assert WRONG_SECRET not in result.err


@pytest.mark.parametrize(
    "extra", [["--auth-method", "jwt"], ["--timeout", "0"], ["--timeout", "x"], ["--bogus"]]
)
def test_token_bad_flags_are_usage_errors(run: Any, extra: list[str]) -> None:
    result = run("token", *extra)
    assert result.code == EXIT_USAGE, result
    assert "usage: logto-guard" in result.err


# -- verify ----------------------------------------------------------------------------------


def test_verify_good_token(run: Any, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("shop-writer", scope="read:products write:products")
    result = run(*verify_args(oidc_provider, token))
    assert result.code == EXIT_OK, result
    assert result.err == ""
    claims = result.json()
    assert claims["client_id"] == claims["sub"] == "shop-writer"
    assert claims["aud"] == SHOP
    assert claims["iss"] == oidc_provider.issuer
    assert set(claims["scope"].split()) == {"read:products", "write:products"}


def test_verify_reads_stdin_and_environment(
    run: Any, oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGTO_ENDPOINT", oidc_provider.endpoint)
    monkeypatch.setenv("LOGTO_API_RESOURCE", SHOP)
    token = oidc_provider.token()
    result = run("verify", "-", stdin=f"  {token}\n")
    assert result.code == EXIT_OK, result
    assert result.json()["client_id"] == "shop-reader"


def test_verify_with_issuer(run: Any, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token()
    result = run("verify", token, "--issuer", oidc_provider.issuer, "--audience", SHOP)
    assert result.code == EXIT_OK, result


def test_verify_any_of_several_audiences(run: Any, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token()
    result = run(
        "verify", token, "--endpoint", oidc_provider.endpoint,
        "--audience", "https://other.api", "--audience", SHOP,
    )  # fmt: skip
    assert result.code == EXIT_OK, result


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"exp": 0}, "token expired"),
        ({"aud": "https://other.api"}, "audience"),
        ({"iss": "https://evil.example/oidc"}, "issuer"),
    ],
)
def test_verify_rejects_invalid_token(
    run: Any, oidc_provider: OidcProvider, claims: dict[str, Any], description: str
) -> None:
    result = run(*verify_args(oidc_provider, oidc_provider.sign(claims)))
    assert result.code == EXIT_REJECTED, result
    assert result.out == ""
    error = result.error()
    assert error["error"] == "invalid_token"
    assert error["status"] == 401
    assert description in error["error_description"]


def test_verify_rejects_wrong_audience_of_a_real_token(
    run: Any, oidc_provider: OidcProvider
) -> None:
    token = oidc_provider.token()
    result = run("verify", token, "--endpoint", oidc_provider.endpoint, "--audience", MGMT)
    assert result.code == EXIT_REJECTED, result
    assert result.error()["error"] == "invalid_token"


def test_verify_rejects_tampered_and_malformed(run: Any, oidc_provider: OidcProvider) -> None:
    header, payload, signature = oidc_provider.token().split(".")
    claims = segment(f"{header}.{payload}.{signature}", 1)
    claims["scope"] = "read:products write:products"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for token in (f"{header}.{forged_payload}.{signature}", "garbage"):
        result = run(*verify_args(oidc_provider, token))
        assert result.code == EXIT_REJECTED, result
        assert result.error()["error"] == "invalid_token"


def test_verify_require_scope(run: Any, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token()  # shop-reader: read:products
    ok = run(*verify_args(oidc_provider, token, "--require-scope", "read:products"))
    assert ok.code == EXIT_OK, ok

    result = run(
        *verify_args(oidc_provider, token, "--require-scope", "read:products write:products")
    )
    assert result.code == EXIT_REJECTED, result
    assert result.out == ""
    error = result.error()
    assert error["error"] == "insufficient_scope"
    assert error["status"] == 403
    assert error["scope"] == "read:products write:products"
    assert "write:products" in error["error_description"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--audience", SHOP], "LOGTO_ENDPOINT"),
        (["--endpoint", "http://127.0.0.1:9"], "LOGTO_API_RESOURCE"),
        (["--endpoint", "http://logto.example.com", "--audience", SHOP], "https"),
        (["--issuer", "http://logto.example.com/oidc", "--audience", SHOP], "https"),
        (["--endpoint", "https://t.logto.app/oidc", "--audience", SHOP], "--issuer"),
        (["--endpoint", "https://t.logto.app", "--audience", SHOP, "--leeway", "1000"], "leeway"),
    ],
)
def test_verify_configuration_errors(run: Any, args: list[str], message: str) -> None:
    result = run("verify", "a.b.c", *args)
    assert result.code == EXIT_USAGE, result
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_verify_usage_errors(run: Any) -> None:
    both = run("verify", "t", "--endpoint", "https://a.test", "--issuer", "https://a.test/oidc")
    assert both.code == EXIT_USAGE
    assert "not allowed with" in both.err
    assert run("verify").code == EXIT_USAGE
    empty = run("verify", "-", "--endpoint", "https://t.logto.app", "--audience", SHOP, stdin="")
    assert empty.code == EXIT_USAGE
    assert "no token on stdin" in empty.err


def test_verify_malformed_token_needs_no_network(run: Any) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run("verify", "a.b.c", "--endpoint", endpoint, "--audience", SHOP)
    # A syntactically broken token fails before any key fetch: invalid_token, not 503.
    assert result.code == EXIT_REJECTED, result
    assert result.error()["error"] == "invalid_token"


def test_verify_no_keys_is_unavailable(run: Any, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token()
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run("verify", token, "--endpoint", endpoint, "--audience", SHOP)
    assert result.code == EXIT_UNAVAILABLE, result
    assert result.out == ""
    error = result.error()  # exactly one line: the library's log record is not printed too
    assert error["error"] == "temporarily_unavailable"
    assert error["status"] == 503
    assert "ConnectError" in error["reason"]


# -- inspect ---------------------------------------------------------------------------------


def test_inspect_decodes_without_verifying(run: Any, oidc_provider: OidcProvider) -> None:
    # A token the verifier would refuse (foreign audience): inspect shows it anyway.
    token = oidc_provider.sign({"aud": "https://other.api"})
    result = run("inspect", token)
    assert result.code == EXIT_OK, result
    assert "NOT VERIFIED" in result.err
    body = result.json()
    assert body["verified"] is False
    assert body["header"]["typ"] == "at+jwt"
    assert body["header"]["kid"] == oidc_provider.current_kid
    assert body["claims"]["aud"] == "https://other.api"
    assert body["claims"]["client_id"] == "shop-reader"
    assert body["expired"] is False
    assert body["times"]["exp"].endswith("(in 59 min)") or body["times"]["exp"].endswith(
        "(in 60 min)"
    )
    assert " UTC" in body["times"]["iat"]
    assert "expired" not in result.err


def test_inspect_expired_token_from_stdin(run: Any, oidc_provider: OidcProvider) -> None:
    result = run("inspect", "-", stdin=oidc_provider.sign({"exp": 0}) + "\n")
    assert result.code == EXIT_OK, result
    assert "NOT VERIFIED" in result.err
    assert "token expired" in result.err
    body = result.json()
    assert body["expired"] is True
    assert body["times"]["exp"].startswith("1970-01-01 00:00:00 UTC")


def test_inspect_needs_no_config_nor_network(run: Any) -> None:
    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    token = f"{b64({'alg': 'ES256'})}.{b64({'sub': 'x', 'exp': 'soon'})}.c2ln"
    result = run("inspect", token)
    assert result.code == EXIT_OK, result
    body = result.json()
    assert body["claims"] == {"sub": "x", "exp": "soon"}
    assert "times" not in body
    assert "expired" not in body  # exp present but not a date: no verdict either way


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("garbage", "opaque"),
        ("a.b.c.d.e", "JWE"),
        ("a.b", "2 segments"),
        ("!!!.x.y", "malformed token"),
        ("bm90IGpzb24.e30.c2ln", "header is not a JSON object"),
        ("e30.bm90IGpzb24.c2ln", "claims are not a JSON object"),
    ],
)
def test_inspect_malformed(run: Any, token: str, message: str) -> None:
    result = run("inspect", token)
    assert result.code == EXIT_REJECTED, result
    assert result.out == ""
    assert message in result.err
    assert "NOT VERIFIED" not in result.err
    assert len(result.err.strip().splitlines()) == 1


# -- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["token"], ["verify"], ["inspect"]])
def test_help(run: Any, command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.code == EXIT_OK
    assert "exit codes:" in result.out
    assert "3  network or server unavailable" in result.out
    if command != ["inspect"]:
        assert "LOGTO_ENDPOINT" in result.out
        assert "LOGTO_API_RESOURCE" in result.out


def test_no_command_and_version(run: Any) -> None:
    assert run().code == EXIT_USAGE
    version = run("--version")
    assert version.code == EXIT_OK
    assert version.out.startswith("logto-guard ")


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_closed_stdout_and_ctrl_c(
    oidc_provider: OidcProvider,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with monkeypatch.context() as mp:
        mp.setattr(sys, "stdout", _ClosedPipe())
        assert main(["inspect", oidc_provider.sign()]) == cli.EXIT_BROKEN_PIPE

    def interrupted(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_inspect", interrupted)
    assert main(["inspect", "x"]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines()[-1] == "logto-guard: interrupted"


# -- the installed command, as a real process ------------------------------------------------


def _command() -> list[str]:
    script = Path(sys.executable).with_name("logto-guard")
    if script.is_file():
        return [str(script)]
    found = shutil.which("logto-guard")  # pragma: no cover - depends on the install
    return [found] if found else [sys.executable, "-m", "logto_guard"]  # pragma: no cover


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS + PROXY_VARS}
    env.update(values)
    return env


def test_console_script_token_then_verify(oidc_provider: OidcProvider) -> None:
    env = _env(
        LOGTO_ENDPOINT=oidc_provider.endpoint,
        LOGTO_APP_ID="shop-reader",
        LOGTO_APP_SECRET="reader-secret",
        LOGTO_API_RESOURCE=SHOP,
    )
    got = subprocess.run(
        [*_command(), "token", "--scope", "read:products"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert got.returncode == EXIT_OK, got.stderr
    token = got.stdout.strip()

    verified = subprocess.run(
        [*_command(), "verify", "-", "--require-scope", "read:products"],
        input=token,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == EXIT_OK, verified.stderr
    assert json.loads(verified.stdout)["client_id"] == "shop-reader"

    refused = subprocess.run(
        [*_command(), "verify", "-", "--require-scope", "write:products"],
        input=token,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == EXIT_REJECTED
    assert json.loads(refused.stderr)["error"] == "insufficient_scope"


def test_console_script_failures_have_no_traceback() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    cases = [
        (["token", "--endpoint", endpoint, "--app-id", "a"], EXIT_UNAVAILABLE),
        (["token"], EXIT_USAGE),
        (["inspect", "garbage"], EXIT_REJECTED),
    ]
    for args, code in cases:
        got = subprocess.run(
            [*_command(), *args],
            env=_env(LOGTO_APP_SECRET=WRONG_SECRET),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert got.returncode == code, (args, got.stderr)
        assert "Traceback" not in got.stderr
        assert WRONG_SECRET not in got.stdout + got.stderr
        assert len(got.stderr.strip().splitlines()) == 1, got.stderr


def test_python_dash_m(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.sign()
    got = subprocess.run(
        [sys.executable, "-m", "logto_guard", "inspect", "-"],
        input=token,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert got.returncode == EXIT_OK, got.stderr
    assert "NOT VERIFIED" in got.stderr
    assert json.loads(got.stdout)["claims"]["sub"] == "shop-reader"


# -- several issuers, a misconfigured endpoint -------------------------------------------------


def test_verify_endpoint_repeated(run: Any, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token()
    other = f"http://127.0.0.1:{closed_port()}"  # never contacted: the token names the other
    result = run(
        "verify", token, "--endpoint", other, "--endpoint", oidc_provider.endpoint,
        "--audience", SHOP,
    )  # fmt: skip
    assert result.code == EXIT_OK, result
    assert result.json()["iss"] == oidc_provider.issuer
    issuers = run(
        "verify", token, "--issuer", other + "/oidc", "--issuer", oidc_provider.issuer,
        "--audience", SHOP,
    )  # fmt: skip
    assert issuers.code == EXIT_OK, issuers


def test_verify_wrong_endpoint_is_a_configuration_error(
    run: Any, oidc_provider: OidcProvider
) -> None:
    """`localhost` for a provider whose issuer says `127.0.0.1`: exit 2, naming both."""
    wrong = f"http://localhost:{oidc_provider.port}"
    sentence = (
        f"Logto reports its issuer as {oidc_provider.issuer!r} but {wrong + '/oidc'!r} "
        "is configured"
    )
    for token in (oidc_provider.token(), oidc_provider.sign({"iss": wrong + "/oidc"})):
        result = run("verify", token, "--endpoint", wrong, "--audience", SHOP)
        assert result.code == EXIT_USAGE, result
        assert sentence in result.err
        assert len(result.err.strip().splitlines()) == 1


def test_verify_token_of_another_issuer_is_rejected(run: Any, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.sign({"iss": "https://other.logto.app/oidc"})
    result = run("verify", token, "--endpoint", oidc_provider.endpoint, "--audience", SHOP)
    assert result.code == EXIT_REJECTED, result  # the endpoint is right: the token is wrong
    assert result.error()["error_description"] == "token issuer is not trusted"
