"""WeCom customer-tagging jobs against the sandbox: one mark_tag per (member, customer),
faults, refused pairs, retry failed only, and each pair in flight at most once."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from console.jobs.selectors import job_failure_rows, job_reason
from console.jobs.services import job_run_shard, jobs_watchdog
from console.models import JobShard, JobStatus
from tagging.bulk.jobs import next_quota_reset
from tagging.customers.audience import customer_audience_from_members
from tagging.customers.services import customers_job_retry_failed, customers_job_start
from tests.tagging.customers.conftest import CORP, MARK_TAG, calls, drain
from wecom.sandbox import FaultRule
from wecom.sandbox.demo import demo_external_userid

pytestmark = pytest.mark.django_db


def first_follower_pairs(sandbox, numbers, members=("zhangsan", "lisi", "wangwu")):
    """(userid, external_userid) of demo customers whose first member is one of ``members``."""
    customers = sandbox.state.customers
    pairs = []
    for n in numbers:
        ext = demo_external_userid(n)
        userid = customers.followers(CORP, ext)[0]
        if userid in members:
            pairs.append((userid, ext))
    return pairs


def not_followed_by(sandbox, userid: str) -> str:
    customers = sandbox.state.customers
    return next(
        e
        for e in customers.customers_of(CORP, "zhaoliu")
        if userid not in customers.followers(CORP, e)
    )


def tagged(sandbox, pairs, tag_id: str) -> set[tuple[str, str]]:
    customers = sandbox.state.customers
    return {(u, e) for u, e in pairs if tag_id in customers.tags_of(CORP, u, e)}


def test_a_job_with_faults_tags_exactly_the_valid_pairs(
    sandbox, app, audience_from_csv, actor, strategy_tags, settings
):
    settings.BULK_SHARD_SIZE = 25  # several shards
    tag = strategy_tags[1][0]
    valid = first_follower_pairs(sandbox, range(1, 80))
    refused_customer = not_followed_by(sandbox, "lisi")
    outside = sandbox.state.customers.customers_of(CORP, "sunqi")[0]
    rows = [
        "userid,external_userid",
        *[f"{u},{e}" for u, e in valid],
        f"lisi,{refused_customer}",  # not lisi's customer: 84061
        f"sunqi,{outside}",  # sunqi is outside strategy 1's range: 60011
        f"{valid[0][0]},{valid[0][1]}",  # a duplicate
        "lisi,not-a-customer",  # malformed
    ]
    audience = audience_from_csv(rows)
    assert (audience.accepted, audience.duplicates, audience.refused) == (len(valid) + 2, 1, 1)
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=MARK_TAG, errcode=-1, times=6))
    sandbox.reset_stats()

    job = drain(customers_job_start(audience=audience, add=[tag], actor=actor))

    assert job.status == JobStatus.DONE
    progress = job.progress()
    assert (progress.total, progress.done, progress.failed) == (len(valid) + 2, len(valid), 2)
    assert tagged(sandbox, [*valid, ("lisi", refused_customer), ("sunqi", outside)], tag) == set(
        valid
    )
    # One call per pair, plus the six answered "busy" and sent again.
    assert calls(sandbox) == len(valid) + 2 + 6
    with translation.override("zh-hans"):
        failures = {row[0]: row for row in job_failure_rows(job)}
    assert set(failures) == {f"lisi/{refused_customer}", f"sunqi/{outside}"}
    assert failures[f"lisi/{refused_customer}"][1] == "84061"
    assert "不是此成员的客户" in failures[f"lisi/{refused_customer}"][2]
    assert failures[f"sunqi/{outside}"][1] == "60011"
    assert "规则组" in failures[f"sunqi/{outside}"][2]


def test_removing_and_adding_in_one_job(sandbox, app, audience_from_csv, actor, strategy_tags):
    first, second = strategy_tags[1][:2]
    pairs = first_follower_pairs(sandbox, range(1, 20))
    for userid, ext in pairs:
        sandbox.state.customers.put_tags(CORP, userid, ext, [first])
    audience = audience_from_csv(["userid,external_userid", *[f"{u},{e}" for u, e in pairs]])
    job = drain(customers_job_start(audience=audience, add=[second], remove=[first], actor=actor))
    assert job.status == JobStatus.DONE
    assert all(sandbox.state.customers.tags_of(CORP, u, e) == [second] for u, e in pairs), (
        "removed the one, added the other"
    )


def test_lines_without_a_member_go_to_every_member_following_the_customer(
    sandbox, app, audience_from_csv, actor, strategy_tags
):
    tag = strategy_tags[1][0]
    shared = demo_external_userid(0)  # followed by zhangsan, lisi and wangwu
    lonely = sandbox.state.customers.add_customer(CORP)  # followed by nobody
    audience = audience_from_csv(["external_userid", shared, lonely])
    assert audience.expanded == 2
    assert audience.accepted == 3
    assert audience.refused == 1
    assert audience.members == {"zhangsan": 1, "lisi": 1, "wangwu": 1}
    assert "batch/get_by_user" in str(
        [r.endpoint for r in sandbox.requests if r.endpoint.endswith("get_by_user")]
    )
    job = drain(customers_job_start(audience=audience, add=[tag], actor=actor))
    assert job.progress().done == 3
    for userid in ("zhangsan", "lisi", "wangwu"):
        assert sandbox.state.customers.tags_of(CORP, userid, shared) == [tag]


def test_the_customers_of_chosen_members(sandbox, app, editor, actor, strategy_tags):
    tag = strategy_tags[2][0]
    audience = customer_audience_from_members(app=app, userids=["zhaoliu"], user=editor)
    customers = sandbox.state.customers.customers_of(CORP, "zhaoliu")
    assert audience.accepted == len(customers) > 500
    assert audience.members == {"zhaoliu": len(customers)}
    job = drain(customers_job_start(audience=audience, add=[tag], actor=actor))
    assert job.progress().done == len(customers)
    assert all(sandbox.state.customers.tags_of(CORP, "zhaoliu", e) == [tag] for e in customers)


def test_retry_failed_only_sends_the_pairs_that_may_pass_now(
    sandbox, app, audience_from_csv, actor, strategy_tags
):
    tag = strategy_tags[1][0]
    valid = first_follower_pairs(sandbox, range(1, 12))
    outside = sandbox.state.customers.customers_of(CORP, "sunqi")[:3]
    refused_customer = not_followed_by(sandbox, "lisi")
    rows = [
        "userid,external_userid",
        *[f"{u},{e}" for u, e in valid],
        *[f"sunqi,{e}" for e in outside],
        f"lisi,{refused_customer}",
    ]
    job = drain(customers_job_start(audience=audience_from_csv(rows), add=[tag], actor=actor))
    assert job.progress().failed == 4
    # WeCom's admin puts sunqi inside the strategy's range; lisi's refusal stays final.
    sandbox.state.customers.set_strategies(CORP, "sunqi", [1])
    sandbox.reset_stats()

    retry = drain(customers_job_retry_failed(job=job, actor=actor))

    assert retry.parent_id == job.pk
    assert retry.total == 3, "only the retryable failures"
    assert retry.progress().done == 3
    assert calls(sandbox) == 3
    assert tagged(sandbox, [("sunqi", e) for e in outside], tag) == {("sunqi", e) for e in outside}
    with pytest.raises(ValidationError):
        customers_job_retry_failed(job=retry, actor=actor)


def test_a_tag_deleted_meanwhile_fails_the_pairs_with_a_sentence(
    sandbox, app, audience_from_csv, actor, strategy_tags, wecom
):
    tag = strategy_tags[1][0]
    pairs = first_follower_pairs(sandbox, range(1, 8))
    audience = audience_from_csv(["userid,external_userid", *[f"{u},{e}" for u, e in pairs]])
    job = customers_job_start(audience=audience, add=[tag], actor=actor)
    wecom.strategy_tag_delete(tag_ids=[tag])
    job = drain(job)
    assert job.progress().failed == len(pairs)
    # Stored in the console's language (zh-hans): the worker has no reader to ask.
    reasons = {row[2] for row in job_failure_rows(job)}
    assert reasons == {"所选的某个标签期间已在企业微信中被删除。"}


def test_the_3000_tag_cap_is_a_failed_pair(sandbox, app, audience_from_csv, actor, strategy_tags):
    tag = strategy_tags[1][0]
    (full, *others) = first_follower_pairs(sandbox, range(1, 6))
    sandbox.state.customers.put_tags(CORP, *full, [f"etF{n:020d}" for n in range(3000)])
    rows = ["userid,external_userid", *[f"{u},{e}" for u, e in (full, *others)]]
    job = drain(customers_job_start(audience=audience_from_csv(rows), add=[tag], actor=actor))
    assert (job.progress().done, job.progress().failed) == (len(others), 1)
    ((item, code, _reason, retryable),) = list(job_failure_rows(job))
    assert retryable == "是", "after removing some tags"
    assert (item, code) == ("/".join(full), "45035")


def test_the_daily_quota_puts_the_job_on_hold_and_it_goes_on(
    sandbox, app, audience_from_csv, actor, strategy_tags
):
    tag = strategy_tags[1][0]
    pairs = first_follower_pairs(sandbox, range(1, 30))
    audience = audience_from_csv(["userid,external_userid", *[f"{u},{e}" for u, e in pairs]])
    job = customers_job_start(audience=audience, add=[tag], actor=actor)
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=MARK_TAG, errcode=45009, times=1))

    job = drain(job)

    assert job.status == JobStatus.WAITING
    assert job.resume_at == next_quota_reset()
    assert "45009" in job_reason(job)
    jobs_watchdog(now=job.resume_at + timedelta(seconds=1))
    job = drain(job)
    assert job.status == JobStatus.DONE
    assert tagged(sandbox, pairs, tag) == set(pairs)


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the worker catches it, nothing more is written."""


