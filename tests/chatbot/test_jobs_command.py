"""`jobs` on the chatbot's three kinds: push all changed, publish, and the check."""

from __future__ import annotations

import csv
import io
import itertools

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from chatbot.answers import answer_from_editor
from chatbot.checking import CHECK_KIND, bot_check
from chatbot.jobs import KIND as PUSH_KIND
from chatbot.publishing import PUBLISH_KIND, bot_publish
from chatbot.services import replies_push_changed, reply_create, reply_push
from console.jobs import StopReason
from console.jobs.follow import JobFollower
from console.jobs.selectors import job_reason
from console.jobs.services import job_run_shard
from console.models import Job, JobStatus
from wecom.sandbox import DEMO

pytestmark = pytest.mark.usefixtures("fast_platform")


@pytest.fixture(autouse=True)
def english_terminal(monkeypatch, settings):
    monkeypatch.setenv("LANGUAGE", "en_US.UTF-8")
    settings.CHATBOT_PUBLISH_POLL_SECONDS = 0


@pytest.fixture
def ticking(sandbox):
    """The sandbox's clock moves one second each time it is read (a publish without waiting)."""
    ticks = itertools.count(0, 1.0)
    sandbox.state.clock = lambda: next(ticks)
    return sandbox


@pytest.fixture
def worker(monkeypatch):
    """`jobs wait` with the test as the worker: each of the follower's pauses runs the shards."""

    def run_open_jobs(self, seconds: float) -> None:
        with translation.override("en"):
            for job in Job.objects.filter(status__in=("queued", "running")):
                for shard in job.shards.all():
                    while (
                        job_run_shard(shard_id=shard.pk, worker="test").stop_reason
                        is StopReason.SLICE_OVER
                    ):
                        pass

    monkeypatch.setattr(JobFollower, "pause", run_open_jobs)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def text(value: str):
    return answer_from_editor({"type": "text", "segments": [{"kind": "text", "text": value}]})


def replies(skill, actor, count: int, *, push: bool = False) -> None:
    for n in range(count):
        made = reply_create(
            skill=skill, title=f"问题 {n}", questions=[f"问法 {n}"], answer=text("答"), actor=actor
        )
        if push:
            assert reply_push(reply=made, actor=actor).ok


def test_jobs_on_a_push(sandbox, skill, actor, worker):
    replies(skill, actor, 3)
    job = replies_push_changed(bot=skill.bot, actor=actor)

    listed = run("jobs", "list", "--kind", PUSH_KIND)
    assert str(job.pk) in listed and "Push changed chatbot replies" in listed
    assert job.title in run("jobs", "show", str(job.pk))
    run("jobs", "pause", str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.PAUSED
    assert str(job.pk) in run("jobs", "list", "--open")
    run("jobs", "resume", str(job.pk))

    output = run("jobs", "wait", str(job.pk))

    assert "[##############################] 100%" in output
    assert output.rstrip().endswith("Finished: all 3 done.")
    assert sandbox.state.chatbot.skills(DEMO.bot_appid).keys() >= {("售后服务", "问题 0")}
    assert job.title not in run("jobs", "list", "--open")


def test_jobs_on_a_publish_exits_1_with_the_reason_it_failed(ticking, skill, actor, worker):
    replies(skill, actor, 1, push=True)
    ticking.state.chatbot.set_publish_behaviour(DEMO.bot_appid, fail_at=0)
    job = bot_publish(bot=skill.bot, actor=actor)
    assert "Publish a chatbot" in run("jobs", "list", "--kind", PUBLISH_KIND)
    output = io.StringIO()

    with pytest.raises(SystemExit) as exit_status:
        call_command("jobs", "wait", str(job.pk), stdout=output)

    assert exit_status.value.code == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "it stopped at 0%" in job_reason(job)
    assert job_reason(job) in output.getvalue()


def test_a_failed_jobs_reason_is_in_the_terminals_language(sandbox, skill, actor, monkeypatch):
    replies(skill, actor, 2)
    job = replies_push_changed(bot=skill.bot, actor=actor)
    bot = skill.bot
    skill.delete()  # a bot with skills cannot be deleted
    bot.delete()
    job_run_shard(shard_id=job.shards.get().pk, worker="test")
    monkeypatch.setenv("LANGUAGE", "zh_CN.UTF-8")

    output = io.StringIO()
    with pytest.raises(SystemExit) as exit_status:
        call_command("jobs", "wait", str(job.pk), stdout=output)

    assert exit_status.value.code == 1
    assert "对话机器人已被删除；未再推送任何内容。" in output.getvalue()
    assert "Traceback" not in output.getvalue()


def test_jobs_on_a_check_exports_its_findings_for_a_spreadsheet(sandbox, skill, actor, worker):
    replies(skill, actor, 2)  # never pushed: the bot matches none of their questions
    job = bot_check(bot=skill.bot, env="debug", actor=actor)
    assert "Check every question of a chatbot" in run("jobs", "show", str(job.pk))

    with pytest.raises(SystemExit) as exit_status:
        run("jobs", "wait", str(job.pk))
    assert exit_status.value.code == 1, "findings are failed items"

    exported = run("jobs", "failures", str(job.pk))
    assert exported.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(exported.removeprefix("\ufeff"))))
    assert rows[0] == ["item", "code", "reason", "can be retried"]
    assert {row[0] for row in rows[1:]} == {"问题 0", "问法 0", "问题 1", "问法 1"}
    assert {row[1] for row in rows[1:]} == {"nomatch"}
    assert Job.objects.get(kind=CHECK_KIND).progress().failed == 4


def test_jobs_cancel_and_the_refusals_after_it_are_sentences(sandbox, skill, actor):
    replies(skill, actor, 2)
    job = replies_push_changed(bot=skill.bot, actor=actor)
    assert run("jobs", "cancel", str(job.pk)).strip() == "Cancelled at 0 of 2."
    with pytest.raises(CommandError, match="cannot be resumed"):
        run("jobs", "resume", str(job.pk))
    with pytest.raises(CommandError, match=r"There is no job 0x1\."):
        run("jobs", "show", "0x1")
    assert sandbox.total_calls() == 0
