"""The dashboard panel of the job machinery: open jobs with live bars."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import reverse
from django.utils.translation import gettext as _, ngettext

from console.dashboard import Panel, PanelBar, register_panel
from console.jobs.selectors import job_status_sentence, jobs_open, jobs_with_progress
from console.models import JobStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

SHOWN = 5


@register_panel
def jobs_panel(user: AbstractBaseUser) -> Panel | None:
    if not user.has_perm("console.view_job"):
        return None
    open_jobs = jobs_with_progress(jobs_open().order_by("-created_at")[:SHOWN])
    count = jobs_open().count()
    bars = [
        PanelBar(
            label=job.title,
            url=reverse("admin:console_job_change", args=[job.pk]),
            percent=progress.percent,
            progress_url=reverse("admin:console_job_progress", args=[job.pk]),
            status=job.status,
            sentence=job_status_sentence(job, progress),
        )
        for job, progress in open_jobs
    ]
    if count:
        lines = [
            ngettext(
                "%(count)d job running or on hold.", "%(count)d jobs running or on hold.", count
            )
            % {"count": count}
        ]
    else:
        lines = [_("No background job is running.")]
    waiting = any(job.status in (JobStatus.WAITING, JobStatus.PAUSED) for job, _p in open_jobs)
    return Panel(
        title=_("Background jobs"),
        status="warning" if waiting else ("ok" if count else "info"),
        lines=lines,
        bars=bars,
        links=[(reverse("admin:console_job_changelist"), _("All jobs"))],
        order=15,
    )
