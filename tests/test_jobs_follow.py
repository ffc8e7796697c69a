"""Following a job (console/jobs/follow.py): when it looks, when it stops, what it says.

The follower's pauses are replaced by the test's own, which count them and play the worker:
nothing here sleeps.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from console.audit import Actor
from console.jobs import JobKind, ShardRun
from console.jobs.follow import FIRST_PAUSE, LONGEST_PAUSE, JobFollower, Pacing
from console.jobs.services import job_create, job_run_shard, shard_ranges
from console.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def run_counting(run: ShardRun) -> None:
    while run.keep_going():
        run.advance(advance=min(5, run.remaining), done=min(5, run.remaining))


def run_out_of_quota(run: ShardRun) -> None:
    run.pause_job(until=timezone.now() + timedelta(hours=1), message="今日调用次数已用完。")


@pytest.fixture(autouse=True)
def kinds(job_kinds, monkeypatch) -> None:
    monkeypatch.setenv("LANGUAGE", "en_US.UTF-8")
    job_kinds(
        JobKind(name="tests.follow", label="Following", run_shard=run_counting),
        JobKind(name="tests.quota", label="Out of quota", run_shard=run_out_of_quota),
    )


def make_job(kind: str = "tests.follow", total: int = 20) -> Job:
    return job_create(
        kind=kind,
        title=f"{kind} of {total}",
        total=total,
        shards=shard_ranges(total=total, shard_size=10),
        actor=Actor.system(),
    )


def run_all(job: Job) -> None:
    for shard in job.shards.all():
        job_run_shard(shard_id=shard.pk, worker="test")


class Stop(Exception):
    pass


def follower(job: Job, **options: object) -> tuple[JobFollower, io.StringIO]:
    out = io.StringIO()
    return JobFollower(job, write=out.write, tty=False, **options), out  # type: ignore[arg-type]


def test_it_looks_again_50_ms_after_a_change_backing_off_to_a_second(monkeypatch):
    job = make_job()
    pauses: list[float] = []

    def pause(self, seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 10:
            raise Stop

    monkeypatch.setattr(JobFollower, "pause", pause)
    with pytest.raises(Stop):
        follower(job)[0].follow()
    # The first look sees the job for the first time (a change); nothing changes after it.
    assert pauses == [0.05, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]


def test_it_sees_the_end_at_its_first_look_after_the_job_changed(monkeypatch):
    job = make_job()
    pauses: list[float] = []

    def pause(self, seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 4:
            run_all(job)  # a worker finishes the job during the fourth pause

    monkeypatch.setattr(JobFollower, "pause", pause)
    following, out = follower(job)

    settled = following.follow()

    assert settled.status == JobStatus.DONE
    assert following.looks == 5, "the look right after the change saw the end"
    assert pauses == [0.05, 0.05, 0.1, 0.2]
    assert out.getvalue().splitlines()[-1].startswith("[##############################] 100% 20/20")


def test_while_the_job_moves_it_looks_when_the_job_should_be_done():
    pacing = Pacing()
    assert pacing.after(changed=True, seconds_left=30.0) == LONGEST_PAUSE
    assert pacing.after(changed=True, seconds_left=0.3) == 0.3
    assert pacing.after(changed=True, seconds_left=0.001) == FIRST_PAUSE
    assert pacing.after(changed=False) == FIRST_PAUSE, "late: it looks again soon"
    assert pacing.after(changed=False) == 2 * FIRST_PAUSE


def test_working_here_it_runs_the_shards_itself_and_never_pauses(monkeypatch):
    job = make_job(total=25)

    def pause(self, seconds: float) -> None:
        raise AssertionError("no pause: the shards were run here")

    monkeypatch.setattr(JobFollower, "pause", pause)
    following, _out = follower(job, work_here=True)

    assert following.follow().status == JobStatus.DONE
    assert following.looks == 1
    assert job.progress().done == 25


def test_a_job_on_hold_until_tomorrow_ends_the_wait_with_the_reason(monkeypatch):
    job = make_job(kind="tests.quota")
    monkeypatch.setattr(JobFollower, "pause", lambda self, seconds: run_all(job))
    out = io.StringIO()

    with pytest.raises(SystemExit) as exit_status:
        call_command("jobs", "wait", str(job.pk), stdout=out)

    assert exit_status.value.code == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.WAITING
    assert "今日调用次数已用完。 It resumes by itself at" in out.getvalue()
