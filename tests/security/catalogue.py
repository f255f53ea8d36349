"""The attack catalogue: one HTTP request and one exact expected answer per case.

Shared by `test_catalogue.py` (every case through the real ASGI app, over httpx) and
`test_logging.py` (the same requests, checking that no log record repeats a secret).

Tokens are built when a case runs, never at import, so time-relative claims stay right however
long the run is. Every forged token is signed with a REAL private key of the real oidc-provider
process (or with an attacker key the provider never publishes), so a rejection is never the
accident of a fake key set. Rule numbers (R1..R61) refer to /work/shared/validation-rules.md.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import utils
from cryptography.x509.oid import NameOID
from jwt.algorithms import get_default_algorithms
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logto_guard.middleware import LogtoGuard, get_access_token
from logto_guard.scopes import ORGANIZATION_MISMATCH, require_scopes
from logto_guard.verifier import TokenVerifier

if TYPE_CHECKING:
    from oidc_provider import OidcProvider

SHOP = "https://shopping.api"
MGMT = "https://default.logto.app/api"
META = f"{SHOP}/.well-known/oauth-protected-resource"
REALM = "api"

# Order of the P-384 group (SEC 2 / FIPS 186-4 D.1.2.4): ECDSA r and s must lie in [1, n-1].
P384_N = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)

# -- the app under test ------------------------------------------------------------------------


def build_app(verifier: TokenVerifier) -> LogtoGuard:
    """The guide's shopping API behind `LogtoGuard` (pure ASGI, as deployed)."""

    @require_scopes("read:products")
    async def list_products(request: Request) -> JSONResponse:
        token = get_access_token(request)
        return JSONResponse({"sub": token.sub, "scopes": sorted(token.scopes)})

    @require_scopes("write:products")
    async def create_product(request: Request) -> JSONResponse:
        return JSONResponse({"created_by": get_access_token(request).sub})

    @require_scopes("read:products", organization="org_id")
    async def org_products(request: Request) -> JSONResponse:
        return JSONResponse({"org": get_access_token(request).organization_id})

    app = Starlette(
        routes=[
            Route("/products", list_products, methods=["GET"]),
            Route("/products", create_product, methods=["POST"]),
            Route("/orgs/{org_id}/products", org_products, methods=["GET"]),
        ]
    )
    return LogtoGuard(app, verifier=verifier)


# -- expected answers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    error: str | None  # the JSON body's `error`; None for a bare 401 (and for 200)


OK = Expect(200, None)
BARE = Expect(401, None)  # no credentials / another scheme: no error code at all (R5)
INVALID = Expect(401, "invalid_token")
BAD_REQUEST = Expect(400, "invalid_request")
FORBIDDEN = Expect(403, "insufficient_scope")

# Every error_description the library may send: a fixed vocabulary (R51), never input.
DESCRIPTIONS = frozenset(
    {
        "a bearer token is required",
        "malformed request",
        "duplicate authorization header",
        "duplicate access_token parameter",
        "empty bearer credentials",
        "more than one token method used",
        "invalid token",
        "malformed token",
        "token too large",
        "token header is not a JSON object",
        "token claims are not a JSON object",
        "token header uses an unsupported extension",
        "token payload must be base64url encoded (b64)",
        "token kid is invalid",
        "token algorithm not allowed",
        "token algorithm does not match its key",
        "token key is ambiguous",
        "token is not an access token (typ must be at+jwt)",
        "token signed by an unknown key",
        "token signature is invalid",
        "token expired",
        "token not yet valid",
        "token issued in the future",
        "token issuer is not trusted",
        "token audience does not match this API",
        "token claims are invalid",
        "token has no exp claim",
        "token has no iat claim",
        "token scope claim is not a string",
        "token organization_id claim is not a string",
        "token is sender-constrained (cnf), bearer use is not allowed",
        "insufficient scope",
        ORGANIZATION_MISMATCH,
    }
)
_CLAIM_DESCRIPTION = re.compile(
    r"token (sub|client_id|jti|exp|iat|nbf) claim is "
    r"(missing or not a string|not a number|not a finite number)"
)


def known_description(text: object) -> bool:
    return isinstance(text, str) and (
        text in DESCRIPTIONS or _CLAIM_DESCRIPTION.fullmatch(text) is not None
    )


# -- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """One request. `secrets` are the strings no log line may contain (tokens, header values)."""

    headers: tuple[tuple[bytes, bytes], ...] = ()
    query: bytes = b""
    method: str = "GET"
    path: str = "/products"
    secrets: tuple[str, ...] = ()


def bearer(
    token: str,
    *,
    scheme: str = "Bearer",
    sep: str = " ",
    method: str = "GET",
    path: str = "/products",
) -> Req:
    value = f"{scheme}{sep}{token}"
    return Req(
        headers=((b"authorization", value.encode("latin-1")),),
        method=method,
        path=path,
        secrets=secrets_of(token, value),
    )


def raw_auth(*values: bytes, query: bytes = b"", path: str = "/products") -> Req:
    """Authorization header lines given as raw bytes (duplicates, non-ASCII...)."""
    texts = [v.decode("latin-1") for v in values]
    return Req(
        headers=tuple((b"authorization", v) for v in values),
        query=query,
        path=path,
        secrets=tuple(s for t in texts for s in secrets_of(t, t)),
    )


def secrets_of(*texts: str) -> tuple[str, ...]:
    """What must never be logged: each text, and each signature-like segment of it.

    Short strings are skipped: "Bearer" or "a.b" occur in log lines for innocent reasons.
    """
    found: list[str] = []
    for text in texts:
        candidates = [text, *text.split(".")[2:3]]
        found.extend(c for c in candidates if len(c) >= 24)
    return tuple(dict.fromkeys(found))


# -- token forging ------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jdump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def split(token: str) -> tuple[str, str, str]:
    header, payload, signature = token.split(".")
    return header, payload, signature


