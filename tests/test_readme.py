"""README.md, run as written: every fenced block is claimed by a test, and the first-hour ones
run here verbatim, from the built wheel, in a temporary project.

How placeholders are handled: the README keeps the values a user replaces, and this file swaps
only those, with plain string replacement, nothing else:

- `https://tenant.logto.app` (the documented tenant URL) -> the endpoint of a `LocalIssuer`
  served on loopback by this test process;
- `<app id>` / `<app secret>` -> an M2M app registered on that issuer;
- `https://api.example.com` (the API the Quick Start's client calls) -> the Quick Start's FastAPI
  app served on loopback;
- `pip install "logto-guard[...]"` -> the same extras of the wheel built from this checkout.

The wheel is built once per session and installed into one virtualenv with exactly the install
line the README gives next to the testing example, so the example passes with what that line
brings and nothing from this repository's .venv.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from logto_guard.testing import LocalIssuer

try:
    from readme import README, block, blocks
except ImportError:  # pragma: no cover - tests/ imported as a package
    from .readme import README, block, blocks

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
TENANT = "https://tenant.logto.app"
API = "https://shopping.api"
APP_ID, APP_SECRET = "quickstart-app", "quickstart-secret"
PIP_TIMEOUT = 600


# -- (a) coverage: every README block is claimed by a literal block("...") call -------------------


def claimed_markers() -> dict[str, list[str]]:
    """Each string literal passed to a `block(...)` call in tests/**/*.py, with where it is."""
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = node.args[0]
            if name == "block" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(first.value, []).append(where)
    return found


def test_every_readme_block_is_claimed_by_a_test() -> None:
    markers = claimed_markers()
    unclaimed = [
        f"README.md:{b.line} ({b.lang or 'no language'}): {b.text.splitlines()[0][:60]!r}"
        for b in blocks()
        if not any(marker in b.text for marker in markers)
    ]
    assert not unclaimed, "README blocks that no test claims with block('<marker>'):\n" + (
        "\n".join(unclaimed)
    )


def test_the_coverage_scan_sees_literal_calls_only() -> None:
    # The scan must find this file's own claims, and a marker built at run time is no claim.
    markers = claimed_markers()
    assert "# test_products.py" in markers
    assert any("test_readme.py" in where for where in markers["# test_products.py"])
    assert not [m for m in markers if not m.strip()]


# -- the temporary project, built from the wheel ------------------------------------------------


def install_line(section: str) -> str:
    """The `pip install "logto-guard[...]"` the README gives in a section."""
    text = README.read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + 1)
    found = re.search(r'`pip install ("logto-guard\[[a-z,]+\]")`', text[start:end])
    assert found, f"no install line in {section!r}"
    return found.group(1)


def run(
    argv: list[str], cwd: Path, *, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGTO_", "PYTHON"))}
    env |= kwargs.pop("env", {})
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kwargs
    )


class Project:
    def __init__(self, root: Path, venv: Path) -> None:
        self.root, self.venv = root, venv
        self.python = str(venv / "bin" / "python")

    def directory(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path


def make_venv(venv: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """A venv with pip, also from an interpreter without ensurepip (Debian's, which
    scripts/cpython-debian provides for 3.14): pip then comes from its own wheel."""
    if importlib.util.find_spec("ensurepip") is not None:
        return run([sys.executable, "-m", "venv", str(venv)], root)
    created = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    if created.returncode != 0:
        return created
    wheels = root / "pip-wheel"
    got = run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(wheels), "pip"],
        root,
        timeout=PIP_TIMEOUT,
    )
    if got.returncode != 0:
        return got
    (pip_wheel,) = wheels.glob("pip-*.whl")
    python = str(venv / "bin" / "python")
    return run([python, f"{pip_wheel}/pip", "install", "--quiet", str(pip_wheel)], root)


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A virtualenv with the wheel of this checkout, installed by the README's install line."""
    root = tmp_path_factory.mktemp("readme-project")
    dist = root / "dist"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        root,
        timeout=PIP_TIMEOUT,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("logto_guard-*.whl")
    venv = root / "venv"
    created = make_venv(venv, root)
    assert created.returncode == 0, created.stderr
    requirement = install_line("## Testing your own protected API").strip('"')
    name, extras = requirement.split("[")
    assert name == "logto-guard"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    installed = run([*pip, f"logto-guard[{extras} @ {wheel.as_uri()}"], root, timeout=PIP_TIMEOUT)
    assert installed.returncode == 0, installed.stderr
    return Project(root, venv)


