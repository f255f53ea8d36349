"""RFC 6750 request parsing and answer shapes (R1-R7, R48-R51)."""

from __future__ import annotations

import json

import pytest

from logto_guard.bearer import challenge, check_realm, error_body, extract_token
from logto_guard.errors import (
    AuthError,
    ConfigurationError,
    ExpiredToken,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeySetUnavailable,
    MalformedToken,
    MissingToken,
)

TOKEN = "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJ4In0.c2ln"


def auth(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"api"), (b"authorization", value)]


# -- extract_token: the header ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"Bearer " + TOKEN.encode(),
        b"bearer " + TOKEN.encode(),
        b"BEARER " + TOKEN.encode(),
        b"BeArEr " + TOKEN.encode(),
        b"Bearer    " + TOKEN.encode(),  # 1*SP
        b"Bearer " + TOKEN.encode() + b"  ",  # trailing OWS is not part of the field value
    ],
)
def test_bearer_header_is_found(value: bytes) -> None:
    assert extract_token(auth(value), b"") == TOKEN


def test_header_name_is_case_insensitive() -> None:
    assert extract_token([(b"Authorization", b"Bearer abc")], b"") == "abc"


@pytest.mark.parametrize(
    "token",
    ["abc", "a-b.c_d~e+f/g", "abc=", "abc==", "A" * 5000, "0.1.2"],
)
def test_b64token_alphabet_is_accepted(token: str) -> None:
    assert extract_token(auth(b"Bearer " + token.encode()), b"") == token


def test_no_header_is_no_credentials() -> None:
    assert extract_token([(b"host", b"api")], b"") is None
    assert extract_token([], b"") is None


@pytest.mark.parametrize(
    "value",
    [
        b"Basic dXNlcjpwYXNz",
        b"DPoP " + TOKEN.encode(),
        b"Digest username=x",
        b"Bearerabc",  # not the Bearer scheme followed by SP
        b"Token abc",
        b"",
    ],
)
def test_other_schemes_are_no_credentials(value: bytes) -> None:
    assert extract_token(auth(value), b"") is None


def test_two_authorization_headers_are_invalid_request() -> None:
    headers = [(b"authorization", b"Bearer abc"), (b"authorization", b"Bearer abc")]
    with pytest.raises(InvalidRequest) as info:
        extract_token(headers, b"")
    assert info.value.status_code == 400
    assert info.value.error == "invalid_request"


def test_two_authorization_headers_of_any_scheme_are_invalid_request() -> None:
    headers = [(b"Authorization", b"Basic eDp5"), (b"authorization", b"Bearer abc")]
    with pytest.raises(InvalidRequest):
        extract_token(headers, b"")


@pytest.mark.parametrize("value", [b"Bearer", b"Bearer ", b"bearer     "])
def test_empty_bearer_credentials_are_invalid_request(value: bytes) -> None:
    with pytest.raises(InvalidRequest):
        extract_token(auth(value), b"")


@pytest.mark.parametrize(
    "credentials",
    [
        b"abc def",  # inner space
        b"abc,def",
        b'abc"def',
        b"abc\tdef",
        b"abc=def",  # '=' only at the end
        b"=abc",
        b"abc\\def",
        b"t\xc3\xa9st",  # non-ASCII (UTF-8)
        b"t\xe9st",  # non-ASCII (latin-1)
        b"abc;def",
        b"a b=",
    ],
)
def test_credentials_breaking_b64token_are_malformed(credentials: bytes) -> None:
    with pytest.raises(MalformedToken) as info:
        extract_token(auth(b"Bearer " + credentials), b"")
    assert isinstance(info.value, InvalidToken)
    assert info.value.status_code == 401
    assert info.value.error == "invalid_token"
    assert info.value.description == "malformed token"


# -- extract_token: the query ------------------------------------------------------------------


def test_query_token_ignored_by_default() -> None:
    assert extract_token([], b"access_token=abc") is None


def test_query_token_accepted_when_allowed() -> None:
    assert extract_token([], b"a=1&access_token=abc&b=2", allow_query=True) == "abc"


def test_query_token_is_percent_decoded_then_checked() -> None:
    assert extract_token([], b"access_token=a%2Bb%3D", allow_query=True) == "a+b="
    with pytest.raises(MalformedToken):
        extract_token([], b"access_token=a%20b", allow_query=True)


def test_empty_query_token_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        extract_token([], b"access_token=", allow_query=True)


def test_repeated_query_token_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        extract_token([], b"access_token=a&access_token=b", allow_query=True)


@pytest.mark.parametrize("allow_query", [False, True])
def test_header_and_query_token_are_invalid_request(allow_query: bool) -> None:
    with pytest.raises(InvalidRequest) as info:
        extract_token(auth(b"Bearer abc"), b"access_token=abc", allow_query=allow_query)
    assert info.value.status_code == 400


