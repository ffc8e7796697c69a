"""Background jobs of every kind from a terminal: the command line of the jobs' page.

python manage.py jobs list [--kind KIND] [--open]
python manage.py jobs show ID
python manage.py jobs pause ID | resume ID | cancel ID
python manage.py jobs failures ID > failed.csv
python manage.py jobs wait ID [--timeout SECONDS]

``wait`` follows the job with the progress bar and exits with 0 only if every item succeeded,
1 otherwise, 2 when ``--timeout`` passed first (the job goes on). Errors are sentences in the
terminal's language, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from console.audit import Actor
from console.cli import quiet_queue_logs, terminal_language
from console.ids import object_pk
from console.jobs import job_kind_label, job_kinds
from console.jobs.follow import Pacing, job_wait_in_command, progress_line
from console.jobs.selectors import (
    job_failure_header,
    job_failure_rows,
    job_status_sentence,
    jobs_with_progress,
)
from console.jobs.services import JobStateError, job_cancel, job_pause, job_resume
from console.models import OPEN_JOB_STATUSES, Job
from console.spreadsheets import csv_lines

LISTED = 30


def _when(moment: datetime | None) -> str:
    """A time as people of the console read it: its time zone, to the second."""
    if moment is None:
        return "—"
    return formats.date_format(timezone.localtime(moment), "Y-m-d H:i:s")


class Command(BaseCommand):
    help = (
        "List, show, pause, resume, cancel and wait for background jobs of every kind; "
        "export their failed items."
    )

    def add_arguments(self, parser: Any) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help=f"the latest {LISTED} jobs")
        listing.add_argument("--kind", help="only jobs of this kind (e.g. tagging.bulk)")
        listing.add_argument(
            "--open", action="store_true", help="only jobs not yet done, failed or cancelled"
        )
        for name in ("show", "pause", "resume", "cancel", "failures"):
            action = actions.add_parser(name)
            action.add_argument("id")
        waiting = actions.add_parser("wait", help="follow a job until it ends")
        waiting.add_argument("id")
        waiting.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="stop following after this long (exit status 2; the job goes on)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        quiet_queue_logs()
        with translation.override(terminal_language()):
            getattr(self, "_" + options["action"])(options)

    def _job(self, options: dict[str, Any]) -> Job:
        job_id = object_pk(options["id"])
        job = Job.objects.filter(pk=job_id).first() if job_id is not None else None
        if job is None:
            raise CommandError(_("There is no job %(id)s.") % {"id": options["id"]})
        return job

    def _list(self, options: dict[str, Any]) -> None:
        jobs = Job.objects.select_related("created_by").order_by("-created_at", "-pk")
        if options["kind"]:
            names = [kind.name for kind in job_kinds()]
            if options["kind"] not in names:
                raise CommandError(
                    _("There is no job kind “%(kind)s”. Kinds: %(kinds)s")
                    % {"kind": options["kind"], "kinds": ", ".join(names)}
                )
            jobs = jobs.filter(kind=options["kind"])
        if options["open"]:
            jobs = jobs.filter(status__in=OPEN_JOB_STATUSES)
        for job, progress in jobs_with_progress(jobs[:LISTED]):
            self.stdout.write(
                f"{job.pk:>6}  {job.get_status_display():8}  {progress.percent:>3}%  "
                f"{progress.processed}/{progress.total}  {job_kind_label(job.kind)}  "
                f"{job.created_by}  {job.title}"
            )

    def _show(self, options: dict[str, Any]) -> None:
        job = self._job(options)
        progress = job.progress()
        self.stdout.write(f"{job.pk}  {job.title}  ({job_kind_label(job.kind)})")
        self.stdout.write(progress_line(progress, None))
        self.stdout.write(job_status_sentence(job, progress))
        self.stdout.write(
            _("Submitted by %(user)s at %(created)s; started %(started)s; finished %(finished)s.")
            % {
                "user": job.created_by,
                "created": _when(job.created_at),
                "started": _when(job.started_at),
                "finished": _when(job.finished_at),
            }
        )

    def _change(self, options: dict[str, Any], service: Callable[..., Job]) -> Job:
        job = self._job(options)
        try:
            return service(job=job, actor=Actor.command_line(command=f"jobs {options['action']}"))
        except JobStateError as error:
            raise CommandError(str(error)) from None

    def _pause(self, options: dict[str, Any]) -> None:
        job = self._change(options, job_pause)
        self.stdout.write(job_status_sentence(job, job.progress()))

    def _resume(self, options: dict[str, Any]) -> None:
        job = self._change(options, job_resume)
        self.stdout.write(job_status_sentence(job, job.progress()))

    def _cancel(self, options: dict[str, Any]) -> None:
        job = self._change(options, job_cancel)
        # A batch in flight when the job was cancelled is still counted by its worker, which
        # keeps its lease until that batch's checkpoint: the final count comes after it.
        deadline = time.monotonic() + settings.JOBS_LEASE_SECONDS
        in_flight = job.shards.exclude(lease_owner="")
        pacing = Pacing()
        while (
            time.monotonic() < deadline
            and in_flight.filter(lease_expires_at__gt=timezone.now()).exists()
        ):
            time.sleep(pacing.after(changed=False))
        self.stdout.write(job_status_sentence(job, job.progress()))

    def _failures(self, options: dict[str, Any]) -> None:
        job = self._job(options)
        for line in csv_lines(job_failure_header(), job_failure_rows(job)):
            self.stdout.write(line, ending="")

    def _wait(self, options: dict[str, Any]) -> None:
        job_wait_in_command(self.stdout, self._job(options), timeout=options["timeout"])
