"""Running one shard of a job: lease, heartbeat, checkpoint, stop.

A worker owns a shard only while it holds the shard's lease: a row update that names it as
owner until an expiry time. Every checkpoint is an update fenced by that ownership, in the same
transaction as whatever the kind records about the batch (failed items…), so a worker that lost
its lease can neither count a batch nor record it. Before each platform call the lease must
still run for longer than the longest call can take (timeouts and retry budget), which is why a
batch is never in flight on two workers at once: a second worker can only take the shard once
the lease has expired, and by then the first worker's last call has ended or been abandoned.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from console.models import ACTIVE_JOB_STATUSES, Job, JobShard, JobStatus, ShardStatus

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker took the shard over: stop without counting anything more."""


class StopReason(StrEnum):
    SHARD_DONE = "shard-done"
    SLICE_OVER = "slice-over"
    JOB_STOPPED = "job-stopped"
    LEASE_LOST = "lease-lost"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_seconds() -> float:
    return float(settings.JOBS_LEASE_SECONDS)


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

    def __init__(self, *, job: Job, shard: JobShard, owner: str) -> None:
        self.job = job
        self.shard = shard
        self.owner = owner
        self.stop_reason: StopReason | None = None
        self._slice_ends = time.monotonic() + settings.JOBS_SLICE_SECONDS
        self._lease_until = time.monotonic() + lease_seconds()
        self._status_checked = time.monotonic()

    # --- where the shard stands --------------------------------------------------------------

    @property
    def position(self) -> int:
        return self.shard.position

    @property
    def end(self) -> int:
        return self.shard.end

    @property
    def remaining(self) -> int:
        return max(self.shard.end - self.shard.position, 0)

    # --- whether to go on ----------------------------------------------------------------------

    def keep_going(self) -> bool:
        """True while the shard has work, the job runs, the slice lasts and the lease holds.

        Call it before each batch; it renews the lease when needed, so the batch that follows
        is sent under a lease that outlasts it.
        """
        if self.stop_reason is not None:
            return False
        if self.shard.position >= self.shard.end:
            self.stop_reason = StopReason.SHARD_DONE
            return False
        now = time.monotonic()
        if now >= self._slice_ends:
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

    def ensure_lease(self) -> None:
        """Renew the lease if what is left of it might not outlast one more platform call.

        Kinds that make several calls between two checkpoints (splitting a refused batch)
        call this before each call. Raises :class:`LeaseLost`.
        """
        if self._lease_until - time.monotonic() > longest_call_seconds():
            return
        self._renew()

    def _renew(self) -> None:
        renewed = JobShard.objects.filter(pk=self.shard.pk, lease_owner=self.owner).update(
            lease_expires_at=self._new_expiry()
        )
        if not renewed:
            self.stop_reason = StopReason.LEASE_LOST
            raise LeaseLost(self.shard.pk)

    def _new_expiry(self) -> datetime:
        self._lease_until = time.monotonic() + lease_seconds()
        return timezone.now() + timedelta(seconds=lease_seconds())

    # --- recording progress --------------------------------------------------------------------

    @contextmanager
    def checkpoint(
        self, *, advance: int, done: int = 0, failed: int = 0, state: dict[str, Any] | None = None
    ) -> Iterator[None]:
        """Record a processed batch: move the position on and add the counts, atomically.

        Whatever the caller does inside the ``with`` block (recording failed items) commits
        together with the checkpoint or not at all. Raises :class:`LeaseLost` (and rolls back)
        when the shard is no longer ours.
        """
        changes: dict[str, Any] = {
            "position": F("position") + advance,
            "done": F("done") + done,
            "failed": F("failed") + failed,
            "lease_expires_at": self._new_expiry(),
        }
        if state is not None:
            changes["state"] = state
        with transaction.atomic():
            updated = JobShard.objects.filter(pk=self.shard.pk, lease_owner=self.owner).update(
                **changes
            )
            if not updated:
                self.stop_reason = StopReason.LEASE_LOST
                raise LeaseLost(self.shard.pk)
            yield
        self.shard.position += advance
        self.shard.done += done
        self.shard.failed += failed
        if state is not None:
            self.shard.state = state

    # --- stopping the whole job ---------------------------------------------------------------

    def pause_job(self, *, until: datetime | None, message: str) -> None:
        """Put the job on hold (a spent daily quota): it resumes at ``until``, or by hand."""
        from console.jobs.services import job_wait

        job_wait(job=self.job, until=until, message=message)
        self.stop_reason = StopReason.JOB_STOPPED

    def fail_job(self, *, message: str) -> None:
        """Stop the job for good (a credential that no longer works…), saying why."""
        from console.jobs.services import job_fail

        job_fail(job=self.job, message=message)
        self.stop_reason = StopReason.JOB_STOPPED


def shard_claim(*, shard_id: int, owner: str) -> JobShard | None:
    """Take the shard's lease if it is free or expired and its job may run."""
    now = timezone.now()
    claimed = (
        JobShard.objects.filter(
            pk=shard_id,
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
    if not claimed:
        return None
    return JobShard.objects.select_related("job").get(pk=shard_id)


def shard_release(*, shard: JobShard, owner: str, **changes: Any) -> bool:
    return bool(
        JobShard.objects.filter(pk=shard.pk, lease_owner=owner).update(
            lease_owner="", lease_expires_at=None, **changes
        )
    )


def new_owner(worker: str | None = None) -> str:
    return f"{worker or worker_name()}/{secrets.token_hex(6)}"


def job_mark_running(job: Job) -> None:
    if job.status == JobStatus.QUEUED:
        Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=timezone.now()
        )
        job.refresh_from_db(fields=["status", "started_at"])
