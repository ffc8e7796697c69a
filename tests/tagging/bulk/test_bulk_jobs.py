"""Bulk user-tag jobs against the sandbox: batches, exact call counts, bisection, quotas."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from console.jobs.selectors import job_reason
from console.jobs.services import job_run_shard, jobs_watchdog
from console.models import Job, JobItemFailure, JobShard, JobStatus, ShardStatus
from tagging.bulk.audience import audience_from_text
from tagging.bulk.jobs import next_quota_reset
from tagging.bulk.services import BotLabel, bulk_job_retry_failed, bulk_job_start
from tagging.official_account.services import oa_tag_create
from wecom.sandbox import DEMO, FaultRule
from wecom.sandbox.demo import demo_openid

pytestmark = pytest.mark.django_db

BATCH_TAGGING = "/cgi-bin/tags/members/batchtagging"


def oid(n: int, prefix: str = DEMO.oa_openid_prefix) -> str:
    return demo_openid(prefix, n)


def stranger(n: int) -> str:
    """A well-formed OpenID of another account: the platform answers 49003."""
    return demo_openid("oZZZZZ", n)


def drain(job: Job, *, rounds: int = 50) -> Job:
    """Run every shard slice by slice, as workers would, until no shard is left to run."""
    for _round in range(rounds):
        pending = list(job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)))
        job.refresh_from_db()
        if not pending or job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return job
        for shard in pending:
            job_run_shard(shard_id=shard.pk, worker="test")
    raise AssertionError("the job did not finish")


def audience_of(editor, openids: list[str]):
    return audience_from_text(text="\n".join(openids), user=editor)


@pytest.mark.parametrize(("count", "batch"), [(1003, 20), (500, 50), (7, 20)])
def test_a_fault_free_job_makes_exactly_ceil_n_over_batch_calls(
    sandbox, tag, editor, actor, settings, count, batch
):
    settings.BULK_SHARD_SIZE = 300  # several shards; each holds whole batches
    openids = [oid(n) for n in range(100, 100 + count)]
    audience = audience_of(editor, openids)
    sandbox.reset_stats()

    job = drain(bulk_job_start(audience=audience, target=tag, batch_size=batch, actor=actor))

    assert job.status == JobStatus.DONE
    assert sandbox.calls("wechat", BATCH_TAGGING) == math.ceil(count / batch)
    assert set(openids) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)
    progress = job.progress()
    assert (progress.total, progress.done, progress.failed) == (count, count, 0)
    assert all(len(r.body["openid_list"]) <= batch for r in sandbox.requests if r.body)


def test_three_bad_openids_among_seventeen_good_are_isolated(sandbox, tag, editor, actor):
    good = [oid(n) for n in range(200, 217)]
    bad = [stranger(1), stranger(2), stranger(3)]
    batch = [*good[:5], bad[0], *good[5:11], bad[1], *good[11:], bad[2]]
    job = drain(bulk_job_start(audience=audience_of(editor, batch), target=tag, actor=actor))

    assert job.status == JobStatus.DONE
    assert set(good) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)
    failures = list(JobItemFailure.objects.filter(job=job).order_by("item"))
    assert sorted(f.item for f in failures) == sorted(bad)
    assert {f.reason_code for f in failures} == {"49003"}
    assert all(f.reason and not f.retryable for f in failures)
    progress = job.progress()
    assert (progress.done, progress.failed) == (17, 3)
    # One refused call, then halves around each bad OpenID: 21 calls for these positions,
    # never more than 1 + 2·3·⌈log2 20⌉ = 31.
    assert sandbox.calls("wechat", BATCH_TAGGING) == 21


def test_untag_removes_the_tag(sandbox, tag, editor, actor):
    fans = sorted(sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id))
    job = drain(
        bulk_job_start(
            audience=audience_of(editor, fans[:2]), target=tag, operation="untag", actor=actor
        )
    )
    assert job.status == JobStatus.DONE
    assert sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id) == set(fans[2:])


def test_the_daily_quota_puts_the_job_on_hold_until_midnight_in_beijing(
    sandbox, tag, editor, actor
):
    openids = [oid(n) for n in range(300, 360)]
    job = bulk_job_start(audience=audience_of(editor, openids), target=tag, actor=actor)
    sandbox.faults.add(FaultRule(errcode=45009, endpoint=BATCH_TAGGING, times=1))

    job = drain(job)

    assert job.status == JobStatus.WAITING
    assert job.resume_at == next_quota_reset()
    assert timezone.localtime(job.resume_at, next_quota_reset().tzinfo).hour == 0
    assert "45009" in job_reason(job)
    jobs_watchdog(now=job.resume_at + timedelta(seconds=1))
    job = drain(job)
    assert job.status == JobStatus.DONE
    assert set(openids) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)


def around_each_call(
    monkeypatch,
    *,
    before: Callable[[int], None] = lambda number: None,
    after: Callable[[int], None] = lambda number: None,
) -> None:
    """Wrap the job's platform call: ``before(n)`` runs before call number n (from 1), and
    ``after(n)`` once it went through; either may raise, as a bug or a dying worker would."""
    import tagging.bulk.jobs as bulk_jobs

    real_sender_for = bulk_jobs.sender_for
    calls = itertools.count(1)

    def wrapped_sender_for(spec):
        send = real_sender_for(spec)

        def sending(batch):
            number = next(calls)
            before(number)
            send(batch)
            after(number)

        return sending

    monkeypatch.setattr(bulk_jobs, "sender_for", wrapped_sender_for)


def test_a_job_put_on_hold_shows_the_coalesced_batches_done_before(
    sandbox, tag, editor, actor, settings, monkeypatch
):
    settings.JOBS_CHECKPOINT_SECONDS = 1  # nothing written before the quota runs out
    openids = [oid(n) for n in range(300, 360)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )

    def quota_at_third_call(number: int) -> None:
        if number == 3:
            sandbox.faults.add(FaultRule(errcode=45009, endpoint=BATCH_TAGGING, times=1))

    around_each_call(monkeypatch, before=quota_at_third_call)

    job = drain(job)

    assert job.status == JobStatus.WAITING
    shard = job.shards.get()
    assert (shard.position, shard.done) == (40, 40)


def test_an_unexpected_error_keeps_the_coalesced_batches_done_before_it(
    sandbox, tag, editor, actor, settings, monkeypatch
):
    settings.JOBS_CHECKPOINT_SECONDS = 1
    openids = [oid(n) for n in range(300, 400)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )

    def failing_at_fourth_call(number: int) -> None:
        if number == 4:
            raise RuntimeError("a bug")

    around_each_call(monkeypatch, before=failing_at_fourth_call)

    outcome = job_run_shard(shard_id=job.shards.get().pk, worker="test")

    assert outcome.error == "RuntimeError"
    shard = job.shards.get()
    assert (shard.position, shard.done, shard.errors, shard.lease_owner) == (60, 60, 1, "")


def test_45159_right_after_creating_a_tag_is_retried_once(
    sandbox, account, editor, actor, settings
):
    settings.BULK_45159_RETRY_SECONDS = 0
    new_tag = oa_tag_create(account=account, name="刚建的标签", actor=actor)
    sandbox.faults.add(FaultRule(errcode=45159, endpoint=BATCH_TAGGING, times=1))
    openids = [oid(n) for n in range(400, 440)]
    sandbox.reset_stats()

    job = drain(bulk_job_start(audience=audience_of(editor, openids), target=new_tag, actor=actor))

    assert job.status == JobStatus.DONE
    assert sandbox.calls("wechat", BATCH_TAGGING) == 2 + 1
    assert set(openids) == sandbox.state.official_account.tag_fans(DEMO.oa_appid, new_tag.tag_id)


def test_a_token_refused_twice_in_a_row_is_waited_out_not_fatal(sandbox, tag, editor, actor):
    # The client renews a refused token once; a second refusal (another worker renewed it in
    # between, or the platform revoked it again) must not end a job of a million OpenIDs.
    sandbox.faults.add(FaultRule(errcode=40001, endpoint=BATCH_TAGGING, times=2))
    openids = [oid(n) for n in range(500, 530)]
    job = drain(bulk_job_start(audience=audience_of(editor, openids), target=tag, actor=actor))
    assert job.status == JobStatus.DONE, job.status_message
    assert set(openids) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)


def test_a_tag_that_does_not_exist_stops_the_job_saying_why(sandbox, tag, editor, actor, settings):
    settings.BULK_45159_RETRY_SECONDS = 0
    sandbox.state.official_account.tags_delete(DEMO.oa_appid, {"tag": {"id": tag.tag_id}})
    job = drain(
        bulk_job_start(audience=audience_of(editor, [oid(1), oid(2)]), target=tag, actor=actor)
    )
    assert job.status == JobStatus.FAILED
    assert "45159" in job_reason(job)


def test_a_follower_with_20_tags_fails_alone_and_can_be_retried(sandbox, tag, editor, actor):
    full = oid(500)
    for number in range(20):
        tag_id = sandbox.state.official_account.add_tag(DEMO.oa_appid, f"满额{number}")
        sandbox.state.official_account.tag_users(DEMO.oa_appid, tag_id, [full])
    others = [oid(n) for n in range(501, 510)]
    job = drain(
        bulk_job_start(audience=audience_of(editor, [full, *others]), target=tag, actor=actor)
    )
    failure = JobItemFailure.objects.get(job=job)
    assert (failure.item, failure.reason_code, failure.retryable) == (full, "45059", True)
    assert set(others) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)

    sandbox.state.official_account.tags_delete(DEMO.oa_appid, {"tag": {"id": tag_id}})
    retry = drain(bulk_job_retry_failed(job=job, actor=actor))

    assert retry.parent == job
    assert retry.total == 1
    assert retry.status == JobStatus.DONE
    assert full in sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)


def test_retry_failed_only_refuses_when_nothing_can_be_retried(sandbox, tag, editor, actor):
    job = drain(
        bulk_job_start(audience=audience_of(editor, [stranger(9), oid(9)]), target=tag, actor=actor)
    )
    with pytest.raises(ValidationError) as refused:
        bulk_job_retry_failed(job=job, actor=actor)
    assert refused.value.code == "nothing_to_retry"


def test_chatbot_label_job_sends_lists_of_the_batch_size(sandbox, bot_credential, editor, actor):
    openids = [oid(n) for n in range(600, 720)]
    target = BotLabel(bot=bot_credential, category="完件", label="完成", desc="在app中完成了信息")
    sandbox.reset_stats()

    job = drain(bulk_job_start(audience=audience_of(editor, openids), target=target, actor=actor))

    assert job.status == JobStatus.DONE
    assert sandbox.calls("chatbot", "/openapi/label/batchset") == 3  # 50 + 50 + 20
    label = sandbox.state.chatbot.labels(DEMO.bot_appid)[("完件", "完成")]
    assert label["openids"] == set(openids)


def test_targets_and_sizes_are_checked_before_anything_is_created(
    sandbox, tag, bot_credential, editor, actor
):
    audience = audience_of(editor, [oid(1)])
    with pytest.raises(ValidationError):
        bulk_job_start(audience=audience, target=tag, batch_size=51, actor=actor)
    with pytest.raises(ValidationError):
        bulk_job_start(
            audience=audience,
            target=BotLabel(bot=bot_credential, category="a", label="", desc="d"),
            actor=actor,
        )
    with pytest.raises(ValidationError) as untag:
        bulk_job_start(
            audience=audience,
            target=BotLabel(bot=bot_credential, category="a", label="b", desc="d"),
            operation="untag",
            actor=actor,
        )
    assert untag.value.code == "no_untag"
    assert not Job.objects.exists()


def _statements_at_each_call(monkeypatch, job: Job) -> tuple[list[int], list[str]]:
    """Run the job; how many SQL statements had run when each platform call went out, and
    every statement of the run."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queries_at_call: list[int] = []
    around_each_call(
        monkeypatch, before=lambda n: queries_at_call.append(len(context.captured_queries))
    )
    with CaptureQueriesContext(connection) as context:
        drain(job)
    return queries_at_call, [query["sql"] for query in context.captured_queries]


