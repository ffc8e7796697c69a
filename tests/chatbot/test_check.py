"""“检查所有问题”: the regression run asks the bot (the sandbox, over HTTP) every standard and
similar question and reports the misrouted, the unmatched and the answered otherwise."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import translation

from chatbot.answers import answer_from_editor
from chatbot.checking import CHECK_KIND, MISROUTED, NO_MATCH, OTHER_CONTENT, bot_check
from chatbot.services import reply_create, reply_push
from console.jobs import StopReason
from console.jobs.services import job_run_shard
from console.models import Job, JobStatus
from tests.conftest import PASSWORD
from wecom.connections import client_for
from wecom.models import ChatbotBot
from wecom.sandbox import DEMO, FaultRule

pytestmark = pytest.mark.usefixtures("fast_platform")


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("LANGUAGE", "en_US.UTF-8")
    with translation.override("en"):
        yield


def text(value: str):
    return answer_from_editor({"type": "text", "segments": [{"kind": "text", "text": value}]})


def reply(skill, actor, title, questions, answer, *, push=True):
    made = reply_create(
        skill=skill, title=title, questions=questions, answer=text(answer), actor=actor
    )
    if push:
        assert reply_push(reply=made, actor=actor).ok
    return made


@pytest.fixture
def routed(sandbox, skill, actor):
    """Four replies: one fine, one whose similar question the platform routes to another,
    one never pushed, one changed on the platform."""
    reply(skill, actor, "怎么退货", ["如何退货"], "退货答案")
    reply(skill, actor, "怎么换货", ["换货流程"], "换货答案")
    reply(skill, actor, "几点营业", [], "九点", push=False)
    reply(skill, actor, "运费多少", [], "十元")
    client = client_for(ChatbotBot.objects.get(pk=skill.bot_id))
    managerid = DEMO.bot_manager_id
    client.set_autoreply(
        managerid=managerid,
        skillname="售后服务",
        title="怎么退货",
        content="退货答案",
        questions=[],
    )
    client.set_autoreply(
        managerid=managerid,
        skillname="售后服务",
        title="怎么换货",
        content="换货答案",
        questions=["换货流程", "如何退货"],
    )
    client.set_autoreply(
        managerid=managerid, skillname="售后服务", title="运费多少", content="免运费", questions=[]
    )
    return skill


def run_all(job: Job) -> None:
    for shard in job.shards.all():
        while job_run_shard(shard_id=shard.pk, worker="test").stop_reason is StopReason.SLICE_OVER:
            pass


def test_the_check_finds_the_misrouted_the_unmatched_and_the_changed(routed, actor, sandbox):
    job = bot_check(bot=routed.bot, env="debug", actor=actor)
    assert job.kind == CHECK_KIND and job.total == 6
    assert bot_check(bot=routed.bot, env="debug", actor=actor).pk == job.pk
    sandbox.reset_stats()
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert sandbox.stats() == {"chatbot /openapi/aibot": 6}
    findings = {f.item: (f.reason_code, f.reason) for f in job.failures.all()}
    assert findings == {
        "如何退货": (MISROUTED, "Answered with the reply “怎么换货” instead of “怎么退货”."),
        "几点营业": (
            NO_MATCH,
            "Not matched (No match): the bot does not answer it with “几点营业”.",
        ),
        "运费多少": (
            OTHER_CONTENT,
            "The bot answers with other content than the console's reply: it was changed on "
            "the platform, or another push overwrote it.",
        ),
    }
    assert job.progress().done == 3 and job.progress().failed == 3


def test_skills_check_exits_1_when_a_question_is_misrouted(routed):
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 question is answered by another reply") as caught:
        call_command("skills", "check", "--bot", routed.bot.name, "--env", "debug", stdout=out)
    assert caught.value.returncode == 1
    assert "如何退货: Answered with the reply “怎么换货” instead of “怎么退货”." in out.getvalue()


def test_skills_check_exits_0_when_every_question_is_answered_by_its_reply(sandbox, skill, actor):
    reply(skill, actor, "怎么退货", ["如何退货", "退货流程"], "退货答案")
    out = io.StringIO()
    call_command("skills", "check", "--bot", skill.bot.name, "--env", "debug", stdout=out)
    assert "Finished: all 3 done." in out.getvalue()


def test_online_is_checked_against_what_was_published(sandbox, skill, actor):
    reply(skill, actor, "怎么退货", [], "退货答案")
    out = io.StringIO()
    # Not published: online does not know it. A finding, not a misrouting: exit 0.
    call_command("skills", "check", "--bot", skill.bot.name, "--env", "online", stdout=out)
    assert "怎么退货: Not matched (No match)" in out.getvalue()
    assert Job.objects.get(kind=CHECK_KIND).progress().failed == 1


def test_a_bot_level_error_stops_the_check_with_its_sentence(sandbox, skill, actor):
    reply(skill, actor, "怎么退货", ["如何退货"], "退货答案")
    sandbox.faults.add(FaultRule(platform="chatbot", endpoint="/openapi/aibot", errcode=1001))
    job = bot_check(bot=skill.bot, env="debug", actor=actor)
    sandbox.reset_stats()
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.status_message.startswith("The bot's TOKEN is not valid")
    assert sandbox.stats() == {"chatbot /openapi/aibot": 1}


def test_nothing_to_check_and_a_wrong_env_are_sentences(demo_bot, actor):
    with pytest.raises(ValidationError, match="nothing to check"):
        bot_check(bot=demo_bot, env="debug", actor=actor)
    with pytest.raises(ValidationError, match="Choose debug or online"):
        bot_check(bot=demo_bot, env="prod", actor=actor)


def test_editors_start_a_check_from_the_list_auditors_cannot(client, editor, auditor, routed):
    url = reverse("admin:chatbot_autoreply_check")
    client.login(username=auditor.username, password=PASSWORD)
    assert client.post(url, {"bot": routed.bot_id, "env": "debug"}).status_code == 403
    client.logout()
    client.login(username=editor.username, password=PASSWORD)
    listing = client.get(reverse("admin:chatbot_autoreply_changelist")).content.decode()
    assert url in listing
    assert client.post(url, {"bot": "x", "env": "debug"}).status_code == 404
    assert client.get(url).status_code == 405
    started = client.post(url, {"bot": routed.bot_id, "env": "debug"})
    job = Job.objects.get(kind=CHECK_KIND)
    assert started["Location"] == reverse("admin:console_job_change", args=[job.pk])
