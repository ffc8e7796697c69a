"""Services of the job machinery: create, pause, resume, cancel, run a shard, watch over all."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from console.audit import Actor, AuditAction, audit_record
from console.jobs.registry import UnknownJobKind, job_kind
from console.jobs.runner import (
    LeaseLost,
    PlatformUnavailable,
    ShardRun,
    StopReason,
    lease_seconds,
    new_owner,
    shard_claim,
    shard_claim_next,
    shard_release,
    shard_release_at_slice_end,
)
from console.models import (
    ACTIVE_JOB_STATUSES,
    FINAL_JOB_STATUSES,
    OPEN_JOB_STATUSES,
    Job,
    JobShard,
    JobStatus,
    ShardStatus,
)
from console.notes import msgid, note, note_text
from console.on_commit import enqueue_after_commit

logger = logging.getLogger(__name__)
T = TypeVar("T")

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
    reader: str = "",
) -> Job:
    """Create a job of a registered kind with its shards; the worker starts it on commit.

    ``reader``: the lease owner of a process still reading the job's items (``tag_users``
    reading a list): the job gets a reading part of its own, index 0, with no items, leased to
    that process. The process adds the other parts as items come (:func:`job_parts_add`),
    renewing its lease, and ends the reading (:func:`job_reading_done`); the job cannot finish
    before. If the process dies, its lease runs out and the worker that takes the reading part
    up fails the job with a sentence (:func:`_reader_gone`): it never waits forever.
    """
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
    if not shards and not reader:
        job.status = JobStatus.DONE
        job.started_at = job.finished_at = timezone.now()
    job.save()
    first = 0
    if reader:
        first = 1
        JobShard.objects.create(
            job=job,
            index=0,
            start=0,
            end=0,
            position=0,
            state={READER_STATE: True},
            status=ShardStatus.RUNNING,
            lease_owner=reader,
            lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds()),
        )
    created = JobShard.objects.bulk_create(
        JobShard(job=job, index=index, start=start, end=end, position=start)
        for index, (start, end) in enumerate(shards, start=first)
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
        created = list(job.shards.filter(index__gte=first))
    _enqueue_shards(created)
    return job


# The reading part's mark in its shard's state (job_create's ``reader``).
READER_STATE = "reader"


class JobStoppedWhileReading(Exception):
    """The job was cancelled or failed while its items were being read: read no further."""


def job_reader(*, job: Job, owner: str) -> ShardRun:
    """The reading part of a job created with ``reader=owner``, for that process to hold."""
    shard = job.shards.get(index=0, lease_owner=owner)
    # Never cut by a slice: the reading ends when its list does (its own time bound applies).
    return ShardRun(job=job, shard=shard, owner=owner, slice_ends=float("inf"))


def job_parts_add(*, reader: ShardRun, ranges: list[tuple[int, int]]) -> int:
    """More parts for a job whose items are being read, on the reader's renewed lease, queued on
    commit if the job may run (a paused job gets them queued when resumed); the job's total
    grows by their items. Raises :class:`LeaseLost` (the reading was taken from this process)
    or :class:`JobStoppedWhileReading`. Call it in no transaction of the caller's: it commits
    here, so that the parts can be sent while the reading goes on."""
    added = sum(end - start for start, end in ranges)
    with transaction.atomic():
        # Under the job's lock: a cancel cannot slip between the check and the new parts.
        locked = Job.objects.select_for_update().filter(pk=reader.job.pk).first()
        if locked is None or locked.status not in OPEN_JOB_STATUSES:
            raise JobStoppedWhileReading(reader.job.pk)
        reader.renew_lease()
        if not ranges:
            return 0
        first = (locked.shards.aggregate(last=models.Max("index"))["last"] or 0) + 1
        created = JobShard.objects.bulk_create(
            JobShard(job=locked, index=index, start=start, end=end, position=start)
            for index, (start, end) in enumerate(ranges, start=first)
        )
        Job.objects.filter(pk=locked.pk).update(total=F("total") + added)
        if locked.status in ACTIVE_JOB_STATUSES:
            if created and not created[0].pk:
                created = list(locked.shards.filter(index__gte=first))
            _enqueue_shards(created)
    reader.job.total += added
    return added


def job_reading_done(*, reader: ShardRun, note: str | Promise, note_params: dict) -> None:
    """The reading is over: its part goes (it had no items: the job's parts are as if it had
    been created whole), with a History entry on the job (``note``); the job finishes once its
    other parts are done (at once if they are). Raises :class:`LeaseLost` if the reading was
    taken from this process meanwhile."""
    with transaction.atomic():
        deleted, _counts = JobShard.objects.filter(
            pk=reader.shard.pk, lease_owner=reader.owner
        ).delete()
        if not deleted:
            raise LeaseLost(reader.shard.pk)
        reader.job.refresh_from_db()
        audit_record(
            actor=Actor.system(),
            obj=reader.job,
            action=AuditAction.CHANGE,
            note=note,
            note_params=note_params,
        )
    _job_finish_if_complete(reader.job)


READER_GONE = _(
    "Its list stopped being read before the end: the process reading it ended. Resuming sends "
    "what was read and not yet sent; for the rest, start a new job with the whole list (OpenIDs "
    "tagged already stay as they are)."
)


def _reader_gone(run: ShardRun) -> SliceOutcome:
    """A worker took up the reading part of a job: its process died (or froze past its
    lease) in the middle of the list. Nobody can go on with that reading: the job fails."""
    # Failed first: the failure cancels the reading part with the job's other open parts, in
    # one transaction. Released first, a crash in between would let the job finish "done" on
    # the parts already read, its list cut short without a word.
    job_fail(job=run.job, message=READER_GONE)
    shard_release(shard=run.shard, owner=run.owner, status=ShardStatus.CANCELLED)
    return SliceOutcome(claimed=True, stop_reason=StopReason.JOB_STOPPED)


def _transition(
    *,
    job_id: int,
    to: JobStatus,
    allowed_from: tuple[str, ...],
    actor: Actor,
    note: str | Promise,
    note_params: dict[str, Any] | None = None,
    refusal: str | Promise | None = None,
    enqueue: bool = True,
    **fields: object,
) -> Job | None:
    """The one way a job's status changes: under the row's lock, from what it really is.

    The History entry records the true old → new status (read under the lock, not assumed by
    the caller). A change that is not allowed from the status found raises
    :class:`JobStateError` with ``refusal``, or returns ``None`` when the caller gave none (a
    worker's change that someone else's pause or cancel got ahead of). To an active status,
    the job's open shards are queued on commit.
    """
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(pk=job_id).first()
        if locked is None or locked.status not in allowed_from:
            if refusal is None or locked is None:
                return None
            raise JobStateError(
                str(refusal) % {"status": locked.get_status_display(), "title": locked.title}
            )
        old = JobStatus(locked.status)
        locked.status = to
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=["status", *fields])
        audit_record(
            actor=actor,
            obj=locked,
            action=AuditAction.CHANGE,
            changes={"status": (old.label, JobStatus(to).label)},
            note=note,
            note_params=note_params,
        )
        if to in FINAL_JOB_STATUSES:
            # With the status, in its transaction: a crash cannot leave open shards under a
            # finished job (the watchdog repairs it for jobs left so by earlier versions).
            locked.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)).update(
                status=ShardStatus.CANCELLED
            )
        if to in (JobStatus.CANCELLED, JobStatus.FAILED):
            _on_stopped(locked)
        if enqueue and to in ACTIVE_JOB_STATUSES:
            _enqueue_shards(
                locked.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING))
            )
    return locked


def _on_stopped(job: Job) -> None:
    try:
        kind = job_kind(job.kind)
    except UnknownJobKind:
        return
    if kind.on_stopped is not None:
        kind.on_stopped(job)


def _change_by_hand(
    *,
    job: Job,
    actor: Actor,
    to: JobStatus,
    allowed_from: tuple[str, ...],
    note: str | Promise,
    refusal: str | Promise,
    **fields: object,
) -> Job:
    """A person's change of the job's status (raises :class:`JobStateError` with ``refusal``
    when the status found does not allow it); the job as it is afterwards."""
    _transition(
        job_id=job.pk,
        to=to,
        allowed_from=allowed_from,
        actor=actor,
        note=note,
        refusal=refusal,
        **fields,
    )
    job.refresh_from_db()
    return job


def job_start(*, job: Job) -> None:
    """Queued → running, when a worker first takes one of its shards; with its History entry."""
    if job.status != JobStatus.QUEUED:
        return
    _transition(
        job_id=job.pk,
        to=JobStatus.RUNNING,
        allowed_from=(JobStatus.QUEUED,),
        actor=Actor.system(),
        note=_("Started."),
        enqueue=False,  # its shards are queued already: one of them is being started
        started_at=timezone.now(),
    )
    job.refresh_from_db(fields=["status", "started_at"])


def job_pause(*, job: Job, actor: Actor) -> Job:
    return _change_by_hand(
        job=job,
        actor=actor,
        to=JobStatus.PAUSED,
        allowed_from=ACTIVE_JOB_STATUSES,
        note=_("Paused."),
        refusal=_("“%(title)s” is %(status)s and cannot be paused."),
    )


def job_resume(*, job: Job, actor: Actor) -> Job:
    """Go on where the job stopped: after a pause, a wait, or a failure (nothing is redone)."""
    started = JobStatus.RUNNING if job.started_at else JobStatus.QUEUED
    with transaction.atomic():
        resumed = _change_by_hand(
            job=job,
            actor=actor,
            to=started,
            allowed_from=(JobStatus.PAUSED, JobStatus.WAITING, JobStatus.FAILED),
            note=_("Resumed."),
            refusal=_("“%(title)s” is %(status)s and cannot be resumed."),
            resume_at=None,
            status_message="",
            status_params={},
            finished_at=None,
        )
        # A failed job's unfinished shards were set aside with it: they go on from their
        # checkpoints, with their error counts cleared.
        reopened = JobShard.objects.filter(
            job=resumed, status=ShardStatus.CANCELLED, position__lt=F("end")
        )
        ids = list(reopened.values_list("pk", flat=True))
        if ids:
            JobShard.objects.filter(pk__in=ids).update(
                status=ShardStatus.PENDING,
                errors=0,
                outages=0,
                lease_owner="",
                lease_expires_at=None,
            )
            _enqueue_shards(JobShard.objects.filter(pk__in=ids))
    return resumed


def job_cancel(*, job: Job, actor: Actor) -> Job:
    # A worker still running a batch keeps its lease, so that batch is still counted.
    return _change_by_hand(
        job=job,
        actor=actor,
        to=JobStatus.CANCELLED,
        allowed_from=OPEN_JOB_STATUSES,
        note=_("Cancelled: the items not yet processed will not be."),
        refusal=_("“%(title)s” is %(status)s and cannot be cancelled."),
        finished_at=timezone.now(),
    )


def job_wait(
    *,
    job: Job,
    until: datetime | None,
    message: str | Promise,
    params: dict[str, Any] | None = None,
) -> None:
    """The job puts itself on hold until ``until`` (or until resumed by hand), saying why.

    ``message`` is stored untranslated (a ``gettext_lazy`` sentence, with ``params``) and
    translated for each reader.
    """
    _stop_with_reason(
        job=job,
        to=JobStatus.WAITING,
        allowed_from=ACTIVE_JOB_STATUSES,
        note=_("On hold: %(reason)s"),
        message=message,
        params=params,
        resume_at=until,
    )


def job_fail(*, job: Job, message: str | Promise, params: dict[str, Any] | None = None) -> None:
    """Stop the job for good, with the reason as a sentence; it can still be resumed by hand."""
    _stop_with_reason(
        job=job,
        to=JobStatus.FAILED,
        allowed_from=OPEN_JOB_STATUSES,
        note=_("Stopped: %(reason)s"),
        message=message,
        params=params,
        finished_at=timezone.now(),
    )


def _stop_with_reason(
    *,
    job: Job,
    to: JobStatus,
    allowed_from: tuple[str, ...],
    note: str | Promise,
    message: str | Promise,
    params: dict[str, Any] | None,
    **fields: object,
) -> None:
    """The job's own change of status, saying why: the reason stored untranslated for the
    job's page, and in the History's note. Nothing happens when someone's pause or cancel got
    there first."""
    params = _storable(params)
    changed = _transition(
        job_id=job.pk,
        to=to,
        allowed_from=allowed_from,
        actor=Actor.system(),
        note=note,
        note_params={"reason": _reason_for_history(message, params)},
        status_message=msgid(message),
        status_params=params,
        **fields,
    )
    if changed:
        job.refresh_from_db()


def _storable(params: dict[str, Any] | None) -> dict[str, Any]:
    return note("", params)["params"]


def _reason_for_history(message: str | Promise, params: dict[str, Any]) -> str:
    # The History stores one note with its values; the reason goes in as the console's
    # language reads it (the History's own sentence around it stays translatable).
    with translation.override(settings.LANGUAGE_CODE):
        return str(note_text({"msgid": msgid(message), "params": params}))


def _job_finish_if_complete(job: Job) -> None:
    if job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)).exists():
        return
    progress = job.progress()
    # Two shards finishing at once may both get here; the lock lets one of them through.
    finished = _transition(
        job_id=job.pk,
        to=JobStatus.DONE,
        allowed_from=ACTIVE_JOB_STATUSES,
        actor=Actor.system(),
        note=_("Finished: %(done)s done, %(failed)s failed."),
        note_params={"done": progress.done, "failed": progress.failed},
        finished_at=timezone.now(),
        status_message="",
        status_params={},
    )
    if finished is None:
        return
    job.refresh_from_db()
    kind = job_kind(job.kind)
    if kind.on_finished is not None:
        kind.on_finished(job)


@dataclass(frozen=True)
class SliceOutcome:
    claimed: bool
    stop_reason: StopReason | None = None
    error: str = ""


def job_run_shards(*, shard_id: int) -> list[SliceOutcome]:
    """What a task does: one slice of work from ``shard_id`` on.

    When the shard is done before the slice is over, the task goes on with the next shard of
    the same job that nobody holds, under the same slice (``JOBS_CHAIN_SHARDS``): the task
    queued for that shard then finds it taken and ends at once. Between two shards that saves
    the queue's round trip (the next task's pick-up, its result row): a boundary cost a median
    of 38 ms through the queue and 15 ms chained on SQLite, 32 and 24 ms on PostgreSQL + Redis,
    on a busy machine (bench/shard_gap.py). It is as fair as before: a task still holds its
    worker for at most one slice, and work of other jobs, queued behind, gets its turn then.
    """
    slice_ends = time.monotonic() + settings.JOBS_SLICE_SECONDS
    owner = new_owner()
    shard = _through_blips(lambda: shard_claim(shard_id=shard_id, owner=owner))
    outcomes: list[SliceOutcome] = []
    kept: dict[str, Any] = {}
    while shard is not None:
        outcomes.append(_run_claimed(shard=shard, owner=owner, slice_ends=slice_ends, kept=kept))
        if not (
            settings.JOBS_CHAIN_SHARDS
            and outcomes[-1].stop_reason is StopReason.SHARD_DONE
            and time.monotonic() < slice_ends
        ):
            break
        owner = new_owner()
        shard = _through_blips(
            lambda job_id=shard.job_id, owner=owner: shard_claim_next(job_id=job_id, owner=owner)
        )
    return outcomes or [SliceOutcome(claimed=False)]


def job_run_shard(*, shard_id: int, worker: str | None = None) -> SliceOutcome:
    """Work on one shard for one slice of time, under its lease."""
    owner = new_owner(worker)
    shard = _through_blips(lambda: shard_claim(shard_id=shard_id, owner=owner))
    if shard is None:
        return SliceOutcome(claimed=False)
    return _run_claimed(
        shard=shard, owner=owner, slice_ends=time.monotonic() + settings.JOBS_SLICE_SECONDS
    )


def _run_claimed(
    *, shard: JobShard, owner: str, slice_ends: float, kept: dict[str, Any] | None = None
) -> SliceOutcome:
    """Work on a shard whose lease ``owner`` holds, until ``slice_ends`` (``time.monotonic()``);
    ``kept``: what the kind made for the job's shards before, in this task (``ShardRun.reuse``).

    A database or cache blip (a restart, a dropped connection) does not end the slice: the
    worker, still holding its lease, waits up to ``JOBS_BLIP_SECONDS`` for the server and
    goes on from its last checkpoint (:func:`_through_blips`).
    """
    job = shard.job
    run = ShardRun(job=job, shard=shard, owner=owner, slice_ends=slice_ends, kept=kept)
    if shard.state.get(READER_STATE):
        return _through_blips(lambda: _reader_gone(run))
    _through_blips(lambda: job_start(job=job))
    with run.fenced():
        while True:
            try:
                kind = job_kind(job.kind)
                if run.position < shard.end:
                    kind.run_shard(run)
                run.save()
            except LeaseLost:
                return SliceOutcome(claimed=True, stop_reason=StopReason.LEASE_LOST)
            except PlatformUnavailable as outage:
                _through_blips(lambda outage=outage: _hold_for_outage(run, outage))
                return SliceOutcome(claimed=True, stop_reason=StopReason.JOB_STOPPED)
            except UnknownJobKind:
                shard_release(shard=shard, owner=owner)
                job_fail(
                    job=job, message=_("This kind of job is not known to this console version.")
                )
                return SliceOutcome(claimed=True, error="unknown kind")
            except Exception as error:
                if is_blip(error):
                    try:
                        back = _wait_out_blip(run)
                    except LeaseLost:
                        return SliceOutcome(claimed=True, stop_reason=StopReason.LEASE_LOST)
                    if back:
                        # From the last checkpoint: a batch whose checkpoint failed is sent again.
                        run.stop_reason = None
                        continue
                    # Still down: the lease runs out and the watchdog hands the shard on.
                    logger.warning(
                        "job %s shard %s: database or cache still down", job.pk, shard.index
                    )
                    return SliceOutcome(claimed=True, error=type(error).__name__)
                return _unexpected_error(run, error)
            break
    return _through_blips(lambda: _end_slice(run))


def _unexpected_error(run: ShardRun, error: Exception) -> SliceOutcome:
    # A bug the kind did not handle: the shard is let go and taken up again by the watchdog,
    # until it has failed too often in a row; then the job stops, and can be resumed by hand.
    job, shard, owner = run.job, run.shard, run.owner
    logger.exception("job %s shard %s failed", job.pk, shard.index, exc_info=error)
    name = type(error).__name__
    _save_what_was_done(run)
    shard_release(shard=shard, owner=owner, errors=shard.errors + 1, last_error=name)
    if shard.errors + 1 >= settings.JOBS_MAX_ERRORS:
        job_fail(
            job=job,
            message=_(
                "The job stopped after repeated unexpected errors (%(error)s). What was done "
                "is kept; it goes on from there when resumed. If it stops again, ask an "
                "administrator to look at the worker log."
            ),
            params={"error": name},
        )
    return SliceOutcome(claimed=True, error=name)


# --- Blips of the database and the cache ----------------------------------------------------


def is_blip(error: BaseException) -> bool:
    """A connection to the database or the cache that failed: worth waiting a few seconds for."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    try:
        from redis.exceptions import (
            ConnectionError as RedisConnectionError,
            TimeoutError as RedisTimeoutError,
        )
    except ImportError:  # pragma: no cover - redis is installed with the console
        return False
    return isinstance(error, (RedisConnectionError, RedisTimeoutError))