CHECKPOINT_SQL = 'UPDATE "console_jobshard" SET "position"'


def test_with_no_coalescing_a_clean_batch_costs_exactly_one_statement_its_checkpoint(
    sandbox, tag, editor, actor, settings, monkeypatch
):
    """Between two platform calls of a fault-free run, the worker runs one SQL statement: the
    fenced checkpoint (no transaction around it, no lease renewal, no status read)."""
    settings.JOBS_STATUS_CHECK_SECONDS = 3600  # the time-based status read stays out of it
    settings.JOBS_CHECKPOINT_SECONDS = 0  # a statement per batch
    openids = [oid(n) for n in range(300, 300 + 12 * 20)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )

    queries_at_call, statements = _statements_at_each_call(monkeypatch, job)

    assert len(queries_at_call) == 12
    between_calls = [b - a for a, b in itertools.pairwise(queries_at_call)]
    assert between_calls == [1] * 11
    checkpoints = [statements[n - 1] for n in queries_at_call[1:]]
    assert all(sql.startswith(CHECKPOINT_SQL) for sql in checkpoints)
    assert job.progress().done == len(openids)


def test_batches_within_the_checkpoint_interval_share_one_statement(
    sandbox, tag, editor, actor, settings, monkeypatch
):
    """Coalesced, twelve clean batches cost no statement between calls and one checkpoint
    when the slice ends, with every count."""
    settings.JOBS_STATUS_CHECK_SECONDS = 3600
    settings.JOBS_CHECKPOINT_SECONDS = 1  # longer than the whole run
    openids = [oid(n) for n in range(300, 300 + 12 * 20)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )

    queries_at_call, statements = _statements_at_each_call(monkeypatch, job)

    assert len(queries_at_call) == 12
    assert [b - a for a, b in itertools.pairwise(queries_at_call)] == [0] * 11
    after_last_call = statements[queries_at_call[-1] :]
    assert [sql for sql in after_last_call if sql.startswith(CHECKPOINT_SQL)] == [
        after_last_call[0]
    ]
    shard = job.shards.get()
    assert (shard.position, shard.done, shard.status) == (240, 240, ShardStatus.DONE)


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the worker catches it, nothing more is written."""


def test_a_worker_killed_between_coalesced_checkpoints_has_its_batches_sent_again_once(
    sandbox, tag, editor, actor, settings, monkeypatch
):
    settings.JOBS_CHECKPOINT_SECONDS = 1
    openids = [oid(n) for n in range(600, 600 + 10 * 20)]
    job = bulk_job_start(
        audience=audience_of(editor, openids), target=tag, batch_size=20, actor=actor
    )

    def dying_after_sixth_call(number: int) -> None:
        if number == 6:  # only the first worker: the next one's calls are 7 and on
            raise WorkerKilled

    around_each_call(monkeypatch, after=dying_after_sixth_call)
    sandbox.reset_stats()
    shard = job.shards.get()
    with pytest.raises(WorkerKilled):
        job_run_shard(shard_id=shard.pk, worker="doomed")
    shard.refresh_from_db()
    assert (shard.position, shard.done) == (0, 0)  # six batches tagged, none written down
    assert sandbox.calls("wechat", BATCH_TAGGING) == 6

    JobShard.objects.filter(pk=shard.pk).update(lease_expires_at=timezone.now())
    job = drain(job)

    assert job.status == JobStatus.DONE
    progress = job.progress()
    assert (progress.total, progress.done, progress.failed) == (200, 200, 0)
    assert sandbox.calls("wechat", BATCH_TAGGING) == 6 + 10  # the six again, then the rest
    assert set(openids) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)


def test_job_titles_agree_in_number(tag, editor, actor):
    from django.utils import translation

    with translation.override("en"):
        one = bulk_job_start(audience=audience_of(editor, [oid(1)]), target=tag, actor=actor)
        two = bulk_job_start(
            audience=audience_of(editor, [oid(1), oid(2)]), target=tag, actor=actor
        )
    assert one.title == f"Tag 1 follower with “新关注” ({tag.account.name})"
    assert two.title == f"Tag 2 followers with “新关注” ({tag.account.name})"