class AttackerServer:
    """A loopback HTTP server standing for attacker URLs (`jku`, `x5u`); counts every hit.

    The verifier must never fetch anything a token names (R20), so its count stays 0.
    """

    def __init__(self, jwks: dict[str, Any]) -> None:
        body = json.dumps(jwks).encode()
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class Ctx:
    """Everything a case needs: the real provider, its keys, attacker keys, real tokens."""

    provider: OidcProvider
    ec_kid: str  # the provider's signing key (EC P-384 -> ES384)
    rsa_kid: str  # a second published key (RSA -> RS256), not signing
    evil_ec: str  # P-384 key the fixture knows but the provider never publishes
    evil_rsa: str  # RSA key, likewise
    reader: str  # real token from /oidc/token: read:products
    writer: str  # real token: read:products write:products
    mgmt: str  # real token for the Management API (another audience)
    attacker: AttackerServer
    _x5c: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def sign(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        header: Mapping[str, Any] | None = None,
        kid: str | None = None,
        alg: str | None = None,
    ) -> str:
        """The provider's own minting (Logto-shaped defaults; a None value removes a member)."""
        return self.provider.sign(
            dict(claims) if claims else None,
            header=dict(header) if header else None,
            kid=kid,
            alg=alg,
        )

    def header(self, kid: str | None = None, **members: Any) -> dict[str, Any]:
        kid = kid or self.ec_kid
        base: dict[str, Any] = {"alg": self.provider.key_alg(kid), "typ": "at+jwt", "kid": kid}
        base.update(members)
        return {k: v for k, v in base.items() if v is not None}

    def claims(self, **members: Any) -> dict[str, Any]:
        base = self.provider.default_claims()
        base.update(members)
        return {k: v for k, v in base.items() if v is not None}

    def signature(self, kid: str, alg: str, signing_input: bytes) -> bytes:
        """Sign with the private key of `kid` as `alg` (any alg, even a mismatched one)."""
        key = self.provider.private_key(kid)
        if alg.startswith("HS"):
            secret = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return hmac_sign(secret, alg, signing_input)
        signature: bytes = get_default_algorithms()[alg].sign(signing_input, key)
        return signature

    def forge(
        self,
        header: Mapping[str, Any] | bytes,
        payload: Mapping[str, Any] | bytes,
        *,
        kid: str | None = None,
        alg: str | None = None,
        signature: bytes | None = None,
    ) -> str:
        """A compact JWS from any header/payload (dicts or raw bytes), signed with `kid`."""
        h = header if isinstance(header, bytes) else jdump(dict(header))
        p = payload if isinstance(payload, bytes) else jdump(dict(payload))
        signing_input = f"{b64(h)}.{b64(p)}"
        if signature is None:
            kid = kid or self.ec_kid
            signature = self.signature(
                kid, alg or self.provider.key_alg(kid), signing_input.encode()
            )
        return f"{signing_input}.{b64(signature)}"

    def resign(self, header_segment: str, payload_segment: str, kid: str | None = None) -> str:
        """Sign exactly these (possibly non-canonical) segments with a real key."""
        kid = kid or self.ec_kid
        signing_input = f"{header_segment}.{payload_segment}"
        sig = self.signature(kid, self.provider.key_alg(kid), signing_input.encode())
        return f"{signing_input}.{b64(sig)}"

    def x5c(self, kid: str) -> str:
        """A self-signed certificate for the attacker key `kid` (base64 DER, as in `x5c`)."""
        if kid not in self._x5c:
            key = self.provider.private_key(kid)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
            now = datetime.datetime.now(datetime.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .sign(key, hashes.SHA384())
            )
            der = cert.public_bytes(serialization.Encoding.DER)
            self._x5c[kid] = base64.b64encode(der).decode()
        return self._x5c[kid]


def hmac_sign(secret: bytes, alg: str, data: bytes) -> bytes:
    return hmac.new(secret, data, getattr(hashlib, "sha" + alg[2:])).digest()


def public_der(ctx: Ctx, kid: str) -> bytes:
    return (
        ctx.provider.private_key(kid)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def ecdsa_parts(token: str) -> tuple[int, int]:
    sig = unb64(split(token)[2])
    half = len(sig) // 2
    return int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")


def with_ecdsa(token: str, r: int, s: int, size: int = 48) -> str:
    header, payload, _ = split(token)
    return f"{header}.{payload}.{b64(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


def with_signature(token: str, signature: bytes) -> str:
    header, payload, _ = split(token)
    return f"{header}.{payload}.{b64(signature)}"


def flip_bit(token: str, segment: int, byte: int = 10) -> str:
    parts = list(split(token))
    data = bytearray(unb64(parts[segment]))
    data[byte] ^= 0x01
    parts[segment] = b64(bytes(data))
    return ".".join(parts)


def tamper_claims(token: str, **changes: Any) -> str:
    """Change claims of a real token and keep its (now wrong) signature."""
    header, payload, signature = split(token)
    claims = json.loads(unb64(payload))
    claims.update(changes)
    return f"{header}.{b64(jdump(claims))}.{signature}"


def standard_alphabet_signature(ctx: Ctx) -> str:
    """A valid token whose signature, re-encoded with `+` and `/`, really differs."""
    for _ in range(64):
        token = ctx.sign()
        header, payload, signature = split(token)
        std = base64.b64encode(unb64(signature)).rstrip(b"=").decode()
        if std != signature:
            return f"{header}.{payload}.{std}"
    raise AssertionError("no signature with - or _ in 64 tries")  # p ~ 1e-113


def non_canonical_header(ctx: Ctx) -> str:
    """Header segment with non-zero unused trailing bits, signed over exactly that text (R9)."""
    for pad in range(3):
        header = jdump(ctx.header(x="a" * pad))
        if len(header) % 3:  # the base64url text ends in a character with unused bits
            break
    segment = b64(header)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1])
    twin = segment[:-1] + alphabet[last + 1]  # same decoded bytes, a non-zero unused bit
    assert unb64(twin) == unb64(segment)
    return ctx.resign(twin, b64(jdump(ctx.claims())))


def length_1_mod_4(ctx: Ctx) -> str:
    """A header segment of length 1 (mod 4), which no byte string encodes to (R9)."""
    for pad in range(4):
        segment = b64(jdump(ctx.header(x="a" * pad)))
        if len(segment) % 4 == 0:
            return ctx.resign(segment + "A", b64(jdump(ctx.claims())))
    raise AssertionError("unreachable: four paddings cover every length mod 4")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def raw_claims(ctx: Ctx, text: str) -> bytes:
    """Claims as JSON text with `{now}`, `{iss}`, `{aud}` placeholders filled in."""
    now = int(time.time())
    return (
        text.replace("{iss}", ctx.issuer)
        .replace("{aud}", SHOP)
        .replace("{now}", str(now))
        .replace("{exp}", str(now + 3600))
        .encode()
    )


BASE_CLAIMS = (
    '"sub":"shop-reader","client_id":"shop-reader","jti":"j-1","iat":{now},'
    '"scope":"read:products","iss":"{iss}","aud":"{aud}"'
)


@contextmanager
def no_attacker_fetch(ctx: Ctx) -> Iterator[None]:
    before = len(ctx.attacker.hits)
    yield
    assert ctx.attacker.hits[before:] == [], "the verifier fetched a URL named in a token"


# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Ctx], Req]
    expect: Expect
    why: str | None = None  # the exact error_description, where the reason matters
    scope: str | None = None  # the challenge's scope="..." on a 403 (None: none expected)
    xfail: str | None = None  # a library bug, reported with its fix


def case(
    id: str,
    build: Callable[[Ctx], Req],
    expect: Expect,
    why: str | None = None,
    *,
    scope: str | None = None,
    xfail: str | None = None,
) -> Case:
    return Case(id, build, expect, why, scope, xfail)


def tok(make: Callable[[Ctx], str], **kw: Any) -> Callable[[Ctx], Req]:
    """A case that sends one made token in `Authorization: Bearer`."""
    return lambda ctx: bearer(make(ctx), **kw)


def post(make: Callable[[Ctx], str]) -> Callable[[Ctx], Req]:
    return tok(make, method="POST")


def org(make: Callable[[Ctx], str], org_id: str = "org-a") -> Callable[[Ctx], Req]:
    return tok(make, path=f"/orgs/{org_id}/products")


def now() -> int:
    return int(time.time())


