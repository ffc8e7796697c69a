"""Strategy tags in the browser, in zh-hans: the marketing editor's day and the auditor's view.

The console talks to the in-process sandbox over real HTTP; "changes made in WeCom" are made
directly in the sandbox's state, as another WeCom admin would.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from console.audit import Actor, AuditSource
from tagging.strategy.models import SyncState, Tag, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from tagging.strategy.services import tag_update
from tests.browser.conftest import login
from tests.tagging.strategy.conftest import console_tree, run_jobs, wecom_tree
from wecom.models import WeComApp
from wecom.sandbox import DEMO

CORP = DEMO.wecom_corp_id


@pytest.fixture
def app(sandbox, transactional_db, editor):
    app = WeComApp.objects.create(
        name="演示企业（沙盒）", corp_id=CORP, secret=DEMO.wecom_secret, rate_limit=1000
    )
    app.refresh_from_db()
    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    return app


def remote_id(sandbox, name: str) -> str:
    for group in sandbox.state.wecom._corps[CORP]["groups"].values():
        if group["group_name"] == name:
            return group["group_id"]
        for tag in group["tags"].values():
            if tag["name"] == name:
                return tag["id"]
    raise KeyError(name)


def open_tree(page: Page, app) -> None:
    page.goto(f"/admin/tagging/strategy/tree/{app.pk}/")
    expect(page.locator("#content h1")).to_contain_text("规则组标签")


def tag_chip(page: Page, name: str):
    return page.locator("li.strategy-tag", has=page.get_by_role("link", name=name, exact=True))


def drag(page: Page, source, target) -> None:
    """A person's drag: press on the handle, move in steps, release over the target."""
    box, goal = source.bounding_box(), target.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    steps = 12
    for step in range(1, steps + 1):
        page.mouse.move(
            box["x"] + (goal["x"] + 4 - box["x"]) * step / steps,
            box["y"] + (goal["y"] + goal["height"] / 2 - box["y"]) * step / steps,
        )
    page.mouse.up()


def test_the_editor_creates_renames_reorders_and_deletes(page, editor, app, sandbox):
    login(page, editor)
    panel = page.locator(".console-panel", has=page.locator("h2", has_text="企业微信规则组标签"))
    expect(panel).to_contain_text("演示企业（沙盒）")
    panel.get_by_role("link", name=re.compile("标签树")).click()
    expect(page.locator(".strategy-nav")).to_contain_text("华东区销售规则组")

    # A new group with its tags, on one page; a clash is explained beside the field first.
    page.get_by_role("link", name="添加标签组").click()
    page.locator("#id_name").fill("客户等级")
    page.locator("#id_tags").fill("线上\n线下")
    page.get_by_role("button", name="保存", exact=True).click()
    error = page.locator(".form-row.field-name .errorlist")
    expect(error).to_contain_text("这里已有标签组“客户等级”")
    expect(error.get_by_role("link", name="打开它")).to_be_visible()
    page.locator("#id_name").fill("渠道来源")
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("成功")
    expect(page).to_have_url(re.compile(r"/admin/tagging/strategy/tree/\d+/\?strategy=\d+"))
    expect(page.locator("li.strategy-group").first).to_contain_text("渠道来源")
    assert [t.name for t in TagGroup.objects.get(name="渠道来源").tags.all()] == ["线上", "线下"]

    # Rename a tag one click away from the tree.
    open_tree(page, app)
    page.get_by_role("link", name="普通客户", exact=True).click()
    expect(page.locator(".strategy-item-state")).to_contain_text("已同步")
    page.locator("#id_name").fill("一般客户")
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("成功")

    # Re-order by dragging: 潜在客户 to the top of its group, one call to WeCom.
    open_tree(page, app)
    page.wait_for_selector("html[data-strategy-tree-ready]")
    sandbox.reset_stats()
    group = page.locator(
        "li.strategy-group", has=page.get_by_role("link", name="客户等级", exact=True)
    )
    drag(page, tag_chip(page, "潜在客户").locator(".strategy-handle"), tag_chip(page, "重要客户"))
    expect(page.locator("#strategy-status")).to_contain_text("排序已保存到企业微信（1 次调用）")
    expect(group.locator("li.strategy-tag").first).to_contain_text("潜在客户")
    assert sandbox.calls("wecom", "/cgi-bin/externalcontact/edit_strategy_tag") == 1
    page.reload()
    expect(group.locator("li.strategy-tag").first).to_contain_text("潜在客户")

    # The same without a mouse: ▲ moves the group 意向产品 above 客户等级 (under the new
    # group, on top), one call again.
    sandbox.reset_stats()
    page.get_by_role("button", name="上移: 意向产品").click()
    expect(page.locator("#strategy-status")).to_contain_text("排序已保存到企业微信（1 次调用）")
    expect(page.locator("li.strategy-group").nth(1)).to_contain_text("意向产品")
    expect(page.locator("li.strategy-group").nth(2)).to_contain_text("客户等级")
    assert sandbox.calls("wecom", "/cgi-bin/externalcontact/edit_strategy_tag") == 1

    # Delete a tag: the confirmation says what it means for customers.
    page.get_by_role("link", name="潜在客户", exact=True).click()
    page.locator(".deletelink").click()
    expect(page.locator(".strategy-warning")).to_contain_text("每一位带有该标签的客户")
    page.get_by_role("button", name=re.compile("是的")).click()
    expect(page.locator("ul.messagelist")).to_contain_text("成功")
    assert console_tree(app) == wecom_tree(sandbox)


