"""The console's own tables: the one job model that all background work with progress shares.

Bulk user tagging, chatbot pushes and platform pulls are all a :class:`Job` of some registered
kind (see :mod:`console.jobs`), cut into :class:`JobShard` ranges that workers lease, process
batch by batch and checkpoint in the database. Progress is the sum over the shards, so it
survives the death of any worker on either broker, and two shards never contend for one row.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext_lazy as _


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    PAUSED = "paused", _("Paused")
    # Paused by the job itself until `resume_at`, e.g. when a daily quota is spent.
    WAITING = "waiting", _("Waiting")
    CANCELLED = "cancelled", _("Cancelled")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
OPEN_JOB_STATUSES = (*ACTIVE_JOB_STATUSES, JobStatus.PAUSED, JobStatus.WAITING)
FINAL_JOB_STATUSES = (JobStatus.CANCELLED, JobStatus.DONE, JobStatus.FAILED)


class ShardStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


@dataclass(frozen=True)
class JobProgress:
    total: int
    done: int
    failed: int

    @property
    def processed(self) -> int:
        return self.done + self.failed

    @property
    def remaining(self) -> int:
        return max(self.total - self.processed, 0)

    @property
    def percent(self) -> int:
        if self.total <= 0:
            return 100 if self.processed else 0
        return min(100, self.processed * 100 // self.total)


class Job(models.Model):
    kind = models.CharField(_("kind"), max_length=64, db_index=True)
    title = models.CharField(_("title"), max_length=200)
    status = models.CharField(
        _("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED
    )
    # The reason for the status, stored untranslated (a msgid) with its values in
    # ``status_params``, and translated for each reader (console.jobs.selectors.job_reason).
    status_message = models.TextField(_("status message"), blank=True)
    status_params = models.JSONField(default=dict, blank=True)
    total = models.BigIntegerField(_("total"), default=0)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    target_type = models.ForeignKey(
        ContentType, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True)
    target = GenericForeignKey("target_type", "target_id")
    parent = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("started from"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("submitted by"),
    )
    created_at = models.DateTimeField(_("submitted"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    resume_at = models.DateTimeField(_("resumes at"), null=True, blank=True)

    class Meta:
        verbose_name = _("background job")
        verbose_name_plural = _("background jobs")
        ordering = ("-created_at", "-pk")
        indexes = [models.Index(fields=["status", "kind"])]

    def __str__(self) -> str:
        return self.title

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_JOB_STATUSES

    def progress(self) -> JobProgress:
        totals = self.shards.aggregate(done=models.Sum("done"), failed=models.Sum("failed"))
        return JobProgress(total=self.total, done=totals["done"] or 0, failed=totals["failed"] or 0)


class JobShard(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    # The half-open range [start, end) of the kind's own item positions.
    start = models.BigIntegerField()
    end = models.BigIntegerField()
    # Checkpoint: the next position to process.
    position = models.BigIntegerField()
    done = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    # A kind's own cursor, where positions alone cannot say where to go on.
    state = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=ShardStatus.choices, default="pending")
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Slices in a row that ended in an unexpected error; reset by a slice that ends normally.
    errors = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Platform outages in a row (unreachable, busy, 5xx) this shard met: the job waits longer
    # after each (console.jobs.services.outage_backoff_seconds) and never fails for them.
    outages = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("job", "index")
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="console_jobshard_unique_index")
        ]
        indexes = [models.Index(fields=["status", "lease_expires_at"])]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.index}"


class JobItemFailure(models.Model):
    """One item (an openid, a reply…) that a job could not process, and why, as a sentence."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="failures")
    shard = models.ForeignKey(JobShard, on_delete=models.CASCADE, related_name="failures")
    item = models.CharField(_("item"), max_length=200)
    reason_code = models.CharField(_("code"), max_length=32, blank=True)
    reason = models.TextField(_("reason"))
    retryable = models.BooleanField(_("can be retried"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("failed item")
        verbose_name_plural = _("failed items")
        ordering = ("job", "pk")

    def __str__(self) -> str:
        return self.item
