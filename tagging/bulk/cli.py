"""What the bulk-job commands print: a progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connection
from django.utils.translation import gettext as _

from console.jobs.selectors import job_outage_seconds, job_status_sentence
from console.models import Job, JobProgress, JobStatus

BAR_WIDTH = 30


def progress_line(job: Job, progress: JobProgress, rate: float | None) -> str:
    filled = BAR_WIDTH * progress.percent // 100
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    text = _("%(percent)3d%% %(processed)s/%(total)s, %(failed)s failed") % {
        "percent": progress.percent,
        "processed": progress.processed,
        "total": progress.total,
        "failed": progress.failed,
    }
    if rate:
        text += _(", %(rate).0f per second") % {"rate": rate}
        if progress.remaining:
            text += _(", about %(seconds)d s left") % {"seconds": progress.remaining / rate}
    return f"[{bar}] {text}"


def job_summary(job: Job, progress: JobProgress) -> str:
    return job_status_sentence(job, progress)


class WaitTimedOut(Exception):
    """``--timeout`` passed before the job settled; the job itself goes on."""


def quiet_queue_logs() -> None:
    """No django-q INFO lines ("Enqueued …") among a command's own output."""
    logging.getLogger("django-q").setLevel(logging.WARNING)


def waiting_for(job: Job) -> str:
    """What a follower is waiting for besides the job's own progress, as a sentence; or "".

    The worker's supervisor reports a worker that is absent or stuck (console/jobs/supervisor.py).
    """
    if job.is_final:
        return ""
    from console.jobs.supervisor import worker_health

    try:
        health = worker_health()
    except Exception:
        return ""
    if health.state == "absent":
        return _(
            "No background worker is running: start one with “python manage.py qcluster” "
            "(or “make run”)."
        )
    if health.state == "stuck":
        return _("The background worker is stuck; it is being restarted.")
    return ""


def _settled(job: Job) -> bool:
    if job.is_final or job.status == JobStatus.PAUSED:
        return True
    # On hold for an outage, the job goes on by itself: keep following it. On hold for another
    # reason (a spent daily quota, until midnight): stop following, saying why.
    return job.status == JobStatus.WAITING and job_outage_seconds(job) is None


def wait_for(
    job: Job,
    *,
    write: Callable[[str], None],
    tty: bool,
    step: Callable[[], None],
    plain_every: float = 10.0,
    timeout: float | None = None,
) -> Job:
    """Follow ``job`` until it is final, paused or on hold until later; print as it goes.

    It says what it waits for (a worker to start the job, a platform outage to pass, a worker
    that is not running), rides out a database that stops answering for a while (a restart),
    and raises :class:`WaitTimedOut` after ``timeout`` seconds.
    """
    started = time.monotonic()
    first_processed: int | None = None
    last_plain = 0.0
    last_line = ""
    last_said = ""
    database_down = False
    while True:
        now = time.monotonic()
        if timeout is not None and now - started >= timeout:
            if tty:
                write("\n")
            raise WaitTimedOut(job)
        try:
            job.refresh_from_db()
            progress = job.progress()
            extra = waiting_for(job)
        except (OperationalError, InterfaceError):
            # The database is restarting: wait for it, the job goes on without us.
            if not connection.in_atomic_block:  # a caller's transaction is theirs to end
                with contextlib.suppress(Exception):
                    connection.close()
            if not database_down:
                database_down = True
                write(("\n" if tty else "") + _("The database does not answer; waiting for it…"))
                write("\n")
            step()
            continue
        if database_down:
            database_down = False
            last_said = ""
        if first_processed is None:
            first_processed = progress.processed
        elapsed = now - started
        rate = (progress.processed - first_processed) / elapsed if elapsed > 1 else None
        line = progress_line(job, progress, rate)
        settled = _settled(job)
        said = job_status_sentence(job, progress) if job.status != JobStatus.RUNNING else ""
        said = " ".join(part for part in (said, extra) if part)
        if tty:
            shown = f"{line} {said}" if said else line
            write("\r" + shown.ljust(len(last_line)))
            last_line = shown
        else:
            if settled or now - last_plain >= plain_every:
                write(line + "\n")
                last_plain = now
            if said and said != last_said and not settled:
                write(said + "\n")
        last_said = said
        if settled:
            if tty:
                write("\n")
            return job
        step()
