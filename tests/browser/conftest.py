"""Browser tests: Playwright (sync API) drives Debian's Chromium against the live server.

Every test in this folder is marked ``browser``. Without /usr/bin/chromium the tests are skipped,
except in CI (the ``CI`` environment variable is set), where a missing browser fails them. A
failed test leaves a screenshot of each of its pages in ``test-results/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect, sync_playwright

from console.roles import roles_ensure
from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESULTS = Path(__file__).resolve().parents[2] / "test-results"
HERE = Path(__file__).resolve().parent
# Waits for anything a page should show; a healthy page needs far less.
TIMEOUT_MS = 10_000
# Every page reports Content-Security-Policy violations to its console, where the fixture below
# collects them: a test fails when the policy blocks anything on a page of ours.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile}:${event.lineNumber}`);
});
"""

_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI never skips browser tests)", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _roles(transactional_db) -> None:
    """The role groups. The live server needs a transactional database, which is flushed after
    each test; Django re-creates the groups after the flush today (post_migrate), and this keeps
    the tests right should that ever stop (``available_apps``, ``serialized_rollback``)."""
    roles_ensure()


@pytest.fixture
def new_page(browser, live_server, request) -> Iterator[Callable[..., Page]]:
    """Opens a page in a fresh context (own cookies) speaking ``locale``; relative URLs work."""
    contexts = []
    violations: list[str] = []

    def watch(page: Page) -> None:
        def on_console(message: Any) -> None:
            text = message.text
            if text.startswith("CSP violation") or "Content Security Policy" in text:
                violations.append(f"{page.url}: {text}")

        page.on("console", on_console)

    def new(locale: str = "zh-CN") -> Page:
        context = browser.new_context(
            locale=locale, base_url=live_server.url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("page", watch)
        contexts.append(context)
        return context.new_page()

    # A test that breaks the policy on purpose reads (and empties) the list.
    new.csp_violations = violations  # type: ignore[attr-defined]
    expect.set_options(timeout=TIMEOUT_MS)
    yield new
    reports = request.node.stash.get(_reports, {})
    failed = any(report.failed for report in reports.values()) or bool(violations)
    for number, context in enumerate(contexts):
        if failed:
            RESULTS.mkdir(exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
            for index, page in enumerate(context.pages):
                page.screenshot(path=RESULTS / f"{name}-{number}-{index}.png", full_page=True)
        context.close()
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)


@pytest.fixture
def page(new_page) -> Page:
    """A page in a zh-CN browser, the console's first language."""
    return new_page("zh-CN")


def login(page: Page, user: User, password: str = PASSWORD) -> None:
    """Log in through the admin's login form, as a person would, and land on the dashboard."""
    page.goto("/admin/login/?next=/admin/")
    page.locator("#id_username").fill(user.get_username())
    page.locator("#id_password").fill(password)
    page.locator("#login-form [type=submit]").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#user-tools")).to_contain_text(user.get_username())