def test_each_pair_is_in_flight_at_most_once_across_a_rerun_shard(
    sandbox, app, audience_from_csv, actor, strategy_tags, settings, monkeypatch
):
    """A worker dies after six calls with nothing written down; a second worker asking for the
    shard while the lease holds sends nothing; once the lease runs out the shard is run again:
    the six again, then the rest, never two calls for one pair at the same time."""
    settings.JOBS_CHECKPOINT_SECONDS = 60  # coalesced: the dead worker wrote nothing down
    tag = strategy_tags[1][0]
    pairs = first_follower_pairs(sandbox, range(1, 40))
    audience = audience_from_csv(["userid,external_userid", *[f"{u},{e}" for u, e in pairs]])
    job = customers_job_start(audience=audience, add=[tag], actor=actor)

    customers = sandbox.state.customers
    real_mark_tag = customers.mark_tag
    in_flight: Counter[tuple[str, str]] = Counter()
    overlaps: list[tuple[str, str]] = []
    lock = threading.Lock()

    def watched_mark_tag(corp_id, body):
        pair = (body.get("userid"), body.get("external_userid"))
        with lock:
            in_flight[pair] += 1
            if in_flight[pair] > 1:
                overlaps.append(pair)
        try:
            return real_mark_tag(corp_id, body)
        finally:
            with lock:
                in_flight[pair] -= 1

    monkeypatch.setattr(customers, "mark_tag", watched_mark_tag)

    import tagging.customers.jobs as customer_jobs

    real_sender_for = customer_jobs.sender_for
    numbers = itertools.count(1)

    def dying_sender_for(spec):
        send = real_sender_for(spec)

        def sending(items):
            send(items)
            if next(numbers) == 6:
                raise WorkerKilled

        return sending

    monkeypatch.setattr(customer_jobs, "sender_for", dying_sender_for)
    sandbox.reset_stats()
    shard = job.shards.get()
    with pytest.raises(WorkerKilled):
        job_run_shard(shard_id=shard.pk, worker="doomed")
    shard.refresh_from_db()
    assert (shard.position, shard.done) == (0, 0)
    assert calls(sandbox) == 6

    # The lease still holds: another worker gets nothing to send.
    job_run_shard(shard_id=shard.pk, worker="second")
    assert calls(sandbox) == 6

    JobShard.objects.filter(pk=shard.pk).update(lease_expires_at=timezone.now())
    job = drain(job)

    assert job.status == JobStatus.DONE
    assert (job.progress().done, job.progress().failed) == (len(pairs), 0)
    assert calls(sandbox) == 6 + len(pairs)
    assert overlaps == []
    assert tagged(sandbox, pairs, tag) == set(pairs)


