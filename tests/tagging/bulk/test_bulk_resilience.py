"""Bulk jobs that never stall and never give up: platform outages waited out, database blips
retried inside the slice, the crash between two commits repaired, a frozen worker fenced."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.db import OperationalError, connection
from django.utils import timezone, translation

from console.audit import audit_context
from console.jobs import StopReason
from console.jobs.runner import new_owner, shard_claim
from console.jobs.selectors import job_status_sentence
from console.jobs.services import job_run_shard, jobs_watchdog, outage_backoff_seconds
from console.models import Job, JobShard, JobStatus, ShardStatus
from tests.tagging.bulk.test_bulk_jobs import BATCH_TAGGING, audience_of, bulk_job_start, drain, oid
from wecom.sandbox import DEMO, FaultRule


def status_changes(job: Job) -> list[tuple[str, str]]:
    changes = []
    for entry in LogEntry.objects.filter(object_id=str(job.pk)).order_by("pk"):
        context = audit_context(entry)
        for change in context.changes if context else []:
            if change.field == "status":
                changes.append((str(change.old), str(change.new)))
    return changes


@pytest.mark.django_db
def test_an_outage_longer_than_the_old_error_budget_is_waited_out_and_the_job_finishes(
    sandbox, tag, editor, actor, settings
):
    settings.BULK_OUTAGE_PAUSES = ()
    settings.JOBS_MAX_ERRORS = 5
    openids = [oid(n) for n in range(300, 360)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )
    # The platform is down: HTTP 503 to every call, for eight holds in a row (more than
    # JOBS_MAX_ERRORS, after which the job used to fail for good).
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=BATCH_TAGGING, http_status=503))
    waits = []
    for _hold in range(8):
        job = drain(job)
        assert job.status == JobStatus.WAITING, job_status_sentence(job, job.progress())
        waits.append(round((job.resume_at - timezone.now()).total_seconds()))
        with translation.override("zh-hans"):
            sentence = job_status_sentence(job, job.progress())
        assert sentence.startswith(f"平台暂时无法访问，{waits[-1]} 秒后重试"), sentence
        assert "503" in sentence or "HTTP" in sentence or "服务" in sentence, sentence
        with translation.override("en"):
            english = job_status_sentence(job, job.progress())
        assert f"retrying in {waits[-1]} seconds" in english and "平台" not in english
        jobs_watchdog(now=job.resume_at + timedelta(seconds=1))
    # Backing off, doubling up to the cap (15 s, 30 s, … 300 s).
    assert waits == [outage_backoff_seconds(n) for n in range(1, 9)]
    assert waits[-1] == 300
    sandbox.faults.clear()
    job = drain(job)
    assert job.status == JobStatus.DONE
    progress = job.progress()
    assert (progress.done, progress.failed) == (60, 0)
    assert set(openids) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)
    # Each hold is in the History from its true state: running → waiting, waiting → running.
    changes = status_changes(job)
    running, waiting = str(JobStatus.RUNNING.label), str(JobStatus.WAITING.label)
    assert changes.count((running, waiting)) == changes.count((waiting, running)) == 8


@pytest.mark.django_db
def test_a_failed_job_resumed_goes_on_where_it_stopped(sandbox, tag, editor, actor, settings):
    from console.jobs.services import job_resume

    settings.BULK_45159_RETRY_SECONDS = 0
    openids = [oid(n) for n in range(300, 360)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )
    # A refusal no retry cures (the tag is gone), after the first batch.
    sandbox.faults.add(
        FaultRule(platform="wechat", endpoint=BATCH_TAGGING, errcode=45159, times=50)
    )
    JobShard.objects.filter(job=job).update(position=20, done=20)
    job = drain(job)
    assert job.status == JobStatus.FAILED
    assert job.shards.get().position == 20
    sandbox.faults.clear()
    sandbox.reset_stats()
    job_resume(job=job, actor=actor)
    job = drain(job)
    assert job.status == JobStatus.DONE
    assert sandbox.calls("wechat", BATCH_TAGGING) == 2, "only the batches not done before"
    assert job.progress().done == 60


# No test transaction around it: a worker's checkpoints are transactions of their own, which
# the database's going away rolls back whole.
@pytest.mark.django_db(transaction=True)
def test_a_database_restart_during_a_slice_costs_its_length_not_the_slice(
    sandbox, tag, editor, actor, settings
):
    settings.JOBS_BLIP_SECONDS = 10
    settings.JOBS_CHECKPOINT_SECONDS = 0
    openids = [oid(n) for n in range(300, 400)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=10, actor=actor
    )
    shard = job.shards.get()
    down: dict[str, float] = {}
    statements = {"shard": 0}

    def server_restarting(execute, sql, params, many, context):
        # The database goes away at the third checkpoint, for one second: every statement
        # fails as a dropped connection does.
        if 'UPDATE "console_jobshard"' in sql and "lease_owner" in sql:
            statements["shard"] += 1
            if statements["shard"] == 3:
                down["until"] = time.monotonic() + 1.0
        if time.monotonic() < down.get("until", 0):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    sandbox.reset_stats()
    started = time.monotonic()
    with connection.execute_wrapper(server_restarting):
        outcome = job_run_shard(shard_id=shard.pk, worker="test")
    elapsed = time.monotonic() - started

    assert outcome.error == "" and outcome.stop_reason is StopReason.SHARD_DONE, outcome
    assert elapsed < 5, "about the outage's second, not a lease and a watchdog round"
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    progress = job.progress()
    assert (progress.done, progress.failed) == (100, 0), "counted once"
    # The batch whose checkpoint failed stays counted in the worker, which still holds the
    # lease, and is written with the next checkpoint: nothing is sent twice.
    assert sandbox.calls("wechat", BATCH_TAGGING) == 10
    assert set(openids) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)


@pytest.mark.django_db
def test_a_crash_between_the_last_shard_and_the_job_finishing_is_repaired_by_the_watchdog(
    sandbox, tag, editor, actor, settings
):
    settings.JOBS_BLIP_SECONDS = 0
    openids = [oid(n) for n in range(300, 340)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )

    def dies_before_finishing_the_job(execute, sql, params, many, context):
        # The database (or the worker) goes away once the last shard is marked done, before
        # the job is: the second of the two commits never happens.
        if sql.startswith('UPDATE "console_job" SET') and '"finished_at"' in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with (
        connection.execute_wrapper(dies_before_finishing_the_job),
        pytest.raises(OperationalError),
    ):
        job_run_shard(shard_id=job.shards.get().pk, worker="test")
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert set(job.shards.values_list("status", flat=True)) == {ShardStatus.DONE}

    report = jobs_watchdog()

    assert report.finished_jobs == 1
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.finished_at
    assert status_changes(job)[-1] == (str(JobStatus.RUNNING.label), str(JobStatus.DONE.label))


@pytest.mark.django_db
def test_open_shards_under_a_cancelled_job_are_closed_by_the_watchdog(tag, editor, actor):
    job = bulk_job_start(audience=audience_of(editor, [oid(1), oid(2)]), target=tag, actor=actor)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    assert jobs_watchdog().closed_shards == 1
    assert job.shards.get().status == ShardStatus.CANCELLED


@pytest.mark.django_db
def test_a_dead_owner_s_shard_is_freed_and_queued_at_once(tag, editor, actor, settings):
    import subprocess
    import sys

    from console.jobs.supervisor import dead_owner_on_this_host

    job = bulk_job_start(audience=audience_of(editor, [oid(1), oid(2)]), target=tag, actor=actor)
    shard = job.shards.get()
    # A worker process that was killed in the middle of the shard: its pid no longer runs.
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    owner = new_owner(f"{__import__('socket').gethostname()}:{gone.stdout.strip()}")
    assert shard_claim(shard_id=shard.pk, owner=owner)
    living = new_owner()  # this process
    assert dead_owner_on_this_host(owner) and not dead_owner_on_this_host(living)

    report = jobs_watchdog(dead_owner=dead_owner_on_this_host)

    assert report.freed_shards == 1 and report.requeued_shards == 1
    shard.refresh_from_db()
    assert shard.lease_owner == "" and shard.enqueued_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_worker_frozen_past_its_lease_never_sends_once_another_took_the_shard(
    sandbox, tag, editor, actor, settings
):
    # The worker's first call fails (HTTP 503) and the client pauses before its next attempt:
    # long enough for the lease to run out and another worker to take the shard, as a frozen
    # worker (SIGSTOP, a paused VM) would see it. When it wakes, it must not send.
    settings.JOBS_LEASE_SECONDS = 1
    settings.PLATFORM_BACKOFF_BASE = 4.0  # a pause of 2 to 4 s before the next attempt
    settings.PLATFORM_BACKOFF_CAP = 4.0
    settings.PLATFORM_RETRY_BUDGET = 10.0
    openids = [oid(n) for n in range(300, 320)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )
    shard = job.shards.get()
    sandbox.faults.add(
        FaultRule(platform="wechat", endpoint=BATCH_TAGGING, http_status=503, times=1)
    )
    sandbox.reset_stats()
    taken: dict[str, object] = {}

    def another_worker_takes_over() -> None:
        from django.db import connection as thread_connection

        try:
            taken["shard"] = shard_claim(shard_id=shard.pk, owner="other-host:1/abc")
        finally:
            thread_connection.close()

    timer = threading.Timer(1.2, another_worker_takes_over)
    timer.start()
    try:
        outcome = job_run_shard(shard_id=shard.pk, worker="frozen")
    finally:
        timer.join()

    assert taken["shard"] is not None, "the lease had run out: another worker took the shard"
    assert outcome.stop_reason is StopReason.LEASE_LOST
    assert sandbox.calls("wechat", BATCH_TAGGING) == 1, "the frozen worker sent nothing more"
    shard.refresh_from_db()
    assert shard.lease_owner == "other-host:1/abc" and shard.position == 0
