"""The per-credential rate limit, shared by every worker through the cache."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fakes import FakeTime
from wecom.clients import OfficialAccountClient
from wecom.clients.ratelimit import RateLimiter
from wecom.sandbox import DEMO


def test_no_window_lets_more_calls_start_than_the_rate(shared_cache):
    fake = FakeTime()
    limiter = RateLimiter(
        cache=shared_cache, key="rl:test", rate=10, clock=fake.clock, sleep=fake.sleep
    )
    starts = []
    for _ in range(35):
        limiter.acquire()
        starts.append(fake.now)
    per_second = Counter(math.floor(t) for t in starts)
    assert list(per_second.values()) == [10, 10, 10, 5]
    assert len(fake.pauses) == 3
    assert fake.pauses[0] == pytest.approx(0.75)


def test_limiters_of_different_workers_share_one_allowance(shared_cache):
    fake = FakeTime()
    workers = [
        RateLimiter(cache=shared_cache, key="rl:shared", rate=5, clock=fake.clock, sleep=fake.sleep)
        for _ in range(3)
    ]
    for index in range(5):
        workers[index % 3].acquire()
    assert fake.pauses == []
    workers[2].acquire()
    assert len(fake.pauses) == 1, "the sixth call of the second waits, whoever makes it"


def test_credentials_have_separate_allowances(shared_cache):
    fake = FakeTime()
    first = RateLimiter(cache=shared_cache, key="rl:a", rate=2, clock=fake.clock, sleep=fake.sleep)
    second = RateLimiter(cache=shared_cache, key="rl:b", rate=2, clock=fake.clock, sleep=fake.sleep)
    for _ in range(2):
        first.acquire()
        second.acquire()
    assert fake.pauses == []


def test_a_rate_below_one_per_second_spaces_calls_out(shared_cache):
    fake = FakeTime()
    limiter = RateLimiter(
        cache=shared_cache, key="rl:slow", rate=0.5, clock=fake.clock, sleep=fake.sleep
    )
    assert (limiter.window, limiter.allowance) == (2.0, 1)
    starts = []
    for _ in range(3):
        limiter.acquire()
        starts.append(fake.now)
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([1.75, 2.0])


def test_a_non_positive_rate_is_refused(shared_cache):
    with pytest.raises(ValueError):
        RateLimiter(cache=shared_cache, key="rl:x", rate=0)


def test_the_client_waits_for_its_credentials_rate(sandbox, clock):
    client = OfficialAccountClient(
        appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=5, clock=clock
    )
    for _ in range(12):
        client.tags()
    # 13 calls with the token fetch: windows of 5, 5 and 3.
    assert len(clock.pauses) == 2
    assert sandbox.calls("wechat", "/cgi-bin/tags/get") == 12


def test_threads_sharing_the_cache_never_exceed_the_rate_in_real_time(shared_cache):
    rate, threads, calls_each = 20, 4, 10
    starts: list[float] = []
    guard = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(_: int) -> None:
        limiter = RateLimiter(cache=shared_cache, key="rl:real-time", rate=rate)
        barrier.wait(timeout=10)
        for _ in range(calls_each):
            limiter.acquire()
            started = time.time()
            with guard:
                starts.append(started)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(worker, range(threads)))
    per_second = Counter(math.floor(t) for t in starts)
    assert sum(per_second.values()) == threads * calls_each
    assert max(per_second.values()) <= rate
    assert len(per_second) >= 2


class CountingCache:
    """The shared cache, counting the round trips the limiter makes."""

    def __init__(self, cache) -> None:
        self.cache = cache
        self.operations = 0

    def __getattr__(self, name):
        attribute = getattr(self.cache, name)
        if callable(attribute) and name in {"incr", "add", "get", "set"}:

            def counted(*args, **kwargs):
                self.operations += 1
                return attribute(*args, **kwargs)

            return counted
        return attribute


def test_at_high_limits_slots_are_leased_in_batches_without_breaking_the_cap(
    shared_cache, monkeypatch
):
    from wecom.clients import ratelimit

    fake = FakeTime()
    counting = CountingCache(shared_cache)
    processes = [{}, {}, {}]  # each worker process has its own leases
    limiters = [
        RateLimiter(cache=counting, key="rl:busy", rate=1000, clock=fake.clock, sleep=fake.sleep)
        for _ in processes
    ]
    assert limiters[0].lease == 10
    starts = []
    for index in range(4500):
        monkeypatch.setattr(ratelimit, "_leases", processes[index % 3])
        limiters[index % 3].acquire()
        starts.append(fake.now)
    per_window = Counter(math.floor(t) for t in starts)
    assert max(per_window.values()) <= 1000
    assert sum(per_window.values()) == 4500
    assert counting.operations < 4500 / 5, "far fewer round trips than calls"


def test_at_the_default_limit_every_call_counts_in_the_shared_cache(shared_cache):
    fake = FakeTime()
    counting = CountingCache(shared_cache)
    limiter = RateLimiter(
        cache=counting, key="rl:default", rate=20, clock=fake.clock, sleep=fake.sleep
    )
    assert limiter.lease == 1
    for _ in range(20):
        limiter.acquire()
    assert counting.operations >= 20
    assert fake.pauses == []
