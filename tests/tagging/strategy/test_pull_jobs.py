"""Manual pulls are jobs: the admin page follows one live, ``wecom_pull`` waits for one, and the
pull's History entries are written by the one audit writer (console.audit)."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from console.audit import Actor, AuditAction, AuditBatch, AuditSource, audit_context, audit_record
from console.models import Job, JobStatus
from tagging.strategy.jobs import PULL_KIND
from tagging.strategy.models import Tag
from tests.tagging.strategy.conftest import apply_plan, plan_page, run_jobs
from tests.tagging.strategy.test_pull import outside, remote_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


def test_a_pull_from_the_admin_page_is_a_job_the_page_follows(editor_client, imported, sandbox):
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    url = reverse("admin:tagging_strategy_pull", args=[imported.pk])
    started = editor_client.get(url)
    job = Job.objects.get(kind=PULL_KIND)
    assert started.url == f"{url}?job={job.pk}"
    assert job.status == JobStatus.QUEUED and job.total == 2
    following = editor_client.get(started.url).content.decode()
    # The shared progress bar, kept current by the shared script; nothing applied yet.
    assert f'data-progress-url="/admin/console/job/{job.pk}/progress/"' in following
    assert "console/jobs.js" in following and "<script>" not in following
    assert reverse("admin:console_job_change", args=[job.pk]) in following
    assert 'name="fingerprint"' not in following

    run_jobs()  # the worker plans: half the job, then it waits for the editor
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    assert (job.progress().processed, job.progress().total) == (1, 2)
    page = editor_client.get(started.url)
    assert "核心客户" in page.content.decode()
    assert "新增 0，改名 1，调整排序 0，移动 0，删除 0。冲突 0 个" in page.content.decode()
    assert Tag.objects.filter(name="重要客户").exists()

    applied = apply_plan(editor_client, imported, page)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.progress().percent == 100
    assert applied.url == reverse("admin:tagging_strategy_tree", args=[imported.pk])
    renamed = Tag.objects.get(name="核心客户")
    # The change is the editor's, made from the admin; the job's History says who applied.
    entry = (
        LogEntry.objects.filter(object_id=str(renamed.pk), content_type__model="tag")
        .order_by("pk")
        .last()
    )
    assert entry.user.username == "editor" and audit_context(entry).source == "admin"
    job_history = LogEntry.objects.filter(object_id=str(job.pk), content_type__model="job")
    assert job_history.filter(user__username="editor", change_message__contains="Resumed").exists()


def test_a_pull_job_can_be_paused_before_it_plans(editor_client, imported, sandbox):
    outside(sandbox, "del_strategy_tag", {"tag_id": [remote_id(sandbox, "试用中")]})
    started = editor_client.get(reverse("admin:tagging_strategy_pull", args=[imported.pk]))
    job = Job.objects.get(kind=PULL_KIND)
    editor_client.post(reverse("admin:console_job_pause", args=[job.pk]))
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.PAUSED and job.progress().processed == 0
    editor_client.post(reverse("admin:console_job_resume", args=[job.pk]))
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    assert editor_client.get(started.url).context["plan"] is not None


def test_an_empty_plan_finishes_the_job_and_offers_nothing_to_apply(editor_client, imported):
    page = plan_page(editor_client, imported)
    assert page.context["job"].status == JobStatus.DONE
    assert page.context["plan"].empty and not page.context["can_apply"]
    assert "disabled" in page.content.decode()


def test_applying_a_plan_twice_or_a_job_that_is_not_there_applies_nothing(
    editor_client, imported, sandbox
):
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    page = plan_page(editor_client, imported)
    apply_plan(editor_client, imported, page)
    with translation.override("en"):
        again = apply_plan(editor_client, imported, page)
    assert again.status_code == 302  # to the tree: the job is done
    url = reverse("admin:tagging_strategy_pull", args=[imported.pk])
    for hostile in ("abc", "999999", "1; DROP TABLE"):
        response = editor_client.post(url, {"job": hostile, "fingerprint": "x"})
        assert response.status_code == 302 and response.url == url
        assert editor_client.get(f"{url}?job={hostile}").status_code == 302
    assert Job.objects.filter(kind=PULL_KIND).count() == 1 + 3  # each GET without a job plans


def test_another_pull_by_the_same_editor_replaces_the_one_waiting(editor_client, imported, sandbox):
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    first = plan_page(editor_client, imported).context["job"]
    second = plan_page(editor_client, imported).context["job"]
    first.refresh_from_db()
    assert first.status == JobStatus.CANCELLED and second.status == JobStatus.WAITING


def test_wecom_pull_waits_for_its_job_and_prints_its_progress(app, sandbox, monkeypatch):
    from console.jobs.follow import JobFollower

    looks = []

    def worker_late(self, seconds: float) -> None:
        looks.append(Job.objects.get(kind=PULL_KIND).status)
        if len(looks) > 2:  # the worker starts only after the command has waited a while
            run_jobs()

    monkeypatch.setattr(JobFollower, "pause", worker_late)
    out = io.StringIO()
    with translation.override("en"):
        call_command("wecom_pull", "--app", app.name, stdout=out)
    text = out.getvalue()
    assert looks[:3] == [JobStatus.QUEUED] * 3
    assert "[##############################] 100% 1/1, 0 failed" in text
    assert "Changes applied: 35; conflicts waiting in the admin: 0." in text
    job = Job.objects.get(kind=PULL_KIND)
    assert job.status == JobStatus.DONE and job.params["mode"] == "apply"


def test_a_pull_writes_its_history_as_audit_record_would(imported, actor, sandbox, editor):
    """One writer: an entry of a pull's AuditBatch reads exactly as audit_record's entry for
    the same change, column for column."""
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    tag = Tag.objects.get(name="重要客户")
    by_pull = Actor(user=editor, source=AuditSource.PLATFORM, ip="10.0.0.1", detail="job 7")
    batch = AuditBatch(actor=by_pull, note="Pulled from WeCom.")
    batch.add(Tag, tag.pk, tag.name, AuditAction.CHANGE, {"name": ("重要客户", "核心客户")})
    batch.save()
    batched = LogEntry.objects.latest("pk")
    single_entry = audit_record(
        actor=by_pull,
        obj=tag,
        action=AuditAction.CHANGE,
        changes={"name": ("重要客户", "核心客户")},
        note="Pulled from WeCom.",
    )
    single = LogEntry.objects.get(pk=single_entry.pk)
    fields = ("user_id", "content_type_id", "object_id", "object_repr", "action_flag")
    assert [getattr(batched, name) for name in fields] == [getattr(single, name) for name in fields]
    assert json.loads(batched.change_message) == json.loads(single.change_message)


def test_a_pulls_history_reads_like_every_other_entry(imported, actor, sandbox):
    from tagging.strategy.pull_apply import pull_and_apply

    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    pull_and_apply(app=imported, actor=actor)
    tag = Tag.objects.get(name="核心客户")
    entry = (
        LogEntry.objects.filter(object_id=str(tag.pk), content_type__model="tag")
        .order_by("pk")
        .last()
    )
    with translation.override("zh-hans"):
        context = audit_context(entry)
        assert context.note == "从企业微信拉取。"
    assert context.source == "console" and context.ip == "127.0.0.1"
    assert [(c.field, c.old, c.new) for c in context.changes] == [("name", "重要客户", "核心客户")]
    assert entry.get_change_message()  # Django's own sentence reads it too
