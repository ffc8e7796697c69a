"""Bulk user-tag jobs from a terminal.

python manage.py tag_jobs list
python manage.py tag_jobs show ID
python manage.py tag_jobs pause ID | resume ID | cancel ID
python manage.py tag_jobs failures ID > failed.csv
python manage.py tag_jobs purge-audiences   # what the daily schedule does
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _, ngettext

from console.audit import Actor
from console.cli import terminal_language
from console.ids import object_pk
from console.jobs.selectors import job_failure_rows, jobs_with_progress
from console.jobs.services import JobStateError, job_cancel, job_pause, job_resume
from console.models import Job
from console.spreadsheets import csv_lines
from tagging.bulk.cli import job_summary, progress_line, quiet_queue_logs
from tagging.bulk.jobs import KIND
from tagging.bulk.retention import audience_purge_expired

LISTED = 30


def _when(moment: datetime | None) -> str:
    """A time as people of the console read it: its time zone, to the second."""
    if moment is None:
        return "—"
    return formats.date_format(timezone.localtime(moment), "Y-m-d H:i:s")


class Command(BaseCommand):
    help = "List, show, pause, resume and cancel bulk user-tag jobs; export their failures."

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="the latest jobs")
        for name in ("show", "pause", "resume", "cancel", "failures"):
            action = actions.add_parser(name)
            action.add_argument("id")
        actions.add_parser(
            "purge-audiences",
            help="delete the lists older than BULK_AUDIENCE_KEEP_DAYS that no open job reads",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        quiet_queue_logs()
        with translation.override(terminal_language()):
            getattr(self, "_" + options["action"].replace("-", "_"))(options)

    def _job(self, options: dict[str, Any]) -> Job:
        job_id = object_pk(options["id"])
        job = Job.objects.filter(pk=job_id, kind=KIND).first() if job_id is not None else None
        if job is None:
            raise CommandError(_("There is no bulk job %(id)s.") % {"id": options["id"]})
        return job

    def _list(self, options: dict[str, Any]) -> None:
        jobs = Job.objects.filter(kind=KIND).order_by("-created_at", "-pk")[:LISTED]
        for job, progress in jobs_with_progress(jobs):
            self.stdout.write(
                f"{job.pk:>6}  {job.get_status_display():8}  {progress.percent:>3}%  "
                f"{progress.processed}/{progress.total}  {job.created_by}  {job.title}"
            )

    def _show(self, options: dict[str, Any]) -> None:
        job = self._job(options)
        progress = job.progress()
        self.stdout.write(f"{job.pk}  {job.title}")
        self.stdout.write(progress_line(job, progress, None))
        self.stdout.write(job_summary(job, progress))
        self.stdout.write(
            _("Submitted by %(user)s at %(created)s; started %(started)s; finished %(finished)s.")
            % {
                "user": job.created_by,
                "created": _when(job.created_at),
                "started": _when(job.started_at),
                "finished": _when(job.finished_at),
            }
        )

    def _change(self, options: dict[str, Any], service: Any) -> None:
        job = self._job(options)
        try:
            job = service(
                job=job, actor=Actor.command_line(command=f"tag_jobs {options['action']}")
            )
        except JobStateError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(job_summary(job, job.progress()))

    def _pause(self, options: dict[str, Any]) -> None:
        self._change(options, job_pause)

    def _resume(self, options: dict[str, Any]) -> None:
        self._change(options, job_resume)

    def _cancel(self, options: dict[str, Any]) -> None:
        job = self._job(options)
        try:
            job = job_cancel(job=job, actor=Actor.command_line(command="tag_jobs cancel"))
        except JobStateError as error:
            raise CommandError(str(error)) from None
        # A batch in flight when the job was cancelled is still counted by its worker, which
        # keeps its lease until that batch's checkpoint: the final count comes after it.
        deadline = time.monotonic() + settings.JOBS_LEASE_SECONDS
        in_flight = job.shards.exclude(lease_owner="")
        while (
            time.monotonic() < deadline
            and in_flight.filter(lease_expires_at__gt=timezone.now()).exists()
        ):
            time.sleep(0.2)
        self.stdout.write(job_summary(job, job.progress()))

    def _failures(self, options: dict[str, Any]) -> None:
        job = self._job(options)
        header = ["openid", "errcode", _("reason"), _("can be retried")]
        for line in csv_lines(header, job_failure_rows(job)):
            self.stdout.write(line, ending="")

    def _purge_audiences(self, options: dict[str, Any]) -> None:
        report = audience_purge_expired(
            actor=Actor.command_line(command="tag_jobs purge-audiences")
        )
        self.stdout.write(
            ngettext(
                "Deleted %(count)s list older than %(days)s days (OpenIDs: %(members)s).",
                "Deleted %(count)s lists older than %(days)s days (OpenIDs: %(members)s).",
                report.audiences,
            )
            % {
                "count": report.audiences,
                "days": settings.BULK_AUDIENCE_KEEP_DAYS,
                "members": report.members,
            }
        )
