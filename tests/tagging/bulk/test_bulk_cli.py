"""The operators' commands: tag_users, and jobs on bulk jobs."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from console.jobs.follow import JobFollower
from console.models import Job, JobItemFailure, JobStatus
from tests.tagging.bulk.test_bulk_jobs import drain, oid, stranger
from wecom.sandbox import DEMO

pytestmark = pytest.mark.django_db


@pytest.fixture
def drained_wait(monkeypatch):
    """`--wait` with the test as the worker: each wait step runs the job's shards."""

    def step(self, seconds: float) -> None:
        for job in Job.objects.filter(status__in=("queued", "running")):
            drain(job)

    monkeypatch.setattr(JobFollower, "pause", step)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_tag_users_wait_exits_0_when_every_openid_succeeded(
    tmp_path, account, tag, sandbox, drained_wait
):
    path = tmp_path / "名单.csv"
    openids = [oid(n) for n in range(700, 745)]
    path.write_text("openid\n" + "\n".join(openids + openids[:3] + ["nope"]), encoding="gb18030")

    output = run(
        "tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path), "--wait"
    )

    # accepted, duplicates, blank lines, refused, in the terminal's language
    assert re.search(r"\b45\D+\b3\D+\b0\D+\b1\b", output.splitlines()[0])
    assert "nope" in output
    job = Job.objects.get()
    assert job.status == JobStatus.DONE
    assert set(openids) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)
    assert "[##############################] 100%" in output


def test_tag_users_wait_exits_1_when_an_openid_failed(tmp_path, account, tag, drained_wait):
    path = tmp_path / "list.txt"
    path.write_text(f"{oid(1)}\n{stranger(1)}\n")
    with pytest.raises(SystemExit) as exit_status:
        run(
            "tag_users",
            "--oa",
            account.name,
            "--tagid",
            str(tag.tag_id),
            "--file",
            str(path),
            "--wait",
        )
    assert exit_status.value.code == 1
    assert JobItemFailure.objects.get().item == stranger(1)


def test_tag_users_chatbot_and_untag(tmp_path, bot_credential, account, tag, sandbox, drained_wait):
    path = tmp_path / "list.txt"
    path.write_text(f"{oid(1)}\n{oid(2)}\n")
    run(
        "tag_users",
        "--bot",
        bot_credential.name,
        "--category",
        "完件",
        "--label",
        "完成",
        "--desc",
        "说明",
        "--file",
        str(path),
        "--batch-size",
        "1",
        "--wait",
    )
    assert sandbox.state.chatbot.labels(DEMO.bot_appid)[("完件", "完成")]["openids"] == {
        oid(1),
        oid(2),
    }
    assert sandbox.calls("chatbot", "/openapi/label/batchset") == 2

    fans = sorted(sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id))
    path.write_text(fans[0])
    run(
        "tag_users",
        "--oa",
        account.name,
        "--tagid",
        str(tag.tag_id),
        "--untag",
        "--file",
        str(path),
        "--wait",
    )
    assert fans[0] not in sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)


