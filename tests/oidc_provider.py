"""A real, Logto-like OpenID provider for the test suite.

`OidcProvider` runs `tests/provider/server.mjs` (the npm package `oidc-provider`, the engine Logto
is built on, configured like Logto) on a free loopback port, and owns its PRIVATE signing keys:
they are generated here, handed to the Node process in a temp file, and changed while it runs
through its control API (`/__control/...`, not part of Logto).

    provider = OidcProvider()
    provider.start()
    token = provider.token("shop-reader", resource=OidcProvider.SHOP, scope="read:products")
    forged = provider.sign({"exp": 0})            # same real key, Logto-shaped, expired
    provider.rotate("RSA")                        # next tokens are RS256; old key still published
    provider.close()

The Node dependencies are installed by `scripts/bootstrap` (`npm ci` in tests/provider), not here.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import queue
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
SERVER_JS = PROVIDER_DIR / "server.mjs"

SHOP = "https://shopping.api"
MGMT = "https://default.logto.app/api"

# M2M applications configured in server.mjs: client id -> secret.
CLIENT_SECRETS: dict[str, str] = {
    "shop-reader": "reader-secret",
    "shop-writer": "writer-secret",
    "mgmt-client": "mgmt-secret",
    "org-client": "org-secret",
}

START_TIMEOUT = 20.0  # seconds; a normal start takes a few hundred milliseconds
STOP_TIMEOUT = 5.0

_CURVES: dict[str, tuple[type[ec.EllipticCurve], str, int]] = {
    "P-256": (ec.SECP256R1, "ES256", 32),
    "P-384": (ec.SECP384R1, "ES384", 48),
    "P-521": (ec.SECP521R1, "ES512", 66),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


class ProviderError(RuntimeError):
    """The Node provider could not be started, stopped or driven."""


class TokenError(Exception):
    """The token endpoint answered with an error (JSON `{"error", "error_description"}`)."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code = status_code
        self.body = body
        self.error: str | None = body.get("error")
        self.error_description: str | None = body.get("error_description")
        super().__init__(f"{status_code} {self.error}: {self.error_description}")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def http_client(**kwargs: Any) -> httpx.Client:
    """An httpx client for loopback tests: no proxies from the environment, and a shared SSL
    context (building one per client costs tens of milliseconds)."""
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("verify", _ssl_context())
    return httpx.Client(trust_env=False, **kwargs)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int, length: int | None = None) -> str:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(length, "big"))


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint (what Logto and oidc-provider use as `kid`)."""
    if jwk["kty"] == "EC":
        members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    elif jwk["kty"] == "RSA":
        members = {k: jwk[k] for k in ("e", "kty", "n")}
    else:
        raise ValueError(f"unsupported kty {jwk['kty']!r}")
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}


@dataclass
class _Key:
    kid: str
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    jwk: dict[str, Any]  # private JWK
    alg: str  # the alg Logto signs with for this key: ES384 (P-384) / RS256 (RSA)


def _generate_key(kty: str = "EC", *, crv: str = "P-384", size: int = 2048) -> _Key:
    kty_upper = kty.upper()
    if kty_upper == "EC":
        if crv not in _CURVES:
            raise ValueError(f"unsupported curve {crv!r}; use one of {sorted(_CURVES)}")
        curve_cls, alg, size_bytes = _CURVES[crv]
        ec_key = ec.generate_private_key(curve_cls())
        pub = ec_key.public_key().public_numbers()
        jwk: dict[str, Any] = {
            "kty": "EC",
            "crv": crv,
            "x": _int_b64(pub.x, size_bytes),
            "y": _int_b64(pub.y, size_bytes),
            "d": _int_b64(ec_key.private_numbers().private_value, size_bytes),
        }
        kid = jwk_thumbprint(jwk)
        # Logto's EC JWKs carry alg and use.
        jwk = {"kty": "EC", "use": "sig", "kid": kid, "alg": alg, **jwk}
        return _Key(kid=kid, private_key=ec_key, jwk=jwk, alg=alg)
    if kty_upper == "RSA":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=size)
        priv = rsa_key.private_numbers()
        pub_n = priv.public_numbers
        jwk = {
            "kty": "RSA",
            "n": _int_b64(pub_n.n),
            "e": _int_b64(pub_n.e),
            "d": _int_b64(priv.d),
            "p": _int_b64(priv.p),
            "q": _int_b64(priv.q),
            "dp": _int_b64(priv.dmp1),
            "dq": _int_b64(priv.dmq1),
            "qi": _int_b64(priv.iqmp),
        }
        kid = jwk_thumbprint(jwk)
        # Logto's RSA JWKs carry use but no alg.
        jwk = {"kty": "RSA", "use": "sig", "kid": kid, **jwk}
        return _Key(kid=kid, private_key=rsa_key, jwk=jwk, alg="RS256")
    raise ValueError(f"unsupported kty {kty!r}; use 'EC' or 'RSA'")


def _sign_bytes(key: _Key, alg: str, signing_input: bytes) -> bytes:
    """Sign `signing_input` as JWS `alg` with `key` (no check that alg suits the key's own alg)."""
    if alg == "none":
        return b""
    family, bits = alg[:2], alg[2:]
    if family == "HS" and bits in _HASHES:
        # Algorithm-confusion attack: HMAC keyed with the PUBLIC key's PEM.
        secret = key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hmac.new(secret, signing_input, getattr(hashlib, f"sha{bits}")).digest()
    if bits not in _HASHES:
        raise ValueError(f"unsupported alg {alg!r}")
    digest = _HASHES[bits]()
    if family == "ES":
        if not isinstance(key.private_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{alg} needs an EC key; {key.kid} is {key.jwk['kty']}")
        der = key.private_key.sign(signing_input, ec.ECDSA(digest))
        r, s = utils.decode_dss_signature(der)
        size = (key.private_key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if family in ("RS", "PS"):
        if not isinstance(key.private_key, rsa.RSAPrivateKey):
            raise ValueError(f"{alg} needs an RSA key; {key.kid} is {key.jwk['kty']}")
        pad: padding.AsymmetricPadding
        if family == "RS":
            pad = padding.PKCS1v15()
        else:
            pad = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        return key.private_key.sign(signing_input, pad, digest)
    raise ValueError(f"unsupported alg {alg!r}")


def _merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """`base` updated with `overrides`; an override of None removes the member."""
    result = dict(base)
    for name, value in (overrides or {}).items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


class OidcProvider:
    """A running Logto-like OpenID provider on 127.0.0.1 (see module docstring)."""

    SHOP = SHOP
    MGMT = MGMT
    CLIENT_SECRETS = CLIENT_SECRETS

    endpoint: str
    issuer: str
    token_endpoint: str
    jwks_uri: str
    discovery_url: str
    control_url: str

    def __init__(self, kty: str = "EC", *, host: str = "127.0.0.1") -> None:
        """Create the provider with one signing key of type `kty` (not started yet)."""
        self._host = host
        self._keys: dict[str, _Key] = {}
        self._published: list[str] = []  # first = signing key
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._http: httpx.Client | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="logto-guard-oidc-"))
        self._stderr_path = self._dir / "provider.stderr.log"
        self._keys_path = self._dir / "jwks.private.json"
        first = self._new_key(kty)
        self._published.append(first)
        self.endpoint = self.issuer = self.token_endpoint = self.jwks_uri = ""
        self.discovery_url = self.control_url = ""
        self.startup_seconds: float | None = None  # how long the last start() took

    # ------------------------------------------------------------------ process lifecycle

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the Node process (again on the SAME port after a stop) with the current keys."""
        if self.running:
            return
        if not SERVER_JS.is_file():
            raise ProviderError(f"{SERVER_JS} is missing")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise ProviderError(
                f"{PROVIDER_DIR / 'node_modules'} is missing (or has no oidc-provider): "
                "run scripts/bootstrap (it runs `npm ci` in tests/provider)"
            )
        node = os.environ.get("LOGTO_GUARD_NODE") or shutil.which("node")
        if not node:
            raise ProviderError("`node` is not on PATH; the test provider needs Node.js >= 20")
        self._write_keys_file()

        began = time.monotonic()
        deadline = began + START_TIMEOUT
        while True:
            try:
                self._spawn(node, deadline)
                break
            except ProviderError as exc:
                # Restarting on the same port: the old socket may linger for a moment.
                if (
                    self._port is not None
                    and "EADDRINUSE" in str(exc)
                    and time.monotonic() + 0.2 < deadline
                ):
                    time.sleep(0.1)
                    continue
                raise
        self.startup_seconds = time.monotonic() - began

    def _spawn(self, node: str, deadline: float) -> None:
        stderr_file = self._stderr_path.open("ab")
        stderr_start = stderr_file.tell()
        try:
            proc = subprocess.Popen(
                [
                    node,
                    str(SERVER_JS),
                    "--host",
                    self._host,
                    "--port",
                    str(self._port or 0),
                    "--keys",
                    str(self._keys_path),
                    "--exit-with-stdin",  # no orphan if this Python process dies
                ],
                cwd=PROVIDER_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
            )
        finally:
            stderr_file.close()
        self._proc = proc

        lines: queue.Queue[bytes] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            self._terminate()
            raise ProviderError(
                f"oidc-provider did not report ready within {START_TIMEOUT:g} s"
                + self._stderr_tail(stderr_start)
            ) from None
        if not line.strip():
            self._terminate()
            raise ProviderError(
                f"oidc-provider exited before it was ready (exit code {proc.returncode})"
                + self._stderr_tail(stderr_start)
            )
        try:
            ready = json.loads(line)
            port = int(ready["port"])
        except (ValueError, KeyError, TypeError):
            self._terminate()
            raise ProviderError(
                f"unexpected ready line from oidc-provider: {line!r}"
                + self._stderr_tail(stderr_start)
            ) from None

        self._port = port
        self.endpoint = f"http://{self._host}:{port}"
        self.issuer = ready.get("issuer") or f"{self.endpoint}/oidc"
        self.token_endpoint = f"{self.issuer}/token"
        self.jwks_uri = f"{self.issuer}/jwks"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.control_url = f"{self.endpoint}/__control"
        self._http = http_client()

        # Wait until discovery answers, then zero the counters so tests start from 0.
        while True:
            try:
                response = self._http.get(self.discovery_url)
                if response.status_code == 200 and response.json().get("issuer") == self.issuer:
                    break
                problem = f"discovery answered {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                problem = f"discovery failed: {exc!r}"
            if time.monotonic() > deadline or proc.poll() is not None:
                self._terminate()
                raise ProviderError(problem + self._stderr_tail(stderr_start))
            time.sleep(0.05)
        self.reset_stats()

    def stop(self) -> None:
        """Stop the Node process (SIGTERM by pid, then SIGKILL). Keys and port are kept."""
        self._terminate()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if self._http is not None:
            self._http.close()
            self._http = None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def close(self) -> None:
        """Stop the process and delete the temp dir holding the private keys."""
        self._terminate()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> OidcProvider:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<OidcProvider {self.issuer or '(never started)'} {state} kid={self.current_kid}>"

    def stderr_text(self) -> str:
        """Everything the Node process(es) wrote to stderr so far."""
        try:
            return self._stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _stderr_tail(self, start: int = 0, limit: int = 4000) -> str:
        try:
            with self._stderr_path.open("rb") as fh:
                fh.seek(start)
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            text = ""
        text = text[-limit:].strip()
        return f"\n--- node stderr ---\n{text}" if text else "\n(node wrote nothing to stderr)"

    def _client(self) -> httpx.Client:
        if self._http is None or not self.running:
            raise ProviderError("the provider is not running (call start())")
        return self._http

    # ------------------------------------------------------------------ token endpoint

    def token_response(
        self,
        client_id: str = "shop-reader",
        client_secret: str | None = None,
        *,
        resource: str | list[str] | None = SHOP,
        scope: str | None = "read:products",
        auth: str = "basic",
        extra: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST a client_credentials request to /oidc/token; the JSON body, success or error.

        `resource=None` / `scope=None` leave the parameter out; a list of resources sends several.
        `auth` is "basic" (HTTP Basic, client_secret_basic) or "post" (client_secret_post).
        """
        return self._token_request(client_id, client_secret, resource, scope, auth, extra).json()

    def token(
        self,
        client_id: str = "shop-reader",
        client_secret: str | None = None,
        *,
        resource: str | list[str] | None = SHOP,
        scope: str | None = "read:products",
        auth: str = "basic",
        extra: dict[str, str] | None = None,
    ) -> str:
        """A real access token from /oidc/token; raises TokenError with the JSON error otherwise."""
        response = self._token_request(client_id, client_secret, resource, scope, auth, extra)
        try:
            body = response.json()
        except ValueError:
            body = {"error": "not_json", "error_description": response.text[:500]}
        if response.status_code != 200 or "access_token" not in body:
            raise TokenError(response.status_code, body)
        return str(body["access_token"])

    def _token_request(
        self,
        client_id: str,
        client_secret: str | None,
        resource: str | list[str] | None,
        scope: str | None,
        auth: str,
        extra: dict[str, str] | None,
    ) -> httpx.Response:
        if client_secret is None:
            try:
                client_secret = CLIENT_SECRETS[client_id]
            except KeyError:
                raise ValueError(
                    f"no known secret for client {client_id!r}; pass client_secret"
                ) from None
        form: list[tuple[str, str]] = [("grant_type", "client_credentials")]
        if resource is not None:
            resources = [resource] if isinstance(resource, str) else list(resource)
            form.extend(("resource", r) for r in resources)
        if scope is not None:
            form.append(("scope", scope))
        form.extend((extra or {}).items())
        headers = {"content-type": "application/x-www-form-urlencoded"}
        basic: tuple[str, str] | None = None
        if auth == "basic":
            basic = (client_id, client_secret)
        elif auth == "post":
            form.extend([("client_id", client_id), ("client_secret", client_secret)])
        else:
            raise ValueError("auth must be 'basic' or 'post'")
        content = urlencode(form)
        return self._client().post(
            self.token_endpoint, content=content, headers=headers, auth=basic
        )

    def discovery(self) -> dict[str, Any]:
        """GET the discovery document (counts in stats)."""
        response = self._client().get(self.discovery_url)
        response.raise_for_status()
        return dict(response.json())

    def fetch_jwks(self) -> dict[str, Any]:
        """GET /oidc/jwks as served (counts in stats)."""
        response = self._client().get(self.jwks_uri)
        response.raise_for_status()
        return dict(response.json())

    # ------------------------------------------------------------------ keys

    @property
    def current_kid(self) -> str:
        return self._published[0]

    @property
    def kids(self) -> list[str]:
        """Published kids, the signing one first."""
        return list(self._published)

    def _new_key(self, kty: str) -> str:
        key = _generate_key(kty)
        self._keys[key.kid] = key
        return key.kid

    def generate_key(self, kty: str = "EC") -> str:
        """A key the fixture knows (sign()/private_key() work) but the provider never publishes."""
        return self._new_key(kty)

    def add_key(self, kty: str = "EC") -> str:
        """Publish a new key that does NOT sign yet (a staged rotation's 'next' key); its kid."""
        kid = self._new_key(kty)
        self._set_published([*self._published, kid])
        return kid

    def promote(self, kid: str) -> None:
        """Make `kid` the signing key; the previous one stays published."""
        self._require_known(kid)
        self._set_published([kid, *(k for k in self._published if k != kid)])

    def remove_key(self, kid: str) -> None:
        """Stop publishing `kid`. Removing the signing key makes the next published key sign."""
        if kid not in self._published:
            raise KeyError(f"{kid} is not published")
        if len(self._published) == 1:
            raise ValueError("cannot remove the only published key")
        self._set_published([k for k in self._published if k != kid])

    def rotate(self, kty: str = "EC") -> str:
        """Add a new key and make it sign, in one step; the old key stays published. New kid."""
        kid = self._new_key(kty)
        self._set_published([kid, *self._published])
        return kid

    def set_keys(self, kids: list[str]) -> None:
        """Publish exactly `kids` (known to this fixture), the first one signing."""
        for kid in kids:
            self._require_known(kid)
        if not kids or len(set(kids)) != len(kids):
            raise ValueError("need at least one kid, without duplicates")
        self._set_published(list(kids))

    def _require_known(self, kid: str) -> None:
        if kid not in self._keys:
            raise KeyError(f"unknown kid {kid!r}")

    def _private_jwks(self) -> dict[str, Any]:
        return {"keys": [self._keys[kid].jwk for kid in self._published]}

    def _write_keys_file(self) -> None:
        fd = os.open(self._keys_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self._private_jwks(), fh)

    def _set_published(self, kids: list[str]) -> None:
        previous = self._published
        self._published = kids
        try:
            self._write_keys_file()  # what a later start() uses
            if self.running:
                response = self._client().post(
                    f"{self.control_url}/keys", json=self._private_jwks()
                )
                if response.status_code != 200:
                    raise ProviderError(
                        f"replacing keys failed: {response.status_code} {response.text}"
                    )
                answer = response.json()
                if answer.get("kids") != kids:
                    raise ProviderError(f"provider publishes {answer.get('kids')}, wanted {kids}")
        except BaseException:
            self._published = previous
            with contextlib.suppress(OSError):
                self._write_keys_file()
            raise

    def private_key(self, kid: str | None = None) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        """The cryptography private key object (the signing key by default)."""
        kid = kid or self.current_kid
        self._require_known(kid)
        return self._keys[kid].private_key

    def private_jwk(self, kid: str | None = None) -> dict[str, Any]:
        kid = kid or self.current_kid
        self._require_known(kid)
        return dict(self._keys[kid].jwk)

    def public_jwk(self, kid: str | None = None) -> dict[str, Any]:
        return public_jwk(self.private_jwk(kid))

    def public_jwks(self) -> dict[str, Any]:
        """The key set the provider publishes, computed locally (no HTTP)."""
        return {"keys": [public_jwk(self._keys[kid].jwk) for kid in self._published]}

    def key_alg(self, kid: str | None = None) -> str:
        """The alg Logto signs with for this key (ES384 for EC P-384, RS256 for RSA)."""
        kid = kid or self.current_kid
        self._require_known(kid)
        return self._keys[kid].alg

    # ------------------------------------------------------------------ minting tokens

    def default_claims(self) -> dict[str, Any]:
        now = int(time.time())
        return {
            "jti": b64url(secrets.token_bytes(24)),
            "sub": "shop-reader",
            "iat": now,
            "exp": now + 3600,
            "scope": "read:products",
            "client_id": "shop-reader",
            "iss": self.issuer,
            "aud": SHOP,
        }

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        header: dict[str, Any] | None = None,
        kid: str | None = None,
        alg: str | None = None,
    ) -> str:
        """Mint a compact JWS with one of the provider's real private keys (default: signing key).

        Defaults are a Logto access token: header {"alg", "typ": "at+jwt", "kid"}, claims
        jti, sub, iat, exp (= iat + 3600), scope "read:products", client_id, iss, aud = SHOP.
        `claims` / `header` are merged in; a member set to None is removed. When only one of
        sub / client_id is given, the other follows it.

        The signature algorithm is `alg`, else `header["alg"]`, else the key's own (ES384/RS256).
        `alg` with a different `header["alg"]` writes the header's value but signs with `alg`.
        "none" gives an empty signature; "HS256"/"HS384"/"HS512" use the key's PUBLIC PEM as the
        HMAC secret (the algorithm-confusion attack).
        """
        kid = kid or self.current_kid
        self._require_known(kid)
        key = self._keys[kid]
        header = header or {}
        sign_alg = alg or header.get("alg") or key.alg

        base_claims = self.default_claims()
        overrides = dict(claims or {})
        if "client_id" in overrides and "sub" not in overrides:
            base_claims["sub"] = overrides["client_id"]
        elif "sub" in overrides and "client_id" not in overrides:
            base_claims["client_id"] = overrides["sub"]
        payload = _merge(base_claims, overrides)
        protected = _merge({"alg": sign_alg, "typ": "at+jwt", "kid": key.kid}, header)

        signing_input = (
            b64url(json.dumps(protected, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(payload, separators=(",", ":")).encode())
        )
        signature = _sign_bytes(key, sign_alg, signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"

    # ------------------------------------------------------------------ counters

    def stats(self) -> dict[str, int]:
        """{"jwks_requests", "jwks_304", "discovery_requests", "token_requests"} since reset."""
        response = self._client().get(f"{self.control_url}/stats")
        response.raise_for_status()
        return dict(response.json())

    def reset_stats(self) -> None:
        response = self._client().post(f"{self.control_url}/stats/reset")
        response.raise_for_status()