def _reconnect() -> None:
    # A connection that saw the server go away is useless; the next query opens a new one.
    # Never inside a transaction someone else opened (a test's): that one is theirs to end.
    if connection.in_atomic_block:
        return
    try:
        connection.close()
    except Exception:  # closing a broken connection may fail too; it is gone either way
        logger.debug("closing a broken database connection failed", exc_info=True)


def _wait_out_blip(run: ShardRun) -> bool:
    """Wait for the database (and cache) to answer again, renewing the lease; ``True`` once it
    is renewed, ``False`` after ``JOBS_BLIP_SECONDS``. Raises LeaseLost if it was taken over."""
    deadline = time.monotonic() + settings.JOBS_BLIP_SECONDS
    pause = 0.05
    while True:
        _reconnect()
        try:
            run.renew_lease()
            return True
        except LeaseLost:
            raise
        except Exception as error:
            if not is_blip(error):
                raise
        if time.monotonic() + pause > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _through_blips(step: Callable[[], T]) -> T:
    """``step()``, run again for up to ``JOBS_BLIP_SECONDS`` while the database or cache is
    unreachable. Only for steps that are safe to run twice (fenced or idempotent updates)."""
    deadline = time.monotonic() + settings.JOBS_BLIP_SECONDS
    pause = 0.05
    while True:
        try:
            return step()
        except Exception as error:
            if not is_blip(error) or time.monotonic() + pause > deadline:
                raise
        _reconnect()
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _save_what_was_done(run: ShardRun) -> None:
    """Write the batches done before an error, when the database still answers."""
    try:
        run.save()
    except Exception:  # the lease is gone, or the error was the database's: sent again later
        logger.warning("job %s shard %s: last batches not saved", run.job.pk, run.shard.index)


