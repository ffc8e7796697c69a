"""Undo a finished WeCom customer-tagging job: the reverse, for exactly the pairs it changed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from console.jobs.services import job_cancel, job_run_shard
from console.models import Job, JobStatus
from tagging.customers.models import CustomerAudience, CustomerAudienceSource
from tagging.customers.services import customers_job_start, customers_job_undo
from tests.conftest import PASSWORD
from tests.tagging.customers.conftest import CORP, MARK_TAG, calls, drain
from tests.tagging.customers.test_customers_jobs import first_follower_pairs, not_followed_by

pytestmark = pytest.mark.django_db


def tags_of(sandbox, userid: str, external_userid: str) -> list[str]:
    return sandbox.state.customers.tags_of(CORP, userid, external_userid)


def test_undo_removes_exactly_what_the_job_added_and_adds_back_what_it_removed(
    sandbox, app, audience_from_csv, actor, strategy_tags, settings
):
    settings.BULK_SHARD_SIZE = 10
    kept, added, removed = strategy_tags[1][:3]
    pairs = first_follower_pairs(sandbox, range(1, 40))
    for userid, ext in pairs:
        sandbox.state.customers.put_tags(CORP, userid, ext, [kept, removed])
    refused = ("lisi", not_followed_by(sandbox, "lisi"))
    rows = ["userid,external_userid", *[f"{u},{e}" for u, e in [*pairs, refused]]]
    job = drain(
        customers_job_start(
            audience=audience_from_csv(rows), add=[added], remove=[removed], actor=actor
        )
    )
    assert job.progress().failed == 1
    assert all(sorted(tags_of(sandbox, u, e)) == sorted([kept, added]) for u, e in pairs)
    sandbox.reset_stats()

    undo = customers_job_undo(job=job, actor=actor)

    assert (undo.parent, undo.total) == (job, len(pairs))
    assert (undo.params["add"], undo.params["remove"]) == ([removed], [added])
    audience = CustomerAudience.objects.get(pk=undo.params["audience_id"])
    assert audience.source == CustomerAudienceSource.UNDO
    assert list(audience.pairs.order_by("position").values_list("userid", "external_userid")) == (
        pairs
    )
    undo = drain(undo)
    assert undo.status == JobStatus.DONE
    assert all(sorted(tags_of(sandbox, u, e)) == sorted([kept, removed]) for u, e in pairs)
    assert calls(sandbox, MARK_TAG) == len(pairs)  # none for the pair that had failed


def test_undo_of_a_cancelled_job_covers_only_what_it_reached(
    sandbox, app, audience_from_csv, actor, strategy_tags, settings
):
    settings.BULK_SHARD_SIZE = 5
    tag = strategy_tags[1][0]
    pairs = first_follower_pairs(sandbox, range(1, 40))[:15]
    rows = ["userid,external_userid", *[f"{u},{e}" for u, e in pairs]]
    job = customers_job_start(audience=audience_from_csv(rows), add=[tag], actor=actor)
    job_run_shard(shard_id=job.shards.order_by("index").first().pk, worker="test")
    job = job_cancel(job=job, actor=actor)

    undo = customers_job_undo(job=job, actor=actor)

    audience = CustomerAudience.objects.get(pk=undo.params["audience_id"])
    assert (
        list(audience.pairs.order_by("position").values_list("userid", "external_userid"))
        == (pairs[:5])
    )


def test_a_job_is_undone_once(sandbox, app, audience_from_csv, actor, strategy_tags):
    pairs = first_follower_pairs(sandbox, range(1, 10))
    rows = ["userid,external_userid", *[f"{u},{e}" for u, e in pairs]]
    job = drain(
        customers_job_start(audience=audience_from_csv(rows), add=strategy_tags[1][:1], actor=actor)
    )
    customers_job_undo(job=job, actor=actor)
    with pytest.raises(ValidationError) as twice:
        customers_job_undo(job=job, actor=actor)
    assert twice.value.code == "cannot_undo"
    assert Job.objects.count() == 2


def test_undo_from_the_job_page(
    client, sandbox, app, audience_from_csv, editor, actor, strategy_tags
):
    tag = strategy_tags[1][0]
    pairs = first_follower_pairs(sandbox, range(1, 12))
    rows = ["userid,external_userid", *[f"{u},{e}" for u, e in pairs]]
    job = drain(customers_job_start(audience=audience_from_csv(rows), add=[tag], actor=actor))
    client.login(username=editor.username, password=PASSWORD)
    undo_url = reverse("admin:tagging_customers_undo", args=[job.pk])
    job_url = reverse("admin:console_job_change", args=[job.pk])
    assert undo_url in client.get(job_url).content.decode()
    assert "data-customers-undo" in client.get(undo_url).content.decode()

    answer = client.post(undo_url)

    undo = Job.objects.exclude(pk=job.pk).get()
    assert answer["Location"] == reverse("admin:console_job_change", args=[undo.pk])
    drain(undo)
    assert not any(tag in tags_of(sandbox, u, e) for u, e in pairs)
    page = client.get(job_url).content.decode()
    assert "data-customers-undone-by" in page and undo_url not in page


@pytest.mark.parametrize("job_id", ["abc", "99999999", "-1"])
def test_hostile_job_ids_on_the_undo_page_are_not_found(client, editor, job_id):
    client.login(username=editor.username, password=PASSWORD)
    assert client.get(f"/admin/tagging/customeraudience/undo/{job_id}/").status_code == 404