def test_tag_users_refuses_bad_input_with_a_sentence(tmp_path, account, tag, bot_credential):
    path = tmp_path / "bad.csv"
    path.write_text("nothing here\n")
    with pytest.raises(CommandError):
        run("tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path))
    with pytest.raises(CommandError):
        run("tag_users", "--oa", account.name, "--tagid", "9999", "--file", str(path))
    with pytest.raises(CommandError):
        run("tag_users", "--bot", bot_credential.name, "--category", "a", "--file", str(path))
    path.write_text(oid(1))
    with pytest.raises(CommandError):
        run(
            "tag_users",
            "--oa",
            account.name,
            "--tagid",
            str(tag.tag_id),
            "--file",
            str(path),
            "--batch-size",
            "51",
        )
    assert not Job.objects.exists()


def test_jobs_on_a_bulk_job_list_show_pause_resume_cancel_failures(
    tmp_path, account, tag, drained_wait
):
    path = tmp_path / "list.txt"
    path.write_text(f"{oid(1)}\n{stranger(1)}\n{oid(2)}\n")
    run("tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path))
    job = Job.objects.get()

    assert str(job.pk) in run("jobs", "list")
    assert job.title in run("jobs", "show", str(job.pk))
    run("jobs", "pause", str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.PAUSED
    with pytest.raises(CommandError):
        run("jobs", "pause", str(job.pk))
    run("jobs", "resume", str(job.pk))
    drain(job)
    failures = run("jobs", "failures", str(job.pk))
    assert stranger(1) in failures and "49003" in failures
    with pytest.raises(CommandError):
        run("jobs", "cancel", str(job.pk))
    with pytest.raises(CommandError):
        run("jobs", "show", "999999")


def test_jobs_on_a_bulk_job_cancel(tmp_path, account, tag):
    path = tmp_path / "list.txt"
    path.write_text(oid(1))
    run("tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path))
    job = Job.objects.get()
    run("jobs", "cancel", str(job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_tag_users_wait_rides_out_a_database_restart_and_says_so(
    tmp_path, account, tag, sandbox, monkeypatch
):
    from django.db import OperationalError, connection

    steps = {"count": 0}

    def database_restarting(execute, sql, params, many, context):
        if 2 <= steps["count"] <= 3 and '"console_job' in sql:
            raise OperationalError("the database system is shutting down")
        return execute(sql, params, many, context)

    def step(self, seconds: float) -> None:
        steps["count"] += 1
        if steps["count"] >= 4:
            for job in Job.objects.filter(status__in=("queued", "running")):
                drain(job)

    monkeypatch.setattr(JobFollower, "pause", step)
    path = tmp_path / "list.txt"
    path.write_text("\n".join(oid(n) for n in range(10)))
    with connection.execute_wrapper(database_restarting):
        output = run(
            "tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path),
            "--wait",
        )  # fmt: skip
    assert output.count("The database does not answer; waiting for it…") == 1, output
    assert Job.objects.get().status == JobStatus.DONE
    assert "100%" in output


def test_tag_users_wait_says_what_it_waits_for_and_gives_up_after_its_timeout(
    tmp_path, account, tag, monkeypatch
):
    monkeypatch.setattr(JobFollower, "pause", lambda self, seconds: None)
    path = tmp_path / "list.txt"
    path.write_text(oid(1))
    with pytest.raises(SystemExit) as exit_info:
        run(
            "tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path),
            "--wait", "--timeout", "0.3",
        )  # fmt: skip
    assert exit_info.value.code == 2


def test_tag_users_wait_output_names_the_missing_worker(tmp_path, account, tag, monkeypatch):
    monkeypatch.setattr(JobFollower, "pause", lambda self, seconds: None)
    path = tmp_path / "list.txt"
    path.write_text(oid(1))
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path),
            "--wait", "--timeout", "0.3", stdout=out,
        )  # fmt: skip
    output = out.getvalue()
    assert "Waiting for a background worker to start it." in output
    assert "No background worker is running" in output and "qcluster" in output
    assert "Stopped waiting after 0.3 seconds; the job goes on" in output


def test_tag_users_prints_no_queue_log_lines(
    tmp_path, account, tag, caplog, django_capture_on_commit_callbacks
):
    path = tmp_path / "list.txt"
    path.write_text(oid(1))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run("tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path))
    assert callbacks, "the job's shard was queued"
    # django-q writes its records to the terminal itself (its own handler on stderr).
    assert not [record for record in caplog.records if record.name == "django-q"]


def test_jobs_on_a_bulk_job_show_prints_times_in_the_console_time_zone(
    tmp_path, account, tag, settings
):
    from django.utils import timezone

    path = tmp_path / "list.txt"
    path.write_text(oid(1))
    run("tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path))
    job = Job.objects.get()
    output = run("jobs", "show", str(job.pk))
    local = timezone.localtime(job.created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert local in output, output
    assert not re.search(r"\d\.\d{6}", output) and "+00:00" not in output, output


@pytest.mark.django_db(transaction=True)
def test_jobs_on_a_bulk_job_cancel_prints_the_count_after_the_batch_in_flight(
    tmp_path, account, tag, settings
):
    import threading

    from console.jobs.runner import shard_claim, shard_release

    settings.JOBS_LEASE_SECONDS = 10
    path = tmp_path / "list.txt"
    path.write_text("\n".join(oid(n) for n in range(4)))
    run("tag_users", "--oa", account.name, "--tagid", str(tag.tag_id), "--file", str(path))
    job = Job.objects.get()
    shard = shard_claim(shard_id=job.shards.get().pk, owner="w:1/a")

    def worker_finishes_its_batch() -> None:
        from django.db import connection
        from django.db.models import F

        from console.models import JobShard

        JobShard.objects.filter(pk=shard.pk).update(position=F("end"), done=4)
        shard_release(shard=shard, owner="w:1/a")
        connection.close()

    timer = threading.Timer(0.5, worker_finishes_its_batch)
    timer.start()
    try:
        output = run("jobs", "cancel", str(job.pk))
    finally:
        timer.join()
    assert output.strip() == "Cancelled at 4 of 4.", output


def test_tag_users_starts_without_the_system_checks(monkeypatch):
    """They run where a wrong setting does harm (qcluster, runserver, check --deploy)."""
    from django.core import checks
    from django.core.checks.registry import registry
    from django.core.management.base import SystemCheckError

    from tagging.management.commands.tag_users import Command

    def broken(**kwargs: object) -> list[checks.CheckMessage]:
        return [checks.Error("broken on purpose", id="tests.E001")]

    monkeypatch.setattr(registry, "registered_checks", {broken})
    # A command that runs the checks stops at the broken one…
    with pytest.raises(SystemCheckError):
        call_command("jobs", "list", skip_checks=False, stdout=io.StringIO())
    # … tag_users, run as from a terminal (run_from_argv, which would also close the test's
    # connection), does not look.
    command, out = Command(), io.StringIO()
    options = command.create_parser("manage.py", "tag_users").parse_args(["--purge-expired"])
    command.execute(**{**vars(options), "stdout": out})
    assert re.search(r"\b0\b", out.getvalue())  # "Deleted 0 lists…"
