"""WeCom customer lists are deleted BULK_AUDIENCE_KEEP_DAYS after they were read, as bulk lists
are, unless an open job still reads them; and no job starts on one about to be deleted."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone, translation

from console.audit import audit_context
from console.jobs.services import job_pause
from console.models import Job
from tagging.bulk.retention import audience_purge_expired
from tagging.customers.audience import customer_audience_from_pairs, pair_item
from tagging.customers.models import (
    CustomerAudience,
    CustomerAudiencePair,
    CustomerAudienceRefusal,
)
from tagging.customers.services import customers_job_start
from tests.tagging.customers.test_customers_jobs import first_follower_pairs

pytestmark = pytest.mark.django_db


def customer_list(app, editor, pairs, *, days_old: float = 0) -> CustomerAudience:
    made = customer_audience_from_pairs(
        app=app, items=[pair_item(u, e) for u, e in pairs], label="名单", user=editor
    )
    CustomerAudience.objects.filter(pk=made.pk).update(
        created_at=timezone.now() - timedelta(days=days_old)
    )
    made.refresh_from_db()
    return made


def test_old_customer_lists_no_open_job_reads_are_deleted_and_recorded(
    sandbox, app, editor, actor, strategy_tags, settings
):
    settings.BULK_AUDIENCE_KEEP_DAYS = 30
    pairs = first_follower_pairs(sandbox, range(1, 30))
    old = customer_list(app, editor, pairs[:7], days_old=31)
    recent = customer_list(app, editor, pairs[7:10], days_old=29)
    in_use = customer_list(app, editor, pairs[10:14], days_old=2)
    paused = customers_job_start(audience=in_use, add=[strategy_tags[1][0]], actor=actor)
    job_pause(job=paused, actor=actor)
    CustomerAudience.objects.filter(pk=in_use.pk).update(
        created_at=timezone.now() - timedelta(days=40)
    )

    report = audience_purge_expired(actor=actor)

    assert (report.audiences, report.members) == (0, 0)
    assert (report.customer_lists, report.pairs) == (1, 7)
    left = set(CustomerAudience.objects.values_list("pk", flat=True))
    assert left == {recent.pk, in_use.pk}
    assert set(CustomerAudiencePair.objects.values_list("audience", flat=True)) == left
    assert not CustomerAudienceRefusal.objects.exclude(audience__in=left).exists()
    entry = LogEntry.objects.get(action_flag=DELETION)
    assert int(entry.object_id) == old.pk
    with translation.override("en"):
        assert "(member, customer) pairs it held (7)" in audit_context(entry).note
    # The paused job's list is still whole.
    assert CustomerAudiencePair.objects.filter(audience=in_use).count() == 4


def test_a_customers_job_cannot_start_on_a_list_about_to_be_deleted(
    sandbox, app, editor, actor, strategy_tags, settings
):
    settings.BULK_AUDIENCE_KEEP_DAYS = 30
    aging = customer_list(app, editor, first_follower_pairs(sandbox, range(1, 4)), days_old=29.5)

    with pytest.raises(ValidationError) as refused:
        customers_job_start(audience=aging, add=[strategy_tags[1][0]], actor=actor)

    assert refused.value.code == "audience_expired"
    assert not Job.objects.filter(kind="tagging.customers").exists()


def test_the_cli_purge_says_how_many_customer_lists_went(sandbox, app, editor, settings):
    settings.BULK_AUDIENCE_KEEP_DAYS = 30
    customer_list(app, editor, first_follower_pairs(sandbox, range(1, 6)), days_old=31)
    out = io.StringIO()
    with translation.override("en"):
        call_command("tag_users", "--purge-expired", stdout=out)
    assert "Deleted 1 WeCom customer list older than 30 days (pairs:" in out.getvalue()
    assert not CustomerAudience.objects.exists()
