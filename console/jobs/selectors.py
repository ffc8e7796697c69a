"""Reads of the job machinery: progress, the status in words, failed items."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet, Sum
from django.utils import formats, timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from console.models import OPEN_JOB_STATUSES, Job, JobItemFailure, JobProgress, JobStatus
from console.notes import note_text


def job_reason(job: Job) -> str:
    """The reason stored with the job's status, in the reader's language.

    Workers store the untranslated sentence and its values (``status_message`` and
    ``status_params``); sentences stored already translated by earlier versions read as they are.
    """
    if not job.status_message:
        return ""
    return str(note_text({"msgid": job.status_message, "params": job.status_params or {}}))


def job_outage_seconds(job: Job, now: datetime | None = None) -> int | None:
    """Seconds until a job on hold for a platform outage tries again; ``None`` if it is not."""
    if job.status != JobStatus.WAITING or not (job.status_params or {}).get("outage"):
        return None
    if job.resume_at is None:
        return 0
    return max(0, math.ceil((job.resume_at - (now or timezone.now())).total_seconds()))


def job_status_sentence(job: Job, progress: JobProgress) -> str:
    """Where the job stands, as a sentence for the marketing user."""
    counts = {
        "processed": formats.number_format(progress.processed, force_grouping=True),
        "total": formats.number_format(progress.total, force_grouping=True),
        "failed": formats.number_format(progress.failed, force_grouping=True),
        "done": formats.number_format(progress.done, force_grouping=True),
    }
    if job.status == JobStatus.QUEUED:
        return _("Waiting for a background worker to start it.")
    if job.status == JobStatus.RUNNING:
        return _("Running: %(processed)s of %(total)s processed, %(failed)s failed.") % counts
    if job.status == JobStatus.PAUSED:
        return _("Paused at %(processed)s of %(total)s. Resume it to go on.") % counts
    outage_seconds = job_outage_seconds(job)
    if outage_seconds is not None:
        return _(
            "The platform cannot be reached for now; retrying in %(seconds)s seconds "
            "(%(processed)s of %(total)s processed). Last error: %(error)s"
        ) % {
            **counts,
            "seconds": outage_seconds,
            "error": note_text(job.status_params.get("error", "")),
        }
    if job.status == JobStatus.WAITING:
        sentence = job_reason(job) or _("On hold.")
        if job.resume_at:
            when = formats.date_format(timezone.localtime(job.resume_at), "DATETIME_FORMAT")
            sentence = _("%(reason)s It resumes by itself at %(when)s.") % {
                "reason": sentence,
                "when": when,
            }
        return sentence
    if job.status == JobStatus.CANCELLED:
        return _("Cancelled at %(processed)s of %(total)s.") % counts
    if job.status == JobStatus.DONE:
        if progress.failed:
            return _("Finished: %(done)s done, %(failed)s failed.") % counts
        return _("Finished: all %(done)s done.") % counts
    if job.status == JobStatus.FAILED:
        return _("Stopped at %(processed)s of %(total)s: %(reason)s Resume it to go on.") % {
            **counts,
            "reason": job_reason(job) or _("unknown reason"),
        }
    return _("Stopped: %(reason)s") % {"reason": job_reason(job) or _("unknown reason")}


def job_progress_payload(job: Job) -> dict[str, Any]:
    """What the progress bar needs; two queries (the job, and the sum over its shards)."""
    progress = job.progress()
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": str(job.get_status_display()),
        "final": job.is_final,
        "sentence": job_status_sentence(job, progress),
        "total": progress.total,
        "done": progress.done,
        "failed": progress.failed,
        "processed": progress.processed,
        "percent": progress.percent,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def jobs_with_progress(queryset: QuerySet[Job]) -> list[tuple[Job, JobProgress]]:
    """Jobs with their progress, in one query for all of them."""
    jobs = list(
        queryset.annotate(shards_done=Sum("shards__done"), shards_failed=Sum("shards__failed"))
    )
    return [
        (
            job,
            JobProgress(total=job.total, done=job.shards_done or 0, failed=job.shards_failed or 0),
        )
        for job in jobs
    ]


def jobs_open() -> QuerySet[Job]:
    return Job.objects.filter(status__in=OPEN_JOB_STATUSES).select_related("created_by")


def job_failure_header() -> list[str]:
    """The columns of :func:`job_failure_rows`, in the reader's language."""
    return [_("item"), _("code"), _("reason"), _("can be retried")]


def job_failure_rows(job: Job) -> Iterator[tuple[str, str, str, str]]:
    """Every failed item of the job, streamed: item, code, reason, whether it can be retried."""
    failures = JobItemFailure.objects.filter(job=job).order_by("pk")
    for failure in failures.values_list("item", "reason_code", "reason", "retryable").iterator(
        chunk_size=2000
    ):
        item, code, reason, retryable = failure
        yield item, code, reason, _("yes") if retryable else _("no")


def job_retryable_failures(
    *, job: Job, kind: str, not_final: Promise, nothing_to_retry: Promise
) -> QuerySet[JobItemFailure]:
    """The failed items of ``job`` (of ``kind``, ended) that another attempt may pass, in
    order; refused with the kind's sentences otherwise."""
    if job.kind != kind or not job.is_final:
        raise ValidationError(not_final, code="not_final")
    failed = JobItemFailure.objects.filter(job=job, retryable=True).order_by("pk")
    if not failed.exists():
        raise ValidationError(nothing_to_retry, code="nothing_to_retry")
    return failed
