"""Where a verification's time goes: per-step costs, what-if alternatives, and profiles.

    .venv/bin/python bench/profile_steps.py                 # step table (about 30 s)
    .venv/bin/python bench/profile_steps.py --pyinstrument  # + pyinstrument report of verify()
    .venv/bin/python bench/profile_steps.py --py-spy        # + py-spy flame graph of a served app

Three kinds of table, all in thread CPU time over distinct real tokens:

* each step of `TokenVerifier.verify` and of `LogtoGuard.__call__` alone (min and median of
  repeated passes);
* each proposed alternative (P1-P5 in bench/README.md) against the step it would replace, their
  passes alternating;
* in situ: candidates (PyJWT's verify call, the Python steps, verify() itself, and
  `PrototypeVerifier`, verify() with P1-P4 applied) each timed next to the raw signature check of
  the same token, in a shuffled order, as bench/run.py part 1 measures.

Nothing in logto_guard is changed: the alternatives are re-implementations, timed side by side.

pyinstrument and py-spy are not project dependencies: `.venv/bin/pip install pyinstrument
py-spy`. Outputs go to bench/results/profiles/.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from jwt.utils import raw_to_der_signature  # noqa: E402

from logto_guard import TokenVerifier  # noqa: E402
from logto_guard._asgi import authenticate  # noqa: E402
from logto_guard._json import _decoder, loads_object  # noqa: E402
from logto_guard.bearer import extract_token  # noqa: E402
from logto_guard.errors import InvalidSignature as InvalidTokenSignature  # noqa: E402
from logto_guard.errors import MalformedToken  # noqa: E402
from logto_guard.jws import (  # noqa: E402
    _CANONICAL_LAST,
    _COMPACT,
    ParsedJWS,
    b64url_decode,
    parse_compact,
)
from logto_guard.middleware import LogtoGuard  # noqa: E402
from logto_guard.testing.issuer import LocalIssuer  # noqa: E402
from logto_guard.token import AccessToken, parse_scope  # noqa: E402

AUDIENCE = "https://shopping.api"
OUT = BENCH / "results" / "profiles"


def per_call(fn: Callable[[Any], object], args: Sequence[Any], passes: int) -> tuple[float, float]:
    """(min, median) thread CPU microseconds per call of fn over args, over `passes` passes."""
    samples = []
    for _ in range(passes):
        start = time.thread_time()
        for arg in args:
            fn(arg)
        samples.append((time.thread_time() - start) / len(args) * 1e6)
    return min(samples), statistics.median(samples)


def per_call_alternating(
    now: Callable[[Any], object],
    proposed: Callable[[Any], object],
    args: Sequence[Any],
    passes: int,
) -> tuple[float, float]:
    """Median thread CPU microseconds per call of each function, their passes alternating so
    that both see the same drift of the CPU's speed."""
    a: list[float] = []
    b: list[float] = []
    for index in range(2 * passes):
        fn, out = (now, a) if index % 2 == 0 else (proposed, b)
        start = time.thread_time()
        for arg in args:
            fn(arg)
        out.append((time.thread_time() - start) / len(args) * 1e6)
    return statistics.median(a), statistics.median(b)


def drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (a cache hit, a known key) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("coroutine suspended")


# -- alternatives (re-implementations of one step each, for timing only) -------------------------

_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64url_decode_direct(segment: str) -> bytes:
    """b64url_decode without base64.urlsafe_b64decode's three Python-level frames.

    Same checks: the caller's regex has vetted the alphabet; the canonical-bits check stays."""
    rem = len(segment) % 4
    if rem == 1 or (rem and segment[-1] not in _CANONICAL_LAST[rem]):
        raise ValueError
    return binascii.a2b_base64((segment + "=" * (-rem % 4)).encode().translate(_URLSAFE))


_HEADERS: dict[str, dict[str, Any]] = {}


