"""Publishing a bot (debug to online) as a job that follows the platform's progress, against the
sandbox over HTTP; where each reply stands (changed here / pushed / live)."""

from __future__ import annotations

import io
import itertools

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import translation

from chatbot.answers import answer_from_editor
from chatbot.models import BotPublish, LiveState, PublishStatus
from chatbot.publishing import (
    PUBLISH_KIND,
    bot_publish,
    bots_not_live_counts,
    reply_live_state,
)
from chatbot.services import reply_push, reply_update
from console.jobs import StopReason
from console.jobs.services import job_run_shard
from console.models import Job, JobStatus
from tests.conftest import PASSWORD
from wecom.clients import PlatformError
from wecom.connections import client_for
from wecom.models import ChatbotBot
from wecom.sandbox import DEMO, FaultRule

from .conftest import saved_reply

pytestmark = pytest.mark.usefixtures("fast_platform")

OLD = {"type": "text", "segments": [{"kind": "text", "text": "旧的答案"}]}
NEW = {"type": "text", "segments": [{"kind": "text", "text": "新的答案"}]}


@pytest.fixture(autouse=True)
def english_terminal(monkeypatch, settings):
    monkeypatch.setenv("LANGUAGE", "en_US.UTF-8")
    settings.CHATBOT_PUBLISH_POLL_SECONDS = 0
    with translation.override("en"):
        yield


@pytest.fixture
def ticking(sandbox):
    """The sandbox's clock moves one second each time it is read: a 4-second publish reports
    25, 50, 75, then 100 %, without the test waiting."""
    ticks = itertools.count(0, 1.0)
    sandbox.state.clock = lambda: next(ticks)
    return sandbox


def run_all(job: Job) -> None:
    """What the worker does, in English (the tests read its sentences)."""
    with translation.override("en"):
        _run_all(job)


def _run_all(job: Job) -> None:
    for shard in job.shards.all():
        while job_run_shard(shard_id=shard.pk, worker="test").stop_reason is StopReason.SLICE_OVER:
            pass


def pushed_reply(skill, actor, content=OLD):
    reply = saved_reply(skill, actor, title="怎么退货", questions=["如何退货"], content=content)
    assert reply_push(reply=reply, actor=actor).ok
    return reply


def test_push_is_not_live_until_a_publish_succeeds_then_online_answers_it(ticking, skill, actor):
    reply = pushed_reply(skill, actor)
    assert reply_live_state(reply) == LiveState.PUSHED
    assert bots_not_live_counts() == {skill.bot_id: 1}
    assert ticking.state.chatbot.online_skills(DEMO.bot_appid) == {}

    job = bot_publish(bot=skill.bot, actor=actor)
    assert job.kind == PUBLISH_KIND and job.total == 100
    assert bot_publish(bot=skill.bot, actor=actor).pk == job.pk  # not a second job
    ticking.reset_stats()
    run_all(job)

    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.progress().done == 100
    # One publish; its progress asked first (none running), then until it succeeded.
    assert ticking.stats() == {
        "chatbot /openapi/publish": 1,
        "chatbot /openapi/publish_progress": 5,
    }
    publish = BotPublish.objects.get(job=job)
    assert publish.status == PublishStatus.SUCCEEDED and publish.started_at is not None
    assert reply_live_state(reply) == LiveState.LIVE
    assert bots_not_live_counts() == {}
    online = ticking.state.chatbot.online_skills(DEMO.bot_appid)
    assert online[("售后服务", "怎么退货")]["content"] == "旧的答案"

    # A later edit is "changed here", and once pushed "pushed, not yet live" again.
    reply_update(
        reply=reply,
        title=reply.title,
        questions=reply.questions,
        answer=answer_from_editor(NEW),
        actor=actor,
    )
    assert reply_live_state(reply) == LiveState.CHANGED
    assert reply_push(reply=reply, actor=actor).ok
    assert reply_live_state(reply) == LiveState.PUSHED
    online = ticking.state.chatbot.online_skills(DEMO.bot_appid)
    assert online[("售后服务", "怎么退货")]["content"] == "旧的答案"


def test_status_2_fails_the_job_with_a_sentence_and_nothing_goes_live(ticking, skill, actor):
    reply = pushed_reply(skill, actor)
    ticking.state.chatbot.set_publish_behaviour(DEMO.bot_appid, fail_at=40)
    job = bot_publish(bot=skill.bot, actor=actor)
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "could not publish the chatbot (it stopped at 40%)" in job.status_message
    assert job.progress().done == 40
    publish = BotPublish.objects.get(job=job)
    assert publish.status == PublishStatus.FAILED and publish.message == job.status_message
    assert reply_live_state(reply) == LiveState.PUSHED
    assert ticking.state.chatbot.online_skills(DEMO.bot_appid) == {}


def test_a_stuck_publish_ends_as_a_failed_job_saying_where_it_stuck(
    sandbox, skill, actor, settings
):
    settings.CHATBOT_PUBLISH_STUCK_SECONDS = 0.3
    settings.CHATBOT_PUBLISH_POLL_SECONDS = 0.05
    pushed_reply(skill, actor)
    sandbox.state.chatbot.set_publish_behaviour(DEMO.bot_appid, seconds=0, stuck_at=60)
    job = bot_publish(bot=skill.bot, actor=actor)
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "has been at 60% for 1 minutes without moving" in job.status_message
    assert job.progress().done == 60
    assert BotPublish.objects.get(job=job).status == PublishStatus.FAILED


