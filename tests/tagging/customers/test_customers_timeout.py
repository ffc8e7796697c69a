"""A mark_tag call that timed out may still be running on WeCom: the pair is not sent again
until that call has had as long again to finish, so it is never in flight twice at once."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from console.models import JobStatus
from tagging.customers.audience import customer_audience_from_pairs, pair_item
from tagging.customers.services import customers_job_start
from tests.tagging.customers.conftest import calls, drain
from tests.tagging.customers.test_customers_jobs import first_follower_pairs, tagged

pytestmark = pytest.mark.django_db


def test_a_pair_whose_call_timed_out_is_not_sent_again_while_wecom_may_still_run_it(
    sandbox, app, editor, actor, strategy_tags, settings, monkeypatch
):
    settings.PLATFORM_READ_TIMEOUT = 0.4
    settings.PLATFORM_BACKOFF_BASE = 0.01  # a retry would come well inside the slow call
    settings.PLATFORM_BACKOFF_CAP = 0.02
    tag = strategy_tags[1][0]
    pairs = first_follower_pairs(sandbox, range(1, 6))
    audience = customer_audience_from_pairs(
        app=app, items=[pair_item(u, e) for u, e in pairs], label="超时", user=editor
    )
    job = customers_job_start(audience=audience, add=[tag], actor=actor)

    customers = sandbox.state.customers
    real_mark_tag = customers.mark_tag
    in_flight: Counter[tuple[str, str]] = Counter()
    overlaps: list[tuple[str, str]] = []
    finished_at: dict[tuple[str, str], list[float]] = {}
    started_at: dict[tuple[str, str], list[float]] = {}
    lock = threading.Lock()

    slow = [pairs[0]]

    def watched_mark_tag(corp_id, body):
        pair = (body.get("userid"), body.get("external_userid"))
        with lock:
            in_flight[pair] += 1
            started_at.setdefault(pair, []).append(time.monotonic())
            if in_flight[pair] > 1:
                overlaps.append(pair)
            slow_now = pair in slow
            if slow_now:
                slow.remove(pair)
        try:
            if slow_now:
                # WeCom takes 0.6 s over the first pair's first call; the client gives up at 0.4.
                time.sleep(0.6)
            return real_mark_tag(corp_id, body)
        finally:
            with lock:
                in_flight[pair] -= 1
                finished_at.setdefault(pair, []).append(time.monotonic())

    monkeypatch.setattr(customers, "mark_tag", watched_mark_tag)
    sandbox.reset_stats()

    job = drain(job)

    assert job.status == JobStatus.DONE
    assert (job.progress().done, job.progress().failed) == (len(pairs), 0)
    assert overlaps == []
    first = pairs[0]
    # Sent twice (the slow call, then once more), the second after the first had finished.
    assert len(started_at[first]) == 2
    assert started_at[first][1] >= finished_at[first][0]
    assert calls(sandbox) == len(pairs) + 1
    assert tagged(sandbox, pairs, tag) == set(pairs)
