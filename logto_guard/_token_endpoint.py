"""One client-credentials token request to Logto, and what its answer means.

Why this is separate from the caching and the httpx glue: the request's shape (RFC 6749 §4.4,
Logto's `resource` indicator, Basic or form credentials) and the reading of the answer (Logto's
error bodies, a granted scope narrower than the one asked for) are facts about Logto's token
endpoint, tested against its recorded answers; when and how often a request is sent is not.

Why secrets are scrubbed as values: error text comes from the server (or a proxy in front of
it) and can echo what it was sent. Replacing every *substring* equal to the secret mangles
ordinary words (secret ``x`` turned "invalid client nonexistent" into "invalid client
none[secret]istent") while proving nothing; the secret is replaced where it stands as a value
of its own, in the forms a server could echo (as sent, form-encoded, inside the Basic
credential).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, quote_plus

from ._http import Family, httpx
from .errors import LogtoGuardError

logger = logging.getLogger("logto_guard.client")

AuthMethod = Literal["basic", "body"]

SCRUBBED = "[secret]"


class TokenRequestError(LogtoGuardError):
    """Logto's token endpoint refused to issue a token, or answered something unusable.

    `error` and `error_description` are Logto's (RFC 6749 §5.2: ``invalid_client``,
    ``invalid_target``, ``invalid_request``, ``access_denied``, ...); both are ``None`` when the
    answer was not a JSON error object. Nothing here ever contains the app secret or a token.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error = error
        self.error_description = error_description

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, "
            f"error={self.error!r})"
        )


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as issued. Replaced as a whole, never mutated, so readers need no lock."""

    value: str = field(repr=False)
    refresh_at: float  # on the credentials' clock: expiry minus leeway
    scopes: frozenset[str]  # what Logto granted, which may be less than what was asked


def secret_pattern(secret: str, *also: str) -> re.Pattern[str]:
    """A pattern matching `secret` (and `also`) as a value: not inside a longer word.

    A value here is a run that the characters around it do not continue: no letter, digit,
    ``_`` or ``-`` right before or after it. The form-encoded variants are matched too.
    """
    forms = {secret, quote(secret, safe=""), quote_plus(secret), *also}
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True) if f)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def scrub(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(SCRUBBED, text)


def scrub_secret(text: str, secret: str) -> str:
    """`text` with `secret` replaced by ``[secret]`` wherever it stands as a value."""
    return scrub(text, secret_pattern(secret)) if secret else text


class TokenEndpoint:
    """Builds the token request and reads Logto's answer, for one app and one resource."""

    def __init__(
        self,
        url: str,
        app_id: str,
        app_secret: str,
        *,
        resource: str | None,
        organization_id: str | None = None,
        scopes: tuple[str, ...],
        auth_method: AuthMethod,
        leeway: float,
    ) -> None:
        self.url = url
        self.app_id = app_id
        self._app_secret = app_secret
        self.resource = resource
        self.organization_id = organization_id
        self.scopes = scopes
        self.auth_method = auth_method
        self.leeway = leeway
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        pair = f"{quote(app_id, safe='')}:{quote(app_secret, safe='')}"
        self._basic = base64.b64encode(pair.encode()).decode()
        self._secret_pattern = secret_pattern(app_secret, self._basic)
        self._warned: set[frozenset[str]] = set()
        self._warned_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, app_id={self.app_id!r})"

    def scrub(self, text: str) -> str:
        """`text` with the app secret replaced wherever it stands as a value."""
        return scrub(text, self._secret_pattern)

    def request(self, family: Family, timeout: Any) -> httpx.Request:
        """The token request, in `family` (the family of the client that will send it)."""
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if self.organization_id is not None:
            form["organization_id"] = self.organization_id
        if self.resource is not None:
            form["resource"] = self.resource
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        headers = {"Accept": "application/json"}
        if self.auth_method == "basic":
            headers["Authorization"] = "Basic " + self._basic
        else:
            form["client_id"] = self.app_id
            form["client_secret"] = self._app_secret
        extensions = {"timeout": timeout} if timeout is not None else {}
        return family.Request("POST", self.url, data=form, headers=headers, extensions=extensions)

    def accept(self, response: httpx.Response, started: float) -> IssuedToken:
        """Turn a token endpoint answer (body already read) into a token, or raise."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            content_type = response.headers.get("content-type", "none")
            what = "a non-JSON answer" if body is None else "JSON that is not an object"
            raise self._fail(
                f"token endpoint answered HTTP {status} with {what} "
                f"(content-type {self.scrub(content_type)})",
                status,
            )
        if status != 200 or "error" in body:
            error = body.get("error")
            description = body.get("error_description")
            error = self.scrub(error) if isinstance(error, str) else None
            description = self.scrub(description) if isinstance(description, str) else None
            message = f"token request refused: HTTP {status}"
            if error:
                message += f", {error}"
            if description:
                message += f": {description}"
            raise self._fail(message, status, error, description)

        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise self._fail("token endpoint answered HTTP 200 without an access_token", status)
        token_type = body.get("token_type")
        if token_type is not None and (
            not isinstance(token_type, str) or token_type.lower() != "bearer"
        ):
            raise self._fail(
                f"token endpoint issued a {self.scrub(str(token_type))!r} token, not Bearer",
                status,
            )
        expires_in = body.get("expires_in")
        lifetime = _seconds(expires_in)
        if expires_in is not None and lifetime is None:
            raise self._fail("token endpoint answered an invalid expires_in", status)
        if lifetime is None:
            # RFC 6749 makes expires_in optional; without it the token is used once, not cached.
            logger.debug("token response has no expires_in; the token will not be reused")
            lifetime = 0.0
        # A leeway longer than half the lifetime would make a short-lived token stale at birth.
        refresh_at = started + lifetime - min(self.leeway, lifetime / 2)
        granted = self._granted(body.get("scope"), access_token)
        logger.debug(
            "token obtained for app %s (expires in %ss, scope %r)",
            self.app_id,
            expires_in,
            self.scrub(" ".join(sorted(granted))),
        )
        self._check_downgrade(granted)
        return IssuedToken(access_token, refresh_at, granted)

    def _granted(self, scope: object, access_token: str) -> frozenset[str]:
        """The scopes Logto granted.

        The body's ``scope`` when present. Logto leaves it out when it grants nothing (a token
        without a ``scope`` claim), where RFC 6749 §5.1 would mean "as requested"; so without
        it the token's own ``scope`` claim is read (unverified: only to report it), and only a
        token that is not a readable JWT counts as granted as requested.
        """
        if isinstance(scope, str):
            return _split(scope)
        claimed = _unverified_scope_claim(access_token)
        return claimed if claimed is not None else frozenset(self.scopes)

    def _check_downgrade(self, granted: frozenset[str]) -> None:
        missing = frozenset(self.scopes) - granted
        if not missing:
            return
        with self._warned_lock:
            if missing in self._warned:
                return
            self._warned.add(missing)
        if self.resource is not None:
            target = f"resource {self.resource}"
        elif self.organization_id is not None:
            target = f"organization {self.organization_id}"
        else:
            target = "the tenant's default API"
        if self.organization_id is not None and self.resource is not None:
            target += f" in organization {self.organization_id}"
        logger.warning(
            "Logto granted app %s fewer scopes than asked for %s: missing %s, granted %s. "
            "Logto drops scopes the app's roles do not grant (or the API resource does not "
            "define) without an error; give the app a role with these permissions.",
            self.app_id,
            target,
            self.scrub(" ".join(sorted(missing))),
            self.scrub(" ".join(sorted(granted))) or "(none)",
        )

    def _fail(
        self,
        message: str,
        status: int,
        error: str | None = None,
        description: str | None = None,
    ) -> TokenRequestError:
        logger.debug("token request failed for app %s: %s", self.app_id, message)
        return TokenRequestError(
            message, status_code=status, error=error, error_description=description
        )


def _split(scope: str) -> frozenset[str]:
    return frozenset(s for s in scope.split(" ") if s)


def _unverified_scope_claim(token: str) -> frozenset[str] | None:
    """The ``scope`` claim of a JWT, read without verification; None if not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    scope = payload.get("scope", "")
    return _split(scope) if isinstance(scope, str) else None


def _seconds(value: object) -> float | None:
    """`expires_in` as seconds: a positive number, or a string of digits from lax servers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def split_scopes(scopes: str | Iterable[str]) -> list[str]:
    """`scopes` as given to `ClientCredentials`: an iterable, or one space-separated string."""
    return scopes.split(" ") if isinstance(scopes, str) else list(scopes)
