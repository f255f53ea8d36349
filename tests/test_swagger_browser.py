"""Swagger UI's Authorize button, in a real browser, against `scripts/demo --serve`.

Debian's Chromium, driven by Playwright from PyPI (`executable_path`: Playwright's own browser
download cannot work here), opens `/docs` of the example app served with the embedded issuer,
authorizes with the client id and secret the demo prints (client-credentials flow: a CORS
preflight and a cross-origin POST to the issuer's token endpoint, which defaults `resource`),
then runs "Try it out" on `GET /products` and expects 200. Every request the page makes must go
to 127.0.0.1: Swagger UI's files come from the `fastapi-offline` package, not a CDN.

The screenshot is saved to tests/artifacts/swagger-authorize.png (gitignored). Without Chromium
or Playwright the test skips locally, and fails under CI=true: scripts/bootstrap installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

try:
    from readme import block
except ImportError:  # pragma: no cover - tests/ imported as a package
    from .readme import block

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SCREENSHOT = ARTIFACTS / "swagger-authorize.png"
CHROMIUM = os.environ.get("LOGTO_GUARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000  # generous: two shared cores under load


def _missing_browser(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; scripts/bootstrap installs it in CI (the browser test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright_sync() -> object:
    try:
        from playwright import sync_api
    except ImportError:
        _missing_browser("playwright is not installed (the dev extra has it)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing_browser(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_api


@pytest.fixture
def served_demo() -> Iterator[dict[str, str]]:
    """`python -m example_app --serve --port 0`: its URL and the credentials it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGTO_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "example_app", "--serve", "--port", "0"],
        cwd=ROOT,
        env=env | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    found: dict[str, str] = {"output": ""}
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if m := re.search(r"Shopping API on (http://127\.0\.0\.1:\d+) ", line):
                found["url"] = m.group(1)
            if m := re.search(r"client_id (shop-writer)  client_secret (\S+)", line):
                found["client_id"], found["client_secret"] = m.groups()
            if "defaults resource to" in line:
                found["output"] = "".join(lines)
                done.set()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert done.wait(60), "the demo did not start within 60 s"
        assert {"url", "client_id", "client_secret"} <= set(found), "".join(lines)
        yield found
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()
        reader.join(15)
        process.stdout.close()


def test_serve_prints_what_the_readme_shows(served_demo: dict[str, str]) -> None:
    shown = block("Swagger UI: Authorize, then paste")
    # The README shows --port 8000; the test asks for a free port.
    port = served_demo["url"].rsplit(":", 1)[1]
    assert shown.replace(":8000", f":{port}") in served_demo["output"], served_demo["output"]


def test_authorize_and_try_it_out(playwright_sync: object, served_demo: dict[str, str]) -> None:
    sync_api = playwright_sync
    url = served_demo["url"]
    requested: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:  # type: ignore[attr-defined]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(TIMEOUT_MS)

            def only_loopback(route: object) -> None:
                request_url = route.request.url  # type: ignore[attr-defined]
                requested.append(request_url)
                if urlsplit(request_url).hostname == "127.0.0.1":
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    route.abort()  # type: ignore[attr-defined]

            page.route("**/*", only_loopback)
            try:
                authorize_and_execute(page, url, served_demo)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "swagger-failure.png"), full_page=True)
                raise
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {SCREENSHOT}")
    assert SCREENSHOT.stat().st_size > 10_000
    foreign = [u for u in requested if urlsplit(u).hostname != "127.0.0.1"]
    assert not foreign, f"the page reached beyond loopback: {foreign}"
    assert any("/static-offline-docs/swagger-ui-bundle.js" in u for u in requested)


def authorize_and_execute(page: Any, url: str, credentials: dict[str, str]) -> None:
    """Authorize (client credentials, every scope), then Try it out on GET /products."""
    page.goto(url + "/docs")
    page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input[id^=client_id]").fill(credentials["client_id"])
    dialog.locator("input[id^=client_secret]").fill(credentials["client_secret"])
    dialog.get_by_text("select all").click()
    with page.expect_response(re.compile(r"/oidc/token$")) as token_answer:
        dialog.locator("button.modal-btn.authorize").click()
    assert token_answer.value.status == 200, token_answer.value.text()
    dialog.locator("button.modal-btn.logout, button:has-text('Logout')").first.wait_for()
    dialog.locator("button.btn-done").click()

    operation = page.locator("#operations-default-list_products_products_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    with page.expect_response(lambda r: r.url == url + "/products") as api_answer:
        operation.get_by_role("button", name="Execute").click()
    assert api_answer.value.status == 200, api_answer.value.text()
    status = operation.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for()
    assert status.first.inner_text().strip() == "200"
    assert "Keyboard" in operation.locator(".live-responses-table").inner_text()


def test_a_missing_browser_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="scripts/bootstrap installs it"):
        _missing_browser("no Chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        _missing_browser("no Chromium")
