"""Logging in, and the language: the browser's by default, the header's switch on request."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import login
from tests.conftest import PASSWORD


def test_the_login_page_speaks_chinese_and_refuses_a_wrong_password(page, credential_admin):
    page.goto("/admin/wecom/wecomapp/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/wecom/wecomapp/$"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("#site-name")).to_have_text("客户标签控制台")
    expect(page.get_by_label("用户名")).to_be_visible()
    login_button = page.locator("#login-form").get_by_role("button", name="登录")
    expect(login_button).to_be_visible()

    page.get_by_label("用户名").fill(credential_admin.username)
    page.get_by_label("密码").fill(PASSWORD + "x")
    login_button.click()
    expect(page.locator(".errornote")).to_contain_text("正确的")
    expect(page).to_have_url(re.compile(r"/admin/login/"))

    page.get_by_label("密码").fill(PASSWORD)
    page.locator("#login-form").get_by_role("button", name="登录").click()
    # Back where the person wanted to go.
    expect(page).to_have_url(re.compile(r"/admin/wecom/wecomapp/$"))
    expect(page.locator("#content h1")).to_contain_text("企业微信应用")


def test_an_english_browser_gets_english_and_can_switch_to_chinese(new_page, credential_admin):
    page = new_page("en-US")
    page.goto("/admin/login/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#site-name")).to_have_text("Customer tag console")
    expect(page.locator("#login-form").get_by_role("button", name="Log in")).to_be_visible()

    login(page, credential_admin)
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.get_by_role("heading", name="Your role")).to_be_visible()
    expect(page.locator(".console-panel").first).to_contain_text(
        "Credential admin: Manages the platform credentials and tests their connections."
    )
    page.locator("#content-main").get_by_role("link", name="WeCom apps").first.click()
    expect(page).to_have_url(re.compile(r"/admin/wecom/wecomapp/$"))
    expect(page.locator("#content h1")).to_contain_text("WeCom app")

    # The header's language switch: same page, now in Chinese, and it stays so.
    switch = page.locator("#console-language-select")
    expect(switch).to_have_value("en")
    switch.select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page).to_have_url(re.compile(r"/admin/wecom/wecomapp/$"))
    expect(page.locator("#content h1")).to_contain_text("企业微信应用")
    page.goto("/admin/")
    expect(page.locator("h1")).to_have_text("概览")
    expect(page.get_by_role("heading", name="你的角色")).to_be_visible()

    page.locator("#console-language-select").select_option("en")
    expect(page.locator("h1")).to_have_text("Dashboard")