SIG_BAD = "token signature is invalid"
ALG_BAD = "token algorithm not allowed"
ALG_KEY = "token algorithm does not match its key"
TYP_BAD = "token is not an access token (typ must be at+jwt)"
MALFORMED = "malformed token"
HEADER_NOT_JSON = "token header is not a JSON object"
CLAIMS_NOT_JSON = "token claims are not a JSON object"
UNKNOWN_KEY = "token signed by an unknown key"
EXTENSION = "token header uses an unsupported extension"
KID_BAD = "token kid is invalid"
ISS_BAD = "token issuer is not trusted"
AUD_BAD = "token audience does not match this API"
EXPIRED = "token expired"
FUTURE = "token not yet valid"
READ = "read:products"
WRITE = "write:products"


def _alg_cases() -> list[Case]:
    cases = [
        case("baseline-real-reader-token", tok(lambda c: c.reader), OK),
        case("baseline-real-writer-token-post", post(lambda c: c.writer), OK),
        case("baseline-rs256-published-rsa-key", tok(lambda c: c.sign(kid=c.rsa_kid)), OK),
        case("baseline-reader-cannot-post", post(lambda c: c.reader), FORBIDDEN, scope=WRITE),
        case("baseline-no-credentials", lambda c: Req(), BARE),
    ]
    for name in ("none", "None", "NONE"):
        cases += [
            case(
                f"alg-{name}-empty-signature",
                tok(header_alg(name, "none")),
                INVALID,
                MALFORMED,  # an empty third segment is not a compact JWS (R8)
            ),
            case(
                f"alg-{name}-with-real-signature",
                tok(header_alg(name, "ES384")),
                INVALID,
                ALG_BAD,
            ),
        ]
    cases += [
        case(
            "alg-none-rsa-kid-with-signature",
            tok(lambda c: c.sign(kid=c.rsa_kid, header={"alg": "none"}, alg="RS256")),
            INVALID,
            ALG_BAD,
        ),
        # HMAC keyed with the public key (CVE-2017-11424, CVE-2022-29217, CVE-2024-33663,
        # CVE-2026-48526): PEM, JWK JSON and DER forms of the published keys.
        case("alg-HS256-ec-public-pem", tok(lambda c: c.sign(alg="HS256")), INVALID, ALG_BAD),
        case("alg-HS384-ec-public-pem", tok(lambda c: c.sign(alg="HS384")), INVALID, ALG_BAD),
        case(
            "alg-HS256-rsa-public-pem",
            tok(lambda c: c.sign(kid=c.rsa_kid, alg="HS256")),
            INVALID,
            ALG_BAD,
        ),
        case(
            "alg-HS256-ec-public-jwk-json",
            tok(lambda c: hs_forge(c, c.ec_kid, "HS256", jwk_secret)),
            INVALID,
            ALG_BAD,
        ),
        case(
            "alg-HS384-rsa-public-jwk-json",
            tok(lambda c: hs_forge(c, c.rsa_kid, "HS384", jwk_secret)),
            INVALID,
            ALG_BAD,
        ),
        case(
            "alg-HS256-rsa-public-der",
            tok(lambda c: hs_forge(c, c.rsa_kid, "HS256", public_der)),
            INVALID,
            ALG_BAD,
        ),
        # The key decides the algorithm, never the header (R15, CVE-2026-48523).
        case(
            "alg-ES384-header-rsa-key",
            tok(lambda c: c.sign(kid=c.rsa_kid, header={"alg": "ES384"}, alg="RS256")),
            INVALID,
            ALG_KEY,
        ),
        case(
            "alg-RS256-header-ec-key",
            tok(lambda c: c.sign(header={"alg": "RS256"}, alg="ES384")),
            INVALID,
            ALG_KEY,
        ),
        case("alg-ES256-header-p384-key", tok(lambda c: c.sign(alg="ES256")), INVALID, ALG_KEY),
        case(
            "alg-ES512-header-p384-key",
            tok(lambda c: c.sign(header={"alg": "ES512"}, alg="ES384")),
            INVALID,
            ALG_KEY,
        ),
        case(
            "alg-PS256-rsa-key-published-for-rs256",
            tok(lambda c: c.sign(kid=c.rsa_kid, alg="PS256")),
            INVALID,
            ALG_KEY,
        ),
        case(
            "alg-RS256-header-pss-signature",
            tok(lambda c: c.sign(kid=c.rsa_kid, header={"alg": "RS256"}, alg="PS256")),
            INVALID,
            SIG_BAD,
        ),
        case(
            "alg-PS256-header-pkcs1-signature",
            tok(lambda c: c.sign(kid=c.rsa_kid, header={"alg": "PS256"}, alg="RS256")),
            INVALID,
            ALG_KEY,
        ),
        case(
            "alg-missing",
            tok(lambda c: c.forge(c.header(alg=None), c.claims(), alg="ES384")),
            INVALID,
            ALG_BAD,
        ),
        case(
            "alg-number",
            tok(lambda c: c.forge(c.header(alg=384), c.claims(), alg="ES384")),
            INVALID,
            ALG_BAD,
        ),
        case(
            "alg-list",
            tok(lambda c: c.forge(c.header(alg=["ES384"]), c.claims(), alg="ES384")),
            INVALID,
            ALG_BAD,
        ),
        case(
            "alg-lowercase-es384",
            tok(lambda c: c.sign(header={"alg": "es384"}, alg="ES384")),
            INVALID,
            ALG_BAD,
        ),
        case(
            "alg-EdDSA-not-allowed",
            tok(lambda c: c.sign(header={"alg": "EdDSA"}, alg="ES384")),
            INVALID,
            ALG_BAD,
        ),
    ]
    return cases


def header_alg(header: str, signed_as: str) -> Callable[[Ctx], str]:
    """A token whose header says `header` but whose signature is made as `signed_as`."""
    return lambda c: c.sign(header={"alg": header}, alg=signed_as)


def evil_jwk(ctx: Ctx) -> dict[str, Any]:
    """The attacker's public key as a JWK, to embed in a header (CVE-2018-0114)."""
    return ctx.provider.public_jwk(ctx.evil_ec)


def jwk_secret(ctx: Ctx, kid: str) -> bytes:
    return json.dumps(ctx.provider.public_jwk(kid)).encode()


def hs_forge(ctx: Ctx, kid: str, alg: str, secret: Callable[[Ctx, str], bytes]) -> str:
    header = jdump(ctx.header(kid, alg=alg))
    payload = jdump(ctx.claims())
    signing_input = f"{b64(header)}.{b64(payload)}".encode()
    return ctx.forge(header, payload, signature=hmac_sign(secret(ctx, kid), alg, signing_input))


