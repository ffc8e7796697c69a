"""An editor changes a live reply, pushes it, asks the bot debug and online side by side (new
answer and old), publishes with the job's bar, and asks online again (new answer). In zh-hans,
against the sandbox; screenshots in test-results/."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from chatbot.answers import answer_from_editor
from chatbot.models import AutoReply, Skill
from chatbot.publishing import bot_publish
from chatbot.services import reply_create, reply_push
from console.audit import Actor, AuditSource
from console.jobs.services import job_run_shard
from console.models import Job
from tests.browser.conftest import RESULTS, login
from tests.chatbot.conftest import make_bot

SHOTS = Path(RESULTS)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / f"chatbot-go-live-{name}.png", full_page=True)


def run(job: Job) -> None:
    for _ in range(10):
        for shard in job.shards.exclude(status="done"):
            job_run_shard(shard_id=shard.pk, worker="browser-test")
        job.refresh_from_db()
        if job.is_final:
            return


def ask(page: Page, question: str):
    panel = page.locator("[data-ask-bot]")
    panel.get_by_label("问题").fill(question)
    panel.get_by_label("环境").select_option("both")
    panel.get_by_role("button", name="提问").click()
    return panel


def test_push_ask_both_publish_and_ask_again(page, editor, sandbox, settings):
    settings.PLATFORM_MAX_ATTEMPTS = 1
    settings.CHATBOT_PUBLISH_POLL_SECONDS = 0
    ticks = itertools.count(0, 1.0)
    sandbox.state.clock = lambda: next(ticks)
    skill = Skill.objects.create(bot=make_bot(), name="售后服务")
    actor = Actor(user=editor, source=AuditSource.CONSOLE)
    old = {"type": "text", "segments": [{"kind": "text", "text": "旧的答案"}]}
    reply = reply_create(
        skill=skill,
        title="怎么退货",
        questions=["如何退货"],
        answer=answer_from_editor(old),
        actor=actor,
    )
    assert reply_push(reply=reply, actor=actor).ok
    run(bot_publish(bot=skill.bot, actor=actor))

    login(page, editor)
    page.goto(f"/admin/chatbot/autoreply/{reply.pk}/change/")
    expect(page.locator(".chatbot-live-note")).to_be_visible()
    page.locator("[data-answer-editor] textarea").first.fill("新的答案")
    page.locator("input[name=_saveandpush]").click()
    expect(page.locator(".chatbot-not-live-note")).to_be_visible()

    panel = ask(page, "如何退货")
    debug = panel.locator(".chatbot-ask-card[data-env=debug]")
    online = panel.locator(".chatbot-ask-card[data-env=online]")
    expect(debug.locator(".pv-text")).to_have_text("新的答案")
    expect(online.locator(".pv-text")).to_have_text("旧的答案")
    expect(online.locator(".chatbot-ask-warning")).to_contain_text("尚未上线")
    expect(debug.locator(".chatbot-ask-warning")).to_have_count(0)
    expect(debug.locator(".chatbot-ask-reply")).to_have_attribute(
        "href", f"/admin/chatbot/autoreply/{reply.pk}/change/"
    )
    shot(page, "1-debug-and-online")

    page.locator(".chatbot-not-live-note .chatbot-publish-link").click()
    expect(page.locator(".chatbot-not-live")).to_contain_text("1 条回复已推送，尚未上线")
    shot(page, "2-publish-page")
    page.get_by_role("button", name="发布上线").click()
    expect(page).to_have_url(re.compile(r"/admin/console/job/\d+/change/$"))
    job = Job.objects.get(kind="chatbot.publish", status__in=("queued", "running"))
    run(job)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    shot(page, "3-published")

    page.goto(f"/admin/chatbot/autoreply/{reply.pk}/change/")
    expect(page.locator(".chatbot-live-note")).to_be_visible()
    panel = ask(page, "如何退货")
    online = panel.locator(".chatbot-ask-card[data-env=online]")
    expect(online.locator(".pv-text")).to_have_text("新的答案")
    expect(online.locator(".chatbot-ask-warning")).to_have_count(0)
    shot(page, "4-online-new")
    assert AutoReply.objects.get().sync_state == "in_sync"