def parse_compact_alt(token: str, max_length: int = 8192) -> ParsedTuple:
    """parse_compact with the proposals combined: decoded headers memoised by their exact
    segment (every token of one key has the same header), binascii decoding, a NamedTuple."""
    if len(token) > max_length:
        raise ValueError
    if _COMPACT.fullmatch(token) is None:
        raise ValueError
    head, payload, signature = token.split(".")
    header = _HEADERS.get(head)
    if header is None:
        header = loads_object(b64url_decode_direct(head))
        if len(_HEADERS) < 16:
            _HEADERS[head] = header
    return ParsedTuple(
        header, payload, f"{head}.{payload}".encode("ascii"), b64url_decode_direct(signature)
    )


def loads_object_scan(data: bytes) -> dict[str, Any]:
    """loads_object calling the C scanner of the same strict decoder first (no
    JSONDecoder.decode wrapper and its two whitespace regexes); anything the fast path does not
    take whole (whitespace around the value, an error) goes to loads_object, which decides."""
    try:
        text = data.decode("utf-8")
        value, end = _decoder.scan_once(text, 0)
    except (ValueError, RecursionError, StopIteration):
        return loads_object(data)
    if end != len(text) or not isinstance(value, dict):
        return loads_object(data)
    return value  # type: ignore[no-any-return]


class ParsedTuple(NamedTuple):
    header: dict[str, Any]
    payload_segment: str
    signing_input: bytes
    signature: bytes


@dataclass(slots=True)
class AccessTokenMutable:
    """AccessToken's fields in a slots dataclass that is not frozen (plain attribute stores)."""

    sub: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    issuer: str
    expires_at: float
    issued_at: float
    jti: str
    organization_id: str | None
    claims: Any


class AccessTokenTuple(NamedTuple):
    sub: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    issuer: str
    expires_at: float
    issued_at: float
    jti: str
    organization_id: str | None
    claims: Any


def from_claims_with(cls: Any, claims: dict[str, Any], scopes: frozenset[str]) -> Any:
    """AccessToken.from_claims's body, building `cls` positionally."""
    aud = claims["aud"]
    audience = (aud,) if isinstance(aud, str) else tuple(aud)
    org = claims.get("organization_id")
    if org is None:
        for a in audience:
            if a.startswith("urn:logto:organization:"):
                org = a[23:]
                break
    return cls(
        claims["sub"],
        claims["client_id"],
        scopes,
        audience,
        claims["iss"],
        claims["exp"],
        claims["iat"],
        claims["jti"],
        org,
        MappingProxyType(claims),
    )


_NEW = object.__new__
_SET = [
    AccessToken.__dict__[name].__set__
    for name in (
        "sub",
        "client_id",
        "scopes",
        "audience",
        "issuer",
        "expires_at",
        "issued_at",
        "jti",
        "organization_id",
        "claims",
    )
]


def from_claims_descriptors(claims: dict[str, Any], scopes: frozenset[str]) -> AccessToken:
    """The real (frozen) AccessToken, its slots filled through the member descriptors instead
    of the frozen dataclass __init__'s object.__setattr__ calls."""
    aud = claims["aud"]
    audience = (aud,) if isinstance(aud, str) else tuple(aud)
    org = claims.get("organization_id")
    if org is None:
        for a in audience:
            if a.startswith("urn:logto:organization:"):
                org = a[23:]
                break
    token = _NEW(AccessToken)
    s = _SET
    s[0](token, claims["sub"])
    s[1](token, claims["client_id"])
    s[2](token, scopes)
    s[3](token, audience)
    s[4](token, claims["iss"])
    s[5](token, claims["exp"])
    s[6](token, claims["iat"])
    s[7](token, claims["jti"])
    s[8](token, org)
    s[9](token, MappingProxyType(claims))
    return token


def extract_header_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """extract_token's header path without the b64token regex (the verifier's parser is
    stricter, and a cache hit is a string that already passed it)."""
    value = None
    for name, raw in headers:
        if name.lower() == b"authorization":
            if value is not None:
                raise ValueError("duplicate")
            value = raw
    if value is None:
        return None
    scheme, _, credentials = value.decode("latin-1").strip(" \t").partition(" ")
    return credentials.lstrip(" ") if scheme.lower() == "bearer" else None


# -- the step table ------------------------------------------------------------------------------


