"""The test provider (oidc-provider configured like Logto) behaves like Logto.

These tests use only httpx, PyJWT and the fixture: no project code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

try:
    from oidc_provider import MGMT, SHOP, OidcProvider, TokenError, http_client
except ImportError:
    from .oidc_provider import MGMT, SHOP, OidcProvider, TokenError, http_client

JWKS_CACHE_CONTROL = "no-cache, max-age=0, must-revalidate"

HTTP = http_client()


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


def verify(provider: OidcProvider, token: str, *, audience: str = SHOP) -> dict:
    """Verify `token` against the JWKS the provider serves over HTTP (PyJWT only)."""
    header = jwt.get_unverified_header(token)
    jwks = jwt.PyJWKSet.from_dict(HTTP.get(provider.jwks_uri).json())
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    expected_alg = "ES384" if key.key_type == "EC" else "RS256"
    assert header["alg"] == expected_alg
    return jwt.decode(
        token,
        key.key,
        algorithms=[expected_alg],
        audience=audience,
        issuer=provider.issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


def published_kids(provider: OidcProvider) -> list[str]:
    body = HTTP.get(provider.jwks_uri).json()
    return [k["kid"] for k in body["keys"]]


# ---------------------------------------------------------------- discovery and endpoints


def test_discovery_matches_logto_layout(oidc_provider: OidcProvider) -> None:
    assert oidc_provider.endpoint.startswith("http://127.0.0.1:")
    assert oidc_provider.issuer == oidc_provider.endpoint + "/oidc"
    doc = oidc_provider.discovery()
    assert doc["issuer"] == oidc_provider.issuer
    assert doc["jwks_uri"] == oidc_provider.jwks_uri == oidc_provider.issuer + "/jwks"
    assert doc["token_endpoint"] == oidc_provider.token_endpoint == oidc_provider.issuer + "/token"
    assert "client_credentials" in doc["grant_types_supported"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    # RFC 8414 name of the same document, as Logto serves it.
    alt = HTTP.get(oidc_provider.issuer + "/.well-known/oauth-authorization-server")
    assert alt.status_code == 200
    assert alt.json()["issuer"] == oidc_provider.issuer


def test_discovery_urls_ignore_the_host_header(oidc_provider: OidcProvider) -> None:
    url = f"http://localhost:{oidc_provider.port}/oidc/.well-known/openid-configuration"
    doc = HTTP.get(url).json()
    assert doc["issuer"] == oidc_provider.issuer
    assert doc["jwks_uri"] == oidc_provider.jwks_uri


def test_jwks_publishes_logto_shaped_ec_key(oidc_provider: OidcProvider) -> None:
    response = HTTP.get(oidc_provider.jwks_uri)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    (key,) = response.json()["keys"]
    assert key == oidc_provider.public_jwk()
    assert key["kid"] == oidc_provider.current_kid
    assert key["kty"] == "EC"
    assert key["crv"] == "P-384"
    assert key["alg"] == "ES384"
    assert key["use"] == "sig"
    assert "d" not in key


# ---------------------------------------------------------------- tokens


def test_es384_access_token_is_logto_shaped(oidc_provider: OidcProvider) -> None:
    body = oidc_provider.token_response("shop-reader", scope="read:products")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read:products"
    token = body["access_token"]

    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES384", "typ": "at+jwt", "kid": oidc_provider.current_kid}
    assert header["kid"] in published_kids(oidc_provider)

    claims = verify(oidc_provider, token)
    assert claims["iss"] == oidc_provider.issuer
    assert claims["aud"] == SHOP
    assert isinstance(claims["aud"], str)
    assert claims["sub"] == claims["client_id"] == "shop-reader"
    assert claims["scope"] == "read:products"
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    assert "nbf" not in claims
    assert "cnf" not in claims
    assert set(claims) == {"iss", "aud", "sub", "client_id", "scope", "iat", "exp", "jti"}


def test_reader_asking_for_write_gets_only_read(oidc_provider: OidcProvider) -> None:
    body = oidc_provider.token_response(
        "shop-reader", scope="read:products write:products unknown:scope"
    )
    assert body["scope"] == "read:products"
    assert verify(oidc_provider, body["access_token"])["scope"] == "read:products"


def test_writer_gets_both_scopes(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("shop-writer", scope="read:products write:products")
    assert verify(oidc_provider, token)["scope"] == "read:products write:products"


def test_no_scope_requested_means_no_scope_claim(oidc_provider: OidcProvider) -> None:
    body = oidc_provider.token_response("shop-writer", scope=None)
    assert "scope" not in body
    assert "scope" not in verify(oidc_provider, body["access_token"])


def test_mgmt_client_gets_all_on_management_api(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("mgmt-client", resource=MGMT, scope="all")
    claims = verify(oidc_provider, token, audience=MGMT)
    assert claims["aud"] == MGMT
    assert claims["scope"] == "all"
    assert claims["sub"] == "mgmt-client"


def test_client_without_roles_on_a_resource_gets_no_scope(oidc_provider: OidcProvider) -> None:
    claims = verify(
        oidc_provider, oidc_provider.token("shop-reader", resource=MGMT, scope="all"), audience=MGMT
    )
    assert "scope" not in claims


def test_client_secret_post_works(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("shop-writer", scope="write:products", auth="post")
    assert verify(oidc_provider, token)["scope"] == "write:products"


def test_wrong_secret_is_invalid_client(oidc_provider: OidcProvider) -> None:
    with pytest.raises(TokenError) as info:
        oidc_provider.token("shop-reader", "not-the-secret")
    assert info.value.error == "invalid_client"
    assert info.value.status_code == 401
    body = oidc_provider.token_response("shop-reader", "not-the-secret", auth="post")
    assert body["error"] == "invalid_client"


def test_unknown_client_is_invalid_client(oidc_provider: OidcProvider) -> None:
    with pytest.raises(TokenError) as info:
        oidc_provider.token("nobody", "whatever")
    assert info.value.error == "invalid_client"


def test_unknown_resource_is_invalid_target(oidc_provider: OidcProvider) -> None:
    with pytest.raises(TokenError) as info:
        oidc_provider.token(resource="https://unknown.api")
    assert info.value.error == "invalid_target"
    assert info.value.status_code == 400


def test_missing_or_several_resources_are_invalid_target(oidc_provider: OidcProvider) -> None:
    assert oidc_provider.token_response(resource=None)["error"] == "invalid_target"
    assert oidc_provider.token_response(resource=[SHOP, MGMT])["error"] == "invalid_target"


# ---------------------------------------------------------------- JWKS caching headers


def test_jwks_cache_headers_and_conditional_get(oidc_provider: OidcProvider) -> None:
    oidc_provider.reset_stats()
    with http_client() as client:
        first = client.get(oidc_provider.jwks_uri)
        assert first.status_code == 200
        assert first.headers["cache-control"] == JWKS_CACHE_CONTROL
        etag = first.headers["etag"]
        assert etag

        again = client.get(oidc_provider.jwks_uri, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag

        other = client.get(oidc_provider.jwks_uri, headers={"If-None-Match": 'W/"other"'})
        assert other.status_code == 200
        assert other.json() == first.json()
    assert oidc_provider.stats() == {
        "jwks_requests": 3,
        "jwks_304": 1,
        "discovery_requests": 0,
        "token_requests": 0,
    }


def test_stats_count_requests_and_reset(fresh_provider: OidcProvider) -> None:
    assert fresh_provider.stats() == {
        "jwks_requests": 0,
        "jwks_304": 0,
        "discovery_requests": 0,
        "token_requests": 0,
    }
    fresh_provider.discovery()
    fresh_provider.fetch_jwks()
    fresh_provider.fetch_jwks()
    fresh_provider.token()
    stats = fresh_provider.stats()
    assert stats["jwks_requests"] == 2
    assert stats["discovery_requests"] == 1
    assert stats["token_requests"] == 1
    fresh_provider.reset_stats()
    assert fresh_provider.stats()["jwks_requests"] == 0


# ---------------------------------------------------------------- key management


def test_rotate_changes_signing_kid_and_keeps_old_key_published(
    fresh_provider: OidcProvider,
) -> None:
    old = fresh_provider.current_kid
    old_token = fresh_provider.token()
    etag_before = HTTP.get(fresh_provider.jwks_uri).headers["etag"]

    new = fresh_provider.rotate()
    assert new != old
    assert fresh_provider.current_kid == new
    assert fresh_provider.kids == [new, old]
    assert published_kids(fresh_provider) == [new, old]
    assert HTTP.get(fresh_provider.jwks_uri).headers["etag"] != etag_before

    new_token = fresh_provider.token()
    assert jwt.get_unverified_header(new_token)["kid"] == new
    verify(fresh_provider, new_token)
    verify(fresh_provider, old_token)  # the previous key still verifies

    fresh_provider.remove_key(old)
    assert published_kids(fresh_provider) == [new]
    with pytest.raises(StopIteration):
        verify(fresh_provider, old_token)


def test_staged_rotation_add_then_promote(fresh_provider: OidcProvider) -> None:
    old = fresh_provider.current_kid
    nxt = fresh_provider.add_key()
    assert published_kids(fresh_provider) == [old, nxt]
    assert jwt.get_unverified_header(fresh_provider.token())["kid"] == old  # not signing yet

    fresh_provider.promote(nxt)
    assert fresh_provider.current_kid == nxt
    assert published_kids(fresh_provider) == [nxt, old]
    assert jwt.get_unverified_header(fresh_provider.token())["kid"] == nxt


def test_rsa_rotation_yields_rs256_tokens(fresh_provider: OidcProvider) -> None:
    ec_kid = fresh_provider.current_kid
    rsa_kid = fresh_provider.rotate("RSA")
    jwks = fresh_provider.fetch_jwks()
    rsa_jwk = next(k for k in jwks["keys"] if k["kid"] == rsa_kid)
    assert rsa_jwk["kty"] == "RSA"
    assert rsa_jwk["use"] == "sig"
    assert "alg" not in rsa_jwk  # like Logto: RSA JWKs carry no alg
    assert {k["kid"] for k in jwks["keys"]} == {rsa_kid, ec_kid}
    assert isinstance(fresh_provider.private_key(), rsa.RSAPrivateKey)

    token = fresh_provider.token("shop-writer", scope="write:products")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "at+jwt", "kid": rsa_kid}
    assert verify(fresh_provider, token)["scope"] == "write:products"

    fresh_provider.promote(ec_kid)  # and back
    assert jwt.get_unverified_header(fresh_provider.token())["alg"] == "ES384"


def test_key_management_errors(fresh_provider: OidcProvider) -> None:
    with pytest.raises(KeyError):
        fresh_provider.promote("no-such-kid")
    with pytest.raises(ValueError, match="only published key"):
        fresh_provider.remove_key(fresh_provider.current_kid)


def test_unpublished_key_is_known_but_not_served(fresh_provider: OidcProvider) -> None:
    foreign = fresh_provider.generate_key()
    assert foreign not in published_kids(fresh_provider)
    assert isinstance(fresh_provider.private_key(foreign), ec.EllipticCurvePrivateKey)
    token = fresh_provider.sign(kid=foreign)
    assert jwt.get_unverified_header(token)["kid"] == foreign


# ---------------------------------------------------------------- sign()


def test_sign_defaults_match_a_real_token(oidc_provider: OidcProvider) -> None:
    real = verify(oidc_provider, oidc_provider.token())
    minted_token = oidc_provider.sign()
    assert jwt.get_unverified_header(minted_token) == jwt.get_unverified_header(
        oidc_provider.token()
    )
    minted = verify(oidc_provider, minted_token)
    assert set(minted) == set(real)
    for name in ("iss", "aud", "sub", "client_id", "scope"):
        assert minted[name] == real[name]


def test_sign_overrides_and_removals(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.sign(
        {"aud": MGMT, "scope": None, "client_id": "mgmt-client", "exp": 1},
        header={"typ": None},
    )
    header = jwt.get_unverified_header(token)
    assert "typ" not in header
    assert header["alg"] == "ES384"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == MGMT
    assert claims["sub"] == claims["client_id"] == "mgmt-client"
    assert "scope" not in claims
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(oidc_provider, token, audience=MGMT)


def test_sign_with_rsa_key_and_odd_algorithms(fresh_provider: OidcProvider) -> None:
    rsa_kid = fresh_provider.add_key("RSA")
    token = fresh_provider.sign(kid=rsa_kid)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    verify(fresh_provider, token)

    unsigned = fresh_provider.sign(alg="none")
    assert unsigned.endswith(".")
    assert jwt.get_unverified_header(unsigned)["alg"] == "none"

    # Header says ES384 but the signature is PS256: a mismatch a verifier must reject.
    mismatch = fresh_provider.sign(kid=rsa_kid, alg="PS256", header={"alg": "ES384"})
    assert jwt.get_unverified_header(mismatch)["alg"] == "ES384"

    confused = fresh_provider.sign(alg="HS256")
    assert jwt.get_unverified_header(confused)["alg"] == "HS256"


# ---------------------------------------------------------------- lifecycle


def test_stop_and_start_on_the_same_port(fresh_provider: OidcProvider) -> None:
    endpoint, kids = fresh_provider.endpoint, fresh_provider.kids
    fresh_provider.rotate("RSA")
    kids = fresh_provider.kids
    pid = fresh_provider.pid
    fresh_provider.stop()
    assert not fresh_provider.running
    with pytest.raises(httpx.TransportError):
        HTTP.get(fresh_provider.jwks_uri, timeout=2)

    fresh_provider.start()
    assert fresh_provider.running
    assert fresh_provider.pid != pid
    assert fresh_provider.endpoint == endpoint
    assert published_kids(fresh_provider) == kids
    assert jwt.get_unverified_header(fresh_provider.token())["alg"] == "RS256"
    assert fresh_provider.stats()["jwks_requests"] == 1


def test_key_changes_while_stopped_apply_on_start(fresh_provider: OidcProvider) -> None:
    fresh_provider.stop()
    new = fresh_provider.rotate()
    fresh_provider.start()
    assert published_kids(fresh_provider)[0] == new
    assert jwt.get_unverified_header(fresh_provider.token())["kid"] == new


def test_provider_exits_on_sigterm(fresh_provider: OidcProvider) -> None:
    proc = fresh_provider._proc
    assert proc is not None
    fresh_provider.stop()
    assert proc.returncode == 0


def test_control_api_rejects_bad_key_sets(oidc_provider: OidcProvider) -> None:
    url = oidc_provider.control_url + "/keys"
    public_only = {"keys": [oidc_provider.public_jwk()]}
    for body in ({"keys": []}, public_only, {"nope": 1}):
        response = HTTP.post(url, json=body)
        assert response.status_code == 400
    assert published_kids(oidc_provider) == oidc_provider.kids