def _header_cases() -> list[Case]:
    return [
        # R27: Logto always sends a kid; without one, the single key of the alg may verify.
        case("kid-missing-real-key", tok(lambda c: c.sign(header={"kid": None})), OK),
        case(
            "kid-missing-attacker-key",
            tok(lambda c: c.sign(kid=c.evil_ec, header={"kid": None})),
            INVALID,
            SIG_BAD,
        ),
        case(
            "kid-null",
            tok(lambda c: c.forge(c.header() | {"kid": None}, c.claims())),
            INVALID,
            KID_BAD,
        ),
        case(
            "kid-unknown",
            tok(lambda c: c.sign(header={"kid": "no-such-key"})),
            INVALID,
            UNKNOWN_KEY,
        ),
        case(
            "kid-path-traversal",
            tok(lambda c: c.sign(header={"kid": "../../../../etc/passwd"})),
            INVALID,
            UNKNOWN_KEY,
        ),
        case(
            "kid-sql-injection",
            tok(lambda c: c.sign(header={"kid": "x' UNION SELECT 'secret' --"})),
            INVALID,
            UNKNOWN_KEY,
        ),
        case(
            "kid-url",
            tok(lambda c: c.sign(header={"kid": c.attacker.url + "/kid"})),
            INVALID,
            UNKNOWN_KEY,
        ),
        case(
            "kid-10kb",
            tok(lambda c: c.sign(header={"kid": "k" * 10_240})),
            INVALID,
            "token too large",
        ),
        case("kid-300-chars", tok(lambda c: c.sign(header={"kid": "k" * 300})), INVALID, KID_BAD),
        case("kid-empty-string", tok(lambda c: c.sign(header={"kid": ""})), INVALID, KID_BAD),
        case("kid-integer", tok(lambda c: c.sign(header={"kid": 123})), INVALID, KID_BAD),
        case("kid-list", tok(lambda c: c.sign(header={"kid": [c.ec_kid]})), INVALID, KID_BAD),
        case("kid-object", tok(lambda c: c.sign(header={"kid": {"$ne": ""}})), INVALID, KID_BAD),
        case("kid-bool", tok(lambda c: c.sign(header={"kid": True})), INVALID, KID_BAD),
        case(
            "kid-lone-surrogate",
            tok(lambda c: c.sign(header={"kid": "\ud800"})),
            INVALID,
            HEADER_NOT_JSON,  # strict JSON refuses lone surrogates anywhere (README, Choices)
        ),
        # R20: jku, x5u, jwk, x5c never supply or select the key; nothing named is fetched.
        case(
            "jku-on-real-token-is-ignored",
            tok(lambda c: c.sign(header={"jku": c.attacker.url + "/jwks.json"})),
            OK,
        ),
        case(
            "jku-attacker-jwks-attacker-key",
            tok(lambda c: c.sign(kid=c.evil_ec, header={"jku": c.attacker.url + "/jwks.json"})),
            INVALID,
            UNKNOWN_KEY,
        ),
        case(
            "x5u-on-real-token-is-ignored",
            tok(lambda c: c.sign(header={"x5u": c.attacker.url + "/cert.pem"})),
            OK,
        ),
        case(
            "x5u-attacker-cert-attacker-key",
            tok(lambda c: c.sign(kid=c.evil_ec, header={"x5u": c.attacker.url + "/cert.pem"})),
            INVALID,
            UNKNOWN_KEY,
        ),
        case(  # CVE-2018-0114 (node-jose), CVE-2026-27962 (Authlib)
            "jwk-embedded-attacker-key-no-kid",
            tok(lambda c: c.sign(kid=c.evil_ec, header={"kid": None, "jwk": evil_jwk(c)})),
            INVALID,
            SIG_BAD,
        ),
        case(
            "jwk-embedded-attacker-key-attacker-kid",
            tok(lambda c: c.sign(kid=c.evil_ec, header={"jwk": evil_jwk(c)})),
            INVALID,
            UNKNOWN_KEY,
        ),
        case(
            "jwk-embedded-attacker-key-real-kid",
            tok(lambda c: c.sign(kid=c.evil_ec, header={"kid": c.ec_kid, "jwk": evil_jwk(c)})),
            INVALID,
            SIG_BAD,
        ),
        case(
            "jwk-embedded-attacker-rsa-key-rs256",
            tok(
                lambda c: c.sign(
                    kid=c.evil_rsa,
                    header={"kid": None, "jwk": c.provider.public_jwk(c.evil_rsa)},
                )
            ),
            INVALID,
            SIG_BAD,
        ),
        case(
            "x5c-attacker-cert-no-kid",
            tok(lambda c: c.sign(kid=c.evil_ec, header={"kid": None, "x5c": [c.x5c(c.evil_ec)]})),
            INVALID,
            SIG_BAD,
        ),
        case(
            "x5c-attacker-cert-real-kid",
            tok(
                lambda c: c.sign(kid=c.evil_ec, header={"kid": c.ec_kid, "x5c": [c.x5c(c.evil_ec)]})
            ),
            INVALID,
            SIG_BAD,
        ),
        # R17/R18/R19: crit, b64, cty.
        case(
            "crit-unknown-extension",
            tok(lambda c: c.sign(header={"crit": ["x-evil"], "x-evil": True})),
            INVALID,
            EXTENSION,
        ),
        case(
            "crit-registered-claim-name",
            tok(lambda c: c.sign(header={"crit": ["exp"]})),
            INVALID,
            EXTENSION,
        ),
        case("crit-empty-list", tok(lambda c: c.sign(header={"crit": []})), INVALID, EXTENSION),
        case(
            "b64-false-with-crit",
            tok(lambda c: c.sign(header={"b64": False, "crit": ["b64"]})),
            INVALID,
            EXTENSION,
        ),
        case(
            "b64-false-without-crit",
            tok(lambda c: c.sign(header={"b64": False})),
            INVALID,
            "token payload must be base64url encoded (b64)",
        ),
        case("b64-true-is-harmless", tok(lambda c: c.sign(header={"b64": True})), OK),
        case("cty-nested-jwt", tok(lambda c: c.sign(header={"cty": "JWT"})), INVALID, EXTENSION),
        # R16: typ.
        case("typ-missing", tok(lambda c: c.sign(header={"typ": None})), INVALID, TYP_BAD),
        case("typ-JWT", tok(lambda c: c.sign(header={"typ": "JWT"})), INVALID, TYP_BAD),
        case("typ-empty", tok(lambda c: c.sign(header={"typ": ""})), INVALID, TYP_BAD),
        case("typ-dpop+jwt", tok(lambda c: c.sign(header={"typ": "dpop+jwt"})), INVALID, TYP_BAD),
        case("typ-padded", tok(lambda c: c.sign(header={"typ": " at+jwt"})), INVALID, TYP_BAD),
        case("typ-list", tok(lambda c: c.sign(header={"typ": ["at+jwt"]})), INVALID, TYP_BAD),
        case("typ-AT+JWT-uppercase", tok(lambda c: c.sign(header={"typ": "AT+JWT"})), OK),
        case("typ-At+Jwt-mixed-case", tok(lambda c: c.sign(header={"typ": "At+Jwt"})), OK),
        case(
            "typ-application/at+jwt",
            tok(lambda c: c.sign(header={"typ": "application/at+jwt"})),
            OK,
        ),
        case(
            "typ-Application/AT+JWT",
            tok(lambda c: c.sign(header={"typ": "Application/AT+JWT"})),
            OK,
        ),
        # R22: unknown header members are ignored.
        case("header-unknown-member", tok(lambda c: c.sign(header={"x-foo": "bar"})), OK),
    ]