# --- Platform outages -----------------------------------------------------------------------


def outage_backoff_seconds(outages: int) -> int:
    """How long a job waits after its ``outages``-th outage in a row: doubling, up to a cap."""
    base = settings.JOBS_OUTAGE_BACKOFF_SECONDS
    return int(min(base * 2 ** max(outages - 1, 0), settings.JOBS_OUTAGE_BACKOFF_CAP_SECONDS))


def _hold_for_outage(run: ShardRun, outage: PlatformUnavailable) -> None:
    """The platform cannot be reached: the job waits and tries again, never fails for it."""
    _save_what_was_done(run)
    shard = run.shard
    previous = (
        JobShard.objects.filter(job=run.job).aggregate(most=models.Max("outages"))["most"] or 0
    )
    outages = previous + 1
    delay = outage_backoff_seconds(outages)
    shard_release(shard=shard, owner=run.owner, outages=outages, last_error=outage.reason[:2000])
    job_wait(
        job=run.job,
        until=timezone.now() + timedelta(seconds=delay),
        message=OUTAGE_MESSAGE,
        params={"error": outage.note or outage.reason, "outage": outages},
    )


OUTAGE_MESSAGE = _("The platform cannot be reached for now. Last error: %(error)s")


def _end_slice(run: ShardRun) -> SliceOutcome:
    shard = run.shard
    if shard.position >= shard.end:
        if shard_release_at_slice_end(shard=shard, owner=run.owner, done=True):
            _job_finish_if_complete(run.job)
        return SliceOutcome(claimed=True, stop_reason=StopReason.SHARD_DONE)
    if not shard_release_at_slice_end(shard=shard, owner=run.owner, done=False):
        return SliceOutcome(claimed=True, stop_reason=StopReason.LEASE_LOST)
    if run.stop_reason in (StopReason.SLICE_OVER, None):
        # Another slice of the same shard: through the queue, so other jobs get their turn.
        still_running = Job.objects.filter(pk=run.job.pk, status__in=ACTIVE_JOB_STATUSES)
        if still_running.exists():
            _through_blips(lambda: _enqueue_shards([shard]))
    return SliceOutcome(claimed=True, stop_reason=run.stop_reason or StopReason.SLICE_OVER)