def test_the_editor_pulls_changes_made_in_wecom_and_settles_conflicts(page, editor, app, sandbox):
    state = sandbox.state
    state.wecom.edit_strategy_tag(CORP, {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"})
    state.wecom.del_strategy_tag(CORP, {"tag_id": [remote_id(sandbox, "试用中")]})
    # Two local changes that never reached WeCom, both changed in WeCom meanwhile.
    for name, ours, theirs in (
        ("金卡会员", "金卡VIP", "黄金会员"),
        ("银卡会员", "银卡VIP", "白银会员"),
    ):
        Tag.objects.filter(name=name).update(
            pending_name=ours, sync_state=SyncState.FAILED, sync_message="企业微信繁忙"
        )
        state.wecom.edit_strategy_tag(CORP, {"id": remote_id(sandbox, name), "name": theirs})

    login(page, editor)
    page.goto("/admin/tagging/strategy/")
    page.get_by_role("link", name="从企业微信拉取：演示企业（沙盒）").click()
    # The pull is a job: its bar shows until the worker has planned; then the plan.
    expect(page.locator("[data-progress-url]")).to_be_visible()
    run_jobs()
    changes = page.locator(".strategy-changes")
    expect(changes).to_contain_text("核心客户")
    expect(changes).to_contain_text("在企业微信中改名")
    expect(changes).to_contain_text("试用中")
    conflicts = page.locator("tr.strategy-conflict")
    expect(conflicts).to_have_count(2)
    page.locator("tr.strategy-conflict", has_text="黄金会员").get_by_label("采用企业微信的").check()
    page.locator("tr.strategy-conflict", has_text="白银会员").get_by_label("推送我们的").check()
    page.get_by_role("button", name="应用此计划").click()
    expect(page.locator("[data-progress-url]")).to_be_visible()
    run_jobs()
    expect(page.locator("ul.messagelist")).to_contain_text("计划已应用")
    expect(page.locator(".strategy-main")).to_contain_text("核心客户")
    expect(page.locator(".strategy-main")).not_to_contain_text("试用中")
    assert Tag.objects.filter(name="黄金会员", sync_state=SyncState.IN_SYNC).exists()
    assert Tag.objects.filter(name="银卡VIP", sync_state=SyncState.IN_SYNC).exists()
    assert console_tree(app) == wecom_tree(sandbox)


def test_a_plan_changed_meanwhile_is_planned_again(page, editor, app, sandbox):
    state = sandbox.state
    state.wecom.edit_strategy_tag(CORP, {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"})
    login(page, editor)
    page.goto(f"/admin/tagging/strategy/pull/{app.pk}/")
    expect(page.locator("[data-progress-url]")).to_be_visible()
    run_jobs()
    expect(page.locator(".strategy-changes")).to_contain_text("核心客户")
    state.wecom.edit_strategy_tag(CORP, {"id": remote_id(sandbox, "普通客户"), "name": "一般客户"})
    page.get_by_role("button", name="应用此计划").click()
    expect(page.locator("[data-progress-url]")).to_be_visible()
    run_jobs()
    expect(page.locator("ul.messagelist")).to_contain_text("未应用任何内容")
    expect(page.locator(".strategy-changes")).to_contain_text("一般客户")
    assert Tag.objects.filter(name="重要客户").exists()


def test_a_second_editor_change_meets_a_stale_form_warning(page, editor, app, make_user):
    login(page, editor)
    tag = Tag.objects.get(name="普通客户")
    page.goto(f"/admin/tagging/tag/{tag.pk}/change/")
    colleague = Actor(user=make_user("同事"), source=AuditSource.ADMIN)
    tag_update(tag=tag, name="同事改的", actor=colleague)
    page.locator("#id_name").fill("我改的")
    page.get_by_role("button", name="保存", exact=True).click()
    warning = page.locator(".errornote, .errorlist").filter(has_text="修改了它")
    expect(warning.first).to_contain_text("同事")
    expect(warning.first).to_contain_text("同事改的")
    expect(warning.first).to_contain_text("我改的")
    assert Tag.objects.get(pk=tag.pk).name == "同事改的"


def test_the_auditor_sees_the_same_pages_with_nothing_editable(page, auditor, app):
    login(page, auditor)
    open_tree(page, app)
    expect(page.locator(".strategy-main")).to_contain_text("重要客户")
    expect(page.locator(".strategy-handle")).to_have_count(0)
    expect(page.get_by_role("link", name="添加标签组")).to_have_count(0)
    expect(page.get_by_role("link", name="从企业微信拉取")).to_have_count(0)
    page.get_by_role("link", name="重要客户", exact=True).click()
    expect(page.locator("#content h1")).to_contain_text("查看")
    expect(page.locator("input#id_name")).to_have_count(0)
    expect(page.get_by_role("button", name="保存", exact=True)).to_have_count(0)
    page.goto("/admin/tagging/tag/")
    expect(page.locator("#result_list")).to_contain_text("重要客户")
    expect(page.locator("select[name=action]")).to_have_count(0)
