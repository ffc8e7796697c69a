"""Each role, logged in through the browser: what it sees on the dashboard and what it can reach.

The console speaks zh-hans here (the browser asks for zh-CN).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from console.audit import Actor
from tests.browser.conftest import login
from wecom.models import WeComApp
from wecom.services import credential_set

SECRET = "AuditorMustNotSee-0123456789abcdefWXYZ"

CREDENTIAL_LISTS = [
    "/admin/wecom/wecomapp/",
    "/admin/wecom/officialaccount/",
    "/admin/wecom/chatbotbot/",
]
AUDIT_LOG = "/admin/admin/logentry/"
USERS = "/admin/auth/user/"
ADD_APP = "/admin/wecom/wecomapp/add/"

# role fixture -> (its label on the dashboard, pages it opens, pages that answer 403)
REACH = {
    "editor": ("营销编辑", [], [*CREDENTIAL_LISTS, ADD_APP, AUDIT_LOG, USERS]),
    "credential_admin": ("凭证管理员", [*CREDENTIAL_LISTS, ADD_APP], [AUDIT_LOG, USERS]),
    "auditor": ("审计员", [*CREDENTIAL_LISTS, AUDIT_LOG, USERS], [ADD_APP]),
    "superuser": ("超级管理员", [*CREDENTIAL_LISTS, ADD_APP, AUDIT_LOG, USERS], []),
}


@pytest.fixture
def app(transactional_db) -> WeComApp:
    """A WeCom app added on the command line, so that it has a history entry."""
    result = credential_set(
        kind="wecom",
        name="主企业",
        values={"corp_id": "ww0123456789abcdef", "secret": SECRET},
        actor=Actor.command_line(command="credential set wecom 主企业"),
    )
    return result.credential


def status_of(page: Page, url: str) -> int:
    response = page.goto(url)
    assert response is not None, url
    return response.status


def credentials_section(page: Page) -> list:
    """Everything on the dashboard that leads to the credentials: app list, panel, links."""
    return [
        page.locator("#content-main .app-wecom"),
        page.locator("h2", has_text="平台凭证"),
        page.locator('a[href^="/admin/wecom/"]'),
    ]


@pytest.mark.parametrize("role", list(REACH))
def test_each_role_reaches_what_it_may_and_nothing_else(role, request, page, app):
    user = request.getfixturevalue(role)
    label, allowed, forbidden = REACH[role]
    login(page, user)

    expect(page.locator("h1")).to_have_text("概览")
    role_panel = page.locator(".console-panel", has=page.locator("h2", has_text="你的角色"))
    expect(role_panel).to_contain_text(label)
    for locator in credentials_section(page):
        if role == "editor":
            expect(locator).to_have_count(0)
        else:
            expect(locator.first).to_be_visible()

    for url in allowed:
        assert status_of(page, url) == 200, f"{role} should open {url}"
        expect(page.locator("#content h1")).to_be_visible()
    for url in forbidden:
        assert status_of(page, url) == 403, f"{role} should be refused {url}"
        # A page in the console's frame that says why, with the way back.
        expect(page.locator("h1")).to_have_text("无权访问")
        expect(page.get_by_role("link", name="返回概览")).to_be_visible()


def test_the_editor_sees_the_dashboard_but_no_credentials(page, editor, app):
    login(page, editor)
    expect(page).to_have_title(re.compile("概览"))
    expect(page.locator("h1")).to_have_text("概览")
    expect(page.get_by_role("heading", name="你的角色")).to_be_visible()
    expect(page.locator(".console-panel").first).to_contain_text("营销编辑")
    expect(page.locator("#content-main .app-wecom")).to_have_count(0)
    expect(page.get_by_role("link", name="平台凭证")).to_have_count(0)
    expect(page.get_by_role("link", name="企业微信应用")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(app.name)

    # Typing the address of the credentials list does not help.
    response = page.goto("/admin/wecom/wecomapp/")
    assert response is not None and response.status == 403
    expect(page.locator("#content-main")).to_contain_text("你的角色无权打开此页面")
    expect(page.locator("body")).not_to_contain_text(app.name)
    expect(page.locator("body")).not_to_contain_text(SECRET[-4:])


def test_the_auditor_reads_credentials_history_and_the_audit_log_but_cannot_save(
    page, auditor, app
):
    login(page, auditor)
    expect(page.locator(".console-panel").first).to_contain_text("审计员")

    page.locator("#content-main").get_by_role("link", name="企业微信应用").first.click()
    expect(page).to_have_url(re.compile(r"/admin/wecom/wecomapp/$"))
    row = page.locator("#result_list tbody tr", has_text=app.name)
    expect(row).to_contain_text("••••" + SECRET[-4:])
    expect(page.get_by_role("link", name=re.compile("增加"))).to_have_count(0)

    row.get_by_role("link", name=app.name).click()
    expect(page).to_have_url(re.compile(rf"/admin/wecom/wecomapp/{app.pk}/change/$"))
    expect(page.locator("#content h1")).to_contain_text("查看")
    expect(page.locator("#content-main")).to_contain_text("ww0123456789abcdef")
    expect(page.locator('[name="_save"]')).to_have_count(0)
    expect(page.get_by_role("button", name="保存")).to_have_count(0)
    expect(page.get_by_role("button", name="测试连接")).to_have_count(0)
    expect(page.locator("#wecomapp_form input#id_name")).to_have_count(0)
    assert SECRET not in page.content()

    page.get_by_role("link", name="历史").click()
    expect(page).to_have_url(re.compile(rf"/admin/wecom/wecomapp/{app.pk}/history/$"))
    history = page.locator("#change-history")
    expect(history).to_contain_text("system")
    expect(history).to_contain_text("命令行")
    expect(history).to_contain_text("credential set wecom 主企业")

    page.goto("/admin/")
    page.get_by_role("link", name="日志记录").first.click()
    expect(page).to_have_url(re.compile(r"/admin/admin/logentry/$"))
    log_row = page.locator("#result_list tbody tr", has_text=app.name)
    expect(log_row).to_contain_text("命令行")
    assert SECRET not in page.content()


def test_the_credential_admin_cannot_open_the_audit_log(page, credential_admin, app):
    login(page, credential_admin)
    expect(page.locator(".console-panel").first).to_contain_text("凭证管理员")
    expect(page.locator("#content-main .app-wecom")).to_be_visible()
    expect(page.get_by_role("link", name="日志记录")).to_have_count(0)

    response = page.goto(AUDIT_LOG)
    assert response is not None and response.status == 403
    expect(page.locator("body")).not_to_contain_text("credential set wecom")