@dataclass(frozen=True)
class WatchdogReport:
    resumed_jobs: int
    requeued_shards: int
    finished_jobs: int = 0
    freed_shards: int = 0
    closed_shards: int = 0


def jobs_watchdog(
    *,
    now: datetime | None = None,
    dead_owner: Callable[[str], bool] | None = None,
    tasks_lost: bool = False,
) -> WatchdogReport:
    """Repair what a crash (of a worker, of the database) can leave, and go on with it.

    Every state a crash between two commits can leave, and what repairs it here:

    1. A shard marked done, its job not finished (the last shard's release and the job's
       finish are two transactions; a death between them): the job is finished.
    2. A shard leased by a worker that died (killed, OOM) or froze: free again once its lease
       expires, or at once when ``dead_owner`` (the supervisor of ``qcluster``, which knows its
       host's processes) says the owner's process is gone; then queued again.
    3. A shard whose task was lost (the Redis broker drops the task of a killed worker; a
       crash after the commit and before the enqueue): queued again once ``enqueued_at`` is
       older than a lease and nobody holds it.
    4. A job put on hold (quota, platform outage) whose time has come: running again, with its
       shards queued.
    5. Open shards under a finished, failed or cancelled job (left by versions that cancelled
       them in a second transaction): cancelled.
    6. A shard at its end but not marked done (a death after its last checkpoint): it is queued
       by (2)/(3) and the next slice marks it done at once.

    ``tasks_lost``: the supervisor has just replaced a cluster (stuck, or ended), whose queued
    tasks went with it: every shard nobody holds is queued again at once, however recently it
    was queued (a task queued twice finds its shard taken and does nothing).
    """
    now = now or timezone.now()
    resumed = 0
    for job in Job.objects.filter(status=JobStatus.WAITING, resume_at__lte=now):
        if _transition(
            job_id=job.pk,
            to=JobStatus.RUNNING if job.started_at else JobStatus.QUEUED,
            allowed_from=(JobStatus.WAITING,),
            actor=Actor.system(),
            note=_("Resumed after waiting."),
            resume_at=None,
            status_message="",
            status_params={},
        ):
            resumed += 1
    finished = 0
    open_shard = JobShard.objects.filter(
        job=OuterRef("pk"), status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)
    )
    for job in Job.objects.filter(status__in=ACTIVE_JOB_STATUSES).filter(~Exists(open_shard)):
        before = job.status
        _job_finish_if_complete(job)
        finished += job.status != before
    closed = JobShard.objects.filter(
        job__status__in=FINAL_JOB_STATUSES,
        status__in=(ShardStatus.PENDING, ShardStatus.RUNNING),
    ).update(status=ShardStatus.CANCELLED)
    freed = 0
    if dead_owner is not None:
        leased = JobShard.objects.filter(
            job__status__in=ACTIVE_JOB_STATUSES,
            status=ShardStatus.RUNNING,
            lease_expires_at__gte=now,
        ).exclude(lease_owner="")
        for shard_id, owner in leased.values_list("pk", "lease_owner"):
            if dead_owner(owner):
                # Fenced on the owner: a live worker's renewal in between keeps its lease.
                freed += JobShard.objects.filter(pk=shard_id, lease_owner=owner).update(
                    lease_owner="", lease_expires_at=None, enqueued_at=None
                )
    requeue_after = now if tasks_lost else now - timedelta(seconds=settings.JOBS_LEASE_SECONDS)
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
    return WatchdogReport(
        resumed_jobs=resumed,
        requeued_shards=len(stalled),
        finished_jobs=finished,
        freed_shards=freed,
        closed_shards=closed,
    )


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
