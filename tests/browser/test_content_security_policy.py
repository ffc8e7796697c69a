"""The Content-Security-Policy refuses inline code without the nonce, runs it with the nonce,
and the browser fixtures notice any violation (every browser test fails on one)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import login

INJECT = """(nonce) => {
    const button = document.createElement("button");
    button.id = "inline-handler";
    button.setAttribute("onclick", "window.handlerRan = true");
    document.body.appendChild(button);
    button.click();
    for (const [name, value] of [["withoutNonce", null], ["withNonce", nonce]]) {
        const script = document.createElement("script");
        if (value) script.nonce = value;
        script.textContent = `window.${name} = true`;
        document.body.appendChild(script);
    }
}"""


def test_inline_code_runs_only_with_the_request_nonce(new_page, superuser):
    page = new_page("en-US")
    login(page, superuser)
    response = page.goto("/admin/")
    header = response.headers["content-security-policy"]
    nonce = re.search(r"script-src 'self' 'nonce-([\w-]+)'", header).group(1)
    # The browser reports the refused script asynchronously: wait for that report.
    with page.expect_console_message(lambda message: message.text.startswith("CSP violation")):
        page.evaluate(INJECT, nonce)
    assert page.evaluate("window.withNonce") is True
    assert page.evaluate("window.withoutNonce") is None
    assert page.evaluate("window.handlerRan") is None
    expect(page.locator("#inline-handler")).to_be_attached()
    violations = new_page.csp_violations
    assert any("script-src" in text for text in violations), violations
    violations.clear()  # provoked on purpose


def test_each_request_gets_its_own_nonce(new_page, superuser):
    page = new_page("en-US")
    login(page, superuser)
    first = page.goto("/admin/").headers["content-security-policy"]
    second = page.goto("/admin/").headers["content-security-policy"]
    nonce = re.compile(r"'nonce-([\w-]+)'")
    assert nonce.search(first).group(1) != nonce.search(second).group(1)
    assert "frame-ancestors 'none'" in first and "object-src 'none'" in first
