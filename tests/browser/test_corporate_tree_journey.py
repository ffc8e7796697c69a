"""Corporate tags (企业标签) in the browser, in zh-hans: the editor opens the corporate library
beside the strategies, creates a corporate tag group, renames a tag and drags it, each change one
call to WeCom's corporate endpoints; the meter counts both kinds against the 10,000."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from console.audit import Actor, AuditSource
from tagging.strategy.models import StrategyKind, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from tests.browser.conftest import login
from tests.browser.test_strategy_tags_journey import drag, tag_chip
from tests.tagging.strategy.conftest import console_tree, wecom_tree
from wecom.models import WeComApp
from wecom.sandbox import DEMO

CORP = DEMO.wecom_corp_id
EXT = "/cgi-bin/externalcontact/"
# Where the lead collects the screenshots of the journeys (only when it exists).
# JOURNEY_SHOTS=DIR keeps a screenshot there.
SHOTS = Path(os.environ.get("JOURNEY_SHOTS") or "/nonexistent")


@pytest.fixture
def app(sandbox, transactional_db, editor):
    app = WeComApp.objects.create(
        name="演示企业（沙盒）", corp_id=CORP, secret=DEMO.wecom_secret, rate_limit=1000
    )
    app.refresh_from_db()
    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    return app


def test_the_editor_creates_renames_and_moves_a_corporate_tag(page: Page, editor, app, sandbox):
    login(page, editor)
    page.goto(f"/admin/tagging/strategy/tree/{app.pk}/")
    nav = page.locator(".strategy-nav")
    expect(nav.locator("h2.strategy-corporate-heading")).to_have_text("企业标签")
    expect(nav.locator(".strategy-meter label")).to_have_text("已用 24 / 10,000")
    nav.locator(".strategy-corporate a").click()
    expect(page.locator("h2.strategy-title")).to_contain_text("企业标签")
    expect(page.locator("li.strategy-group").first).to_contain_text("客户来源")

    # A new corporate group with its tags, on one page, through add_corp_tag.
    sandbox.reset_stats()
    page.get_by_role("link", name="添加标签组").click()
    page.locator("#id_name").fill("获客渠道")
    page.locator("#id_tags").fill("抖音\n小红书")
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("成功")
    root = app.strategy_set.get(kind=StrategyKind.CORPORATE)
    expect(page).to_have_url(re.compile(rf"/admin/tagging/strategy/tree/\d+/\?strategy={root.pk}"))
    expect(page.locator("li.strategy-group").first).to_contain_text("获客渠道")
    expect(page.locator(".strategy-meter label")).to_have_text("已用 26 / 10,000")
    assert sandbox.calls("wecom", EXT + "add_corp_tag") == 1
    assert sandbox.calls("wecom", EXT + "add_strategy_tag") == 0
    group = TagGroup.objects.get(name="获客渠道")
    assert group.strategy_id == root.pk

    # Rename a tag one click away from the tree.
    page.get_by_role("link", name="抖音", exact=True).click()
    page.locator("#id_name").fill("抖音号")
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("成功")
    assert sandbox.calls("wecom", EXT + "edit_corp_tag") == 1

    # Drag 小红书 above 抖音号: one call to WeCom.
    page.goto(f"/admin/tagging/strategy/tree/{app.pk}/?strategy={root.pk}")
    page.wait_for_selector("html[data-strategy-tree-ready]")
    sandbox.reset_stats()
    chips = page.locator(
        "li.strategy-group", has=page.get_by_role("link", name="获客渠道", exact=True)
    ).locator("li.strategy-tag")
    expect(chips.first).to_contain_text("抖音号")
    drag(page, tag_chip(page, "小红书").locator(".strategy-handle"), tag_chip(page, "抖音号"))
    expect(page.locator("#strategy-status")).to_contain_text("排序已保存到企业微信（1 次调用）")
    expect(chips.first).to_contain_text("小红书")
    assert sandbox.calls("wecom", EXT + "edit_corp_tag") == 1
    assert sandbox.calls("wecom", EXT + "edit_strategy_tag") == 0
    page.reload()
    expect(chips.first).to_contain_text("小红书")
    assert console_tree(app) == wecom_tree(sandbox)
    if SHOTS.is_dir():
        page.screenshot(path=str(SHOTS / "corp_tree.png"), full_page=True)
