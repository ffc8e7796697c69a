"""`jobs` on a strategy tag pull."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from console.audit import Actor
from console.jobs.follow import JobFollower
from console.jobs.services import job_run_shard
from console.models import Job, JobStatus
from tagging.strategy.jobs import PULL_KIND, strategy_pull_job_create
from tagging.strategy.models import Tag

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english_terminal(monkeypatch):
    monkeypatch.setenv("LANGUAGE", "en_US.UTF-8")


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_jobs_on_a_pull(app, monkeypatch):
    def worker(self, seconds: float) -> None:
        for job in Job.objects.filter(status__in=("queued", "running")):
            job_run_shard(shard_id=job.shards.get().pk, worker="test")

    monkeypatch.setattr(JobFollower, "pause", worker)
    job = strategy_pull_job_create(app=app, actor=Actor.system())
    listed = run("jobs", "list", "--kind", PULL_KIND)
    assert str(job.pk) in listed and "Strategy tag pull" in listed
    run("jobs", "pause", str(job.pk))
    with pytest.raises(CommandError, match="cannot be paused"):
        run("jobs", "pause", str(job.pk))
    run("jobs", "resume", str(job.pk))

    output = run("jobs", "wait", str(job.pk))

    assert "100% 1/1, 0 failed" in output and "Finished: all 1 done." in output
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and Tag.objects.exists()
    assert "Finished: all 1 done." in run("jobs", "show", str(job.pk))


def test_jobs_list_refuses_an_unknown_kind_naming_the_known_ones(app):
    with pytest.raises(CommandError) as refused:
        run("jobs", "list", "--kind", "tagging.nope")
    assert "tagging.nope" in str(refused.value) and PULL_KIND in str(refused.value)
