"""No secrets in logs (R58): the whole attack catalogue, and the M2M client, at DEBUG everywhere.

Every logger is opened to DEBUG (including non-propagating ones) while the catalogue's requests
go through the real app; then no record's message, args, exception text or stack may contain a
token that was sent, a whole `Authorization` value, or an app secret.

The requests are driven as raw ASGI calls rather than through an httpx client: httpx logs the
URL of every request it sends at INFO, and the test's own client logging a query-string token is
not what this test is about. The library's own httpx traffic (discovery, JWKS, token endpoint)
is still captured.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from logto_guard.client import ClientCredentials, TokenRequestError
from logto_guard.jwks_cache import JWKSCache
from logto_guard.verifier import TokenVerifier

from .catalogue import CASES, SHOP, Case, Ctx, Req, build_app, check_answer, secrets_of

APP_SECRETS = ("reader-secret", "writer-secret")


@contextmanager
def everything_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture DEBUG from every logger, even those with their own level or propagate=False."""
    caplog.set_level(logging.DEBUG)
    patched: list[tuple[logging.Logger, int, bool]] = []
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        patched.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.DEBUG)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        for logger, level, _propagate in patched:
            logger.setLevel(level)
            if not logger.propagate:
                logger.removeHandler(caplog.handler)


def record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def leaks(records: Sequence[logging.LogRecord], secrets: Sequence[str]) -> list[tuple[str, str]]:
    found = []
    for record in records:
        text = record_text(record)
        found += [(record.name, s[:40]) for s in secrets if s in text]
    return found


async def call_asgi(app: ASGIApp, req: Req) -> tuple[int, list[tuple[str, str]], bytes]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": "http",
        "path": req.path,
        "raw_path": req.path.encode(),
        "query_string": req.query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *req.headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []
    received = False

    async def receive() -> Message:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
    return start["status"], headers, body


async def test_catalogue_logs_no_secrets(ctx: Ctx, caplog: pytest.LogCaptureFixture) -> None:
    # A cold verifier of its own: discovery and the JWKS fetch are logged too (cooldown=0: each
    # unknown-kid case refetches, as it would alone).
    verifier = TokenVerifier(
        issuer=ctx.issuer, audience=SHOP, jwks=JWKSCache(ctx.issuer, cooldown=0)
    )
    app = build_app(verifier)
    secrets: set[str] = set(APP_SECRETS)
    secrets.update(secrets_of(ctx.reader, ctx.writer, ctx.mgmt))
    crashes: list[str] = []
    xfailed: list[Case] = [c for c in CASES if c.xfail]
    try:
        with everything_at_debug(caplog):
            for case in CASES:
                req = case.build(ctx)
                secrets.update(req.secrets)
                before = len(caplog.records)
                status, headers, body = await call_asgi(app, req)
                if not case.xfail:
                    check_answer(case, status, headers, body, req)
                assert status < 500, case.id
                errors = [r for r in caplog.records[before:] if r.levelno >= logging.ERROR]
                if any(r.name.startswith("logto_guard") for r in errors):
                    crashes.append(case.id)
    finally:
        await verifier.aclose()

    records = caplog.records
    assert leaks(records, sorted(secrets)) == []
    # The capture works: the library logged the refusals (by category only) and its fetches.
    refused = [r for r in records if r.getMessage().startswith("request refused:")]
    assert len(refused) >= 100
    assert any(r.name == "logto_guard.jwks" for r in records)
    # Nothing crashed on client input (an ERROR from the catch-all), outside reported bugs.
    assert set(crashes) <= {c.id for c in xfailed}, crashes


def basic_value(app_id: str, secret: str) -> str:
    return base64.b64encode(f"{app_id}:{secret}".encode()).decode()


async def test_client_credentials_logs_no_secrets(
    ctx: Ctx, caplog: pytest.LogCaptureFixture
) -> None:
    """ClientCredentials at DEBUG against the real provider: fetch, use, 401 retry, refusal."""
    provider = ctx.provider
    verifier = TokenVerifier(issuer=ctx.issuer, audience=SHOP)
    guarded = build_app(verifier)
    seen: list[str] = []  # every Authorization value an API received
    rejections = {"left": 1}

    async def api(scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                seen.append(value.decode("latin-1"))
        if rejections["left"]:  # the first call is refused: the client must refetch and retry
            rejections["left"] -= 1
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await guarded(scope, receive, send)

    mounts = {"http://api.test": httpx.ASGITransport(app=api)}
    reader = ClientCredentials(
        "shop-reader",
        "reader-secret",
        endpoint=provider.endpoint,
        resource=SHOP,
        scopes=["read:products"],
    )
    writer = ClientCredentials(
        "shop-writer",
        "writer-secret",
        endpoint=provider.endpoint,
        resource=SHOP,
        scopes="read:products write:products",
        auth_method="body",
    )
    wrong = ClientCredentials(
        "shop-reader", "writer-secret", endpoint=provider.endpoint, resource=SHOP
    )
    tokens: list[str] = []
    try:
        with everything_at_debug(caplog):
            async with httpx.AsyncClient(trust_env=False, mounts=mounts, auth=reader) as http:
                response = await http.get("http://api.test/products")
                assert response.status_code == 200, response.text
                tokens.append(await reader.aget_token(http))
            async with httpx.AsyncClient(trust_env=False, mounts=mounts, auth=writer) as http:
                response = await http.post("http://api.test/products")
                assert response.status_code == 200, response.text
                tokens.append(await writer.aget_token(http))
            with httpx.Client(trust_env=False) as sync_http:
                tokens.append(reader.get_token(sync_http))
                with pytest.raises(TokenRequestError) as refused:
                    wrong.get_token(sync_http)
            with pytest.raises(TokenRequestError):
                async with httpx.AsyncClient(trust_env=False, mounts=mounts, auth=wrong) as http:
                    await http.get("http://api.test/products")
    finally:
        await verifier.aclose()

    assert rejections["left"] == 0 and len(seen) >= 3  # the 401 retry happened
    secrets = set(APP_SECRETS)
    secrets.update(basic_value("shop-reader", s) for s in APP_SECRETS)
    secrets.update(basic_value("shop-writer", s) for s in APP_SECRETS)
    secrets.update(secrets_of(*tokens, *seen))
    assert leaks(caplog.records, sorted(secrets)) == []
    assert any(r.name == "logto_guard.client" for r in caplog.records)
    # Nor in what an application would log: the exception and the credentials' reprs.
    for text in (str(refused.value), repr(refused.value), repr(reader), repr(writer)):
        assert not [s for s in secrets if s in text]
