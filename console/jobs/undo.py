"""Undoing a finished job: which job undoes which, and whether one can be undone now.

A kind that can be undone starts its reverse as a child job whose ``params["undoes"]`` is the
undone job's id, over exactly the items the job passed: those in a shard's processed range
``[start, position)`` that are not among its failed items.
"""

from __future__ import annotations

from django.utils.translation import gettext

from console.models import Job, JobStatus


def job_undo_of(*, job: Job) -> Job | None:
    """The job that undoes ``job`` (unless it was cancelled before doing anything)."""
    for child in Job.objects.filter(parent=job, kind=job.kind, params__undoes=job.pk).order_by(
        "-pk"
    ):
        if child.status == JobStatus.CANCELLED and not child.shards.filter(done__gt=0).exists():
            continue
        return child
    return None


def job_undo_refusal(*, job: Job, list_kept: bool) -> str | None:
    """Why ``job`` cannot be undone now, as a sentence; None when it can. ``list_kept``: the
    job's list (what its positions mean) still exists."""
    if not job.is_final:
        return gettext("Only a job that has ended can be undone.")
    if not job.shards.filter(done__gt=0).exists():
        return gettext("Nothing to undo: this job changed nothing.")
    if not list_kept:
        return gettext("This job's list has been deleted, so what it changed is no longer known.")
    undo = job_undo_of(job=job)
    if undo is not None:
        return gettext("This job is already being undone or was undone by job #%(id)s.") % {
            "id": undo.pk
        }
    return None


def job_processed_ranges(*, job: Job) -> list[tuple[int, int]]:
    """The positions each shard of ``job`` went through, ``[(start, position), …]`` in order."""
    return [
        (start, position)
        for start, position in job.shards.order_by("start").values_list("start", "position")
        if position > start
    ]
