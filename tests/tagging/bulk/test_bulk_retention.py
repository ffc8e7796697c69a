"""Bulk audiences are deleted BULK_AUDIENCE_KEEP_DAYS after they were read, unless an open job
still reads them; chunk by chunk, in the History, from the daily schedule or the CLI."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from django_q.models import Schedule

from console.audit import audit_context
from console.jobs.services import job_pause
from console.models import Job, JobItemFailure, JobStatus
from tagging.bulk import retention as bulk_retention
from tagging.bulk.audience import audience_from_text
from tagging.bulk.models import BulkAudience, BulkAudienceMember, BulkAudienceRefusal
from tagging.bulk.retention import PURGE_SCHEDULE_NAME, PURGE_TASK, audience_purge_expired
from tagging.bulk.services import bulk_job_start
from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import oa_tags_pull
from wecom.sandbox import DEMO
from wecom.sandbox.demo import demo_openid

pytestmark = pytest.mark.django_db


def oid(n: int) -> str:
    return demo_openid(DEMO.oa_openid_prefix, n)


@pytest.fixture
def tag(sandbox, account, actor) -> OfficialAccountTag:
    oa_tags_pull(account=account, actor=actor)
    return OfficialAccountTag.objects.get(name="新关注")


def audience(editor, first: int, count: int, *, days_old: float = 0) -> BulkAudience:
    made = audience_from_text(
        text="\n".join([*(oid(n) for n in range(first, first + count)), "bad value"]),
        user=editor,
    )
    BulkAudience.objects.filter(pk=made.pk).update(
        created_at=timezone.now() - timedelta(days=days_old)
    )
    made.refresh_from_db()
    return made


def test_old_audiences_no_open_job_reads_are_deleted_in_chunks_and_recorded(
    tag, editor, actor, settings, monkeypatch
):
    settings.BULK_AUDIENCE_KEEP_DAYS = 30
    monkeypatch.setattr(bulk_retention, "DELETE_CHUNK", 7)  # 25 members: four chunks
    old = audience(editor, 0, 25, days_old=31)
    recent = audience(editor, 100, 5, days_old=29)
    old_of_a_paused_job = audience(editor, 200, 5, days_old=2)
    paused = bulk_job_start(audience=old_of_a_paused_job, target=tag, actor=actor)
    job_pause(job=paused, actor=actor)
    BulkAudience.objects.filter(pk=old_of_a_paused_job.pk).update(
        created_at=timezone.now() - timedelta(days=40)
    )
    old_of_an_ended_job = audience(editor, 300, 5, days_old=2)
    ended = bulk_job_start(audience=old_of_an_ended_job, target=tag, actor=actor)
    Job.objects.filter(pk=ended.pk).update(status=JobStatus.DONE)
    JobItemFailure.objects.create(
        job=ended, shard=ended.shards.get(), item=oid(304), reason_code="45059", reason="full"
    )
    BulkAudience.objects.filter(pk=old_of_an_ended_job.pk).update(
        created_at=timezone.now() - timedelta(days=40)
    )

    with CaptureQueriesContext(connection) as captured:
        report = audience_purge_expired(actor=actor)

    assert (report.audiences, report.members) == (2, 30)
    member_deletes = [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].startswith('DELETE FROM "tagging_bulkaudiencemember"')
        and " IN (" not in query["sql"]  # the audience row's own cascade, with nothing left
    ]
    assert len(member_deletes) == 4 + 1  # 25 rows in chunks of 7 (7, 7, 7, 4), and 5 in one
    left = set(BulkAudience.objects.values_list("pk", flat=True))
    assert left == {recent.pk, old_of_a_paused_job.pk}
    assert set(BulkAudienceMember.objects.values_list("audience", flat=True)) == left
    assert set(BulkAudienceRefusal.objects.values_list("audience", flat=True)) == left
    # object_id is text: "101" sorts before "98", so the entries are keyed by the number.
    entries = {
        int(entry.object_id): entry for entry in LogEntry.objects.filter(action_flag=DELETION)
    }
    assert sorted(entries) == sorted([old.pk, old_of_an_ended_job.pk])
    assert all(entry.user == editor for entry in entries.values())
    with translation.override("en"):
        assert "with the OpenIDs it held (25)" in audit_context(entries[old.pk]).note
        assert "with the OpenIDs it held (5)" in audit_context(entries[old_of_an_ended_job.pk]).note
    # The ended job keeps what "retry failed only" needs.
    assert JobItemFailure.objects.filter(job=ended, item=oid(304)).exists()


def test_a_job_cannot_start_on_a_list_about_to_be_deleted(tag, editor, actor, settings):
    settings.BULK_AUDIENCE_KEEP_DAYS = 30
    aging = audience(editor, 0, 5, days_old=29.5)

    with pytest.raises(ValidationError) as refused:
        bulk_job_start(audience=aging, target=tag, actor=actor)

    assert refused.value.code == "audience_expired"
    assert "29" in refused.value.messages[0]
    assert not Job.objects.exists()
    bulk_job_start(audience=audience(editor, 10, 5, days_old=28.5), target=tag, actor=actor)
    settings.BULK_AUDIENCE_KEEP_DAYS = 2
    with translation.override("en"):
        with pytest.raises(ValidationError) as one_day:
            bulk_job_start(audience=aging, target=tag, actor=actor)
        assert "more than 1 day ago" in one_day.value.messages[0]


def test_the_daily_schedule_exists_and_the_cli_purges(tag, editor, settings, monkeypatch):
    assert Schedule.objects.filter(
        name=PURGE_SCHEDULE_NAME, func=PURGE_TASK, schedule_type=Schedule.DAILY
    ).exists()
    settings.BULK_AUDIENCE_KEEP_DAYS = 30
    audience(editor, 0, 3, days_old=31)
    out = io.StringIO()
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")

    call_command("tag_users", "--purge-expired", stdout=out)

    assert out.getvalue().strip() == "已删除 1 份超过 30 天的名单（3 个 OpenID）。"
    assert not BulkAudience.objects.exists()


def test_the_job_page_says_the_list_was_deleted(client, tag, editor, actor, settings):
    settings.BULK_AUDIENCE_KEEP_DAYS = 30
    job = bulk_job_start(audience=audience(editor, 0, 3), target=tag, actor=actor)
    client.force_login(editor)
    page = client.get(f"/admin/console/job/{job.pk}/change/").content.decode()
    assert f"/admin/tagging/bulkaudience/{job.params['audience_id']}/change/" in page

    Job.objects.filter(pk=job.pk).update(status=JobStatus.DONE)
    BulkAudience.objects.all().update(created_at=timezone.now() - timedelta(days=31))
    audience_purge_expired(actor=actor)

    page = client.get(f"/admin/console/job/{job.pk}/change/").content.decode()
    assert f"/admin/tagging/bulkaudience/{job.params['audience_id']}/" not in page
    assert "已删除：名单保留 30 天。" in page


def test_the_list_and_its_preview_say_until_when_it_is_kept(client, editor, settings):
    settings.BULK_AUDIENCE_KEEP_DAYS = 30
    kept = audience(editor, 0, 3)
    BulkAudience.objects.filter(pk=kept.pk).update(
        created_at=timezone.make_aware(timezone.datetime(2026, 12, 1, 12, 0))
    )
    client.force_login(editor)

    listing = client.get("/admin/tagging/bulkaudience/").content.decode()
    preview = client.get(f"/admin/tagging/bulkaudience/{kept.pk}/start/").content.decode()

    assert "保留至" in listing and "2026年12月31日" in listing
    assert "名单保留至 2026年12月31日；在此前一天之前都可以用它开始作业。" in preview
