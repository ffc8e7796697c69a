"""Following a job from a terminal: the one "wait for a job" of every command.

``jobs wait``, ``tag_users --wait`` and ``skills push|publish|check`` (``wecom_pull`` too, once
its pulls are jobs) follow a job with :class:`JobFollower`: a progress bar on a terminal (a
plain line every 10 s otherwise), what it waits for besides the job (a worker to start it, a
platform outage to pass, a worker that is absent or stuck), a database restart ridden out, and
an optional time limit.

How often it looks (:class:`Pacing`): at once, then 50 ms later, twice as long each time
nothing changed, up to a second. While the job moves it looks again when the job should be
done at the rate seen so far (a second at most), so the end is seen within tens of
milliseconds of it, not up to a second after, as with a fixed sleep.

``work_here``: the follower also works on the job's shards itself, as a worker does (same
leases and checkpoints; a shard a worker holds is simply not claimed). ``skills`` uses it:
its jobs are small, and an operator runs them from a terminal where no worker may be running.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

from django.core.management.base import OutputWrapper
from django.db import InterfaceError, OperationalError, connection
from django.utils.translation import gettext as _

from console.jobs.selectors import job_outage_seconds, job_status_sentence
from console.models import ACTIVE_JOB_STATUSES, Job, JobProgress, JobStatus, ShardStatus

BAR_WIDTH = 30
FIRST_PAUSE = 0.05
LONGEST_PAUSE = 1.0


class WaitTimedOut(Exception):
    """The time limit passed before the job settled; the job itself goes on."""


class Pacing:
    """How long to wait before looking at a job again."""

    def __init__(self) -> None:
        self._unchanged = 0

    def after(self, *, changed: bool, seconds_left: float | None = None) -> float:
        """The pause after a look that saw the job ``changed`` (or not); ``seconds_left``: how
        long the job should still need at the rate seen, when it is moving."""
        if not changed:
            pause = min(FIRST_PAUSE * 2**self._unchanged, LONGEST_PAUSE)
            self._unchanged += 1
            return pause
        self._unchanged = 0
        if seconds_left is None:
            return FIRST_PAUSE
        return min(max(seconds_left, FIRST_PAUSE), LONGEST_PAUSE)


def progress_line(progress: JobProgress, rate: float | None) -> str:
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


class JobFollower:
    """Follow ``job`` until it is final, paused, or on hold until later; print as it goes."""

    def __init__(
        self,
        job: Job,
        *,
        write: Callable[[str], None],
        tty: bool,
        work_here: bool = False,
        timeout: float | None = None,
        plain_every: float = 10.0,
    ) -> None:
        self.job = job
        self.write = write
        self.tty = tty
        self.work_here = work_here
        self.timeout = timeout
        self.plain_every = plain_every
        # How many times it looked at the job: what the tests count instead of sleeping.
        self.looks = 0
        self._last_plain, self._last_line, self._last_said = 0.0, "", ""

    @classmethod
    def to(cls, out: OutputWrapper, job: Job, **options: object) -> JobFollower:
        """A follower printing to a command's ``stdout``."""

        def write(text: str) -> None:
            out.write(text, ending="")
            out.flush()

        return cls(job, write=write, tty=out.isatty(), **options)  # type: ignore[arg-type]

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def follow(self) -> Job:
        """The job once it settled. Raises :class:`WaitTimedOut` after ``timeout`` seconds."""
        job = self.job
        started = time.monotonic()
        pacing = Pacing()
        seen: tuple[object, ...] | None = None
        moving_since: tuple[float, int] | None = None
        self._last_plain, self._last_line, self._last_said = 0.0, "", ""
        database_down = False
        while True:
            now = time.monotonic()
            if self.timeout is not None and now - started >= self.timeout:
                if self.tty:
                    self.write("\n")
                raise WaitTimedOut(job)
            self.looks += 1
            try:
                worked = self._work(job) if self.work_here else False
                job.refresh_from_db()
                progress = job.progress()
                extra = "" if self.work_here else waiting_for(job)
            except (OperationalError, InterfaceError):
                # The database is restarting: wait for it, the job goes on without us.
                if not connection.in_atomic_block:  # a caller's transaction is theirs to end
                    with contextlib.suppress(Exception):
                        connection.close()
                if not database_down:
                    database_down = True
                    self.write(
                        ("\n" if self.tty else "")
                        + _("The database does not answer; waiting for it…")
                        + "\n"
                    )
                self._pause_until(pacing.after(changed=False), started)
                continue
            if database_down:
                database_down = False
                self._last_said = ""
            if moving_since is None and job.status == JobStatus.RUNNING:
                moving_since = (now, progress.processed)
            rate = None
            if moving_since is not None and now - moving_since[0] > 1:
                rate = (progress.processed - moving_since[1]) / (now - moving_since[0]) or None
            settled = self._settled(job)
            self._show(job, progress, rate=rate, extra=extra, settled=settled, now=now)
            if settled:
                return job
            if worked:
                continue
            state = (job.status, progress.done, progress.failed)
            changed, seen = state != seen, state
            seconds_left = progress.remaining / rate if rate else None
            self._pause_until(pacing.after(changed=changed, seconds_left=seconds_left), started)

    def _show(
        self,
        job: Job,
        progress: JobProgress,
        *,
        rate: float | None,
        extra: str,
        settled: bool,
        now: float,
    ) -> None:
        """The bar, redrawn in place on a terminal; otherwise a line every ``plain_every``
        seconds and at the end, and each new sentence (the status, what it waits for)."""
        said = job_status_sentence(job, progress) if job.status != JobStatus.RUNNING else ""
        said = " ".join(part for part in (said, extra) if part)
        line = progress_line(progress, rate)
        if self.tty:
            shown = f"{line} {said}" if said else line
            self.write("\r" + shown.ljust(len(self._last_line)) + ("\n" if settled else ""))
            self._last_line = shown
        else:
            if settled or now - self._last_plain >= self.plain_every:
                self.write(line + "\n")
                self._last_plain = now
            if said and said != self._last_said and not settled:
                self.write(said + "\n")
        self._last_said = said

    def _pause_until(self, seconds: float, started: float) -> None:
        if self.timeout is not None:
            seconds = max(min(seconds, started + self.timeout - time.monotonic()), 0.0)
        self.pause(seconds)

    def _settled(self, job: Job) -> bool:
        if job.is_final or job.status == JobStatus.PAUSED:
            return True
        if job.status != JobStatus.WAITING:
            return False
        # On hold for an outage, the job goes on by itself once a worker's watchdog resumes it:
        # keep following it. On hold for another reason (a spent daily quota, until midnight),
        # or with nobody but us to resume it: stop following, saying why.
        return self.work_here or job_outage_seconds(job) is None

    def _work(self, job: Job) -> bool:
        """Run the job's open shards here, as a worker would; whether any was ours to run."""
        from console.jobs.services import job_run_shard

        if job.status not in ACTIVE_JOB_STATUSES:
            return False
        open_shards = job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING))
        worked = False
        for shard_id in open_shards.order_by("index").values_list("pk", flat=True):
            worked = job_run_shard(shard_id=shard_id).claimed or worked
        return worked


def job_wait_in_command(out: OutputWrapper, job: Job, *, timeout: float | None) -> None:
    """What ``jobs wait`` and ``tag_users --wait`` do: follow the job, say where it ended, and
    exit with 0 only if every item succeeded; 1 otherwise; 2 when ``timeout`` seconds passed
    first (the job goes on)."""
    try:
        job = JobFollower.to(out, job, timeout=timeout).follow()
    except WaitTimedOut:
        job.refresh_from_db()
        out.write(
            _("Stopped waiting after %(seconds)s seconds; the job goes on: %(state)s")
            % {"seconds": f"{timeout:g}", "state": job_status_sentence(job, job.progress())}
        )
        sys.exit(2)
    progress = job.progress()
    out.write(job_status_sentence(job, progress))
    if not (job.status == JobStatus.DONE and progress.failed == 0):
        sys.exit(1)
