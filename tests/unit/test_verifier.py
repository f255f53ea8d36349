"""RFC 9068 §4 checks of the verifier, one by one (keys served in-process)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from logto_guard import errors
from logto_guard.errors import ConfigurationError
from logto_guard.jwks_cache import JWKSCache
from logto_guard.verifier import TokenVerifier

from .fake_issuer import API, ISSUER, FakeClock, FakeIssuer, sign_raw


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def verifier(issuer: FakeIssuer) -> TokenVerifier:
    jwks = JWKSCache(ISSUER, http_client=issuer.client(), cooldown=0)
    return TokenVerifier(ISSUER, audience=API, jwks=jwks)


async def test_valid_token_gives_claims(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    token = issuer.sign({"scope": "read:products write:products", "custom": {"x": 1}})
    at = await verifier.verify(token)
    assert at.sub == at.client_id == "m2m-app"
    assert at.is_m2m
    assert at.scopes == {"read:products", "write:products"}
    assert at.audience == (API,)
    assert at.issuer == ISSUER
    assert at.claims["custom"] == {"x": 1}
    assert at.organization_id is None
    with pytest.raises(TypeError):
        at.claims["sub"] = "x"  # type: ignore[index]


async def test_rs256_token(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    kid = issuer.add_key("RSA")
    at = await verifier.verify(issuer.sign(kid=kid))
    assert at.client_id == "m2m-app"


class Rel(float):
    """A time relative to the moment the token is signed (parametrize runs at import time)."""


def resolve(claims: dict[str, Any]) -> dict[str, Any]:
    now = time.time()
    return {k: int(now + v) if isinstance(v, Rel) else v for k, v in claims.items()}


NOW = int(time.time())


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"aud": "https://other.api"}, errors.InvalidAudience),
        ({"aud": ["https://other.api"]}, errors.InvalidAudience),
        ({"aud": []}, errors.InvalidAudience),
        ({"aud": None}, errors.InvalidAudience),
        ({"aud": "urn:logto:organization:o1"}, errors.InvalidAudience),
        ({"iss": ISSUER + "/"}, errors.InvalidIssuer),
        ({"iss": ISSUER.upper()}, errors.InvalidIssuer),
        ({"iss": "https://other.logto.app/oidc"}, errors.InvalidIssuer),
        ({"iss": None}, errors.InvalidIssuer),
        ({"exp": None}, errors.InvalidClaim),
        ({"exp": str(int(time.time()) + 86400)}, errors.InvalidClaim),
        ({"exp": True}, errors.InvalidClaim),
        ({"exp": Rel(-61)}, errors.ExpiredToken),
        ({"iat": None}, errors.InvalidClaim),
        ({"iat": Rel(120)}, errors.ImmatureToken),
        ({"nbf": Rel(120)}, errors.ImmatureToken),
        ({"sub": None}, errors.InvalidClaim),
        ({"sub": 42}, errors.InvalidClaim),
        ({"client_id": None}, errors.InvalidClaim),
        ({"jti": None}, errors.InvalidClaim),
        ({"scope": ["read:products"]}, errors.InvalidClaim),
        ({"organization_id": 7}, errors.InvalidClaim),
        ({"cnf": {"jkt": "abc"}}, errors.InvalidClaim),
    ],
)
async def test_claim_checks(
    issuer: FakeIssuer, verifier: TokenVerifier, claims: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await verifier.verify(issuer.sign(resolve(claims)))


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": ["https://other.api", API]},
        {"exp": Rel(-30)},  # within the 60 s leeway
        {"exp": int(time.time()) + 86400.5},  # NumericDate may be fractional
        {"nbf": Rel(30)},
        {"scope": None},  # absent scope means no scopes
        {"scope": ""},
    ],
)
async def test_accepted_variants(
    issuer: FakeIssuer, verifier: TokenVerifier, claims: dict[str, Any]
) -> None:
    at = await verifier.verify(issuer.sign(resolve(claims)))
    assert at.sub == "m2m-app"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("read:products  write:products ", {"read:products", "write:products"}),
        ("read:products\twrite:products", {"read:products\twrite:products"}),
        ("READ:PRODUCTS", {"READ:PRODUCTS"}),
    ],
)
async def test_scope_split_on_space_only(
    issuer: FakeIssuer, verifier: TokenVerifier, scope: str, expected: set[str]
) -> None:
    at = await verifier.verify(issuer.sign({"scope": scope}))
    assert at.scopes == expected


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ({"typ": None}, errors.InvalidTokenType),
        ({"typ": "JWT"}, errors.InvalidTokenType),
        ({"crit": ["exp"]}, errors.MalformedToken),
        ({"crit": []}, errors.MalformedToken),
        ({"b64": False}, errors.MalformedToken),
        ({"cty": "JWT"}, errors.MalformedToken),
        ({"kid": "x" * 300}, errors.MalformedToken),
        ({"kid": 123}, errors.MalformedToken),
        ({"kid": "unknown"}, errors.UnknownSigningKey),
    ],
)
async def test_header_checks(
    issuer: FakeIssuer, verifier: TokenVerifier, header: dict[str, Any], error: type[Exception]
) -> None:
    token = issuer.sign(header=header)
    with pytest.raises(error):
        await verifier.verify(token)


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_typ_variants(issuer: FakeIssuer, verifier: TokenVerifier, typ: str) -> None:
    assert (await verifier.verify(issuer.sign(header={"typ": typ}))).sub == "m2m-app"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_alg_none_and_hmac_with_public_key(
    issuer: FakeIssuer, verifier: TokenVerifier
) -> None:
    good = issuer.sign()
    _, payload, _ = good.split(".")
    kid = issuer.published[0]["kid"]
    for alg in ("none", "None", "NONE"):
        header = _b64(json.dumps({"alg": alg, "typ": "at+jwt", "kid": kid}).encode())
        for sig in ("", "AAAA"):
            with pytest.raises(errors.InvalidToken):
                await verifier.verify(f"{header}.{payload}.{sig}")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    public = issuer.private[kid].public_key()
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    for secret in (json.dumps(issuer.published[0]).encode(), pem):
        forged = sign_raw({"alg": "HS256", "kid": kid, "typ": "at+jwt"}, claims, secret)
        with pytest.raises(errors.UnsupportedAlgorithm):
            await verifier.verify(forged)


async def test_tampered_payload_and_signature(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    header, payload, sig = issuer.sign().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "read:products write:products"
    with pytest.raises(errors.InvalidSignature):
        await verifier.verify(f"{header}.{_b64(json.dumps(claims).encode())}.{sig}")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[10] ^= 1
    with pytest.raises(errors.InvalidSignature):
        await verifier.verify(f"{header}.{payload}.{_b64(bytes(raw))}")
    with pytest.raises(errors.InvalidSignature):
        await verifier.verify(f"{header}.{payload}.{_b64(bytes(96))}")  # r = s = 0


async def test_reused_token_is_served_from_cache(
    issuer: FakeIssuer, verifier: TokenVerifier
) -> None:
    token = issuer.sign()
    first = await verifier.verify(token)  # seen once: verified, not cached
    second = await verifier.verify(token)  # seen twice: verified again, and cached
    assert second == first and second is not first
    assert await verifier.verify(token) is second


async def test_tokens_seen_once_do_not_evict_a_reused_one(issuer: FakeIssuer) -> None:
    jwks = JWKSCache(ISSUER, http_client=issuer.client())
    verifier = TokenVerifier(ISSUER, audience=API, jwks=jwks, cache_size=4)
    reused = issuer.sign()
    await verifier.verify(reused)
    cached = await verifier.verify(reused)
    for _ in range(50):  # a scan of distinct valid tokens (each its own jti), each seen once
        await verifier.verify(issuer.sign())
    assert await verifier.verify(reused) is cached


async def test_cache_entry_dropped_when_key_leaves_jwks(issuer: FakeIssuer) -> None:
    clock = FakeClock()
    jwks = JWKSCache(ISSUER, http_client=issuer.client(), ttl=10, clock=clock)
    verifier = TokenVerifier(ISSUER, audience=API, jwks=jwks)
    old = issuer.published[0]["kid"]
    issuer.add_key()
    token = issuer.sign(kid=old)
    await verifier.verify(token)
    issuer.remove_key(old)
    clock.advance(11)
    await jwks.refresh()
    with pytest.raises(errors.UnknownSigningKey):
        await verifier.verify(token)


async def test_cached_token_still_expires(issuer: FakeIssuer) -> None:
    now = [float(NOW)]
    jwks = JWKSCache(ISSUER, http_client=issuer.client())
    verifier = TokenVerifier(ISSUER, audience=API, jwks=jwks, clock=lambda: now[0], leeway=0)
    token = issuer.sign({"iat": NOW, "exp": NOW + 100})
    await verifier.verify(token)
    now[0] += 101
    with pytest.raises(errors.ExpiredToken):
        await verifier.verify(token)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": "", "audience": API},
        {"endpoint": "", "audience": API},
        {"issuer": ISSUER, "endpoint": "https://x", "audience": API},
        {"issuer": ISSUER, "audience": ""},
        {"issuer": ISSUER, "audience": []},
        {"issuer": ISSUER, "audience": API, "leeway": float("nan")},
        {"issuer": ISSUER, "audience": API, "leeway": -1},
        {"issuer": ISSUER, "audience": API, "algorithms": ["HS256"]},
        {"issuer": ISSUER, "audience": API, "algorithms": ["none"]},
        {"issuer": "http://tenant.logto.app/oidc", "audience": API},
    ],
)
def test_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        TokenVerifier(**kwargs)


def test_endpoint_gives_logto_issuer() -> None:
    v = TokenVerifier(endpoint="https://tenant.logto.app/", audience=API)
    assert v.issuer == "https://tenant.logto.app/oidc"
    assert v.token_endpoint == "https://tenant.logto.app/oidc/token"


# -- cache_size, several issuers, early refusal ----------------------------------------------


async def test_cache_size_zero_means_no_verified_token_cache(issuer: FakeIssuer) -> None:
    jwks = JWKSCache(ISSUER, http_client=issuer.client())
    verifier = TokenVerifier(ISSUER, audience=API, jwks=jwks, cache_size=0)
    token = issuer.sign()
    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert first == second and first is not second  # verified twice, nothing kept


@pytest.mark.parametrize("size", [-1, 1.5, True])
def test_bad_cache_size_is_named_at_configuration(size: object) -> None:
    with pytest.raises(ConfigurationError, match=f"cache_size.*{size!r}"):
        TokenVerifier(ISSUER, audience=API, cache_size=size)  # type: ignore[arg-type]


OTHER = "https://custom.example.com/oidc"


async def test_token_iss_picks_among_several_issuers() -> None:
    tenant, custom = FakeIssuer(), FakeIssuer()
    custom.discovery_issuer = OTHER
    verifier = TokenVerifier(
        [ISSUER, OTHER],
        audience=API,
        jwks=[
            JWKSCache(ISSUER, http_client=tenant.client()),
            JWKSCache(OTHER, http_client=custom.client()),
        ],
    )
    assert verifier.issuers == (ISSUER, OTHER) and verifier.issuer == ISSUER
    assert verifier.jwks.issuer == ISSUER
    assert (await verifier.verify(tenant.sign())).issuer == ISSUER
    assert (await verifier.verify(custom.sign({"iss": OTHER}))).issuer == OTHER
    # The key set is the named issuer's: the other issuer's key does not verify its tokens.
    with pytest.raises(errors.UnknownSigningKey):
        await verifier.verify(tenant.sign({"iss": OTHER}))


async def test_other_issuer_and_audience_refused_before_any_key_fetch(
    issuer: FakeIssuer,
) -> None:
    jwks = JWKSCache(ISSUER, http_client=issuer.client(), jwks_uri=ISSUER + "/jwks")
    verifier = TokenVerifier(ISSUER, audience=API, jwks=jwks)
    for claims, error in [
        ({"iss": "https://other.logto.app/oidc"}, errors.InvalidIssuer),
        ({"iss": None}, errors.InvalidIssuer),
        ({"iss": [ISSUER]}, errors.InvalidIssuer),
        ({"aud": "https://other.api"}, errors.InvalidAudience),
        ({"aud": None}, errors.InvalidAudience),
    ]:
        with pytest.raises(error):
            await verifier.verify(issuer.sign(claims, kid=issuer.published[0]["kid"]))
    assert (issuer.discovery_calls, issuer.jwks_calls) == (0, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": [], "audience": API},
        {"issuer": [ISSUER, ISSUER], "audience": API},
        {"issuer": [ISSUER, ""], "audience": API},
        {"endpoint": ["https://a.example", None], "audience": API},
        {"issuer": [ISSUER, OTHER], "audience": API, "jwks_uri": ISSUER + "/jwks"},
        {"issuer": ISSUER, "audience": API, "jwks": JWKSCache(OTHER)},
    ],
)
def test_issuer_list_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        TokenVerifier(**kwargs)


def test_endpoint_list_gives_one_issuer_each() -> None:
    v = TokenVerifier(
        endpoint=["https://tenant.logto.app", "https://auth.example.com/"], audience=API
    )
    assert v.issuers == ("https://tenant.logto.app/oidc", "https://auth.example.com/oidc")
    assert [c.issuer for c in v.jwks_caches] == list(v.issuers)
    assert v.token_endpoint == "https://tenant.logto.app/oidc/token"


@pytest.mark.parametrize("iat", [10**400, -(10**400), "1", True, None])
async def test_odd_iat_is_a_claim_error_not_a_crash(
    issuer: FakeIssuer, verifier: TokenVerifier, iat: object
) -> None:
    """The unverified iat also feeds the unknown-kid decision: it must never raise there."""
    with pytest.raises(errors.InvalidClaim):
        await verifier.verify(issuer.sign({"iat": iat}))
    with pytest.raises(errors.UnknownSigningKey):  # refetched (cooldown 0): absent
        await verifier.verify(issuer.sign({"iat": iat}, header={"kid": "not-published"}))
