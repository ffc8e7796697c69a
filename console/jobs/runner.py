"""Running one shard of a job: lease, heartbeat, checkpoint, stop.

A worker owns a shard only while it holds the shard's lease: a row update that names it as
owner until an expiry time. Every checkpoint is an update fenced by that ownership, in the same
transaction as whatever the kind records about the batch (failed items…), so a worker that lost
its lease can neither count a batch nor record it. Before each platform call the lease must
still run for longer than the longest call can take (timeouts and retry budget), which is why a
batch is never in flight on two workers at once: a second worker can only take the shard once
the lease has expired, and by then the first worker's last call has ended or been abandoned.

The lease is read against the clock once more immediately before each HTTP request, in the
platform transport (:meth:`ShardRun.fence`, through ``console/callfence.py``): a worker that
was frozen (SIGSTOP, a paused VM) or sat in the client's pauses between attempts past the point
where its lease could outlast the request renews it first, and a worker whose shard was taken
over meanwhile stops there without sending.

A busy worker killed outright is noticed sooner than its lease runs out: the supervisor of
``qcluster`` on the same host sees that the owner's process is gone and frees its shards
(``console.jobs.services.jobs_watchdog`` with ``dead_owner``), so they go on within seconds.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.functional import Promise

from console.models import ACTIVE_JOB_STATUSES, OPEN_JOB_STATUSES, Job, JobShard, ShardStatus

logger = logging.getLogger(__name__)
T = TypeVar("T")


class LeaseLost(Exception):
    """Another worker took the shard over: stop without counting anything more."""


class PlatformUnavailable(Exception):
    """Raised by a kind when the platform cannot be reached for now (no connection, timeouts,
    busy, 5xx, after the client's own retries): the job waits and tries again, backing off;
    it never fails for it. ``reason`` is the last error as a sentence."""

    def __init__(self, reason: str, note: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # The same, untranslated (console/notes.py), for the job's page in each reader's language.
        self.note = note


class StopReason(StrEnum):
    SHARD_DONE = "shard-done"
    SLICE_OVER = "slice-over"
    JOB_STOPPED = "job-stopped"
    LEASE_LOST = "lease-lost"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_seconds() -> float:
    return float(settings.JOBS_LEASE_SECONDS)


def one_attempt_seconds() -> float:
    """How long one HTTP attempt of a platform call can take at most."""
    return settings.PLATFORM_CONNECT_TIMEOUT + settings.PLATFORM_READ_TIMEOUT + 1.0


def owner_process(owner: str) -> tuple[str, int] | None:
    """The host and process id a lease owner names (``host:pid/token``), if it names one."""
    worker, _sep, _token = owner.rpartition("/")
    host, _sep, pid = worker.rpartition(":")
    if not host or not pid.isdigit():
        return None
    return host, int(pid)


def longest_call_seconds() -> float:
    """How long one platform call can take at most, with its retries."""
    return (
        settings.PLATFORM_RETRY_BUDGET
        + settings.PLATFORM_CONNECT_TIMEOUT
        + settings.PLATFORM_READ_TIMEOUT
        + 1.0
    )


class ShardRun:
    """What a job kind's ``run_shard`` works with: the job, the shard, and the lease."""

    def __init__(
        self,
        *,
        job: Job,
        shard: JobShard,
        owner: str,
        slice_ends: float | None = None,
        kept: dict[str, Any] | None = None,
    ) -> None:
        self.job = job
        self.shard = shard
        self.owner = owner
        self.stop_reason: StopReason | None = None
        # What the kind made for an earlier shard of the same job in this task (reuse()).
        self._kept = {} if kept is None else kept
        # A task that goes on with the job's next shard passes the end of its own slice.
        self._slice_ends = (
            slice_ends if slice_ends is not None else time.monotonic() + settings.JOBS_SLICE_SECONDS
        )
        self._lease_until = time.monotonic() + lease_seconds()
        self._pending_lease_until = self._lease_until
        self._status_checked = time.monotonic()
        # Batches counted by advance(coalesce=True) and not yet written: position, done, failed.
        self._unsaved = (0, 0, 0)
        self._unsaved_durable = False
        self._saved_at = time.monotonic()

    def reuse(self, key: str, make: Callable[[], T]) -> T:
        """``make()``, once per task: a task that goes on with the job's next shard
        (``console.jobs.services.job_run_shards``) gives the kind back what it made for the
        previous one under ``key`` (a platform client with its open connection), for at most
        the rest of one slice."""
        if key not in self._kept:
            self._kept[key] = make()
        return self._kept[key]

    # --- where the shard stands --------------------------------------------------------------

    @property
    def position(self) -> int:
        """Where the next batch starts: past every batch processed, written down or not yet."""
        return self.shard.position + self._unsaved[0]

    @property
    def end(self) -> int:
        return self.shard.end

    @property
    def remaining(self) -> int:
        return max(self.shard.end - self.position, 0)

    # --- whether to go on ----------------------------------------------------------------------

    def keep_going(self, *, within_slice: bool = True) -> bool:
        """True while the shard has work, the job runs, the slice lasts and the lease holds.

        Call it before each batch; it renews the lease when needed, so the batch that follows
        is sent under a lease that outlasts it. ``within_slice=False``: for a step that cannot
        be cut and taken up again (reading an uploaded list), the slice's end is not a stop.
        """
        if self.stop_reason is not None:
            return False
        if self.position >= self.shard.end:
            self.stop_reason = StopReason.SHARD_DONE
            return False
        now = time.monotonic()
        if within_slice and now >= self._slice_ends:
            self.stop_reason = StopReason.SLICE_OVER
            return False
        if now - self._status_checked >= settings.JOBS_STATUS_CHECK_SECONDS:
            self._status_checked = now
            status = Job.objects.filter(pk=self.job.pk).values_list("status", flat=True).first()
            if status not in ACTIVE_JOB_STATUSES:
                self.stop_reason = StopReason.JOB_STOPPED
                return False
        try:
            self.ensure_lease()
        except LeaseLost:
            self.stop_reason = StopReason.LEASE_LOST
            return False
        return True

    def job_open(self) -> bool:
        """Whether the job may still get work: not cancelled, failed or done (a paused job may).
        Asked of the database at most every ``JOBS_STATUS_CHECK_SECONDS``; for the process that
        reads a job's items while its parts are sent (``console.jobs.services.job_reader``)."""
        now = time.monotonic()
        if now - self._status_checked >= settings.JOBS_STATUS_CHECK_SECONDS:
            self._status_checked = now
            status = Job.objects.filter(pk=self.job.pk).values_list("status", flat=True).first()
            if status not in OPEN_JOB_STATUSES:
                self.stop_reason = StopReason.JOB_STOPPED
        return self.stop_reason is None

    def ensure_lease(self) -> None:
        """Renew the lease if what is left of it might not outlast one more platform call.

        Kinds that make several calls between two checkpoints (splitting a refused batch)
        call this before each call. Raises :class:`LeaseLost`.
        """
        if self._lease_until - time.monotonic() > longest_call_seconds():
            return
        self._renew()

    def fence(self) -> None:
        """The check right before an HTTP request (see the module's docstring).

        Only the clock, when the lease outlasts the request by far (the usual case: every
        checkpoint renews it); a fenced renewal otherwise. Raises :class:`LeaseLost`.
        """
        if self.stop_reason is StopReason.LEASE_LOST:
            raise LeaseLost(self.shard.pk)
        if self._lease_until - time.monotonic() > one_attempt_seconds():
            return
        self._renew()

    @contextmanager
    def fenced(self) -> Iterator[None]:
        """Every platform request made inside is checked by :meth:`fence` first."""
        from console.callfence import fence_calls

        with fence_calls(self.fence):
            yield

    def renew_lease(self) -> None:
        """Renew the lease now (fenced on the owner). Raises :class:`LeaseLost`."""
        self._renew()

    def _renew(self) -> None:
        renewed = JobShard.objects.filter(pk=self.shard.pk, lease_owner=self.owner).update(
            lease_expires_at=self._new_expiry()
        )
        if not renewed:
            self.stop_reason = StopReason.LEASE_LOST
            raise LeaseLost(self.shard.pk)
        self._lease_confirmed()

    def _new_expiry(self) -> datetime:
        # Counted from before the statement, and believed only once it is written
        # (_lease_confirmed): a statement that failed (a database blip) renewed nothing.
        self._pending_lease_until = time.monotonic() + lease_seconds()
        return timezone.now() + timedelta(seconds=lease_seconds())

    def _lease_confirmed(self) -> None:
        self._lease_until = self._pending_lease_until

    # --- recording progress --------------------------------------------------------------------

    @contextmanager
    def checkpoint(
        self,
        *,
        advance: int,
        done: int = 0,
        failed: int = 0,
        state: dict[str, Any] | None = None,
        durable: bool = True,
    ) -> Iterator[None]:
        """Record a processed batch: move the position on and add the counts, atomically.

        Whatever the caller does inside the ``with`` block (recording failed items) commits
        together with the checkpoint or not at all. Raises :class:`LeaseLost` (and rolls back)
        when the shard is no longer ours. ``durable=False``: see :meth:`advance`.
        """
        unsaved_advance, unsaved_done, unsaved_failed = self._unsaved
        advance += unsaved_advance
        done += unsaved_done
        failed += unsaved_failed
        with transaction.atomic():
            self._write(advance, done, failed, durable=durable, state=state)
            yield
        self._saved(advance, done, failed)
        if state is not None:
            self.shard.state = state

    def advance(
        self,
        *,
        advance: int,
        done: int = 0,
        failed: int = 0,
        durable: bool = True,
        coalesce: bool = False,
    ) -> None:
        """:meth:`checkpoint` for a batch with nothing else to record: one fenced statement,
        atomic by itself, without a transaction around it (two round trips fewer per batch).
        Raises :class:`LeaseLost` when the shard is no longer ours.

        ``durable=False`` is for kinds whose batches may be sent twice (idempotent calls): on
        PostgreSQL the commit then does not wait for its WAL to reach the disk
        (``synchronous_commit`` off for this transaction only), which was most of a batch's
        time. It stays atomic, fenced, and visible to every other worker at once; only a crash
        of the database server itself may lose the last checkpoints (at most three times
        ``wal_writer_delay``, 0.6 s by default), and the database then comes back as it was
        before them: position, counts, failed items and lease expiry together. Those batches
        are sent again and counted once, since the counts went back with the position. No
        batch is in flight on two workers meanwhile: the worker's next checkpoint fails (the
        server went away), and the lease that came back is shorter by those 0.6 s at most, far
        less than a lease outlasts a call. SQLite (WAL, ``synchronous=NORMAL``) never waits
        for the disk on commit, so there it changes nothing.

        ``coalesce=True``, also for idempotent batches only: batches that follow each other
        within ``JOBS_CHECKPOINT_SECONDS`` share one statement, written once that time has
        passed since the last one, with the next :meth:`checkpoint`, or by :meth:`save` when
        the slice ends. At a platform's real pace (the default rate limit is 20 calls a second,
        and a call takes tens of milliseconds) every batch still gets its own; when batches
        come faster, a worker killed between two statements has its last few dozen
        milliseconds of batches sent again by the next one, counted once, as above.
        """
        unsaved_advance, unsaved_done, unsaved_failed = self._unsaved
        self._unsaved = (unsaved_advance + advance, unsaved_done + done, unsaved_failed + failed)
        self._unsaved_durable = self._unsaved_durable or durable
        if not coalesce or time.monotonic() - self._saved_at >= settings.JOBS_CHECKPOINT_SECONDS:
            self.save()

    def save(self) -> None:
        """Write the batches :meth:`advance` has counted and not written yet, if any.

        The core calls it when the kind's ``run_shard`` returns (the shard done, the slice
        over, the job stopped or put on hold) or fails. Raises :class:`LeaseLost`: those
        batches are then the next worker's to send and count.
        """
        advance, done, failed = self._unsaved
        if not (advance or done or failed):
            return
        self._write(advance, done, failed, durable=self._unsaved_durable)
        self._saved(advance, done, failed)

    def _write(
        self, advance: int, done: int, failed: int, *, durable: bool, state: dict | None = None
    ) -> None:
        """The checkpoint's update, fenced on the lease. Raises :class:`LeaseLost`."""
        if state is None:
            updated = _advance(
                shard_id=self.shard.pk,
                owner=self.owner,
                advance=advance,
                done=done,
                failed=failed,
                expires=self._new_expiry(),
                durable=durable,
            )
        else:
            if not durable:
                _relax_commit()
            updated = JobShard.objects.filter(pk=self.shard.pk, lease_owner=self.owner).update(
                position=F("position") + advance,
                done=F("done") + done,
                failed=F("failed") + failed,
                lease_expires_at=self._new_expiry(),
                state=state,
            )
        if not updated:
            self._lose_lease()

    def _saved(self, advance: int, done: int, failed: int) -> None:
        """What was written is now the shard's, and the lease it renewed is believed."""
        self._lease_confirmed()
        self.shard.position += advance
        self.shard.done += done
        self.shard.failed += failed
        self._unsaved = (0, 0, 0)
        self._unsaved_durable = False
        self._saved_at = time.monotonic()

    def _lose_lease(self) -> NoReturn:
        # What was counted and not written goes with the lease: the next worker sends it again.
        self._unsaved = (0, 0, 0)
        self._unsaved_durable = False
        self.stop_reason = StopReason.LEASE_LOST
        raise LeaseLost(self.shard.pk)

    # --- stopping the whole job ---------------------------------------------------------------

    def pause_job(
        self,
        *,
        until: datetime | None,
        message: str | Promise,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Put the job on hold (a spent daily quota): it resumes at ``until``, or by hand.

        ``message``: a ``gettext_lazy`` sentence with ``params``, stored untranslated."""
        from console.jobs.services import job_wait

        job_wait(job=self.job, until=until, message=message, params=params)
        self.stop_reason = StopReason.JOB_STOPPED

    def fail_job(self, *, message: str | Promise, params: dict[str, Any] | None = None) -> None:
        """Stop the job (a credential that no longer works…), saying why; resumable by hand."""
        from console.jobs.services import job_fail

        job_fail(job=self.job, message=message, params=params)
        self.stop_reason = StopReason.JOB_STOPPED


def _relax_commit() -> None:
    """Let the current transaction commit without waiting for the disk (PostgreSQL only)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _relaxed(durable: bool) -> str:
    """What makes one UPDATE's own commit skip the wait for the disk (PostgreSQL): SET LOCAL as
    part of the statement itself, so that it stays one round trip."""
    if durable or connection.vendor != "postgresql":
        return ""
    return " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"


_ADVANCE_SQL: dict[tuple[str, bool], str] = {}


def _advance_sql(durable: bool) -> str:
    """The checkpoint's statement for this database, built once per process."""
    key = (connection.vendor, durable)
    sql = _ADVANCE_SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        table = quote(JobShard._meta.db_table)
        position, done, failed = quote("position"), quote("done"), quote("failed")
        sql = (
            f"UPDATE {table} SET {position} = {position} + %s, "  # noqa: S608
            f"{done} = {done} + %s, {failed} = {failed} + %s, "
            f"{quote('lease_expires_at')} = %s{_relaxed(durable)} "
            f"WHERE {table}.{quote('id')} = %s AND {table}.{quote('lease_owner')} = %s"
        )
        _ADVANCE_SQL[key] = sql
    return sql


def _advance(
    *,
    shard_id: int,
    owner: str,
    advance: int,
    done: int,
    failed: int,
    expires: datetime,
    durable: bool = True,
) -> int:
    """The checkpoint's fenced update, as one prepared statement.

    A kind checkpoints after every batch, so this runs hundreds of times a second: the ORM's
    query building cost eight times the statement itself (0.36 ms against 0.05 ms of CPU on
    SQLite), which was most of what a worker spent besides the platform call.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _advance_sql(durable),
            [
                advance,
                done,
                failed,
                connection.ops.adapt_datetimefield_value(expires),
                shard_id,
                owner,
            ],
        )
        return cursor.rowcount


def _claim(shards: QuerySet[JobShard], owner: str) -> int:
    """Take the lease of ``shards`` that are open, free (or expired) and whose job may run."""
    now = timezone.now()
    return (
        shards.filter(
            status__in=(ShardStatus.PENDING, ShardStatus.RUNNING),
            job__status__in=ACTIVE_JOB_STATUSES,
        )
        .filter(Q(lease_owner="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
            status=ShardStatus.RUNNING,
        )
    )


def shard_claim(*, shard_id: int, owner: str) -> JobShard | None:
    """Take the shard's lease if it is free or expired and its job may run."""
    if not _claim(JobShard.objects.filter(pk=shard_id), owner):
        return None
    return JobShard.objects.select_related("job").get(pk=shard_id)


def shard_claim_next(*, job_id: int, owner: str) -> JobShard | None:
    """Take the lease of the job's first open shard that nobody holds, if the job may run.

    One statement picks and takes it: two workers picking the same shard at once both run
    the update, and only one of them finds it still free.
    """
    now = timezone.now()
    first_free = (
        JobShard.objects.filter(
            job_id=job_id, status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)
        )
        .filter(Q(lease_owner="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("index")
        .values("pk")[:1]
    )
    if not _claim(JobShard.objects.filter(pk=Subquery(first_free)), owner):
        return None
    return JobShard.objects.select_related("job").get(job_id=job_id, lease_owner=owner)


def shard_release(*, shard: JobShard, owner: str, **changes: Any) -> bool:
    return bool(
        JobShard.objects.filter(pk=shard.pk, lease_owner=owner).update(
            lease_owner="", lease_expires_at=None, **changes
        )
    )


_END_SQL: dict[tuple[str, bool], str] = {}


def shard_release_at_slice_end(*, shard: JobShard, owner: str, done: bool) -> bool:
    """Give the lease up at the end of a slice, marking the shard done when ``done``; one
    statement, fenced on the owner, with its error and outage counts cleared.

    Its commit does not wait for the disk (PostgreSQL): what the slice did, its checkpoints
    wrote already, and the next durable commit (the next shard's claim, the job's finish)
    flushes this one too. A crash of the database server that loses it leaves what a worker's
    crash leaves: the shard held until its lease expires, or at its end and not marked done,
    which its next slice does at once (``jobs_watchdog``). Two round trips and a WAL flush
    fewer between two shards than a durable update in a transaction of its own.
    """
    key = (connection.vendor, done)
    sql = _END_SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        table = quote(JobShard._meta.db_table)
        status = f", {quote('status')} = '{ShardStatus.DONE.value}'" if done else ""
        sql = (
            f"UPDATE {table} SET {quote('lease_owner')} = '', "  # noqa: S608
            f"{quote('lease_expires_at')} = NULL, {quote('errors')} = 0, "
            f"{quote('outages')} = 0{status}{_relaxed(durable=False)} "
            f"WHERE {table}.{quote('id')} = %s AND {table}.{quote('lease_owner')} = %s"
        )
        _END_SQL[key] = sql
    with connection.cursor() as cursor:
        cursor.execute(sql, [shard.pk, owner])
        return cursor.rowcount == 1


def new_owner(worker: str | None = None) -> str:
    return f"{worker or worker_name()}/{secrets.token_hex(6)}"
