"""“Push all changed” as a job of the shared machinery, from the admin and `skills push`."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from chatbot.answers import answer_from_editor
from chatbot.jobs import KIND
from chatbot.models import AutoReply, ReplySyncState
from chatbot.services import replies_push_changed, reply_create
from console.jobs import StopReason
from console.jobs.selectors import job_reason
from console.jobs.services import job_run_shard
from console.models import Job, JobItemFailure, JobStatus
from tests.conftest import PASSWORD
from wecom.sandbox import DEMO, FaultRule

from .conftest import EVERY_TYPE

pytestmark = pytest.mark.usefixtures("fast_platform")


@pytest.fixture(autouse=True)
def english_terminal(monkeypatch):
    monkeypatch.setenv("LANGUAGE", "en_US.UTF-8")


def make_replies(skill, actor, count: int) -> list[AutoReply]:
    answer = answer_from_editor(EVERY_TYPE["text_menu"])
    return [
        reply_create(
            skill=skill, title=f"问题 {n}", questions=[f"问法 {n}"], answer=answer, actor=actor
        )
        for n in range(count)
    ]


def run_all(job: Job) -> None:
    """What the worker does: each shard, slice after slice, until it stops."""
    for shard in job.shards.all():
        while job_run_shard(shard_id=shard.pk, worker="test").stop_reason is StopReason.SLICE_OVER:
            pass


def test_push_all_changed_pushes_every_reply_not_in_sync_with_progress(
    sandbox, skill, actor, django_capture_on_commit_callbacks
):
    replies = make_replies(skill, actor, 12)
    AutoReply.objects.filter(pk=replies[0].pk).update(sync_state=ReplySyncState.IN_SYNC)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        job = replies_push_changed(bot=skill.bot, actor=actor)
    assert job.kind == KIND and job.total == 11 and len(queued) == 1
    # Submitting again while it is open gives the same job, not a second one.
    assert replies_push_changed(bot=skill.bot, actor=actor).pk == job.pk
    sandbox.reset_stats()
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert job.progress().done == 11 and job.progress().failed == 0
    assert sandbox.stats() == {"chatbot /openapi/setautoreply": 11}
    assert set(AutoReply.objects.values_list("sync_state", flat=True)) == {ReplySyncState.IN_SYNC}
    with pytest.raises(ValidationError):
        replies_push_changed(bot=skill.bot, actor=actor)


def test_failed_replies_are_counted_and_explained_on_the_job(sandbox, skill, actor):
    replies = make_replies(skill, actor, 4)
    sandbox.faults.add(
        FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", errcode=1008, rate=1.0)
    )
    job = replies_push_changed(bot=skill.bot, actor=actor)
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.progress().failed == 4
    failure = JobItemFailure.objects.filter(job=job).first()
    assert failure.reason_code == "1008" and "1008" in failure.reason
    assert AutoReply.objects.get(pk=replies[0].pk).sync_state == ReplySyncState.FAILED


def test_a_broken_token_stops_the_job_at_the_first_reply(sandbox, skill, actor):
    make_replies(skill, actor, 6)
    sandbox.faults.add(FaultRule(platform="chatbot", errcode=1001))
    job = replies_push_changed(bot=skill.bot, actor=actor)
    sandbox.reset_stats()
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "TOKEN" in job_reason(job) and "1001" in job_reason(job)
    assert sandbox.total_calls() == 1


def test_a_bot_deleted_while_its_push_waits_stops_the_job_with_a_sentence(sandbox, skill, actor):
    make_replies(skill, actor, 2)
    job = replies_push_changed(bot=skill.bot, actor=actor)
    bot = skill.bot
    skill.delete()  # a bot with skills cannot be deleted
    bot.delete()
    sandbox.reset_stats()
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "删除" in job_reason(job)
    assert sandbox.total_calls() == 0


def test_skills_push_wait_exits_0_only_when_every_reply_was_accepted(sandbox, skill, actor):
    make_replies(skill, actor, 3)
    out = io.StringIO()
    call_command("skills", "push", "--bot", skill.bot.name, "--wait", stdout=out)
    assert "Finished: all 3 done." in out.getvalue()
    assert sandbox.state.chatbot.skills(DEMO.bot_appid).keys() >= {("售后服务", "问题 0")}
    # A second run: nothing to push.
    out = io.StringIO()
    call_command("skills", "push", "--bot", skill.bot.name, "--wait", stdout=out)
    assert "Nothing to push" in out.getvalue()

    AutoReply.objects.update(sync_state=ReplySyncState.CHANGED)
    sandbox.faults.add(
        FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", errcode=1008)
    )
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("skills", "push", "--bot", skill.bot.name, "--wait", stdout=out)
    assert caught.value.returncode == 1
    assert "3 failed" in out.getvalue()


def test_skills_push_without_wait_leaves_the_job_to_the_worker(sandbox, skill, actor):
    make_replies(skill, actor, 2)
    out = io.StringIO()
    call_command("skills", "push", "--bot", skill.bot.name, stdout=out)
    job = Job.objects.get(kind=KIND)
    assert f"Job #{job.pk}" in out.getvalue() and job.status == JobStatus.QUEUED
    assert sandbox.total_calls() == 0


def test_the_admin_button_submits_the_job_and_opens_its_page(client, editor, sandbox, skill, actor):
    make_replies(skill, actor, 2)
    client.login(username=editor.username, password=PASSWORD)
    response = client.post(reverse("admin:chatbot_autoreply_push_changed"), {"bot": skill.bot.pk})
    job = Job.objects.get(kind=KIND)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:console_job_change", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert "推送" in page


def test_the_auditor_cannot_submit_a_push(client, auditor, sandbox, skill, actor):
    make_replies(skill, actor, 1)
    client.login(username=auditor.username, password=PASSWORD)
    response = client.post(reverse("admin:chatbot_autoreply_push_changed"), {"bot": skill.bot.pk})
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_a_batch_sent_again_after_a_lost_lease_is_recorded_once(sandbox, skill, actor):
    from django.contrib.admin.models import LogEntry
    from django.db import connection

    from console.models import JobShard

    replies = make_replies(skill, actor, 3)
    job = replies_push_changed(bot=skill.bot, actor=actor)
    shard = job.shards.get()
    taken = {"done": False}

    def taken_over_before_the_checkpoint(execute, sql, params, many, context):
        # Another worker takes the shard while this one's batch is at the platform.
        if not taken["done"] and sql.startswith('UPDATE "console_jobshard" SET "position"'):
            taken["done"] = True
            JobShard.objects.filter(pk=shard.pk).update(lease_owner="other:1/x")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(taken_over_before_the_checkpoint):
        outcome = job_run_shard(shard_id=shard.pk, worker="first")
    assert outcome.stop_reason is StopReason.LEASE_LOST
    # The other worker's lease runs out; the batch is sent again and recorded then, once.
    JobShard.objects.filter(pk=shard.pk).update(lease_owner="", lease_expires_at=None)
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert sandbox.stats() == {"chatbot /openapi/setautoreply": 6}
    for reply in replies:
        pushes = LogEntry.objects.filter(object_id=str(reply.pk), change_message__contains="Pushed")
        assert pushes.count() == 1, [entry.change_message for entry in pushes]
    assert set(AutoReply.objects.values_list("sync_state", flat=True)) == {ReplySyncState.IN_SYNC}


def test_an_unreachable_platform_puts_the_push_on_hold_not_the_replies_in_failure(
    sandbox, skill, actor
):
    from datetime import timedelta

    from console.jobs.services import jobs_watchdog

    make_replies(skill, actor, 3)
    job = replies_push_changed(bot=skill.bot, actor=actor)
    sandbox.faults.add(
        FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", http_status=503)
    )
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING and job.resume_at
    assert job.progress().failed == 0 and not JobItemFailure.objects.exists()
    sandbox.faults.clear()
    jobs_watchdog(now=job.resume_at + timedelta(seconds=1))
    run_all(job)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.progress().done == 3
    assert set(AutoReply.objects.values_list("sync_state", flat=True)) == {ReplySyncState.IN_SYNC}
