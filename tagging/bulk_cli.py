"""What the bulk-job commands print: a progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.utils.translation import gettext as _

from console.jobs.selectors import job_status_sentence
from console.models import Job, JobProgress

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


def wait_for(
    job: Job,
    *,
    write: Callable[[str], None],
    tty: bool,
    step: Callable[[], None],
    plain_every: float = 10.0,
) -> Job:
    """Follow ``job`` until it is final, paused or waiting; print as it goes."""
    started = time.monotonic()
    first_processed: int | None = None
    last_plain = 0.0
    last_line = ""
    while True:
        job.refresh_from_db()
        progress = job.progress()
        now = time.monotonic()
        if first_processed is None:
            first_processed = progress.processed
        elapsed = now - started
        rate = (progress.processed - first_processed) / elapsed if elapsed > 1 else None
        line = progress_line(job, progress, rate)
        settled = job.is_final or job.status in ("paused", "waiting")
        if tty:
            write("\r" + line.ljust(len(last_line)))
            last_line = line
        elif settled or now - last_plain >= plain_every:
            write(line + "\n")
            last_plain = now
        if settled:
            if tty:
                write("\n")
            return job
        step()