@pytest.fixture
def served_issuer() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer()
    issuer.register_app(APP_ID, APP_SECRET, {API: ["read:products", "write:products"]})
    with issuer.serve():
        yield issuer


def substitute(text: str, issuer: LocalIssuer, api_url: str | None = None) -> str:
    text = text.replace(TENANT, issuer.endpoint)
    text = text.replace("<app id>", APP_ID).replace("<app secret>", APP_SECRET)
    if api_url is not None:
        text = text.replace("https://api.example.com", api_url)
    return text


# -- (b) the testing example: a two-file project that passes -----------------------------------


def test_testing_example_passes_in_a_fresh_project(project: Project) -> None:
    conftest, test_file = block("# conftest.py"), block("# test_products.py")
    here = project.directory("testing-example")
    for text in (conftest, test_file):
        first = text.splitlines()[0]
        assert re.fullmatch(r"# (conftest|test_\w+)\.py.*", first), first
        name = first.split()[1]
        (here / name).write_text(text, encoding="utf-8")
    pytest_argv = [project.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    plain = run([*pytest_argv, "-W", "error"], here)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert re.search(r"\b3 passed\b", plain.stdout), plain.stdout
    assert "warning" not in plain.stdout.lower(), plain.stdout

    # With pytest-asyncio installed (strict is its default mode), nothing changes.
    added = run(
        [project.python, "-m", "pip", "install", "--quiet", "pytest-asyncio"],
        here,
        timeout=PIP_TIMEOUT,
    )
    assert added.returncode == 0, added.stderr
    for mode in ("strict", "auto"):
        result = run([*pytest_argv, "-o", f"asyncio_mode={mode}"], here)
        assert result.returncode == 0, f"{mode}: {result.stdout}{result.stderr}"
        assert re.search(r"\b3 passed\b", result.stdout), result.stdout
        assert "async fixture" not in result.stdout + result.stderr


# -- (b) the Quick Start snippets against a served LocalIssuer ---------------------------------

FASTAPI_DRIVER = """
import json, sys
from starlette.testclient import TestClient
from quickstart_app import app

tokens = json.loads(sys.argv[1])
with TestClient(app) as client:
    answers = {}
    for name, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = client.get("/products", headers=headers)
        answers[name] = [response.status_code, response.json()]
    for path in ("/docs", "/redoc", "/openapi.json"):
        answers[path] = [client.get(path).status_code, None]
    answers["responses"] = client.get("/openapi.json").json()["paths"]["/products"]["get"][
        "responses"
    ]
print(json.dumps(answers))
"""


def quick_start_tokens(issuer: LocalIssuer) -> dict[str, str]:
    return {
        "reader": issuer.mint(scopes=["read:products"], client_id=APP_ID),
        "no scope": issuer.mint(scopes=[], client_id=APP_ID),
        "no token": "",
        "other audience": issuer.mint(audience="https://other.api"),
    }


def run_driver(project: Project, here: Path, driver: str, *args: str) -> Any:
    (here / "driver.py").write_text(textwrap.dedent(driver), encoding="utf-8")
    result = run([project.python, "driver.py", *args], here)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_quick_start_fastapi_app(project: Project, served_issuer: LocalIssuer) -> None:
    here = project.directory("quickstart-fastapi")
    snippet = block("from logto_guard.fastapi import LogtoSecurity, document_errors")
    (here / "quickstart_app.py").write_text(substitute(snippet, served_issuer), encoding="utf-8")
    tokens = quick_start_tokens(served_issuer)
    answers = run_driver(project, here, FASTAPI_DRIVER, json.dumps(tokens))
    assert answers["reader"] == [200, {"caller": APP_ID, "scopes": ["read:products"]}]
    assert answers["no scope"][0] == 403
    assert answers["no scope"][1]["error"] == "insufficient_scope"
    assert answers["no token"] == [
        401,
        {"error": None, "error_description": "a bearer token is required"},
    ]
    assert answers["other audience"][0] == 401
    assert [answers[p][0] for p in ("/docs", "/redoc", "/openapi.json")] == [200, 200, 200]
    assert {"401", "403"} <= set(answers["responses"])


STARLETTE_DRIVER = """
import json, sys
from starlette.testclient import TestClient
from quickstart_app import app

answers = {}
with TestClient(app) as client:
    for name, token in json.loads(sys.argv[1]).items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = client.get("/products", headers=headers)
        answers[name] = [response.status_code, response.headers.get("www-authenticate")]
print(json.dumps(answers))
"""


def test_quick_start_starlette_app(project: Project, served_issuer: LocalIssuer) -> None:
    here = project.directory("quickstart-starlette")
    snippet = block("from starlette.routing import Route")
    (here / "quickstart_app.py").write_text(substitute(snippet, served_issuer), encoding="utf-8")
    answers = run_driver(
        project, here, STARLETTE_DRIVER, json.dumps(quick_start_tokens(served_issuer))
    )
    assert answers["reader"][0] == 200
    assert answers["no scope"][0] == 403
    assert 'error="insufficient_scope"' in answers["no scope"][1]
    assert 'scope="read:products"' in answers["no scope"][1]
    assert answers["no token"][0] == 401
    assert answers["other audience"][0] == 401


CLIENT_DRIVER = """
import json, sys
from logto_guard.testing import LoopbackServer
from quickstart_app import app

with LoopbackServer(app) as api_url:
    step_1, step_2 = (open(name).read().replace("{{API}}", api_url) for name in sys.argv[1:])
    exec(step_1)
    exec(step_2)
print(json.dumps(products))
"""


def test_quick_start_client_steps_call_the_api(
    project: Project, served_issuer: LocalIssuer
) -> None:
    here = project.directory("quickstart-client")
    api = block("from logto_guard.fastapi import LogtoSecurity, document_errors")
    (here / "quickstart_app.py").write_text(substitute(api, served_issuer), encoding="utf-8")
    step_1 = block("auth = ClientCredentials(")
    step_2 = block("with httpx2.Client(auth=auth) as api:")
    (here / "step_1.py").write_text(substitute(step_1, served_issuer), encoding="utf-8")
    (here / "step_2.py").write_text(
        substitute(step_2, served_issuer, api_url="{{API}}"), encoding="utf-8"
    )
    products = run_driver(project, here, CLIENT_DRIVER, "step_1.py", "step_2.py")
    assert products == {"caller": APP_ID, "scopes": ["read:products", "write:products"]}


# -- (b) the command line ----------------------------------------------------------------------


def test_cli_round_trip_exits_0(project: Project, served_issuer: LocalIssuer) -> None:
    here = project.directory("cli")
    lines = block("logto-guard token | logto-guard verify - --require-scope read:products")
    script = substitute(lines, served_issuer)
    env = {"PATH": f"{project.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = run(["bash", "-euo", "pipefail", "-c", script], here, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    claims = json.loads(result.stdout)
    assert claims["client_id"] == APP_ID and "read:products" in claims["scope"].split()

    # The line works because of LOGTO_SCOPES: without it the token has no scope (exit 1).
    without = script.replace('LOGTO_SCOPES="read:products"', 'LOGTO_SCOPES=""')
    assert without != script
    refused = run(["bash", "-euo", "pipefail", "-c", without], here, env=env)
    assert refused.returncode == 1
    assert '"insufficient_scope"' in refused.stderr


def test_cli_synopsis_matches_the_help(project: Project) -> None:
    synopsis = block("logto-guard inspect TOKEN|-")
    logto_guard = str(project.venv / "bin" / "logto-guard")
    for line in synopsis.splitlines():
        words = line.split("#")[0].split()
        if words and words[0] == "logto-guard":
            command = words[1]
            current = run([logto_guard, command, "--help"], project.root)
            assert current.returncode == 0, current.stderr
        flags = re.findall(r"--[a-z][a-z-]*", line.split("#")[0])
        for flag in flags:
            assert flag in current.stdout, f"{command} --help lacks {flag}"


# -- (b) the served issuer, as documented ------------------------------------------------------


def test_served_issuer_snippet(project: Project) -> None:
    here = project.directory("served-issuer")
    (here / "serve.py").write_text(block("issuer.register_app(\n"), encoding="utf-8")
    process = subprocess.Popen(
        [project.python, "serve.py"],
        cwd=here,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        first = process.stdout.readline()
        assert first.startswith("LOGTO_ENDPOINT=http://127.0.0.1:"), first
        endpoint = first.strip().split("=", 1)[1]
        origin = {"Origin": "http://127.0.0.1:8000"}
        preflight = httpx.options(
            endpoint + "/oidc/token",
            headers={**origin, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == origin["Origin"]
        # What Swagger UI sends: Basic credentials and a scope, no resource.
        answer = httpx.post(
            endpoint + "/oidc/token",
            auth=("my-app", "my-secret"),
            headers=origin,
            data={"grant_type": "client_credentials", "scope": "read:products"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == origin["Origin"]
        claims = run(
            [str(project.venv / "bin" / "logto-guard"), "inspect", answer.json()["access_token"]],
            here,
        )
        assert '"aud": "https://shopping.api"' in claims.stdout, claims.stdout + claims.stderr
        # Enter stops it (the prompt itself was read along with the first line).
        process.communicate("\n", timeout=30)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- (b) the two commands and the demo's output -----------------------------------------------


def normalise(text: str) -> str:
    """Ports and the token's length vary from run to run; nothing else may."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    return re.sub(r"\(\d+ chars\)", "(<n> chars)", text).strip()


def test_scripts_demo_prints_the_readme_output() -> None:
    commands = block("scripts/demo   #")
    demo = next(line for line in commands.splitlines() if line.startswith("scripts/demo"))
    argv = shlex.split(demo, comments=True)
    assert argv == ["scripts/demo"]
    result = run(argv, ROOT, timeout=PIP_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = block("All steps answered as expected.")
    assert normalise(result.stdout) == normalise(shown)


def test_scripts_test_is_what_ci_runs() -> None:
    commands = block("scripts/demo   #")
    line = next(line for line in commands.splitlines() if line.startswith("scripts/test"))
    assert shlex.split(line, comments=True) == ["scripts/test"]
    # Running the suite from inside itself would recurse; CI runs exactly this command.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^exec bash scripts/test\b", ci, re.MULTILINE), ci
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    for step in ("ruff check", "mypy", "-m pytest"):
        assert step in script, f"scripts/test does not run {step}"


# -- what the README says about Starlette's requires() -----------------------------------------


def test_starlette_requires_answers_plain_text_and_require_scopes_rfc_6750() -> None:
    from starlette.applications import Starlette
    from starlette.authentication import requires
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from logto_guard import LogtoGuard, require_scopes

    async def ok(request: Any) -> JSONResponse:
        return JSONResponse({})

    issuer = LocalIssuer()
    app = Starlette(
        routes=[
            Route("/starlette", requires("write:products")(ok)),
            Route("/logto", require_scopes("write:products")(ok)),
        ]
    )
    guarded = LogtoGuard(app, verifier=issuer.verifier(audience=API))
    headers = {"Authorization": f"Bearer {issuer.mint(scopes=['read:products'])}"}
    with TestClient(guarded) as client:
        plain = client.get("/starlette", headers=headers)
        rfc = client.get("/logto", headers=headers)
    assert plain.status_code == 403 and rfc.status_code == 403
    assert plain.text == "Forbidden" and "www-authenticate" not in plain.headers
    assert rfc.json()["error"] == "insufficient_scope"
    assert 'scope="write:products"' in rfc.headers["www-authenticate"]