def test_tags_are_checked_before_a_job_starts(app, audience_from_csv, actor, sandbox):
    pairs = first_follower_pairs(sandbox, range(1, 3))
    audience = audience_from_csv(["userid,external_userid", *[f"{u},{e}" for u, e in pairs]])
    with translation.override("en"):
        with pytest.raises(ValidationError, match="at least one tag"):
            customers_job_start(audience=audience, actor=actor)
        with pytest.raises(ValidationError, match="not a WeCom tag id"):
            customers_job_start(audience=audience, add=["134"], actor=actor)
        with pytest.raises(ValidationError, match="both added and removed"):
            customers_job_start(audience=audience, add=["etA1"], remove=["etA1"], actor=actor)


def test_pause_resume_and_cancel_from_the_shared_controls(
    sandbox, app, audience_from_csv, actor, strategy_tags, settings
):
    from console.jobs.services import job_cancel, job_pause, job_resume

    settings.BULK_SHARD_SIZE = 10
    tag = strategy_tags[1][0]
    pairs = first_follower_pairs(sandbox, range(1, 40))
    audience = audience_from_csv(["userid,external_userid", *[f"{u},{e}" for u, e in pairs]])
    job = customers_job_start(audience=audience, add=[tag], actor=actor)
    first = job.shards.order_by("index").first()
    job_run_shard(shard_id=first.pk, worker="test")
    job = job_pause(job=job, actor=actor)
    sandbox.reset_stats()
    for shard in job.shards.all():
        job_run_shard(shard_id=shard.pk, worker="test")
    assert calls(sandbox) == 0, "a paused job sends nothing"
    job = drain(job_resume(job=job, actor=actor))
    assert job.status == JobStatus.DONE
    assert tagged(sandbox, pairs, tag) == set(pairs)

    other = customers_job_start(audience=audience, remove=[tag], actor=actor)
    other = job_cancel(job=other, actor=actor)
    sandbox.reset_stats()
    drain(other)
    assert calls(sandbox) == 0
    assert other.status == JobStatus.CANCELLED


def test_members_wecom_does_not_list_are_refused_before_any_call(
    sandbox, app, audience_from_csv, editor
):
    from tagging.bulk.audience import AudienceError

    sandbox.state.customers.add_member(CORP, "nocontact", customer_contact=False)
    ext = demo_external_userid(1)
    sandbox.reset_stats()
    audience = audience_from_csv(
        ["userid,external_userid", f"lisi,{ext}", f"ghost,{ext}", f"nocontact,{ext}"]
    )
    assert (audience.accepted, audience.refused) == (1, 2)
    refusals = {r.value: (r.line, r.reason) for r in audience.refusals.all()}
    assert refusals["ghost"][0] == 3 and "ghost" in refusals["ghost"][1]
    assert refusals["nocontact"][0] == 4
    assert calls(sandbox) == 0
    with pytest.raises(AudienceError) as caught:
        customer_audience_from_members(app=app, userids=["lisi", "ghost"], user=editor)
    with translation.override("en"):
        assert "ghost" in str(caught.value) and "lisi" not in str(caught.value)