def test_a_publish_already_running_is_followed_not_started_again(ticking, skill, actor):
    reply = pushed_reply(skill, actor)
    client = client_for(ChatbotBot.objects.get(pk=skill.bot_id))
    client.publish(managerid=DEMO.bot_manager_id)  # started elsewhere (the platform's pages)
    assert ticking.state.chatbot.publish_count(DEMO.bot_appid) == 1
    job = bot_publish(bot=skill.bot, actor=actor)
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert ticking.state.chatbot.publish_count(DEMO.bot_appid) == 1
    publish = BotPublish.objects.get(job=job)
    assert publish.started_at is None and "publish again to be sure" in publish.message
    # Nobody knows when that publish started: the reply is not marked live by it.
    assert reply_live_state(reply) == LiveState.PUSHED


def test_a_publish_the_platform_refuses_is_a_failed_job_with_the_reason(sandbox, skill, actor):
    sandbox.faults.add(FaultRule(platform="chatbot", endpoint="/openapi/publish", errcode=1002))
    job = bot_publish(bot=skill.bot, actor=actor)
    with translation.override("en"):
        run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.status_message.startswith("The chatbot was not published: The bot has not passed")
    assert BotPublish.objects.get(job=job).status == PublishStatus.FAILED


@pytest.mark.parametrize(
    "body",
    [
        "<html><body>502 Bad Gateway</body></html>",
        '{"code": 0, "msg": "success"}',
        '{"code": 0, "data": {"progress": "half", "status": 0}}',
        '{"code": 0, "data": {"progress": 10, "status": 7}}',
    ],
)
def test_an_unreadable_progress_answer_is_a_sentence(sandbox, demo_bot, body):
    sandbox.faults.add(
        FaultRule(platform="chatbot", endpoint="/openapi/publish_progress", body=body)
    )
    with pytest.raises(PlatformError) as caught:
        client_for(ChatbotBot.objects.get(pk=demo_bot.pk)).publish_progress(
            managerid=DEMO.bot_manager_id
        )
    assert "{" not in caught.value.explanation and "<" not in caught.value.explanation


def test_a_bot_without_manager_id_cannot_be_published(demo_bot, actor):
    demo_bot.default_manager_id = ""
    demo_bot.save()
    with pytest.raises(ValidationError, match="no default manager ID"):
        bot_publish(bot=demo_bot, actor=actor)


def test_skills_publish_wait_follows_to_the_end(ticking, skill, actor):
    pushed_reply(skill, actor)
    out = io.StringIO()
    call_command("skills", "publish", "--bot", skill.bot.name, "--wait", stdout=out)
    text = out.getvalue()
    assert "Finished: all 100 done." in text
    assert Job.objects.get(kind=PUBLISH_KIND).status == JobStatus.DONE


def test_skills_publish_wait_exits_non_zero_when_the_publish_fails(ticking, skill, actor):
    ticking.state.chatbot.set_publish_behaviour(DEMO.bot_appid, fail_at=0)
    with pytest.raises(CommandError, match="it stopped at 0%") as caught:
        call_command("skills", "publish", "--bot", skill.bot.name, "--wait", stdout=io.StringIO())
    assert caught.value.returncode == 1


def test_reply_list_filters_by_live_state_and_offers_the_publish_page(
    client, editor, ticking, skill, actor
):
    reply = pushed_reply(skill, actor)
    saved_reply(skill, actor, title="不推送的")
    client.login(username=editor.username, password=PASSWORD)
    url = reverse("admin:chatbot_autoreply_changelist")
    page = client.get(url, {"live_state": "pushed"})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [reply]
    assert reverse("admin:chatbot_autoreply_publish") in page.content.decode()
    assert client.get(url, {"live_state": "changed"}).context["cl"].result_count == 1
    assert client.get(url, {"live_state": "live"}).context["cl"].result_count == 0

    form = client.get(reverse("admin:chatbot_autoreply_change", args=[reply.pk]))
    assert b"chatbot-not-live-note" in form.content

    publish_url = reverse("admin:chatbot_autoreply_publish")
    confirm = client.get(publish_url, {"bot": skill.bot_id})
    assert confirm.status_code == 200 and confirm.context["not_live"] == 1
    started = client.post(publish_url, {"bot": skill.bot_id})
    job = Job.objects.get(kind=PUBLISH_KIND)
    assert started.status_code == 302
    assert started["Location"] == reverse("admin:console_job_change", args=[job.pk])
    run_all(job)
    job_page = client.get(started["Location"]).content.decode()
    publish = BotPublish.objects.get(job=job)
    assert reverse("admin:chatbot_botpublish_change", args=[publish.pk]) in job_page
    assert client.get(publish_url, {"bot": skill.bot_id}).context["not_live"] == 0
    dashboard = client.get(reverse("admin:index")).content.decode()
    assert "1 reply pushed, not yet live" in dashboard or "1 条" in dashboard


@pytest.mark.parametrize("bot", ["", "x", "99999", "1\x00", "-1"])
def test_hostile_bot_ids_on_the_publish_page_are_404(client, editor, demo_bot, bot):
    client.login(username=editor.username, password=PASSWORD)
    assert client.get(reverse("admin:chatbot_autoreply_publish"), {"bot": bot}).status_code == 404


def test_auditors_see_publishes_but_cannot_publish(client, auditor, demo_bot):
    client.login(username=auditor.username, password=PASSWORD)
    url = reverse("admin:chatbot_autoreply_publish")
    assert client.get(url, {"bot": demo_bot.pk}).status_code == 403
    assert client.post(url, {"bot": demo_bot.pk}).status_code == 403
    assert not Job.objects.exists()
    assert client.get(reverse("admin:chatbot_botpublish_changelist")).status_code == 200
