"""The tree of a strategy with a few hundred tags, in zh-hans: groups beyond the first drawn
closed with their counts and opened on a click, a search answered by the server as a filtered
tree (the page stays), and moves right after a pull: one call where a gap exists, a job with
its bar where none does."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from console.audit import Actor, AuditSource
from console.models import Job
from tagging.strategy.models import Strategy, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from tagging.strategy.respacing import RESPACE_KIND
from tests.browser.conftest import login
from tests.tagging.bulk.test_bulk_jobs import drain
from tests.tagging.strategy.conftest import console_tree, wecom_tree
from wecom.models import WeComApp
from wecom.sandbox import DEMO

CORP = DEMO.wecom_corp_id
GROUPS, TAGS = 30, 12  # 360 tags
EDIT = "/cgi-bin/externalcontact/edit_strategy_tag"


@pytest.fixture
def app(sandbox, transactional_db, editor):
    sandbox.state.wecom.add_strategy(CORP, 4, "大规则组")
    for n in range(GROUPS):
        sandbox.state.wecom.add_strategy_group(
            CORP, 4, f"组{n:02d}", order=n, tags=[(f"标签{n:02d}-{m:02d}", m) for m in range(TAGS)]
        )
    app = WeComApp.objects.create(
        name="演示企业（沙盒）", corp_id=CORP, secret=DEMO.wecom_secret, rate_limit=1000
    )
    app.refresh_from_db()
    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    return app


def open_big(page: Page, app) -> Strategy:
    strategy = Strategy.objects.get(app=app, wecom_id=4)
    page.goto(f"/admin/tagging/strategy/tree/{app.pk}/?strategy={strategy.pk}")
    page.wait_for_selector("html[data-strategy-tree-ready]")
    return strategy


def group_item(page: Page, name: str):
    return page.locator("li.strategy-group", has=page.get_by_role("link", name=name, exact=True))


def test_closed_groups_open_on_a_click_and_a_search_filters_the_tree(page, editor, app):
    login(page, editor)
    open_big(page, app)
    # Orders as pulled: 组29 on top. Its tags and the next groups' are drawn while they fit.
    expect(page.locator("li.strategy-group").first).to_contain_text("组29")
    first = group_item(page, "组29")
    expect(first.locator("li.strategy-tag")).to_have_count(TAGS)
    closed = group_item(page, "组03")
    toggle = closed.get_by_role("button", name="12 个标签")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(closed.locator("li.strategy-tag")).to_have_count(0)

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(closed.locator("li.strategy-tag a.strategy-name")).to_have_text(
        [f"标签03-{m:02d}" for m in reversed(range(TAGS))]
    )
    toggle.click()
    expect(closed.locator(".strategy-group-body")).to_be_hidden()

    # A search, answered by the server: the page stays, the tree shows only what matches.
    page.evaluate("window.stillTheSamePage = true")
    page.locator("#strategy-q").fill("标签17-0")
    page.locator("#strategy-q").press("Enter")
    results = page.locator(".strategy-results")
    expect(results).to_contain_text("显示的标签组 1 个；匹配的标签 10 个")
    expect(page.locator("li.strategy-group")).to_have_count(1)
    expect(group_item(page, "组17").locator("li.strategy-tag")).to_have_count(10)
    expect(group_item(page, "组17")).to_contain_text("12 个标签，10 个匹配")
    expect(page).to_have_url(re.compile(r"q=%E6%A0%87%E7%AD%BE17-0"))
    assert page.evaluate("window.stillTheSamePage") is True
    # The whole tree again, in place.
    page.get_by_role("link", name="清除搜索", exact=True).click()
    expect(page.locator("li.strategy-group")).to_have_count(GROUPS)
    assert page.evaluate("window.stillTheSamePage") is True
    page.go_back()
    expect(page.locator("li.strategy-group")).to_have_count(1)


def test_moves_right_after_a_pull(page, editor, app, sandbox):
    login(page, editor)
    strategy = open_big(page, app)
    status = page.locator("#strategy-status")
    sandbox.reset_stats()

    # ▲ on the second group: to the top, where there is room: one call.
    page.get_by_role("button", name="上移: 组28").click()
    expect(status).to_contain_text("排序已保存到企业微信（1 次调用）")
    expect(page.locator("li.strategy-group").first).to_contain_text("组28")
    assert sandbox.calls("wecom", EDIT) == 1

    # The same in a group opened on demand.
    group = group_item(page, "组05")
    group.get_by_role("button", name="12 个标签").click()
    group.get_by_role("button", name="上移: 标签05-10").click()
    # The status still says the same as after the first move: wait for the answer itself (the
    # list is busy from the click until the server has answered).
    expect(page.locator("ol[aria-busy]")).to_have_count(0)
    expect(status).to_contain_text("排序已保存到企业微信（1 次调用）")
    expect(group.locator("li.strategy-tag").first).to_contain_text("标签05-10")
    assert sandbox.calls("wecom", EDIT) == 2

    # ▲ on the last group: no room between two orders that touch. The page says a job gives
    # the list new orders, shows its bar, and the new order once the job is done.
    page.get_by_role("button", name="上移: 组00").click()
    expect(status).to_contain_text("作为后台作业进行")
    bar = page.locator(".strategy-respacing")
    expect(bar).to_contain_text("大规则组")
    assert sandbox.calls("wecom", EDIT) == 2, "nothing sent inside the web request"
    expect(group.locator(".strategy-pending-value").first).to_be_visible()

    drain(Job.objects.get(kind=RESPACE_KIND))

    expect(bar).to_have_count(0)
    expect(status).to_contain_text("完成")
    names = page.locator(
        "ol.strategy-groups > li.strategy-group > .strategy-group-head a.strategy-name"
    )
    expect(names.nth(GROUPS - 2)).to_have_text("组00")
    expect(names.last).to_have_text("组01")
    # The group opened before the re-spacing is still open.
    expect(group.locator("li.strategy-tag")).to_have_count(TAGS)
    assert sandbox.calls("wecom", EDIT) == 2 + GROUPS
    ordered = TagGroup.objects.filter(strategy=strategy).order_by("-order", "pk")
    assert [g.name for g in ordered][-2:] == ["组00", "组01"]
    assert console_tree(app) == wecom_tree(sandbox)
