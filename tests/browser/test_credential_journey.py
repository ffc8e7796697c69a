"""A credential admin adds a WeCom app, tests its connection, breaks it, and reads its history.

Everything goes through the browser in zh-hans; the console's clients talk to the in-process
platform sandbox over real HTTP.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import login
from wecom.models import WeComApp
from wecom.sandbox import DEMO

WRONG_SECRET = "WrongSecret-0000000000000000000000000000zz"
NAME = "演示企业"
NEW_NAME = "演示企业（总部）"


def messages(page: Page):
    return page.locator("ul.messagelist")


def assert_no_secret_in(page: Page) -> None:
    html = page.content()
    assert DEMO.wecom_secret not in html, f"the whole secret is in {page.url}"
    assert WRONG_SECRET not in html, f"the whole wrong secret is in {page.url}"


def test_the_credential_admin_adds_tests_breaks_and_audits_a_wecom_app(
    page, credential_admin, sandbox
):
    login(page, credential_admin)

    # Dashboard → WeCom apps → add.
    page.locator("#content-main").get_by_role("link", name="企业微信应用").first.click()
    expect(page).to_have_url(re.compile(r"/admin/wecom/wecomapp/$"))
    expect(page.locator("#content h1")).to_contain_text("企业微信应用")
    page.locator(".object-tools").get_by_role("link", name=re.compile("增加")).click()
    expect(page).to_have_url(re.compile(r"/admin/wecom/wecomapp/add/$"))
    expect(page.get_by_role("button", name="测试连接")).to_have_count(0)

    page.locator("#id_name").fill(NAME)
    page.locator("#id_corp_id").fill(DEMO.wecom_corp_id)
    secret_box = page.locator("#id_secret")
    expect(secret_box).to_have_attribute("type", "password")
    secret_box.fill(DEMO.wecom_secret)
    page.locator("#id_agent_id").fill(str(DEMO.wecom_agent_id))
    page.get_by_role("button", name="保存", exact=True).click()

    # Back on the list: saved, and the secret shows only by its last four characters.
    expect(page).to_have_url(re.compile(r"/admin/wecom/wecomapp/$"))
    expect(messages(page)).to_contain_text("成功")
    row = page.locator("#result_list tbody tr", has_text=NAME)
    expect(row).to_contain_text("••••" + DEMO.wecom_secret[-4:])
    expect(row).to_contain_text(DEMO.wecom_corp_id)
    assert_no_secret_in(page)
    app = WeComApp.objects.get(name=NAME)
    assert app.secret.reveal() == DEMO.wecom_secret

    # The change page: the secret box is empty and says what is stored.
    row.get_by_role("link", name=NAME).click()
    expect(page).to_have_url(re.compile(rf"/admin/wecom/wecomapp/{app.pk}/change/$"))
    expect(page.locator("#id_secret")).to_have_value("")
    expect(page.locator(".field-secret")).to_contain_text(DEMO.wecom_secret[-4:])
    assert_no_secret_in(page)

    # Test connection: the sandbox's corp accepts the secret.
    page.get_by_role("button", name="测试连接").click()
    expect(page).to_have_url(re.compile(rf"/admin/wecom/wecomapp/{app.pk}/change/$"))
    expect(messages(page).locator("li.success")).to_contain_text("连接正常")
    expect(page.locator(".field-connection_status")).to_contain_text("连接正常")

    # Rename with the secret box left blank: the stored secret stays, the test still passes.
    page.locator("#id_name").fill(NEW_NAME)
    page.get_by_role("button", name="保存并继续编辑").click()
    expect(messages(page).locator("li.success")).to_contain_text(NEW_NAME)
    app.refresh_from_db()
    assert app.name == NEW_NAME
    assert app.secret.reveal() == DEMO.wecom_secret, "a blank secret box keeps the stored one"
    page.get_by_role("button", name="测试连接").click()
    expect(messages(page).locator("li.success")).to_contain_text("连接正常")

    # A wrong secret: the test fails with a sentence a person understands.
    page.locator("#id_secret").fill(WRONG_SECRET)
    page.get_by_role("button", name="保存并继续编辑").click()
    expect(page.locator(".field-secret")).to_contain_text(WRONG_SECRET[-4:])
    expect(messages(page).locator("li.success")).to_contain_text(NEW_NAME)
    expect(messages(page)).not_to_contain_text("连接正常")
    page.get_by_role("button", name="测试连接").click()
    failure = messages(page).locator("li.error")
    expect(failure).to_contain_text("应用 Secret 不正确")
    expect(failure).to_contain_text("请检查凭证")
    expect(failure).to_contain_text("40001")
    expect(failure).not_to_contain_text("Traceback")
    expect(failure).not_to_contain_text("errmsg")
    expect(failure).not_to_contain_text("invalid")
    expect(page.locator(".field-connection_status")).to_contain_text("应用 Secret 不正确")
    expect(messages(page).locator("li.success")).to_have_count(0)
    assert_no_secret_in(page)

    # History: who changed what, and from where.
    page.get_by_role("link", name="历史").click()
    expect(page).to_have_url(re.compile(rf"/admin/wecom/wecomapp/{app.pk}/history/$"))
    history = page.locator("#change-history")
    expect(history.locator("thead")).to_contain_text("来源")
    rows = history.locator("tbody tr")
    rename = rows.filter(has_text=NEW_NAME)
    expect(rename).to_have_count(1)
    expect(rename).to_contain_text(credential_admin.username)
    expect(rename).to_contain_text(NAME)
    expect(rename.locator(".console-old")).to_have_text(NAME)
    expect(rename.locator(".console-new")).to_have_text(NEW_NAME)
    expect(rename).to_contain_text("表单")
    expect(rename.locator(".console-ip")).to_have_text("127.0.0.1")
    secret_change = rows.filter(has_text="已更改（不显示）")
    expect(secret_change).to_have_count(1)
    expect(secret_change).to_contain_text("应用 Secret")
    expect(rows.filter(has_text="连接测试通过")).to_have_count(2)
    expect(rows.filter(has_text="连接测试失败")).to_have_count(1)
    assert_no_secret_in(page)
