"""Services of the job machinery: create, pause, resume, cancel, run a shard, watch over all."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.audit import Actor, AuditAction, audit_record
from console.jobs.registry import UnknownJobKind, job_kind
from console.jobs.runner import (
    LeaseLost,
    ShardRun,
    StopReason,
    job_mark_running,
    new_owner,
    shard_claim,
    shard_release,
)
from console.models import (
    ACTIVE_JOB_STATUSES,
    OPEN_JOB_STATUSES,
    Job,
    JobShard,
    JobStatus,
    ShardStatus,
)
from console.tasks import enqueue_after_commit

logger = logging.getLogger(__name__)

RUN_SHARD_TASK = "console.jobs.tasks.run_shard"
WATCHDOG_TASK = "console.jobs.tasks.watchdog"
WATCHDOG_SCHEDULE_NAME = "console-jobs-watchdog"


class JobStateError(Exception):
    """The job is not in a state that allows what was asked; the message says why."""


def shard_ranges(*, total: int, shard_size: int) -> list[tuple[int, int]]:
    """Cut ``[0, total)`` into consecutive ranges of at most ``shard_size`` positions."""
    if shard_size < 1:
        raise ValueError("shard_size must be positive")
    return [(start, min(start + shard_size, total)) for start in range(0, total, shard_size)]


def _enqueue_shards(shards: list[JobShard] | models.QuerySet) -> None:
    ids = [shard.pk for shard in shards]
    if not ids:
        return
    JobShard.objects.filter(pk__in=ids).update(enqueued_at=timezone.now())
    for shard_id in ids:
        enqueue_after_commit(RUN_SHARD_TASK, shard_id, group="console-jobs")


# History notes are stored untranslated and translated when shown: the wording that earlier
# versions stored stays in the catalogue, so their entries still read in the viewer's language.
EARLIER_HISTORY_NOTES = (_("Submitted: %(total)s items in %(shards)s parts."),)


@transaction.atomic
def job_create(
    *,
    kind: str,
    title: str,
    total: int,
    shards: list[tuple[int, int]],
    actor: Actor,
    params: dict | None = None,
    target: models.Model | None = None,
    parent: Job | None = None,
) -> Job:
    """Create a job of a registered kind with its shards; the worker starts it on commit."""
    job_kind(kind)  # refuses an unknown kind before anything is saved
    job = Job(
        kind=kind,
        title=title[:200],
        total=total,
        params=params or {},
        parent=parent,
        created_by=actor.user,
    )
    if target is not None:
        job.target_type = ContentType.objects.get_for_model(target)
        job.target_id = str(target.pk)
    if not shards:
        job.status = JobStatus.DONE
        job.started_at = job.finished_at = timezone.now()
    job.save()
    created = JobShard.objects.bulk_create(
        JobShard(job=job, index=index, start=start, end=end, position=start)
        for index, (start, end) in enumerate(shards)
    )
    audit_record(
        actor=actor,
        obj=job,
        action=AuditAction.ADD,
        note=_("Submitted. Items: %(total)s; parts: %(shards)s."),
        note_params={"total": total, "shards": len(shards)},
    )
    if created and not created[0].pk:
        # Backends that do not return ids from bulk_create.
        created = list(job.shards.all())
    _enqueue_shards(created)
    return job


def _change_status(
    *,
    job: Job,
    actor: Actor,
    allowed_from: tuple[str, ...],
    to: JobStatus,
    note: str,
    refusal: str,
    **fields: object,
) -> Job:
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.status not in allowed_from:
            raise JobStateError(
                str(refusal) % {"status": locked.get_status_display(), "title": locked.title}
            )
        old = locked.get_status_display()
        locked.status = to
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=["status", *fields])
        audit_record(
            actor=actor,
            obj=locked,
            action=AuditAction.CHANGE,
            changes={"status": (old, locked.get_status_display())},
            note=note,
        )
        if to in ACTIVE_JOB_STATUSES:
            _enqueue_shards(
                locked.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING))
            )
    job.refresh_from_db()
    return job


def job_pause(*, job: Job, actor: Actor) -> Job:
    return _change_status(
        job=job,
        actor=actor,
        allowed_from=ACTIVE_JOB_STATUSES,
        to=JobStatus.PAUSED,
        note=_("Paused."),
        refusal=_("“%(title)s” is %(status)s and cannot be paused."),
    )


def job_resume(*, job: Job, actor: Actor) -> Job:
    started = JobStatus.RUNNING if job.started_at else JobStatus.QUEUED
    return _change_status(
        job=job,
        actor=actor,
        allowed_from=(JobStatus.PAUSED, JobStatus.WAITING),
        to=started,
        note=_("Resumed."),
        refusal=_("“%(title)s” is %(status)s and cannot be resumed."),
        resume_at=None,
        status_message="",
    )


def job_cancel(*, job: Job, actor: Actor) -> Job:
    job = _change_status(
        job=job,
        actor=actor,
        allowed_from=OPEN_JOB_STATUSES,
        to=JobStatus.CANCELLED,
        note=_("Cancelled: the items not yet processed will not be."),
        refusal=_("“%(title)s” is %(status)s and cannot be cancelled."),
        finished_at=timezone.now(),
    )
    # The lease stays with a worker still running a batch, so that batch is still counted.
    job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)).update(
        status=ShardStatus.CANCELLED
    )
    return job


def job_wait(*, job: Job, until: datetime | None, message: str) -> None:
    """The job puts itself on hold until ``until`` (or until resumed by hand), saying why."""
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, status__in=ACTIVE_JOB_STATUSES).update(
            status=JobStatus.WAITING, resume_at=until, status_message=message
        )
        if changed:
            job.refresh_from_db()
            audit_record(
                actor=Actor.system(),
                obj=job,
                action=AuditAction.CHANGE,
                changes={"status": (JobStatus.RUNNING.label, JobStatus.WAITING.label)},
                note=_("On hold: %(reason)s"),
                note_params={"reason": message},
            )


def job_fail(*, job: Job, message: str) -> None:
    """Stop the job for good, with the reason as a sentence."""
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, status__in=OPEN_JOB_STATUSES).update(
            status=JobStatus.FAILED, status_message=message, finished_at=timezone.now()
        )
        if changed:
            job.refresh_from_db()
            job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)).update(
                status=ShardStatus.CANCELLED
            )
            audit_record(
                actor=Actor.system(),
                obj=job,
                action=AuditAction.CHANGE,
                changes={"status": (JobStatus.RUNNING.label, JobStatus.FAILED.label)},
                note=_("Stopped: %(reason)s"),
                note_params={"reason": message},
            )


def _job_finish_if_complete(job: Job) -> None:
    if job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)).exists():
        return
    with transaction.atomic():
        # Two shards finishing at once may both get here; the update lets one of them through.
        finished = Job.objects.filter(pk=job.pk, status__in=ACTIVE_JOB_STATUSES).update(
            status=JobStatus.DONE, finished_at=timezone.now(), status_message=""
        )
        if not finished:
            return
        job.refresh_from_db()
        progress = job.progress()
        audit_record(
            actor=Actor.system(),
            obj=job,
            action=AuditAction.CHANGE,
            changes={"status": (JobStatus.RUNNING.label, JobStatus.DONE.label)},
            note=_("Finished: %(done)s done, %(failed)s failed."),
            note_params={"done": progress.done, "failed": progress.failed},
        )
    kind = job_kind(job.kind)
    if kind.on_finished is not None:
        kind.on_finished(job)


@dataclass(frozen=True)
class SliceOutcome:
    claimed: bool
    stop_reason: StopReason | None = None
    error: str = ""


def job_run_shard(*, shard_id: int, worker: str | None = None) -> SliceOutcome:
    """Work on one shard for one slice of time, under its lease; what a task calls."""
    owner = new_owner(worker)
    shard = shard_claim(shard_id=shard_id, owner=owner)
    if shard is None:
        return SliceOutcome(claimed=False)
    job = shard.job
    job_mark_running(job)
    run = ShardRun(job=job, shard=shard, owner=owner)
    try:
        kind = job_kind(job.kind)
        if shard.position < shard.end:
            kind.run_shard(run)
        run.save()
    except LeaseLost:
        return SliceOutcome(claimed=True, stop_reason=StopReason.LEASE_LOST)
    except UnknownJobKind:
        shard_release(shard=shard, owner=owner)
        job_fail(job=job, message=str(_("This kind of job is not known to this console version.")))
        return SliceOutcome(claimed=True, error="unknown kind")
    except Exception as error:
        # A bug or an outage the kind did not handle: the shard is let go and taken up again by
        # the watchdog, until it has failed too often in a row.
        logger.exception("job %s shard %s failed", job.pk, shard.index)
        name = type(error).__name__
        _save_what_was_done(run)
        shard_release(shard=shard, owner=owner, errors=shard.errors + 1, last_error=name)
        if shard.errors + 1 >= settings.JOBS_MAX_ERRORS:
            job_fail(
                job=job,
                message=str(
                    _(
                        "The job stopped after repeated unexpected errors (%(error)s). "
                        "What was done is kept; ask an administrator to look at the worker log."
                    )
                    % {"error": name}
                ),
            )
        return SliceOutcome(claimed=True, error=name)
    return _end_slice(run)


def _save_what_was_done(run: ShardRun) -> None:
    """Write the batches done before an error, when the database still answers."""
    try:
        run.save()
    except Exception:  # the lease is gone, or the error was the database's: sent again later
        logger.warning("job %s shard %s: last batches not saved", run.job.pk, run.shard.index)


def _end_slice(run: ShardRun) -> SliceOutcome:
    shard = run.shard
    if shard.position >= shard.end:
        if shard_release(shard=shard, owner=run.owner, status=ShardStatus.DONE, errors=0):
            _job_finish_if_complete(run.job)
        return SliceOutcome(claimed=True, stop_reason=StopReason.SHARD_DONE)
    if not shard_release(shard=shard, owner=run.owner, errors=0):
        return SliceOutcome(claimed=True, stop_reason=StopReason.LEASE_LOST)
    if run.stop_reason in (StopReason.SLICE_OVER, None):
        # Another slice of the same shard: through the queue, so other jobs get their turn.
        still_running = Job.objects.filter(pk=run.job.pk, status__in=ACTIVE_JOB_STATUSES)
        if still_running.exists():
            _enqueue_shards([shard])
    return SliceOutcome(claimed=True, stop_reason=run.stop_reason or StopReason.SLICE_OVER)


@dataclass(frozen=True)
class WatchdogReport:
    resumed_jobs: int
    requeued_shards: int


def jobs_watchdog(*, now: datetime | None = None) -> WatchdogReport:
    """Resume jobs whose wait is over and re-queue shards that no live worker holds.

    The Redis broker loses a task whose worker is killed; the database broker hands it out again
    only after Q_RETRY. Either way the shard's expired lease shows it is nobody's now.
    """
    now = now or timezone.now()
    resumed = 0
    for job in Job.objects.filter(status=JobStatus.WAITING, resume_at__lte=now):
        with transaction.atomic():
            if Job.objects.filter(pk=job.pk, status=JobStatus.WAITING).update(
                status=JobStatus.RUNNING, resume_at=None, status_message=""
            ):
                resumed += 1
                audit_record(
                    actor=Actor.system(),
                    obj=job,
                    action=AuditAction.CHANGE,
                    changes={"status": (JobStatus.WAITING.label, JobStatus.RUNNING.label)},
                    note=_("Resumed after waiting."),
                )
    requeue_after = now - timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    stalled = list(
        JobShard.objects.filter(
            job__status__in=ACTIVE_JOB_STATUSES,
            status__in=(ShardStatus.PENDING, ShardStatus.RUNNING),
        )
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=requeue_after))
        .only("pk")[: settings.JOBS_WATCHDOG_BATCH]
    )
    _enqueue_shards(stalled)
    return WatchdogReport(resumed_jobs=resumed, requeued_shards=len(stalled))


def jobs_schedule_ensure() -> None:
    """The watchdog's schedule, created or corrected; run by bootstrap."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=WATCHDOG_SCHEDULE_NAME,
        defaults={
            "func": WATCHDOG_TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
