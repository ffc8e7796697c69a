"""Undo a finished bulk job: the reverse job, for exactly the OpenIDs the job changed (issue 21)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from console.jobs.services import job_cancel, job_run_shard
from console.models import Job, JobStatus
from tagging.bulk.models import AudienceSource, BulkAudience
from tagging.bulk.services import BotLabel, bulk_job_start, bulk_job_undo
from tests.tagging.bulk.test_bulk_admin import logged_in
from tests.tagging.bulk.test_bulk_jobs import BATCH_TAGGING, audience_of, drain, oid, stranger
from wecom.sandbox import DEMO

pytestmark = pytest.mark.django_db

BATCH_UNTAGGING = "/cgi-bin/tags/members/batchuntagging"


def fans(sandbox, tag) -> set[str]:
    return sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)


def test_undo_untags_exactly_what_the_job_tagged(sandbox, tag, editor, actor):
    before = fans(sandbox, tag)
    good = [oid(n) for n in range(400, 437)]
    bad = [stranger(1), stranger(2)]
    job = drain(
        bulk_job_start(
            audience=audience_of(editor, [*good[:10], bad[0], *good[10:], bad[1]]),
            target=tag,
            batch_size=10,
            actor=actor,
        )
    )
    assert job.progress().failed == 2
    sandbox.reset_stats()

    undo = bulk_job_undo(job=job, actor=actor)

    assert (undo.parent, undo.total, undo.params["operation"]) == (job, 37, "untag")
    audience = BulkAudience.objects.get(pk=undo.params["audience_id"])
    assert audience.source == AudienceSource.UNDO
    assert list(audience.members.order_by("position").values_list("openid", flat=True)) == good
    undo = drain(undo)
    assert undo.status == JobStatus.DONE
    assert fans(sandbox, tag) == before - set(good)
    assert sandbox.calls("wechat", BATCH_UNTAGGING) == 4  # 37 in batches of 10
    assert sandbox.calls("wechat", BATCH_TAGGING) == 0


def test_undo_of_a_cancelled_job_covers_only_what_it_reached(sandbox, tag, editor, actor, settings):
    settings.BULK_SHARD_SIZE = 20
    openids = [oid(n) for n in range(500, 560)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )
    first = job.shards.order_by("index").first()
    job_run_shard(shard_id=first.pk, worker="test")
    job = job_cancel(job=job, actor=actor)
    assert job.status == JobStatus.CANCELLED

    undo = bulk_job_undo(job=job, actor=actor)

    audience = BulkAudience.objects.get(pk=undo.params["audience_id"])
    assert (
        list(audience.members.order_by("position").values_list("openid", flat=True))
        == (openids[:20])
    )


def test_undo_of_an_untag_job_tags_again(sandbox, tag, editor, actor):
    tagged = sorted(fans(sandbox, tag))[:3]
    job = drain(
        bulk_job_start(
            audience=audience_of(editor, tagged), target=tag, operation="untag", actor=actor
        )
    )
    assert not set(tagged) & fans(sandbox, tag)

    drain(bulk_job_undo(job=job, actor=actor))

    assert set(tagged) <= fans(sandbox, tag)


def test_a_job_is_undone_once_and_only_when_it_has_ended(sandbox, tag, editor, actor):
    job = bulk_job_start(
        audience=audience_of(editor, [oid(600), oid(601)]), target=tag, actor=actor
    )
    with pytest.raises(ValidationError) as running:
        bulk_job_undo(job=job, actor=actor)
    assert running.value.code == "cannot_undo"

    job = drain(job)
    undo = bulk_job_undo(job=job, actor=actor)
    with pytest.raises(ValidationError) as twice:
        bulk_job_undo(job=job, actor=actor)
    assert f"#{undo.pk}" in twice.value.messages[0]
    assert Job.objects.count() == 2


def test_a_job_that_changed_nothing_has_nothing_to_undo(sandbox, tag, editor, actor):
    job = drain(
        bulk_job_start(audience=audience_of(editor, [stranger(9)]), target=tag, actor=actor)
    )
    assert job.progress().done == 0
    with pytest.raises(ValidationError) as refused:
        bulk_job_undo(job=job, actor=actor)
    assert refused.value.code == "cannot_undo"
    assert Job.objects.count() == 1


def test_a_chatbot_label_job_cannot_be_undone_and_its_page_says_why(
    client, sandbox, bot_credential, editor, actor
):
    target = BotLabel(bot=bot_credential, category="完件", label="完成", desc="在app中完成了信息")
    job = drain(
        bulk_job_start(audience=audience_of(editor, [oid(700)]), target=target, actor=actor)
    )
    with pytest.raises(ValidationError) as refused:
        bulk_job_undo(job=job, actor=actor)
    assert "没有" in refused.value.messages[0] or "no call" in refused.value.messages[0]

    client = logged_in(client, editor)
    page = client.get(reverse("admin:console_job_change", args=[job.pk])).content.decode()
    assert "data-bulk-no-undo" in page
    assert reverse("admin:tagging_bulk_undo", args=[job.pk]) not in page


def test_undo_from_the_job_page(client, sandbox, tag, editor, actor):
    openids = [oid(n) for n in range(800, 805)]
    job = drain(bulk_job_start(audience=audience_of(editor, openids), target=tag, actor=actor))
    client = logged_in(client, editor)
    undo_url = reverse("admin:tagging_bulk_undo", args=[job.pk])
    assert (
        undo_url in client.get(reverse("admin:console_job_change", args=[job.pk])).content.decode()
    )

    confirm = client.get(undo_url, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert confirm.status_code == 200
    assert "data-bulk-undo" in confirm.content.decode()

    answer = client.post(undo_url)
    undo = Job.objects.exclude(pk=job.pk).get()
    assert answer["Location"] == reverse("admin:console_job_change", args=[undo.pk])
    drain(undo)
    assert not set(openids) & fans(sandbox, tag)
    page = client.get(reverse("admin:console_job_change", args=[job.pk])).content.decode()
    assert "data-bulk-undone-by" in page
    assert undo_url not in page

    again = client.post(undo_url, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "already being undone" in again.content.decode()
    assert Job.objects.count() == 2


@pytest.mark.parametrize("job_id", ["abc", "99999999", "1e3", "%00"])
def test_hostile_job_ids_on_the_undo_page_are_not_found(client, editor, job_id):
    client = logged_in(client, editor)
    assert client.get(f"/admin/tagging/bulkaudience/undo/{job_id}/").status_code == 404
