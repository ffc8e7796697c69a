"""Two editors in two browsers (issue 15): a reply, a skill, a tag and a tree move, each opened
by both before either saves. The second save is refused in words (who, when, both values), the
first editor's change is kept, and nothing is sent to WeCom from a page that was out of date."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from chatbot.answers import answer_from_editor
from chatbot.models import AutoReply, Skill
from chatbot.services import reply_create
from console.audit import Actor, AuditSource
from console.roles import MARKETING_EDITOR
from tagging.strategy.models import Tag, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from tests.browser.conftest import login
from tests.browser.test_strategy_tags_journey import drag, tag_chip
from tests.chatbot.conftest import TEXT, make_bot
from tests.tagging.strategy.conftest import console_tree, wecom_tree
from wecom.models import WeComApp
from wecom.sandbox import DEMO

STALE = "在您打开之后，first 于"


@pytest.fixture
def two(new_page, editor, make_user) -> tuple[Page, Page]:
    first, second = new_page("zh-CN"), new_page("zh-CN")
    login(first, make_user("first", role=MARKETING_EDITOR))
    login(second, editor)
    return first, second


@pytest.fixture
def app(sandbox, transactional_db, editor):
    app = WeComApp.objects.create(
        name="演示企业（沙盒）",
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        rate_limit=1000,
    )
    app.refresh_from_db()
    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    return app


def save(page: Page) -> None:
    page.get_by_role("button", name="保存", exact=True).click()


def test_two_editors_on_one_reply(two, editor):
    first, second = two
    skill = Skill.objects.create(bot=make_bot(), name="售后服务")
    reply = reply_create(
        skill=skill,
        title="怎么退货？",
        questions=["如何退货"],
        answer=answer_from_editor(TEXT),
        actor=Actor(user=editor, source=AuditSource.CONSOLE),
    )
    url = f"/admin/chatbot/autoreply/{reply.pk}/change/"
    for page in two:
        page.goto(url)
        page.wait_for_selector("[data-answer-editor] textarea")
    first.locator("#id_questions").fill("如何退货\n退货流程")
    save(first)
    expect(first.locator("ul.messagelist")).to_contain_text("成功")

    second.locator("[data-answer-editor] textarea").first.fill("十五天内可退。")
    save(second)
    refusal = second.locator(".errorlist.nonfield")
    expect(refusal).to_contain_text(STALE)
    expect(refusal).to_contain_text("退货流程")
    assert AutoReply.objects.get(pk=reply.pk).questions == ["如何退货", "退货流程"]
    # Told, the second editor keeps both: the first one's question and their own answer.
    second.locator("#id_questions").fill("如何退货\n退货流程")
    save(second)
    expect(second.locator("ul.messagelist")).to_contain_text("成功")
    reply.refresh_from_db()
    assert reply.questions == ["如何退货", "退货流程"]
    assert reply.content == "十五天内可退。"


def test_two_editors_on_one_skill(two):
    first, second = two
    skill = Skill.objects.create(bot=make_bot(), name="售后服务")
    for page in two:
        page.goto(f"/admin/chatbot/skill/{skill.pk}/change/")
    first.locator("#id_name").fill("售后")
    save(first)
    expect(first.locator("ul.messagelist")).to_contain_text("成功")
    second.locator("#id_name").fill("退换货")
    save(second)
    refusal = second.locator(".errorlist.nonfield")
    expect(refusal).to_contain_text(STALE)
    expect(refusal).to_contain_text("售后")
    assert Skill.objects.get(pk=skill.pk).name == "售后"


def test_two_editors_on_one_tag(two, app, sandbox):
    first, second = two
    tag = Tag.objects.get(app=app, name="普通客户")
    for page in two:
        page.goto(f"/admin/tagging/tag/{tag.pk}/change/")
    first.locator("#id_name").fill("一般客户")
    save(first)
    expect(first.locator("ul.messagelist")).to_contain_text("成功")
    sandbox.reset_stats()
    second.locator("#id_name").fill("普通会员")
    save(second)
    expect(second.locator(".errorlist.nonfield")).to_contain_text(STALE)
    expect(second.locator(".errorlist.nonfield")).to_contain_text("一般客户")
    assert Tag.objects.get(pk=tag.pk).name == "一般客户"
    assert sandbox.calls("wecom", "/cgi-bin/externalcontact/edit_strategy_tag") == 0
    assert console_tree(app) == wecom_tree(sandbox)


def test_two_editors_move_in_one_tree(two, app, sandbox):
    first, second = two
    for page in two:
        page.goto(f"/admin/tagging/strategy/tree/{app.pk}/")
        page.wait_for_selector("html[data-strategy-tree-ready]")
    group = TagGroup.objects.get(app=app, name="意向产品")
    names = [tag.name for tag in group.tags.all()]

    def tags_of(page: Page):
        return page.locator(f"#group-{group.pk} li.strategy-tag")

    # The first editor moves the second tag of the group to the top with ▲.
    first.get_by_role("button", name=f"上移: {names[1]}").click()
    expect(first.locator("#strategy-status")).to_contain_text("排序已保存到企业微信")
    expect(tags_of(first).first).to_contain_text(names[1])
    calls = sandbox.calls("wecom", "/cgi-bin/externalcontact/edit_strategy_tag")

    # The second editor's page still shows the old order and clicks ▼ on its third tag.
    assert len(names) >= 4
    second.get_by_role("button", name=f"下移: {names[2]}").click()
    status = second.locator("#strategy-status")
    expect(status).to_contain_text("页面加载后有人修改了此列表的顺序")
    true_order = [names[1], names[0], *names[2:]]
    assert [tag.name for tag in group.tags.all()] == true_order
    # The page shows the true order, not its own move.
    expect(tags_of(second).locator("a.strategy-name")).to_have_text(true_order)
    assert sandbox.calls("wecom", "/cgi-bin/externalcontact/edit_strategy_tag") == calls
    assert console_tree(app) == wecom_tree(sandbox)


def test_a_refused_move_shows_the_true_order(new_page, editor, app, sandbox):
    from wecom.sandbox import FaultRule

    page = new_page("zh-CN")
    login(page, editor)
    page.goto(f"/admin/tagging/strategy/tree/{app.pk}/")
    page.wait_for_selector("html[data-strategy-tree-ready]")
    group = TagGroup.objects.get(app=app, name="意向产品")
    names = [tag.name for tag in group.tags.all()]
    sandbox.faults.add(
        FaultRule(
            platform="wecom", endpoint="/cgi-bin/externalcontact/edit_strategy_tag", errcode=48002
        )
    )
    # A person's drag of the second tag to the top, refused by WeCom. (The page used to keep
    # the order it had when the drag started, which counted Sortable's ghost of the dragged
    # tag as a last child: the tag ended at the bottom.)
    drag(page, tag_chip(page, names[1]).locator(".strategy-handle"), tag_chip(page, names[0]))
    expect(page.locator("#strategy-status")).to_contain_text("48002")
    tags = page.locator(f"#group-{group.pk} li.strategy-tag a.strategy-name")
    expect(tags).to_have_text(names)
    assert [tag.name for tag in group.tags.all()] == names