def _signature_cases() -> list[Case]:
    return [
        case("sig-stripped", tok(lambda c: c.sign().rsplit(".", 1)[0]), INVALID, MALFORMED),
        case("sig-empty", tok(lambda c: c.sign().rsplit(".", 1)[0] + "."), INVALID, MALFORMED),
        # CVE-2022-21449 ("psychic signatures") and out-of-range values (R32).
        case("sig-ecdsa-r0-s0", tok(lambda c: with_ecdsa(c.sign(), 0, 0)), INVALID, SIG_BAD),
        case(
            "sig-ecdsa-r0-valid-s",
            tok(lambda c: with_ecdsa(t := c.sign(), 0, ecdsa_parts(t)[1])),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-ecdsa-r-eq-s-eq-n",
            tok(lambda c: with_ecdsa(c.sign(), P384_N, P384_N)),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-ecdsa-r-plus-n-overflows",
            tok(
                lambda c: with_ecdsa(
                    t := c.sign(), ecdsa_parts(t)[0] + P384_N, ecdsa_parts(t)[1], 49
                )
            ),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-ecdsa-r-ge-n",
            tok(lambda c: with_ecdsa(t := c.sign(), P384_N + 1, ecdsa_parts(t)[1])),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-ecdsa-s-ge-n",
            tok(lambda c: with_ecdsa(t := c.sign(), ecdsa_parts(t)[0], P384_N)),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-ecdsa-all-ones",
            tok(lambda c: with_signature(c.sign(), b"\xff" * 96)),
            INVALID,
            SIG_BAD,
        ),
        # R33: the high-S twin (r, n - s) is a valid ECDSA signature; it must not be refused.
        case(
            "sig-ecdsa-high-s-twin-is-valid",
            tok(lambda c: with_ecdsa(t := c.sign(), ecdsa_parts(t)[0], P384_N - ecdsa_parts(t)[1])),
            OK,
        ),
        case(
            "sig-ecdsa-der-encoded",
            tok(
                lambda c: with_signature(t := c.sign(), utils.encode_dss_signature(*ecdsa_parts(t)))
            ),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-ecdsa-one-byte-short",
            tok(lambda c: with_signature(t := c.sign(), unb64(split(t)[2])[:-1])),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-ecdsa-one-byte-long",
            tok(lambda c: with_signature(t := c.sign(), unb64(split(t)[2]) + b"\x00")),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-ecdsa-es256-length",
            tok(lambda c: with_signature(t := c.sign(), unb64(split(t)[2])[:64])),
            INVALID,
            SIG_BAD,
        ),
        case("sig-ecdsa-bit-flipped", tok(lambda c: flip_bit(c.sign(), 2)), INVALID, SIG_BAD),
        case("sig-real-token-bit-flipped", tok(lambda c: flip_bit(c.reader, 2)), INVALID, SIG_BAD),
        case(
            "sig-rsa-truncated",
            tok(lambda c: with_signature(t := c.sign(kid=c.rsa_kid), unb64(split(t)[2])[:-1])),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-rsa-extra-byte",
            tok(lambda c: with_signature(t := c.sign(kid=c.rsa_kid), b"\x00" + unb64(split(t)[2]))),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-rsa-zero",
            tok(lambda c: with_signature(c.sign(kid=c.rsa_kid), b"\x00" * 256)),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-rsa-bit-flipped",
            tok(lambda c: flip_bit(c.sign(kid=c.rsa_kid), 2)),
            INVALID,
            SIG_BAD,
        ),
        # A valid signature by another issuer's key that claims the real kid.
        case(
            "sig-other-key-same-kid-ec",
            tok(lambda c: c.sign(kid=c.evil_ec, header={"kid": c.ec_kid})),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-other-key-same-kid-rsa",
            tok(lambda c: c.sign(kid=c.evil_rsa, header={"kid": c.rsa_kid})),
            INVALID,
            SIG_BAD,
        ),
        case(
            "sig-from-another-real-token",
            tok(lambda c: f"{'.'.join(split(c.sign())[:2])}.{split(c.reader)[2]}"),
            INVALID,
            SIG_BAD,
        ),
        # A forged scope is refused for its signature: a 401, never a 403 (R23).
        case(
            "payload-tampered-scope",
            post(lambda c: tamper_claims(c.reader, scope="read:products write:products")),
            INVALID,
            SIG_BAD,
        ),
        case(
            "payload-tampered-aud",
            tok(lambda c: tamper_claims(c.mgmt, aud=SHOP, scope="read:products")),
            INVALID,
            SIG_BAD,
        ),
        case(
            "header-tampered-kid-to-rsa",
            tok(lambda c: ".".join([b64(jdump(c.header(c.rsa_kid))), *split(c.reader)[1:]])),
            INVALID,
            SIG_BAD,
        ),
    ]