def test_other_scheme_header_with_query_token() -> None:
    # Basic is not a bearer method: only the query carries a token.
    assert extract_token(auth(b"Basic eDp5"), b"access_token=abc") is None
    assert extract_token(auth(b"Basic eDp5"), b"access_token=abc", allow_query=True) == "abc"


def test_query_parameter_with_similar_name_is_not_a_token() -> None:
    assert extract_token([], b"my_access_token=abc", allow_query=True) is None
    assert extract_token(auth(b"Bearer abc"), b"access_tokens=1") == "abc"


# -- challenge ---------------------------------------------------------------------------------


def test_bare_challenge_has_realm_only() -> None:
    assert challenge(None, realm="api") == 'Bearer realm="api"'
    assert challenge(MissingToken(), realm="api") == 'Bearer realm="api"'


def test_bare_challenge_with_resource_metadata() -> None:
    url = "https://api.example.com/.well-known/oauth-protected-resource"
    assert challenge(MissingToken(), realm="api", resource_metadata=url) == (
        f'Bearer realm="api", resource_metadata="{url}"'
    )
    assert challenge(None, realm=None, resource_metadata=url) == (
        f'Bearer resource_metadata="{url}"'
    )


def test_invalid_token_challenge() -> None:
    assert challenge(ExpiredToken(), realm="api") == (
        'Bearer realm="api", error="invalid_token", error_description="token expired"'
    )


def test_invalid_request_challenge() -> None:
    assert challenge(InvalidRequest(), realm="shop") == (
        'Bearer realm="shop", error="invalid_request", error_description="malformed request"'
    )


def test_insufficient_scope_challenge_lists_required_scopes() -> None:
    error = InsufficientScope(required=["read:products", "write:products"])
    assert challenge(error, realm="api") == (
        'Bearer realm="api", error="insufficient_scope", error_description="insufficient scope",'
        ' scope="read:products write:products"'
    )


def test_insufficient_scope_challenge_scope_argument_wins() -> None:
    error = InsufficientScope(required=["a"])
    assert challenge(error, realm="api", scope=["b", "c"]).endswith(', scope="b c"')


def test_insufficient_scope_without_scopes_has_no_scope_param() -> None:
    assert challenge(InsufficientScope(), realm="api") == (
        'Bearer realm="api", error="insufficient_scope", error_description="insufficient scope"'
    )


def test_scope_param_only_on_insufficient_scope() -> None:
    assert "scope=" not in challenge(ExpiredToken(), realm="api", scope=["x"])


def test_challenge_with_everything_in_order() -> None:
    url = "https://api.example.com/.well-known/oauth-protected-resource"
    value = challenge(InsufficientScope(required=["w"]), realm="api", resource_metadata=url)
    assert value == (
        'Bearer realm="api", error="insufficient_scope", error_description="insufficient scope",'
        f' scope="w", resource_metadata="{url}"'
    )


def test_description_outside_the_quoted_charset_falls_back_to_class_default() -> None:
    error = InvalidToken('bad "token" \\ here')
    assert challenge(error, realm="api") == (
        'Bearer realm="api", error="invalid_token", error_description="invalid token"'
    )


def test_non_rfc6750_code_is_not_put_in_a_challenge() -> None:
    assert challenge(KeySetUnavailable(), realm="api") == 'Bearer realm="api"'


def test_invalid_scope_names_are_dropped_from_challenge() -> None:
    error = InsufficientScope(required=['a"b', "ok", "x y"])
    assert challenge(error, realm="api").endswith(', scope="ok"')


@pytest.mark.parametrize("realm", ["", 'a"b', "a\\b", "caf\u00e9", "a\nb"])
def test_bad_realm_is_a_configuration_error(realm: str) -> None:
    with pytest.raises(ConfigurationError):
        check_realm(realm)
    with pytest.raises(ConfigurationError):
        challenge(None, realm=realm)


def test_challenge_needs_one_auth_param() -> None:
    with pytest.raises(ConfigurationError):
        challenge(None, realm=None)


# -- error_body --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (MissingToken(), {"error": None, "error_description": "a bearer token is required"}),
        (InvalidRequest(), {"error": "invalid_request", "error_description": "malformed request"}),
        (ExpiredToken(), {"error": "invalid_token", "error_description": "token expired"}),
        (
            InsufficientScope(required=["x"]),
            {"error": "insufficient_scope", "error_description": "insufficient scope"},
        ),
        (
            KeySetUnavailable(),
            {
                "error": "temporarily_unavailable",
                "error_description": "signing keys are temporarily unavailable",
            },
        ),
    ],
)
def test_error_body(error: AuthError, expected: dict[str, object]) -> None:
    body = error_body(error)
    assert json.loads(body) == expected
    assert body.isascii()