def steps(
    algorithm: str, rsa_size: int, count: int, passes: int
) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]]]:
    issuer = LocalIssuer(algorithm=algorithm, rsa_key_size=rsa_size)  # type: ignore[arg-type]
    issuer.start()
    try:
        tokens = [issuer.mint() for _ in range(count)]
        verifier = TokenVerifier(issuer.issuer, audience=AUDIENCE, allow_insecure_http=True)
        asyncio.run(verifier.verify(tokens[0]))
        keys = verifier.jwks.keys
        assert keys is not None
        key = keys.find(issuer.signing_kid, algorithm)
        assert key is not None
        parsed = [parse_compact(t) for t in tokens]
        headers = [t.split(".")[0] for t in tokens]
        payloads = [p.payload_segment for p in parsed]
        signatures = [t.split(".")[2] for t in tokens]
        header_bytes = [b64url_decode(h) for h in headers]
        payload_bytes = [b64url_decode(p) for p in payloads]
        claims = [p.claims() for p in parsed]
        scopes = [parse_scope(c.get("scope", "")) for c in claims]
        pairs = list(zip(claims, scopes, strict=True))
        if algorithm.startswith("ES"):
            ecdsa = ec.ECDSA(hashes.SHA384())
            ders = [raw_to_der_signature(p.signature, key.public_key.curve) for p in parsed]
            raw_items = list(zip(ders, parsed, strict=True))

            def raw(item: Any) -> None:
                key.public_key.verify(item[0], item[1].signing_input, ecdsa)
        else:
            pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
            raw_items = [(p.signature, p) for p in parsed]

            def raw(item: Any) -> None:
                key.public_key.verify(item[0], item[1].signing_input, pkcs1, sha256)

        rows: list[tuple[str, float, float]] = []
        alts: list[tuple[str, float, float]] = []

        def row(name: str, fn: Callable[[Any], object], args: Sequence[Any]) -> None:
            rows.append((name, *per_call(fn, args, passes)))

        def alt(
            name: str,
            now: Callable[[Any], object],
            proposed: Callable[[Any], object],
            args: Sequence[Any],
        ) -> None:
            alts.append((name, *per_call_alternating(now, proposed, args, passes)))

        sig_passes = max(3, passes // 3)
        rows.append(("raw signature check (baseline)", *per_call(raw, raw_items, sig_passes)))
        samples = []
        fresh = verifier
        for _ in range(sig_passes):
            fresh = TokenVerifier(issuer.issuer, audience=AUDIENCE, jwks=verifier.jwks)
            samples.append(per_call(lambda t, v=fresh: drive(v.verify(t)), tokens, 1)[0])
        rows.append(("verify(), first-seen (everything)", min(samples), statistics.median(samples)))
        row("verify(), cache hit", lambda t: drive(fresh.verify(t)), tokens)
        row("parse_compact", parse_compact, tokens)
        row("  _COMPACT.fullmatch (whole token)", _COMPACT.fullmatch, tokens)
        row("  b64url_decode(header)", b64url_decode, headers)
        row("  b64url_decode(signature)", b64url_decode, signatures)
        row("  loads_object(header)", loads_object, header_bytes)
        row(
            "  ParsedJWS(...) frozen dataclass",
            lambda p: ParsedJWS(p.header, p.payload_segment, p.signing_input, p.signature),
            parsed,
        )
        row("_check_header", verifier._check_header, [p.header for p in parsed])
        row(
            "jwks.get_key (known kid)",
            lambda p: drive(verifier.jwks.get_key(p[0], p[1])),
            [(issuer.signing_kid, algorithm)] * count,
        )
        row(
            "key.verify (PyJWT glue + signature)",
            lambda p: key.verify(p.signing_input, p.signature),
            parsed,
        )
        row("ParsedJWS.claims (payload)", ParsedJWS.claims, parsed)
        row("  b64url_decode(payload)", b64url_decode, payloads)
        row("  loads_object(payload)", loads_object, payload_bytes)
        row("_check_claims (incl. AccessToken)", verifier._check_claims, claims)
        row("  parse_scope", parse_scope, [c.get("scope", "") for c in claims])
        row("  AccessToken.from_claims", lambda p: AccessToken.from_claims(*p), pairs)
        cache: Any = type(verifier._verified)(count + 1)
        row("LRU cache insert", lambda t: cache.__setitem__(t, (None, 0.0, None)), tokens)
        # alternatives: each against the step it would replace, passes alternating
        alt("b64url_decode(header)", b64url_decode, b64url_decode_direct, headers)
        alt("b64url_decode(signature)", b64url_decode, b64url_decode_direct, signatures)
        alt("b64url_decode(payload)", b64url_decode, b64url_decode_direct, payloads)
        alt("loads_object(header): scan_once first", loads_object, loads_object_scan, header_bytes)
        alt(
            "loads_object(payload): scan_once first", loads_object, loads_object_scan, payload_bytes
        )
        alt(
            "ParsedJWS -> NamedTuple",
            lambda p: ParsedJWS(p.header, p.payload_segment, p.signing_input, p.signature),
            lambda p: ParsedTuple(p.header, p.payload_segment, p.signing_input, p.signature),
            parsed,
        )
        current_from_claims = lambda p: AccessToken.from_claims(*p)  # noqa: E731
        alt(
            "AccessToken: frozen, descriptor stores",
            current_from_claims,
            lambda p: from_claims_descriptors(*p),
            pairs,
        )
        alt(
            "AccessToken: slots, not frozen",
            current_from_claims,
            lambda p: from_claims_with(AccessTokenMutable, *p),
            pairs,
        )
        alt(
            "AccessToken: NamedTuple",
            current_from_claims,
            lambda p: from_claims_with(AccessTokenTuple, *p),
            pairs,
        )
        alt("parse_compact: P2 header memo + P3 + tuple", parse_compact, parse_compact_alt, tokens)
        asyncio.run(verifier.aclose())
        return rows, alts
    finally:
        issuer.stop()


class PrebuiltKey:
    """VerificationKey.verify without PyJWT's per-call glue: the ECDSA/padding and hash objects
    are built once per key; the raw R||S length check and the DER conversion stay."""

    def __init__(self, algorithm: str, public_key: Any) -> None:
        self.public_key = public_key
        digest = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[algorithm[2:]]
        if algorithm.startswith("ES"):
            self.size = (public_key.curve.key_size + 7) // 8
            self.args: tuple[Any, ...] = (ec.ECDSA(digest()),)
        else:
            self.size = 0
            self.args = (padding.PKCS1v15(), digest())

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self.size:
            n = self.size
            if len(signature) != 2 * n:
                return False
            signature = encode_dss_signature(
                int.from_bytes(signature[:n], "big"), int.from_bytes(signature[n:], "big")
            )
        try:
            self.public_key.verify(signature, message, *self.args)
        except InvalidSignature:
            return False
        return True


class PrototypeVerifier(TokenVerifier):
    """TokenVerifier with proposals P1-P3 applied to `_verify_signed`, for timing only. Every
    check still runs, in the same order:

    * P1: each key verifies with ECDSA/padding and hash objects built once (`PrebuiltKey`),
      not through PyJWT's `Algorithm.verify`, which builds them on every call;
    * P2: `_check_header`'s answer (alg, kid) is memoised by the exact header segment, stored
      only once a signature made under that header has verified (at most 32 entries);
    * P3: base64url through `binascii` directly; JSON through the C scanner first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers: dict[str, tuple[str, str | None]] = {}
        self._prebuilt: dict[Any, PrebuiltKey] = {}

    async def _verify_signed(self, token: str) -> AccessToken:
        if len(token) > self.max_token_length:
            raise MalformedToken("token too large")
        if _COMPACT.fullmatch(token) is None:
            raise MalformedToken()
        head, payload, signature = token.split(".")
        checked = self._headers.get(head)
        if checked is None:
            try:
                header = loads_object_scan(b64url_decode_direct(head))
            except ValueError:
                raise MalformedToken("token header is not a JSON object") from None
            checked = self._check_header(header)
        algorithm, kid = checked
        key = await self.jwks.get_key(kid, algorithm)
        keys = self.jwks.keys
        prebuilt = self._prebuilt.get(key)
        if prebuilt is None:
            prebuilt = self._prebuilt[key] = PrebuiltKey(key.algorithm, key.public_key)
        try:
            raw_signature = b64url_decode_direct(signature)
        except ValueError:
            raise MalformedToken() from None
        if not prebuilt.verify(f"{head}.{payload}".encode("ascii"), raw_signature):
            raise InvalidTokenSignature()
        if len(self._headers) < 32:
            self._headers[head] = checked
        try:
            claims = loads_object_scan(b64url_decode_direct(payload))
        except ValueError:
            raise MalformedToken("token claims are not a JSON object") from None
        access_token = self._check_claims(claims)
        if keys is not None:
            self._verified[token] = (access_token, access_token.expires_at + self.leeway, keys)
        return access_token


def pairs(
    algorithm: str, count: int, rounds: int, rsa_size: int = 2048
) -> list[tuple[str, float, float]]:
    """Each candidate and the raw check timed on the same token, one after the other in a
    rotating order: the median ratio to the raw check, and the extra microseconds that ratio
    means at the median raw time. This is how bench/run.py part 1 measures, and the only way to
    see costs that appear only when Python work and OpenSSL calls alternate."""
    original = AccessToken.__dict__["from_claims"]
    issuer = LocalIssuer(algorithm=algorithm, rsa_key_size=rsa_size)  # type: ignore[arg-type]
    issuer.start()
    try:
        tokens = [issuer.mint() for _ in range(count)]
        shared = TokenVerifier(issuer.issuer, audience=AUDIENCE, allow_insecure_http=True)
        asyncio.run(shared.verify(tokens[0]))
        keys = shared.jwks.keys
        assert keys is not None
        key = keys.find(issuer.signing_kid, algorithm)
        assert key is not None
        pk = key.public_key
        parsed = [parse_compact(t) for t in tokens]
        if algorithm.startswith("ES"):
            ecdsa = ec.ECDSA(hashes.SHA384())
            ders = [raw_to_der_signature(p.signature, pk.curve) for p in parsed]

            def raw(i: int) -> None:
                pk.verify(ders[i], parsed[i].signing_input, ecdsa)
        else:
            pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

            def raw(i: int) -> None:
                pk.verify(parsed[i].signature, parsed[i].signing_input, pkcs1, sha256)

        fast = PrebuiltKey(algorithm, pk)
        verifiers: list[TokenVerifier] = []

        def steps(i: int) -> None:
            p = parse_compact(tokens[i])
            shared._check_header(p.header)
            shared._check_claims(p.claims())

        def full(i: int) -> None:
            drive(verifiers[-1].verify(tokens[i]))

        prototypes: list[PrototypeVerifier] = []
        prototypes4: list[PrototypeVerifier] = []

        def prototype(i: int) -> None:
            drive(prototypes[-1].verify(tokens[i]))

        def prototype4(i: int) -> None:
            drive(prototypes4[-1].verify(tokens[i]))

        candidates: list[tuple[str, Callable[[int], object]]] = [
            ("raw check again (control)", lambda i: raw(i)),
            (
                "key.verify: PyJWT Algorithm.verify",
                lambda i: key.verify(parsed[i].signing_input, parsed[i].signature),
            ),
            (
                "P1 alone: prebuilt ECDSA/padding + hash",
                lambda i: fast.verify(parsed[i].signing_input, parsed[i].signature),
            ),
            ("raw check + Python steps (parse, claims)", lambda i: (raw(i), steps(i))),
            (
                "key.verify + Python steps",
                lambda i: (key.verify(parsed[i].signing_input, parsed[i].signature), steps(i)),
            ),
            ("verify(), first seen", full),
            ("PROTOTYPE verify() with P1-P3, first seen", prototype),
            ("PROTOTYPE verify() with P1-P4, first seen", prototype4),
        ]
        clock = time.thread_time
        shuffle = random.Random(7).shuffle
        p4 = staticmethod(from_claims_descriptors)
        sequence: list[tuple[str, Callable[[int], object]]] = [("raw", raw), *candidates]
        ratios: dict[str, list[float]] = {name: [] for name, _ in candidates}
        raw_us: list[float] = []
        for _ in range(rounds):
            verifiers.append(TokenVerifier(issuer.issuer, audience=AUDIENCE, jwks=shared.jwks))
            prototypes.append(PrototypeVerifier(issuer.issuer, audience=AUDIENCE, jwks=shared.jwks))
            prototypes4.append(
                PrototypeVerifier(issuer.issuer, audience=AUDIENCE, jwks=shared.jwks)
            )
            for i in range(count):
                # Every candidate and the raw check run on token i, in a shuffled order: they
                # share the machine's speed of the moment (it drifts by +-20 % on this VM), and
                # each has a random predecessor (what ran just before changes what is cached).
                order = sequence[:]
                shuffle(order)
                took: dict[str, float] = {}
                for name, fn in order:
                    if "P4" in name:
                        # P4: AccessToken filled through its slots' member descriptors (still
                        # frozen); swapped in around this call only, outside the timing.
                        AccessToken.from_claims = p4  # type: ignore[method-assign]
                    t0 = clock()
                    fn(i)
                    t1 = clock()
                    AccessToken.from_claims = original  # type: ignore[method-assign]
                    took[name] = t1 - t0
                if took["raw"] > 0:
                    raw_us.append(took["raw"] * 1e6)
                    for name, _ in candidates:
                        ratios[name].append(took[name] / took["raw"])
        base = statistics.median(raw_us)
        rows = [("raw check (the baseline), median us", base, 1.0)]
        for name, _ in candidates:
            ratio = statistics.median(ratios[name])
            rows.append((name, (ratio - 1) * base, ratio))
        asyncio.run(shared.aclose())
        return rows
    finally:
        AccessToken.from_claims = original  # type: ignore[method-assign]
        issuer.stop()


def guard_steps(
    count: int, passes: int
) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]]]:
    """LogtoGuard.__call__ around a trivial ASGI app, and its pieces, with a cached token."""
    issuer = LocalIssuer()
    issuer.start()
    try:
        token = issuer.mint()
        verifier = TokenVerifier(issuer.issuer, audience=AUDIENCE, allow_insecure_http=True)
        asyncio.run(verifier.verify(token))

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        async def passthrough(scope: Any, receive: Any, send: Any) -> None:
            await app(scope, receive, send)

        guard = LogtoGuard(app, verifier=verifier)
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench"),
            (b"accept", b"*/*"),
            (b"authorization", f"Bearer {token}".encode()),
        ]

        def scope(_: Any) -> dict[str, Any]:
            return {
                "type": "http",
                "method": "GET",
                "path": "/products",
                "root_path": "",
                "query_string": b"",
                "headers": headers,
            }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(_: Any) -> None:
            return None

        scopes = [scope(None) for _ in range(count)]
        rows = [
            (
                "pure-ASGI passthrough + app",
                *per_call(lambda s: drive(passthrough(s, receive, send)), scopes, passes),
            ),
            (
                "LogtoGuard + app (cached token)",
                *per_call(lambda s: drive(guard(s, receive, send)), scopes, passes),
            ),
            (
                "  authenticate()",
                *per_call(lambda s: drive(authenticate(s, verifier)), scopes, passes),
            ),
            (
                "    extract_token()",
                *per_call(lambda s: extract_token(s["headers"], s["query_string"]), scopes, passes),
            ),
            (
                "    verify(), cache hit",
                *per_call(lambda s: drive(verifier.verify(token)), scopes, passes),
            ),
        ]
        alts = [
            (
                "extract_token: no b64token regex (P5)",
                *per_call_alternating(
                    lambda s: extract_token(s["headers"], s["query_string"]),
                    lambda s: extract_header_token(s["headers"]),
                    scopes,
                    passes,
                ),
            )
        ]
        asyncio.run(verifier.aclose())
        return rows, alts
    finally:
        issuer.stop()


def print_rows(
    title: str,
    rows: list[tuple[str, float, float]],
    heads: tuple[str, str] = ("min us", "median us"),
) -> str:
    lines = [title, f"  {'step':46} {heads[0]:>8} {heads[1]:>10}"]
    lines += [f"  {name:46} {lo:8.2f} {mid:10.2f}" for name, lo, mid in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# -- profilers ------------------------------------------------------------------------------------


def run_pyinstrument(count: int) -> None:
    """pyinstrument over first-seen verifications (RS256-2048: the largest overhead share)."""
    from pyinstrument import Profiler

    issuer = LocalIssuer(algorithm="RS256")
    issuer.start()
    try:
        tokens = [issuer.mint() for _ in range(count)]
        shared = TokenVerifier(issuer.issuer, audience=AUDIENCE, allow_insecure_http=True)

        async def main() -> None:
            await shared.verify(tokens[0])
            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
            for _ in range(5):
                verifier = TokenVerifier(issuer.issuer, audience=AUDIENCE, jwks=shared.jwks)
                for token in tokens:
                    await verifier.verify(token)
            profiler.stop()
            (OUT / "verify-first-seen-rs256.txt").write_text(
                profiler.output_text(unicode=False, color=False, show_all=False)
            )
            await shared.aclose()

        asyncio.run(main())
        print(f"pyinstrument: {OUT / 'verify-first-seen-rs256.txt'}")
    finally:
        issuer.stop()


def run_py_spy(seconds: int) -> None:
    """py-spy flame graphs of bench/server.py guard under wrk: reused and fresh tokens."""
    from run import Load, Server, run_wrk  # bench/run.py

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    issuer = LocalIssuer()
    issuer.start()
    try:
        fresh = [issuer.mint() for _ in range(3000)]
        token_file = OUT / "tokens.tmp"
        for name, tokens, cache in (("reused", fresh[:1], 10_000), ("fresh", fresh, 1000)):
            token_file.write_text("\n".join(tokens) + "\n")
            server = Server("guard", issuer.issuer, 0, cache)
            try:
                server.wait_ready()
                load = Load(name, server, str(token_file), len(tokens))
                run_wrk(load, 1, 32, 1)  # warm-up
                spy = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(server.proc.pid),
                        "--duration",
                        str(seconds),
                        "--rate",
                        "200",
                        "--output",
                        str(OUT / f"guard-{name}-token.svg"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                run_wrk(load, seconds + 1, 32, 1)
                spy.wait(timeout=seconds + 30)
            finally:
                server.stop()
        token_file.unlink()
        print(f"py-spy: {OUT}/guard-reused-token.svg, guard-fresh-token.svg")
    finally:
        issuer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyinstrument", action="store_true")
    parser.add_argument("--py-spy", action="store_true")
    parser.add_argument("--passes", type=int, default=15)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    es_steps, es_alts = steps("ES384", 2048, 200, args.passes)
    rs_steps, rs_alts = steps("RS256", 2048, 200, args.passes)
    guard, guard_alts = guard_steps(2000, args.passes)
    now_alt = ("now us", "ALT us")
    texts = [
        print_rows("ES384 token, first seen: each step alone", es_steps),
        print_rows("ES384 token: proposed alternatives, alternating passes", es_alts, now_alt),
        print_rows("RS256 token (RSA-2048), first seen: each step alone", rs_steps),
        print_rows("RS256 token: proposed alternatives, alternating passes", rs_alts, now_alt),
        print_rows("LogtoGuard per request (cached token)", guard),
        print_rows("LogtoGuard: proposed alternative, alternating passes", guard_alts, now_alt),
        print_rows(
            "ES384: each candidate and the raw check on the same token, shuffled order",
            pairs("ES384", 150, 6),
            ("+us", "ratio"),
        ),
        print_rows(
            "RS256 (RSA-2048): each candidate and the raw check on the same token, shuffled order",
            pairs("RS256", 400, 6),
            ("+us", "ratio"),
        ),
        print_rows(
            "RS256 (RSA-4096): each candidate and the raw check on the same token, shuffled order",
            pairs("RS256", 150, 6, rsa_size=4096),
            ("+us", "ratio"),
        ),
    ]
    (OUT / "steps.txt").write_text("\n\n".join(texts) + "\n")
    if args.pyinstrument:
        run_pyinstrument(1000)
    if args.py_spy:
        run_py_spy(8)


if __name__ == "__main__":
    main()