def _structure_cases() -> list[Case]:
    return [
        case("shape-1-segment-opaque", tok(lambda c: "a" * 43), INVALID, MALFORMED),
        case("shape-2-segments", tok(lambda c: ".".join(split(c.reader)[:2])), INVALID, MALFORMED),
        case("shape-4-segments", tok(lambda c: c.reader + ".c2ln"), INVALID, MALFORMED),
        case(
            "shape-5-segments-jwe",
            tok(
                lambda c: ".".join(
                    [b64(jdump({"alg": "RSA-OAEP", "enc": "A256GCM", "zip": "DEF"}))]
                    + [b64(b"x" * 16)] * 4
                )
            ),
            INVALID,
            MALFORMED,
        ),
        case(
            "shape-json-serialization",
            tok(
                lambda c: json.dumps(
                    {"payload": split(c.reader)[1], "protected": split(c.reader)[0]}
                ).replace(" ", "")
            ),
            INVALID,
            MALFORMED,
        ),
        case("shape-empty-segments", tok(lambda c: ".."), INVALID, MALFORMED),
        case(
            "b64-standard-alphabet",
            tok(standard_alphabet_signature),
            INVALID,
            MALFORMED,
        ),
        case(
            "b64-padding-on-signature",
            tok(lambda c: c.sign(kid=c.rsa_kid) + "=="),
            INVALID,
            MALFORMED,
        ),
        case(
            "b64-padding-inside",
            tok(lambda c: (t := split(c.reader))[0] + "=." + t[1] + "." + t[2]),
            INVALID,
            MALFORMED,
        ),
        case(
            "b64-space-inside",
            tok(lambda c: c.reader[:20] + " " + c.reader[20:]),
            INVALID,
            MALFORMED,
        ),
        case(
            "b64-tab-inside",
            tok(lambda c: c.reader[:20] + "\t" + c.reader[20:]),
            INVALID,
            MALFORMED,
        ),
        case(
            "b64-junk-after-signature",
            tok(lambda c: c.reader + "!!"),
            INVALID,
            MALFORMED,
        ),
        case("b64-non-canonical-trailing-bits", tok(non_canonical_header), INVALID, MALFORMED),
        case(
            "b64-segment-length-1-mod-4",
            tok(length_1_mod_4),
            INVALID,
            MALFORMED,
        ),
        # R10: a 1 MiB token reaches us through ASGITransport; refused before decoding.
        case(
            "size-1mib-token",
            tok(lambda c: c.sign({"pad": "x" * (1 << 20)})),
            INVALID,
            "token too large",
        ),
        # R12: nesting deeper than the parser's recursion limit, inside the 8 KiB cap.
        case(
            "json-deeply-nested-header",
            tok(
                lambda c: c.forge(
                    f'{{"alg":"ES384","typ":"at+jwt","x":{nested(2500)}}}'.encode(), c.claims()
                )
            ),
            INVALID,
            HEADER_NOT_JSON,
        ),
        case(
            "json-deeply-nested-payload-signed",
            tok(
                lambda c: c.forge(
                    c.header(), raw_claims(c, f'{{{BASE_CLAIMS},"exp":{{exp}},"x":{nested(2500)}}}')
                )
            ),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        # R13: duplicate names (PyJWT takes the last one).
        case(
            "json-duplicate-alg-in-header",
            tok(
                lambda c: c.forge(
                    f'{{"alg":"none","alg":"ES384","typ":"at+jwt","kid":"{c.ec_kid}"}}'.encode(),
                    c.claims(),
                )
            ),
            INVALID,
            HEADER_NOT_JSON,
        ),
        case(
            "json-duplicate-kid-in-header",
            tok(
                lambda c: c.forge(
                    f'{{"alg":"ES384","typ":"at+jwt","kid":"x","kid":"{c.ec_kid}"}}'.encode(),
                    c.claims(),
                )
            ),
            INVALID,
            HEADER_NOT_JSON,
        ),
        case(
            "json-duplicate-iss-in-payload-signed",
            tok(
                lambda c: c.forge(
                    c.header(),
                    raw_claims(c, f'{{"iss":"https://evil.example",{BASE_CLAIMS},"exp":{{exp}}}}'),
                )
            ),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "json-duplicate-scope-in-payload-signed",
            post(
                lambda c: c.forge(
                    c.header(),
                    raw_claims(
                        c, f'{{{BASE_CLAIMS},"exp":{{exp}},"scope":"read:products write:products"}}'
                    ),
                )
            ),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        # R14: not JSON objects.
        case(
            "json-header-is-array",
            tok(lambda c: c.forge(jdump([c.header()]), c.claims())),
            INVALID,
            HEADER_NOT_JSON,
        ),
        case(
            "json-payload-is-array-signed",
            tok(lambda c: c.forge(c.header(), jdump([c.claims()]))),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "json-payload-is-string-signed",
            tok(lambda c: c.forge(c.header(), jdump("hello"))),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "json-payload-is-number-signed",
            tok(lambda c: c.forge(c.header(), b"4")),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "json-payload-is-null-signed",
            tok(lambda c: c.forge(c.header(), b"null")),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        # R11: strict UTF-8.
        case(
            "utf8-invalid-bytes-in-payload-signed",
            tok(
                lambda c: c.forge(
                    c.header(),
                    raw_claims(c, f'{{{BASE_CLAIMS},"exp":{{exp}},"x":"?"}}').replace(
                        b'"?"', b'"\xff"'
                    ),
                )
            ),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "utf8-overlong-slash-in-payload-signed",
            tok(
                lambda c: c.forge(
                    c.header(),
                    raw_claims(c, f'{{{BASE_CLAIMS},"exp":{{exp}},"x":"?"}}').replace(
                        b'"?"', b'"\xc0\xaf"'
                    ),
                )
            ),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "utf16-payload-signed",
            tok(lambda c: c.forge(c.header(), json.dumps(c.claims()).encode("utf-16"))),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "utf8-bom-payload-signed",
            tok(lambda c: c.forge(c.header(), b"\xef\xbb\xbf" + jdump(c.claims()))),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "utf16-header",
            tok(lambda c: c.forge(json.dumps(c.header()).encode("utf-16"), c.claims())),
            INVALID,
            HEADER_NOT_JSON,
        ),
        # R12: NaN/Infinity, big integers, trailing data.
        case(
            "json-nan-exp-signed",
            tok(lambda c: c.forge(c.header(), raw_claims(c, f'{{{BASE_CLAIMS},"exp":NaN}}'))),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "json-infinity-exp-signed",
            tok(lambda c: c.forge(c.header(), raw_claims(c, f'{{{BASE_CLAIMS},"exp":Infinity}}'))),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "json-5000-digit-integer-signed",
            tok(
                lambda c: c.forge(
                    c.header(), raw_claims(c, f'{{{BASE_CLAIMS},"exp":{{exp}},"x":{"9" * 5000}}}')
                )
            ),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "json-trailing-data-signed",
            tok(lambda c: c.forge(c.header(), jdump(c.claims()) + b" {}")),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "json-trailing-data-header",
            tok(lambda c: c.forge(jdump(c.header()) + b"x", c.claims())),
            INVALID,
            HEADER_NOT_JSON,
        ),
    ]


def _claim_cases() -> list[Case]:
    return [
        # R37/R38: exp.
        case(
            "exp-missing", tok(lambda c: c.sign({"exp": None})), INVALID, "token has no exp claim"
        ),
        case(
            "exp-numeric-string",
            tok(lambda c: c.sign({"exp": str(now() + 3600)})),
            INVALID,
            "token exp claim is not a number",
        ),
        case("exp-float-is-valid", tok(lambda c: c.sign({"exp": now() + 3600.5})), OK),
        case(
            "exp-boolean",
            tok(lambda c: c.sign({"exp": True})),
            INVALID,
            "token exp claim is not a number",
        ),
        case(
            "exp-null",
            tok(lambda c: c.forge(c.header(), raw_claims(c, f'{{{BASE_CLAIMS},"exp":null}}'))),
            INVALID,
            "token exp claim is not a number",
        ),
        case(
            "exp-list",
            tok(lambda c: c.sign({"exp": [now() + 3600]})),
            INVALID,
            "token exp claim is not a number",
        ),
        case(
            "exp-1e400-overflows-to-infinity",
            tok(lambda c: c.forge(c.header(), raw_claims(c, f'{{{BASE_CLAIMS},"exp":1e400}}'))),
            INVALID,
            CLAIMS_NOT_JSON,  # a number beyond float range is refused by the strict JSON layer
        ),
        # Values a route could not write back as JSON (a 500 in JSONResponse): refused.
        case(
            "claim-1e400-signed",
            tok(
                lambda c: c.forge(
                    c.header(), raw_claims(c, f'{{{BASE_CLAIMS},"exp":{{exp}},"n":1e400}}')
                )
            ),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "claim-lone-surrogate-signed",
            tok(lambda c: c.sign({"name": "\ud800"})),
            INVALID,
            CLAIMS_NOT_JSON,
        ),
        case(
            "exp-past",
            tok(lambda c: c.sign({"iat": now() - 7200, "exp": now() - 3600})),
            INVALID,
            EXPIRED,
        ),
        case(
            "exp-past-beyond-leeway",
            tok(lambda c: c.sign({"iat": now() - 3600, "exp": now() - 61})),
            INVALID,
            EXPIRED,
        ),
        case(
            "exp-past-within-leeway",
            tok(lambda c: c.sign({"iat": now() - 3600, "exp": now() - 30})),
            OK,
        ),
        case(
            "exp-integer-beyond-float-range",
            tok(
                lambda c: c.forge(
                    c.header(), raw_claims(c, f'{{{BASE_CLAIMS},"exp":1{"0" * 400}}}')
                )
            ),
            INVALID,
            "token exp claim is not a finite number",
        ),
        case(
            "nbf-integer-beyond-float-range",
            tok(lambda c: c.sign({"nbf": 10**400})),
            INVALID,
            "token nbf claim is not a finite number",
        ),
        case("exp-zero", tok(lambda c: c.sign({"exp": 0})), INVALID, EXPIRED),
        case("exp-negative", tok(lambda c: c.sign({"exp": -1})), INVALID, EXPIRED),
        # A finite JSON number far in the future is a valid NumericDate (R38); Logto's tokens
        # live an hour, but the spec sets no maximum, so 10**20 is accepted.
        case("exp-10e20-is-valid", tok(lambda c: c.sign({"exp": 10**20})), OK),
        # R39/R40: nbf and iat from the future, with and without leeway (60 s).
        case("nbf-future", tok(lambda c: c.sign({"nbf": now() + 3600})), INVALID, FUTURE),
        case("nbf-future-within-leeway", tok(lambda c: c.sign({"nbf": now() + 30})), OK),
        case(
            "nbf-string",
            tok(lambda c: c.sign({"nbf": str(now())})),
            INVALID,
            "token nbf claim is not a number",
        ),
        case(
            "iat-future",
            tok(lambda c: c.sign({"iat": now() + 3600, "exp": now() + 7200})),
            INVALID,
            "token issued in the future",
        ),
        case(
            "iat-future-within-leeway",
            tok(lambda c: c.sign({"iat": now() + 30, "exp": now() + 3600})),
            OK,
        ),
        case(
            "iat-missing", tok(lambda c: c.sign({"iat": None})), INVALID, "token has no iat claim"
        ),
        case(
            "iat-string",
            tok(lambda c: c.sign({"iat": str(now())})),
            INVALID,
            "token iat claim is not a number",
        ),
        # R35: iss, exact code-point compare.
        case(
            "iss-trailing-slash", tok(lambda c: c.sign({"iss": c.issuer + "/"})), INVALID, ISS_BAD
        ),
        case(
            "iss-different-case",
            tok(lambda c: c.sign({"iss": c.issuer.replace("/oidc", "/OIDC")})),
            INVALID,
            ISS_BAD,
        ),
        case(
            "iss-other-tenant",
            tok(lambda c: c.sign({"iss": "https://other-tenant.logto.app/oidc"})),
            INVALID,
            ISS_BAD,
        ),
        case("iss-missing", tok(lambda c: c.sign({"iss": None})), INVALID, ISS_BAD),
        case("iss-list", tok(lambda c: c.sign({"iss": [c.issuer]})), INVALID, ISS_BAD),
        case(
            "iss-prefix-substring",
            tok(lambda c: c.sign({"iss": c.issuer[:-1]})),
            INVALID,
            ISS_BAD,
        ),
        # R36: aud.
        case("aud-missing", tok(lambda c: c.sign({"aud": None})), INVALID, AUD_BAD),
        case(
            "aud-other-api", tok(lambda c: c.sign({"aud": "https://other.api"})), INVALID, AUD_BAD
        ),
        case(
            "aud-list-containing-ours",
            tok(lambda c: c.sign({"aud": ["https://other.api", SHOP]})),
            OK,
        ),
        case("aud-empty-list", tok(lambda c: c.sign({"aud": []})), INVALID, AUD_BAD),
        case("aud-empty-string", tok(lambda c: c.sign({"aud": ""})), INVALID, AUD_BAD),
        case("aud-trailing-slash", tok(lambda c: c.sign({"aud": SHOP + "/"})), INVALID, AUD_BAD),
        case("aud-uppercase", tok(lambda c: c.sign({"aud": SHOP.upper()})), INVALID, AUD_BAD),
        case(
            "aud-list-with-non-string", tok(lambda c: c.sign({"aud": [SHOP, 7]})), INVALID, AUD_BAD
        ),
        case(
            "aud-organization-urn",
            tok(lambda c: c.sign({"aud": "urn:logto:organization:org-a"})),
            INVALID,
            AUD_BAD,
        ),
        case("aud-the-issuer", tok(lambda c: c.sign({"aud": c.issuer})), INVALID, AUD_BAD),
        case("aud-real-management-api-token", tok(lambda c: c.mgmt), INVALID, AUD_BAD),
        # R44-R46: scope, split on U+0020 only, exact and case-sensitive.
        case(
            "scope-as-list",
            tok(lambda c: c.sign({"scope": ["read:products"]})),
            INVALID,
            "token scope claim is not a string",
        ),
        case(
            "scope-as-number",
            tok(lambda c: c.sign({"scope": 1})),
            INVALID,
            "token scope claim is not a string",
        ),
        case(
            "scope-repeated-spaces",
            post(lambda c: c.sign({"scope": "  read:products   write:products "})),
            OK,
        ),
        case(
            "scope-different-case",
            tok(lambda c: c.sign({"scope": "READ:PRODUCTS"})),
            FORBIDDEN,
            scope=READ,
        ),
        case(
            "scope-prefix", tok(lambda c: c.sign({"scope": "read:product"})), FORBIDDEN, scope=READ
        ),
        case(
            "scope-superstring",
            tok(lambda c: c.sign({"scope": "read:products_all"})),
            FORBIDDEN,
            scope=READ,
        ),
        case("scope-absent", tok(lambda c: c.sign({"scope": None})), FORBIDDEN, scope=READ),
        case("scope-empty-string", tok(lambda c: c.sign({"scope": ""})), FORBIDDEN, scope=READ),
        case(
            "scope-tab-is-not-a-delimiter",
            post(lambda c: c.sign({"scope": "read:products\twrite:products"})),
            FORBIDDEN,
            scope=WRITE,
        ),
        case(
            "scope-comma-is-not-a-delimiter",
            tok(lambda c: c.sign({"scope": "write:products,read:products"})),
            FORBIDDEN,
            scope=READ,
        ),
        case(
            "scope-nbsp-is-not-a-delimiter",
            tok(lambda c: c.sign({"scope": "write:products\u00a0read:products"})),
            FORBIDDEN,
            scope=READ,
        ),
        case(
            "scope-write-does-not-imply-read",
            tok(lambda c: c.sign({"scope": "write:products"})),
            FORBIDDEN,
            scope=READ,
        ),
        # R41: required string claims.
        case(
            "sub-missing", tok(lambda c: c.sign({"sub": None, "client_id": "shop-reader"})), INVALID
        ),
        case(
            "sub-integer", tok(lambda c: c.sign({"sub": 42, "client_id": "shop-reader"})), INVALID
        ),
        case(
            "client_id-missing",
            tok(lambda c: c.sign({"client_id": None, "sub": "shop-reader"})),
            INVALID,
        ),
        case("jti-missing", tok(lambda c: c.sign({"jti": None})), INVALID),
        # R55: sender-constrained tokens are not bearer tokens.
        case(
            "cnf-dpop-bound",
            tok(lambda c: c.sign({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})),
            INVALID,
            "token is sender-constrained (cnf), bearer use is not allowed",
        ),
        # R16: a Logto ID token shares issuer and keys, but has no at+jwt typ.
        case(
            "id-token-client-audience",
            tok(
                lambda c: c.sign(
                    {"aud": "shop-reader", "scope": None, "nonce": "n-1", "at_hash": "x"},
                    header={"typ": None},
                )
            ),
            INVALID,
            TYP_BAD,
        ),
        case(
            "id-token-typ-JWT-our-audience",
            tok(lambda c: c.sign({"nonce": "n-1"}, header={"typ": "JWT"})),
            INVALID,
            TYP_BAD,
        ),
        # Organization route.
        case(
            "org-token-for-this-org",
            org(lambda c: c.sign({"organization_id": "org-a"})),
            OK,
        ),
        case(
            "org-token-for-another-org",
            org(lambda c: c.sign({"organization_id": "org-b"})),
            FORBIDDEN,
            ORGANIZATION_MISMATCH,
        ),
        case(
            "org-token-without-organization",
            org(lambda c: c.reader),
            FORBIDDEN,
            ORGANIZATION_MISMATCH,
        ),
        case(
            "org-token-without-scope",
            org(lambda c: c.sign({"organization_id": "org-a", "scope": ""})),
            FORBIDDEN,
            scope=READ,
        ),
        case(
            "org-id-not-a-string",
            org(lambda c: c.sign({"organization_id": 1})),
            INVALID,
            "token organization_id claim is not a string",
        ),
        case(
            "org-audience-instead-of-api",
            org(lambda c: c.sign({"aud": "urn:logto:organization:org-a"})),
            INVALID,
            AUD_BAD,
        ),
    ]


def _request_cases() -> list[Case]:
    return [
        # R1: the scheme is case-insensitive; one or more spaces.
        case("req-lowercase-bearer", tok(lambda c: c.reader, scheme="bearer"), OK),
        case("req-uppercase-BEARER", tok(lambda c: c.reader, scheme="BEARER"), OK),
        case("req-extra-spaces", tok(lambda c: c.reader, sep="    "), OK),
        case("req-trailing-whitespace", tok(lambda c: c.reader + "  "), OK),
        # R5: no credentials or another scheme: a bare 401.
        case("req-no-authorization", lambda c: Req(), BARE),
        case(
            "req-basic-scheme",
            lambda c: raw_auth(b"Basic " + base64.b64encode(b"shop-reader:reader-secret")),
            BARE,
        ),
        case("req-dpop-scheme", tok(lambda c: c.reader, scheme="DPoP"), BARE),
        case("req-token-without-scheme", lambda c: raw_auth(c.reader.encode()), BARE),
        case("req-bearerx-scheme", tok(lambda c: c.reader, scheme="Bearerx"), BARE),
        # R4: two Authorization field lines.
        case(
            "req-two-authorization-headers",
            lambda c: raw_auth(f"Bearer {c.reader}".encode(), f"Bearer {c.reader}".encode()),
            BAD_REQUEST,
            "duplicate authorization header",
        ),
        case(
            "req-two-authorization-headers-basic-first",
            lambda c: raw_auth(b"Basic eDp5", f"Bearer {c.reader}".encode()),
            BAD_REQUEST,
            "duplicate authorization header",
        ),
        # R2/R3: query tokens are off; header + query is always 400.
        case(
            "req-query-token-only",
            lambda c: Req(query=b"access_token=" + c.reader.encode(), secrets=(c.reader,)),
            BARE,
        ),
        case(
            "req-header-and-query-token",
            lambda c: raw_auth(
                f"Bearer {c.reader}".encode(), query=b"access_token=" + c.reader.encode()
            ),
            BAD_REQUEST,
            "more than one token method used",
        ),
        case(
            "req-header-and-percent-encoded-query-name",
            lambda c: raw_auth(
                f"Bearer {c.reader}".encode(), query=b"access%5Ftoken=" + c.reader.encode()
            ),
            BAD_REQUEST,
            "more than one token method used",
        ),
        # R6/R7.
        case(
            "req-empty-bearer",
            lambda c: raw_auth(b"Bearer "),
            BAD_REQUEST,
            "empty bearer credentials",
        ),
        case(
            "req-bearer-only",
            lambda c: raw_auth(b"Bearer"),
            BAD_REQUEST,
            "empty bearer credentials",
        ),
        case(
            "req-bearer-spaces-only",
            lambda c: raw_auth(b"Bearer      "),
            BAD_REQUEST,
            "empty bearer credentials",
        ),
        case(
            "req-64kib-header",
            tok(lambda c: "a" * 65_536),
            INVALID,
            "token too large",
        ),
        case(
            "req-64kib-jwt-shaped-header",
            tok(lambda c: c.reader + "A" * 65_536),
            INVALID,
            "token too large",
        ),
        case(
            "req-non-ascii-bytes",
            lambda c: raw_auth(
                b"Bearer " + c.reader[:30].encode() + "é".encode() + c.reader[30:].encode()
            ),
            INVALID,
            MALFORMED,
        ),
        case(
            "req-latin1-byte",
            lambda c: raw_auth(b"Bearer " + c.reader.encode() + b"\xe9"),
            INVALID,
            MALFORMED,
        ),
        case(
            "req-comma-in-token",
            tok(lambda c: c.reader[:40] + "," + c.reader[40:]),
            INVALID,
            MALFORMED,
        ),
        case("req-quoted-token", tok(lambda c: f'"{c.reader}"'), INVALID, MALFORMED),
        case("req-two-tokens", tok(lambda c: f"{c.reader} {c.writer}"), INVALID, MALFORMED),
        case("req-b64token-not-a-jwt", tok(lambda c: "abc~def+ghi/jkl=="), INVALID, MALFORMED),
    ]


CASES: Sequence[Case] = (
    _alg_cases()
    + _header_cases()
    + _signature_cases()
    + _structure_cases()
    + _claim_cases()
    + _request_cases()
)

assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"


# -- checking an answer -------------------------------------------------------------------------


def expected_challenge(case: Case, description: str | None) -> str:
    params = [f'realm="{REALM}"']
    if case.expect.error is not None:
        params.append(f'error="{case.expect.error}"')
        params.append(f'error_description="{description}"')
    if case.scope is not None:
        params.append(f'scope="{case.scope}"')
    params.append(f'resource_metadata="{META}"')
    return "Bearer " + ", ".join(params)


def check_answer(
    case: Case, status: int, headers: Sequence[tuple[str, str]], body: bytes, req: Req
) -> None:
    """Assert the exact RFC 6750 answer a case expects."""
    challenges = [v for k, v in headers if k.lower() == "www-authenticate"]
    if case.expect.status == 200:
        assert status == 200, (status, body[:300])
        assert challenges == []
        return
    assert status == case.expect.status, (status, body[:300])
    content_types = [v for k, v in headers if k.lower() == "content-type"]
    assert content_types == ["application/json"]
    answer = json.loads(body)
    assert set(answer) == {"error", "error_description"}
    assert answer["error"] == case.expect.error
    description = answer["error_description"]
    assert known_description(description), description
    if case.why is not None:
        assert description == case.why
    assert challenges == [expected_challenge(case, description)]
    for secret in req.secrets:
        assert secret not in challenges[0]
        assert secret.encode("latin-1", "replace") not in body
