"""An editor writes a combined answer (text + news + mini-program) in the structured editor,
watches the phone preview follow the typing, pushes it and sees it in sync; a broken TOKEN is
explained; hostile content never runs; an auditor can change nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from chatbot.models import AutoReply, ReplySyncState, Skill
from tests.browser.conftest import RESULTS, login
from tests.browser.test_strategy_tags_journey import drag
from tests.chatbot.conftest import make_bot
from wecom.sandbox import DEMO, FaultRule

SHOTS = Path(RESULTS)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / f"chatbot-{name}.png", full_page=True)


def messages(page: Page):
    return page.locator("ul.messagelist")


def part(page: Page, number: int):
    return page.locator(".ce-items > .ce-item").nth(number - 1)


def test_an_editor_builds_pushes_and_breaks_a_combined_answer(page, editor, sandbox, settings):
    settings.PLATFORM_MAX_ATTEMPTS = 1
    Skill.objects.create(bot=make_bot(), name="售后服务")
    login(page, editor)
    page.goto("/admin/chatbot/autoreply/add/")
    page.locator("#id_skill").select_option(label="售后服务 (演示机器人)")
    page.locator("#id_title").fill("怎么退货？")
    preview = page.locator("[data-preview]")
    expect(preview.locator(".pv-user")).to_have_text("怎么退货？")
    page.locator("#id_questions").fill("如何退货\n退货流程")

    # A combined answer: its first part is a text, typed and followed by the preview.
    page.locator("[data-kind]").select_option("multimsg")
    text = part(page, 1).locator("textarea")
    text.fill("您好，退货请看")
    expect(preview.locator(".pv-text").first).to_have_text("您好，退货请看")
    text.press("End")
    part(page, 1).get_by_role("button", name="插入链接").click()
    link = part(page, 1).locator(".ce-chip-link")
    link.get_by_label("显示文字").fill("退货说明")
    link.get_by_label(re.compile("网址")).fill("https://example.com/returns")
    expect(preview.locator(".pv-link-link")).to_have_text("退货说明")

    # News.
    page.locator("[data-add-kind]").select_option("news")
    page.locator('[data-action="add-item"]').click()
    news = part(page, 2)
    news.get_by_label("标题").fill("退货政策 <script>window.pwned=1</script>")
    news.get_by_label("描述").fill("七天无理由")
    news.get_by_label(re.compile("^链接")).fill("https://example.com/policy")
    expect(preview.locator(".pv-article-title")).to_have_text(
        "退货政策 <script>window.pwned=1</script>"
    )

    # Mini-program.
    page.locator("[data-add-kind]").select_option("miniprogrampage")
    page.locator('[data-action="add-item"]').click()
    mini = part(page, 3)
    mini.get_by_label("标题").fill("退货小程序")
    mini.get_by_label("小程序 AppID").fill("wx8c631f7e9f2465e1")
    mini.get_by_label("页面路径").fill("pages/returns/index")
    mini.get_by_label("封面素材 ID").fill("KegpipQG9t-klMo25My4e8")
    expect(preview.locator(".pv-mini-title")).to_have_text("退货小程序")
    expect(preview.locator(".pv-row-bot")).to_have_count(3)

    # Re-order: the mini-program moves up above the news, in the editor and the preview.
    mini.get_by_role("button", name="上移").click()
    expect(part(page, 2)).to_have_attribute("data-kind", "miniprogrampage")
    expect(preview.locator(".pv-row-bot").nth(1).locator(".pv-mini")).to_have_count(1)
    assert page.evaluate("window.pwned") is None
    shot(page, "editor")

    page.get_by_role("button", name="保存并推送").click()
    expect(messages(page)).to_contain_text("平台已接受")
    expect(page.locator(".field-sync_status")).to_contain_text("已同步")
    reply = AutoReply.objects.get()
    assert reply.sync_state == ReplySyncState.IN_SYNC
    sent = sandbox.state.chatbot.skills(DEMO.bot_appid)[("售后服务", "怎么退货？")]
    content = json.loads(sent["content"])
    assert [
        next(iter(item)) if isinstance(item, dict) else "text" for item in content["multimsg"]
    ] == ["text", "miniprogrampage", "news"]
    assert (
        content["multimsg"][0] == '您好，退货请看<a href="https://example.com/returns">退货说明</a>'
    )
    assert sent["questions"] == ["如何退货", "退货流程"]
    shot(page, "pushed")

    # The bot's TOKEN stops working on the platform: 1001 is explained, the reply is not in sync.
    sandbox.faults.add(FaultRule(platform="chatbot", errcode=1001))
    page.locator("[data-preview]").wait_for()
    part(page, 1).locator("textarea").first.fill("您好，退货请看这里：")
    page.get_by_role("button", name="保存并推送").click()
    expect(messages(page)).to_contain_text("机器人的 TOKEN 无效")
    expect(page.locator(".field-sync_status")).to_contain_text("推送失败")
    assert AutoReply.objects.get().sync_state == ReplySyncState.FAILED
    shot(page, "token-broken")
    assert page.evaluate("window.pwned") is None


def test_an_auditor_reads_the_reply_and_can_change_nothing(page, auditor, editor, sandbox):
    from chatbot.answers import answer_from_editor
    from chatbot.services import reply_create
    from console.audit import Actor, AuditSource
    from tests.chatbot.conftest import MULTI

    skill = Skill.objects.create(bot=make_bot(), name="售后服务")
    hostile = {
        "type": "multimsg",
        "items": [
            {
                "type": "text",
                "segments": [{"kind": "text", "text": "<img src=x onerror=window.pwned=1> ]]> 🎉"}],
            },
            *MULTI["items"][1:],
        ],
    }
    reply = reply_create(
        skill=skill,
        title="<script>window.pwned=1</script>",
        questions=[],
        answer=answer_from_editor(hostile),
        actor=Actor(user=editor, source=AuditSource.CONSOLE),
    )
    login(page, auditor)
    page.goto(f"/admin/chatbot/autoreply/{reply.pk}/change/")
    preview = page.locator("[data-preview]")
    expect(preview.locator(".pv-row-bot")).to_have_count(3)
    expect(preview.locator(".pv-text").first).to_contain_text("<img src=x onerror=window.pwned=1>")
    expect(preview.locator(".pv-user")).to_have_text("<script>window.pwned=1</script>")
    form = page.locator("#autoreply_form")
    expect(form.locator("textarea, select, input[type=submit], input[type=text]")).to_have_count(0)
    expect(page.get_by_role("button", name="保存并推送")).to_have_count(0)
    assert page.evaluate("window.pwned") is None
    shot(page, "auditor")


def test_an_editor_imports_a_csv_reads_the_report_and_pushes_all_changed(
    page, editor, sandbox, settings, tmp_path
):
    from console.jobs.services import job_run_shard
    from console.models import Job

    settings.PLATFORM_MAX_ATTEMPTS = 1
    bot = make_bot()
    header = "skillname,title,questions,managerid,answer_type,text,news_title,news_url\n"
    rows = (
        '售后服务,怎么退货？,"如何退货\n退货流程",,text,请在订单页申请退货。,,\n'
        "活动,有什么活动,,,news,,双十一,https://example.com/a\n"
        "活动,坏的一行,,,news,,标题,javascript:alert(1)\n"
    )
    path = tmp_path / "replies.csv"
    path.write_text(header + rows, encoding="utf-8-sig")
    login(page, editor)
    page.goto("/admin/chatbot/autoreply/")
    page.locator(".object-tools").get_by_role("link", name="导入").click()
    page.locator("#id_bot").select_option(label=bot.name)
    page.locator("#id_file").set_input_files(str(path))
    page.get_by_role("button", name="查看报告").click()
    report = page.locator("#import-report")
    expect(page.locator(".chatbot-import-summary")).to_contain_text(
        "2 个新增，0 个修改，0 个未变，1 个拒绝。"
    )
    expect(report.locator("tr.status-refused")).to_contain_text("第 1 篇文章：链接必须是")
    assert not AutoReply.objects.exists()
    shot(page, "import-report")
    page.get_by_role("button", name="导入 2 条回复").click()
    expect(messages(page)).to_contain_text("已导入到")
    assert AutoReply.objects.count() == 2
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    shot(page, "changelist")

    page.get_by_role("button", name="推送全部已修改").click()
    expect(page).to_have_url(re.compile(r"/admin/console/job/\d+/change/$"))
    job = Job.objects.get()
    for shard in job.shards.all():  # what the worker does
        job_run_shard(shard_id=shard.pk, worker="browser-test")
    expect(page.locator("body")).to_contain_text("已完成：全部 2 条成功。", timeout=15_000)
    shot(page, "push-job")
    assert set(AutoReply.objects.values_list("sync_state", flat=True)) == {ReplySyncState.IN_SYNC}


def test_parts_of_a_combined_answer_are_reordered_by_dragging(page, editor):
    Skill.objects.create(bot=make_bot(), name="售后服务")
    login(page, editor)
    page.goto("/admin/chatbot/autoreply/add/")
    page.locator("[data-kind]").select_option("multimsg")
    part(page, 1).locator("textarea").fill("第一段")
    page.locator("[data-add-kind]").select_option("image")
    page.locator('[data-action="add-item"]').click()
    part(page, 2).get_by_label(re.compile("素材 ID")).fill("media-1")
    expect(part(page, 1)).to_have_attribute("data-kind", "text")
    drag(page, part(page, 2).locator(".ce-handle"), part(page, 1))
    expect(part(page, 1)).to_have_attribute("data-kind", "image")
    expect(part(page, 2).locator("textarea")).to_have_value("第一段")
    preview = page.locator("[data-preview] .pv-row-bot")
    expect(preview.nth(0).locator(".pv-image")).to_have_count(1)
    state = json.loads(page.locator("[data-answer-input]").input_value())
    assert [item["type"] for item in state["items"]] == ["image", "text"]


def test_parts_dragged_into_a_new_order_are_saved_in_it(page, editor):
    Skill.objects.create(bot=make_bot(), name="售后服务")
    login(page, editor)
    page.goto("/admin/chatbot/autoreply/add/")
    page.locator("#id_skill").select_option(label="售后服务 (演示机器人)")
    page.locator("#id_title").fill("怎么退货？")
    page.locator("[data-kind]").select_option("multimsg")
    part(page, 1).locator("textarea").fill("第一段")
    page.locator("[data-add-kind]").select_option("image")
    for number in (2, 3):
        page.locator('[data-action="add-item"]').click()
        part(page, number).get_by_label(re.compile("素材 ID")).fill(f"media-{number}")

    # The last part dragged by its handle to the top (SortableJS): the fields keep their values.
    drag(page, part(page, 3).locator(".ce-handle"), part(page, 1))
    expect(part(page, 1).get_by_label(re.compile("素材 ID"))).to_have_value("media-3")
    expect(part(page, 2).locator("textarea")).to_have_value("第一段")
    expect(part(page, 3).get_by_label(re.compile("素材 ID"))).to_have_value("media-2")
    preview = page.locator("[data-preview] .pv-row-bot")
    expect(preview.nth(0)).to_contain_text("media-3")
    expect(preview.nth(1)).to_contain_text("第一段")

    # The same from the keyboard: the arrow keeps the focus on the part it moved.
    part(page, 2).get_by_role("button", name="下移").focus()
    page.keyboard.press("Enter")
    expect(part(page, 3).locator("textarea")).to_have_value("第一段")
    expect(part(page, 3).get_by_role("button", name="下移")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(part(page, 2).locator("textarea")).to_have_value("第一段")
    state = json.loads(page.locator("[data-answer-input]").input_value())
    assert [item.get("media_id") or item["type"] for item in state["items"]] == [
        "media-3",
        "text",
        "media-2",
    ]

    page.get_by_role("button", name="保存", exact=True).click()
    expect(messages(page)).to_contain_text("成功")
    saved = AutoReply.objects.get().content["multimsg"]
    assert [item["image"]["media_id"] if "image" in item else item for item in saved] == [
        "media-3",
        "第一段",
        "media-2",
    ]


def test_changing_the_question_of_a_pushed_reply_is_warned_while_typing(page, editor, sandbox):
    from chatbot.answers import answer_from_editor
    from chatbot.services import reply_create, reply_push
    from console.audit import Actor, AuditSource
    from tests.chatbot.conftest import TEXT

    skill = Skill.objects.create(bot=make_bot(), name="售后服务")
    actor = Actor(user=editor, source=AuditSource.CONSOLE)
    reply = reply_create(
        skill=skill, title="旧问题", questions=[], answer=answer_from_editor(TEXT), actor=actor
    )
    assert reply_push(reply=reply, actor=actor).ok
    login(page, editor)
    page.goto(f"/admin/chatbot/autoreply/{reply.pk}/change/")
    warning = page.locator(".chatbot-leftover-live")
    expect(warning).to_be_hidden()
    page.locator("#id_title").fill("新问题")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("“旧问题”仍留在平台上")
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.locator(".field-leftover_confirmed")).to_contain_text("旧条目仍留在平台上")
    assert AutoReply.objects.get().title == "旧问题"
    page.get_by_label("我知道旧条目会留在平台上").check()
    page.get_by_role("button", name="保存", exact=True).click()
    expect(messages(page)).to_contain_text("成功")
    assert AutoReply.objects.get().title == "新问题"
