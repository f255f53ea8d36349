"""Hypothesis over the raw `Authorization` header, through the real ASGI middleware.

`LogtoGuard` in front of a Starlette app, driven by httpx's ASGITransport with the header bytes
passed as they are (no client-side validation), verifying with a real, warm `TokenVerifier`
against the healthy loopback provider. Properties: never a 5xx; 200 only when the request
carries exactly one intact `Bearer <valid token>` (and no second token method); an intact one
always passes; the token is never echoed in the answer or in the logs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logto_guard.middleware import LogtoGuard

from .fuzzing import FUZZ, Runner, Sample, mutations

OWS = st.sampled_from(["", " ", "\t", "  ", " \t"])
SCHEMES = st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR"])
OTHER_SCHEMES = st.sampled_from(
    ["Basic", "DPoP", "Bearer:", "Bearer,", "Bearerx", "Bear", "MAC", "Token", "", "Bearer\t"]
)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(self.format(record))


@pytest.fixture(scope="module")
def records() -> Iterator[_Records]:
    handler = _Records()
    logger = logging.getLogger("logto_guard")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="module")
def client(run: Runner, samples: list[Sample]) -> Iterator[httpx.AsyncClient]:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"client_id": request.user.client_id})

    app = LogtoGuard(
        Starlette(routes=[Route("/", hello)]),
        verifier=samples[1].verifier,  # the healthy BadProvider: ES384 and RS256 tokens
        close_verifier=False,
    )
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://api.test")
    try:
        yield http
    finally:
        run(http.aclose())


@st.composite
def requests(draw: st.DrawFn, samples: list[Sample]) -> tuple[list[bytes], str, bool]:
    """(Authorization header lines, query string, whether this is an intact valid request)."""
    valid = [s.token for s in samples[1:]]
    sample = draw(st.sampled_from(samples[1:]))
    kind = draw(st.sampled_from(["intact", "mutated token", "mutated header", "bytes"]))
    token = sample.token
    if kind == "mutated token":
        token = draw(mutations(sample, [s.token for s in samples if s is not sample]))
    scheme = draw(SCHEMES)
    if kind == "mutated header":
        scheme = draw(SCHEMES | OTHER_SCHEMES)
    value = draw(OWS) + scheme + " " * draw(st.integers(1, 3)) + token + draw(OWS)
    if kind == "mutated header":
        extra = draw(
            st.sampled_from(
                [", " + token, " " + token, ",", ' realm="api"', "=", "\x00", "\r\n", "\xa0"]
            )
        )
        at = draw(st.sampled_from([len(value), 0, len(scheme)]))
        value = value[:at] + extra + value[at:]
    line = value.encode("latin-1", "replace") if kind != "bytes" else draw(st.binary())
    lines = [line] * draw(st.sampled_from([1, 1, 1, 1, 0, 2]))
    if len(lines) == 2 and draw(st.booleans()):
        lines[1] = ("Bearer " + draw(st.sampled_from(valid))).encode()
    query = draw(
        st.sampled_from(
            ["", "", "", "x=1", "access_token=", f"access_token={sample.token}", "%61ccess_token=x"]
        )
    )
    intact = kind == "intact" and len(lines) == 1
    return lines, query, intact


def _has_query_token(query: str) -> bool:
    return any(name == "access_token" for name, _ in parse_qsl(query, keep_blank_values=True))


def _is_intact(line: bytes, valid: list[str]) -> bool:
    """`Bearer <token>` with optional whitespace around, where the token has the header and
    payload of a valid token (the signature may be an equivalent one: an ECDSA high-S twin)."""
    found = re.fullmatch(
        r"[ \t]*(?i:bearer) +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+[ \t]*",
        line.decode("latin-1"),
    )
    return found is not None and any(t.startswith(found[1] + ".") for t in valid)


@FUZZ
@given(data=st.data())
def test_authorization_header(
    run: Runner,
    samples: list[Sample],
    client: httpx.AsyncClient,
    records: _Records,
    data: st.DataObject,
) -> None:
    lines, query, intact = data.draw(requests(samples), label="request")
    valid = [s.token for s in samples[1:]]
    records.messages.clear()
    headers = [(b"authorization", line) for line in lines]
    response = run(client.get("/" + ("?" + query if query else ""), headers=headers))

    event(f"HTTP {response.status_code}")
    assert response.status_code in (200, 400, 401), response.status_code
    passes = len(lines) == 1 and _is_intact(lines[0], valid) and not _has_query_token(query)
    if response.status_code == 200:
        assert passes, (lines, query)
        assert response.json() == {"client_id": "m2m-app"}
    else:
        assert not (intact and not _has_query_token(query)), response.text
        assert "www-authenticate" in response.headers
    # Nothing of the credentials comes back, or goes to the logs.
    answer = response.text + str(response.headers)
    logs = "\n".join(records.messages)
    for token in valid:
        signature = token.rsplit(".", 1)[-1]
        assert signature not in answer
        assert signature not in logs
    for line in lines:  # any JWT-like fragment of what was sent
        for piece in re.findall(r"[A-Za-z0-9_.-]{16,}", line.decode("latin-1")):
            if "." in piece:
                assert piece not in answer
                assert piece not in logs
