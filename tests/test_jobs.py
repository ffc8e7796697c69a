"""The shared job machinery: shards, leases, checkpoints, pause/resume/cancel, watchdog, pages."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from django_q.brokers import get_broker

from console.audit import Actor, AuditSource
from console.jobs import JobKind, LeaseLost, ShardRun, StopReason
from console.jobs.runner import new_owner, shard_claim
from console.jobs.selectors import job_reason
from console.jobs.services import (
    JobStateError,
    job_cancel,
    job_create,
    job_pause,
    job_resume,
    job_run_shard,
    jobs_watchdog,
    shard_ranges,
)
from console.models import Job, JobItemFailure, JobShard, JobStatus, ShardStatus
from tests.conftest import PASSWORD

BATCH = 4
# What the test kinds did, by job id: the positions of every batch they processed.
PROCESSED: dict[int, list[tuple[int, int]]] = {}


def _process(run: ShardRun, *, after_batch: object = None) -> None:
    while run.keep_going():
        start = run.position
        end = min(start + BATCH, run.end)
        bad = [position for position in range(start, end) if position % 7 == 3]
        with run.checkpoint(advance=end - start, done=end - start - len(bad), failed=len(bad)):
            JobItemFailure.objects.bulk_create(
                JobItemFailure(
                    job=run.job,
                    shard=run.shard,
                    item=f"item-{position}",
                    reason_code="40003",
                    reason="不是有效的 openid。",
                    retryable=False,
                )
                for position in bad
            )
        PROCESSED.setdefault(run.job.pk, []).append((start, end))
        if callable(after_batch):
            after_batch(run)


def run_counting(run: ShardRun) -> None:
    _process(run)


def run_pausing_itself(run: ShardRun) -> None:
    def pause(run: ShardRun) -> None:
        run.pause_job(until=timezone.now() + timedelta(hours=1), message="今日调用次数已用完。")

    _process(run, after_batch=pause)


def run_crashing(run: ShardRun) -> None:
    raise RuntimeError("a bug")


@pytest.fixture(autouse=True)
def _test_kinds(job_kinds) -> None:
    job_kinds(
        JobKind(name="tests.counting", label="Counting", run_shard=run_counting),
        JobKind(name="tests.pausing", label="Pausing", run_shard=run_pausing_itself),
        JobKind(name="tests.crashing", label="Crashing", run_shard=run_crashing),
    )


@pytest.fixture
def broker(db):
    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()


@pytest.fixture
def actor(editor) -> Actor:
    return Actor(user=editor, source=AuditSource.CONSOLE, ip="203.0.113.5")


def make_job(actor: Actor, *, kind: str = "tests.counting", total: int = 20, shard_size: int = 10):
    return job_create(
        kind=kind,
        title=f"{kind} of {total}",
        total=total,
        shards=shard_ranges(total=total, shard_size=shard_size),
        actor=actor,
        params={"note": "test"},
    )


def run_to_the_end(job: Job) -> None:
    for shard in job.shards.all():
        outcome = job_run_shard(shard_id=shard.pk, worker="test")
        assert outcome.stop_reason is StopReason.SHARD_DONE


def test_shard_ranges_cover_every_position_once():
    assert shard_ranges(total=25, shard_size=10) == [(0, 10), (10, 20), (20, 25)]
    assert shard_ranges(total=0, shard_size=10) == []
    with pytest.raises(ValueError):
        shard_ranges(total=5, shard_size=0)


def test_a_job_is_created_with_its_shards_audited_and_queued_on_commit(
    actor, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = make_job(actor, total=25)
        assert broker.queue_size() == 0, "nothing is queued before the commit"
    assert list(job.shards.values_list("start", "end", "position")) == [
        (0, 10, 0),
        (10, 20, 10),
        (20, 25, 20),
    ]
    assert broker.queue_size() == 3
    entry = LogEntry.objects.get(object_id=str(job.pk), content_type__model="job")
    assert entry.user == actor.user and entry.is_addition()


def test_an_unknown_kind_is_refused_before_anything_is_saved(actor):
    with pytest.raises(LookupError):
        job_create(kind="nope", title="x", total=1, shards=[(0, 1)], actor=actor)
    assert not Job.objects.exists()


def test_running_every_shard_processes_each_position_once_and_finishes_the_job(actor):
    job = make_job(actor, total=25)
    run_to_the_end(job)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.finished_at and job.started_at
    positions = sorted(p for start, end in PROCESSED[job.pk] for p in range(start, end))
    assert positions == list(range(25))
    progress = job.progress()
    bad = [p for p in range(25) if p % 7 == 3]
    assert (progress.done, progress.failed, progress.total) == (25 - len(bad), len(bad), 25)
    assert sorted(job.failures.values_list("item", flat=True)) == sorted(f"item-{p}" for p in bad)
    notes = [entry.change_message for entry in LogEntry.objects.filter(object_id=str(job.pk))]
    assert any("Finished" in note for note in notes)


def test_a_job_without_items_is_done_at_once(actor):
    job = job_create(kind="tests.counting", title="empty", total=0, shards=[], actor=actor)
    assert job.status == JobStatus.DONE


def test_a_leased_shard_cannot_be_claimed_by_a_second_worker(actor):
    job = make_job(actor)
    shard = job.shards.first()
    assert shard_claim(shard_id=shard.pk, owner="a/1") is not None
    assert shard_claim(shard_id=shard.pk, owner="b/1") is None
    assert job_run_shard(shard_id=shard.pk, worker="b").claimed is False


def test_a_worker_that_lost_its_lease_counts_and_records_nothing(actor):
    job = make_job(actor)
    shard_id = job.shards.first().pk
    first = shard_claim(shard_id=shard_id, owner="a/1")
    run_a = ShardRun(job=job, shard=first, owner="a/1")
    # A's lease runs out (its worker hung); B takes the shard over.
    JobShard.objects.filter(pk=shard_id).update(lease_expires_at=timezone.now() - timedelta(1))
    assert shard_claim(shard_id=shard_id, owner="b/1") is not None
    with pytest.raises(LeaseLost), run_a.checkpoint(advance=4, done=3, failed=1):
        JobItemFailure.objects.create(job=job, shard=first, item="x", reason="r")
    shard = JobShard.objects.get(pk=shard_id)
    assert (shard.position, shard.done, shard.failed) == (0, 0, 0)
    assert not JobItemFailure.objects.exists(), "the failure rows rolled back with it"
    assert run_a.keep_going() is False and run_a.stop_reason is StopReason.LEASE_LOST


def test_a_slice_that_runs_out_hands_the_shard_back_to_the_queue(
    actor, broker, settings, django_capture_on_commit_callbacks
):
    settings.JOBS_SLICE_SECONDS = 0
    job = make_job(actor, total=10)
    shard = job.shards.get()
    broker.purge_queue()
    with django_capture_on_commit_callbacks(execute=True):
        outcome = job_run_shard(shard_id=shard.pk, worker="w")
    assert outcome.stop_reason is StopReason.SLICE_OVER
    shard.refresh_from_db()
    assert shard.lease_owner == "" and shard.status == ShardStatus.RUNNING
    assert broker.queue_size() == 1, "the rest of the shard is queued again"


def test_pause_stops_running_shards_and_resume_goes_on_where_they_stopped(
    actor, settings, django_capture_on_commit_callbacks, job_kinds
):
    settings.JOBS_STATUS_CHECK_SECONDS = 0
    job = make_job(actor, total=10)
    shard = job.shards.get()

    def pause_after_first_batch(run: ShardRun) -> None:
        if run.position == BATCH:
            job_pause(job=run.job, actor=actor)

    job_kinds(
        JobKind(
            name="tests.pause-once",
            label="Pause once",
            run_shard=lambda run: _process(run, after_batch=pause_after_first_batch),
        )
    )
    Job.objects.filter(pk=job.pk).update(kind="tests.pause-once")
    outcome = job_run_shard(shard_id=shard.pk, worker="w")
    assert outcome.stop_reason is StopReason.JOB_STOPPED
    job.refresh_from_db()
    shard.refresh_from_db()
    assert job.status == JobStatus.PAUSED and shard.position == BATCH
    assert job_run_shard(shard_id=shard.pk, worker="w").claimed is False, "paused: not claimed"
    with pytest.raises(JobStateError):
        job_pause(job=job, actor=actor)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_resume(job=job, actor=actor)
    assert len(callbacks) == 1, "resuming queues the unfinished shard"
    Job.objects.filter(pk=job.pk).update(kind="tests.counting")
    assert job_run_shard(shard_id=shard.pk, worker="w").stop_reason is StopReason.SHARD_DONE
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.progress().processed == 10
    history = LogEntry.objects.filter(object_id=str(job.pk)).order_by("pk")
    users = [entry.user for entry in history]
    # Submitted by the editor, started by the worker, then paused and resumed by the editor.
    assert users[0] == actor.user and users[1].username == "system"
    assert users[2:4] == [actor.user] * 2


def test_cancel_stops_every_shard_for_good(actor):
    job = make_job(actor, total=30)
    job_cancel(job=job, actor=actor)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at
    assert set(job.shards.values_list("status", flat=True)) == {ShardStatus.CANCELLED}
    assert all(not job_run_shard(shard_id=s.pk).claimed for s in job.shards.all())
    with pytest.raises(JobStateError):
        job_resume(job=job, actor=actor)


def test_a_job_on_hold_resumes_when_its_time_comes(actor, settings):
    job = make_job(actor, kind="tests.pausing", total=10)
    shard = job.shards.get()
    assert job_run_shard(shard_id=shard.pk).stop_reason is StopReason.JOB_STOPPED
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING and "调用次数" in job_reason(job)
    assert jobs_watchdog().resumed_jobs == 0, "not before its time"
    report = jobs_watchdog(now=job.resume_at + timedelta(seconds=1))
    job.refresh_from_db()
    assert report.resumed_jobs == 1 and job.status == JobStatus.RUNNING


def test_the_watchdog_requeues_only_shards_that_no_worker_holds(
    actor, broker, django_capture_on_commit_callbacks
):
    job = make_job(actor, total=30)
    first, second, third = job.shards.all()
    now = timezone.now()
    long_ago = now - timedelta(minutes=10)
    # first: its worker died (lease expired); second: a live worker holds it; third: queued
    # a moment ago and still waiting for a worker.
    JobShard.objects.filter(pk=first.pk).update(
        lease_owner="dead/1", lease_expires_at=long_ago, enqueued_at=long_ago
    )
    JobShard.objects.filter(pk=second.pk).update(
        lease_owner="live/1", lease_expires_at=now + timedelta(minutes=1), enqueued_at=long_ago
    )
    JobShard.objects.filter(pk=third.pk).update(enqueued_at=now)
    broker.purge_queue()
    with django_capture_on_commit_callbacks(execute=True):
        report = jobs_watchdog(now=now)
    assert report.requeued_shards == 1 and broker.queue_size() == 1
    assert job_run_shard(shard_id=first.pk).stop_reason is StopReason.SHARD_DONE


def test_repeated_unexpected_errors_stop_the_job_with_a_sentence(actor, settings):
    settings.JOBS_MAX_ERRORS = 2
    job = make_job(actor, kind="tests.crashing", total=5)
    shard = job.shards.get()
    with translation.override(settings.LANGUAGE_CODE):  # as in a worker
        assert job_run_shard(shard_id=shard.pk).error == "RuntimeError"
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING, "one error: the watchdog will try again"
        job_run_shard(shard_id=shard.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    # Stored untranslated, read in each reader's language.
    assert job.status_params == {"error": "RuntimeError"}
    with translation.override("zh-hans"):
        chinese = job_reason(job)
    with translation.override("en"):
        english = job_reason(job)
    assert "RuntimeError" in chinese and "日志" in chinese
    assert "RuntimeError" in english and "worker log" in english and "日志" not in english


# --- the progress view -----------------------------------------------------------------------


@pytest.fixture
def logged_in(client):
    def login(user):
        client.login(username=user.username, password=PASSWORD)
        return client

    return login


def test_the_job_page_shows_live_progress_and_the_controls_an_editor_may_use(
    actor, logged_in, editor
):
    job = make_job(actor, total=20)
    job_run_shard(shard_id=job.shards.first().pk)
    client = logged_in(editor)
    page = client.get(f"/admin/console/job/{job.pk}/change/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-progress-url="/admin/console/job/{job.pk}/progress/"' in html
    assert 'data-job-control="pause"' in html and 'data-job-control="cancel"' in html
    assert 'data-job-control="failures"' in html
    assert "<script>" not in html, "no inline script: the CSP forbids it"
    data = client.get(f"/admin/console/job/{job.pk}/progress/").json()
    assert (data["total"], data["processed"], data["percent"]) == (20, 10, 50)
    assert data["status"] == "running" and "10" in data["sentence"]


def test_progress_costs_a_fixed_number_of_queries(actor, logged_in, editor):
    job = make_job(actor, total=200, shard_size=10)
    client = logged_in(editor)
    client.get(f"/admin/console/job/{job.pk}/progress/")
    with CaptureQueriesContext(connection) as queries:
        client.get(f"/admin/console/job/{job.pk}/progress/")
    # session, user, the user's and their groups' permissions, the job, the sum over its shards
    assert len(queries) == 6


def test_the_job_list_costs_the_same_queries_for_one_job_or_many(actor, logged_in, editor):
    client = logged_in(editor)
    make_job(actor)
    client.get("/admin/console/job/")
    with CaptureQueriesContext(connection) as one:
        assert client.get("/admin/console/job/").status_code == 200
    for _ in range(15):
        make_job(actor)
    with CaptureQueriesContext(connection) as many:
        page = client.get("/admin/console/job/")
    assert len(many) == len(one)
    assert page.content.decode().count('class="console-progress"') == 16


def test_an_auditor_sees_the_job_but_cannot_pause_it(actor, logged_in, auditor):
    job = make_job(actor)
    client = logged_in(auditor)
    html = client.get(f"/admin/console/job/{job.pk}/change/").content.decode()
    assert "data-progress-url" in html and 'data-job-control="pause"' not in html
    assert client.post(f"/admin/console/job/{job.pk}/pause/").status_code == 403
    assert client.post(f"/admin/console/job/{job.pk}/cancel/").status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_pause_and_resume_from_the_page_are_in_the_history(actor, logged_in, editor):
    job = make_job(actor)
    client = logged_in(editor)
    assert client.get(f"/admin/console/job/{job.pk}/pause/").status_code == 405
    response = client.post(f"/admin/console/job/{job.pk}/pause/", REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.PAUSED
    client.post(f"/admin/console/job/{job.pk}/resume/")
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    history = client.get(f"/admin/console/job/{job.pk}/history/").content.decode()
    assert "198.51.100.7" in history


def test_a_second_pause_is_explained_not_a_crash(actor, logged_in, editor):
    job = make_job(actor)
    client = logged_in(editor)
    client.post(f"/admin/console/job/{job.pk}/pause/")
    page = client.post(
        f"/admin/console/job/{job.pk}/pause/", follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "cannot be paused" in page.content.decode()


def test_failed_items_download_as_csv_that_excel_reads(actor, logged_in, editor):
    job = make_job(actor, total=20)
    run_to_the_end(job)
    response = logged_in(editor).get(f"/admin/console/job/{job.pk}/failures.csv")
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][0] == "条目"
    assert sorted(row[0] for row in rows[1:]) == sorted(
        f"item-{p}" for p in range(20) if p % 7 == 3
    )
    assert all(row[2] == "不是有效的 openid。" for row in rows[1:])


@pytest.mark.parametrize("object_id", ["abc", "999999"])
def test_unknown_jobs_are_not_found_after_the_permission_check(
    object_id, logged_in, editor, make_user
):
    client = logged_in(editor)
    for suffix in ("change/", "progress/", "failures.csv"):
        assert client.get(f"/admin/console/job/{object_id}/{suffix}").status_code == 404
    outsider = make_user("outsider")
    client = logged_in(outsider)
    assert client.get("/admin/console/job/1/progress/").status_code == 403


def test_the_dashboard_shows_open_jobs_with_their_bars(actor, logged_in, editor):
    job = make_job(actor, total=20)
    job_run_shard(shard_id=job.shards.first().pk)
    html = logged_in(editor).get("/admin/").content.decode()
    assert f'data-progress-url="/admin/console/job/{job.pk}/progress/"' in html
    assert 'value="50"' in html


def test_roles_give_editors_control_of_jobs_and_auditors_a_view(editor, auditor):
    assert editor.has_perm("console.change_job") and editor.has_perm("console.view_job")
    assert not editor.has_perm("console.delete_job")
    assert auditor.has_perm("console.view_job") and not auditor.has_perm("console.change_job")


def test_a_lease_shorter_than_a_platform_call_is_refused_by_the_checks(settings):
    from console.checks import check_job_timing

    assert check_job_timing(None) == []
    settings.JOBS_LEASE_SECONDS = 10
    assert [error.id for error in check_job_timing(None)] == ["console.E101"]


def test_owners_are_unique_per_claim():
    assert new_owner("w") != new_owner("w")


def test_advance_is_a_checkpoint_fenced_by_the_lease(actor):
    job = make_job(actor, total=10, shard_size=10)
    shard = job.shards.get()
    owner = new_owner("worker-a")
    claimed = shard_claim(shard_id=shard.pk, owner=owner)
    run = ShardRun(job=job, shard=claimed, owner=owner)
    run.advance(advance=4, done=3, failed=1)
    shard.refresh_from_db()
    assert (shard.position, shard.done, shard.failed) == (4, 3, 1)
    JobShard.objects.filter(pk=shard.pk).update(lease_owner="someone-else")
    with pytest.raises(LeaseLost):
        run.advance(advance=4, done=4)
    shard.refresh_from_db()
    assert (shard.position, shard.done) == (4, 3)
    assert run.stop_reason is StopReason.LEASE_LOST


def test_history_notes_stored_in_an_earlier_wording_are_still_translated(actor):
    from console.audit import AuditAction, audit_context, audit_record
    from console.jobs.services import EARLIER_HISTORY_NOTES

    job = make_job(actor, total=3)
    entry = audit_record(
        actor=actor,
        obj=job,
        action=AuditAction.ADD,
        note=EARLIER_HISTORY_NOTES[0],
        note_params={"total": 3, "shards": 1},
    )
    with translation.override("zh-hans"):
        assert audit_context(entry).note == "已提交：共 3 条，分为 1 部分。"


def test_each_status_change_records_the_true_old_status(actor):
    from console.audit import audit_context
    from console.jobs.services import job_fail, job_start

    job = make_job(actor, total=10)
    job_start(job=job)
    job_pause(job=job, actor=actor)
    job_fail(job=job, message="The credential was refused.")
    job_resume(job=job, actor=actor)
    changes = []
    for entry in LogEntry.objects.filter(object_id=str(job.pk)).order_by("pk"):
        context = audit_context(entry)
        changes += [(c.old, c.new) for c in context.changes if c.field == "status"]
    labels = {status: str(status.label) for status in JobStatus}
    assert changes == [
        (labels[JobStatus.QUEUED], labels[JobStatus.RUNNING]),  # the start has its entry
        (labels[JobStatus.RUNNING], labels[JobStatus.PAUSED]),
        (labels[JobStatus.PAUSED], labels[JobStatus.FAILED]),  # not "Running → Failed"
        (labels[JobStatus.FAILED], labels[JobStatus.RUNNING]),  # resumed where it stopped
    ]


def test_a_task_goes_on_with_the_jobs_next_free_shard_within_its_slice(actor, settings):
    from console.jobs.tasks import run_shard

    settings.JOBS_CHAIN_SHARDS = True
    job = make_job(actor, total=30)  # three shards
    first, second, third = job.shards.order_by("index")
    # Another worker holds the second shard: the task skips it.
    assert shard_claim(shard_id=second.pk, owner=new_owner("other"))

    assert run_shard(first.pk) == "shard-done, shard-done"

    statuses = dict(job.shards.values_list("pk", "status"))
    assert statuses == {
        first.pk: ShardStatus.DONE,
        second.pk: ShardStatus.RUNNING,
        third.pk: ShardStatus.DONE,
    }
    assert run_shard(third.pk) == "not claimed", "its own task finds it done and ends"


def test_a_task_chains_no_shard_when_chaining_is_off_or_its_slice_is_over(actor, settings):
    from console.jobs.tasks import run_shard

    job = make_job(actor, total=30)
    first, second, third = job.shards.order_by("index")
    settings.JOBS_CHAIN_SHARDS = False
    assert run_shard(first.pk) == "shard-done"

    settings.JOBS_CHAIN_SHARDS = True
    settings.JOBS_SLICE_SECONDS = 0
    assert run_shard(second.pk) == "slice-over"
    third.refresh_from_db()
    assert third.status == ShardStatus.PENDING and third.position == third.start


def test_a_kinds_on_stopped_runs_when_the_job_is_cancelled_or_fails_never_when_done(
    actor, job_kinds
):
    from console.jobs.services import job_fail

    stopped: list[tuple[int, str, bool]] = []

    def on_stopped(job: Job) -> None:
        # In the transaction that stops the job, its open shards already closed.
        still_open = job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING))
        stopped.append((job.pk, job.status, still_open.exists()))

    job_kinds(
        JobKind(
            name="tests.stopping", label="Stopping", run_shard=run_counting, on_stopped=on_stopped
        )
    )
    cancelled = make_job(actor, kind="tests.stopping")
    job_cancel(job=cancelled, actor=actor)
    failed = make_job(actor, kind="tests.stopping")
    job_fail(job=failed, message="broken")
    done = make_job(actor, kind="tests.stopping")
    run_to_the_end(done)
    done.refresh_from_db()

    assert done.status == JobStatus.DONE
    assert stopped == [
        (cancelled.pk, JobStatus.CANCELLED, False),
        (failed.pk, JobStatus.FAILED, False),
    ]
    # Refused: already cancelled. Nothing runs twice.
    with pytest.raises(JobStateError):
        job_cancel(job=cancelled, actor=actor)
    assert len(stopped) == 2
