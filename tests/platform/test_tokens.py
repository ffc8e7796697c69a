"""Access tokens shared through the cache: one refresher at a time, the others reuse its token."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from wecom.clients import OfficialAccountClient, WeComClient
from wecom.clients.tokens import Token, TokenStore, TokenUnavailable, forget_local_tokens
from wecom.sandbox import DEMO

WORKERS = 8
TAG_LIST = "/cgi-bin/externalcontact/get_strategy_tag_list"


def make_client(**kwargs) -> WeComClient:
    # A client per worker, as each worker process builds its own.
    return WeComClient(
        corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret, rate_limit=1000, **kwargs
    )


def run_together(function, count: int = WORKERS) -> list:
    barrier = threading.Barrier(count)

    def worker(index: int):
        barrier.wait(timeout=10)
        return function(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(worker, range(count)))


def test_eight_workers_meeting_an_expired_token_fetch_exactly_one(sandbox, shared_cache):
    clients = [make_client() for _ in range(WORKERS)]
    key = clients[0].tokens._key
    past = time.time() - 10
    shared_cache.set(key, Token(value="expired-token", expires_at=past, refresh_at=past - 300))

    results = run_together(lambda i: clients[i].strategy_tag_list(strategy_id=1))

    assert all(results)
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 1
    assert sandbox.calls("wecom", TAG_LIST) == WORKERS


def test_eight_workers_whose_token_the_platform_rejects_fetch_exactly_one(sandbox):
    clients = [make_client() for _ in range(WORKERS)]
    clients[0].check_connection()
    sandbox.invalidate_tokens("wecom")
    sandbox.reset_stats()

    results = run_together(lambda i: clients[i].strategy_tag_list(strategy_id=1))

    assert all(results)
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 1
    # A worker is refused at most once (42001) and retries with the new token; one that starts
    # after the refresh goes straight through.
    refused = [r for r in sandbox.requests if r.endpoint == TAG_LIST and r.errcode == 42001]
    passed = [r for r in sandbox.requests if r.endpoint == TAG_LIST and r.errcode == 0]
    assert len(passed) == WORKERS
    assert len(refused) <= WORKERS


def test_workers_in_other_processes_reuse_the_shared_token(sandbox):
    make_client().check_connection()
    forget_local_tokens()  # what a fresh process knows
    make_client().strategy_tag_list(strategy_id=1)
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 1


def test_a_hundred_calls_need_no_cache_round_trip_for_the_token(sandbox, shared_cache, monkeypatch):
    client = make_client()
    client.check_connection()
    reads = []
    original = shared_cache.get
    monkeypatch.setattr(shared_cache, "get", lambda *a, **k: reads.append(a) or original(*a, **k))
    for _ in range(100):
        client.strategy_tag_list(strategy_id=1)
    assert [key for (key, *_) in reads if key.startswith("platform-token")] == []


def test_a_token_near_expiry_is_refreshed_by_one_while_the_others_go_on(sandbox, shared_cache):
    clients = [make_client() for _ in range(WORKERS)]
    clients[0].check_connection()
    key = clients[0].tokens._key
    current: Token = shared_cache.get(key)
    # Valid for another minute, but inside the refresh margin.
    soon = Token(value=current.value, expires_at=time.time() + 60, refresh_at=time.time() - 1)
    shared_cache.set(key, soon)
    forget_local_tokens()

    run_together(lambda i: clients[i].strategy_tag_list(strategy_id=1))

    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 2
    assert shared_cache.get(key).refresh_at > time.time()


def test_tokens_are_kept_per_credential(sandbox):
    WeComClient(corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret).check_connection()
    OfficialAccountClient(appid=DEMO.oa_appid, secret=DEMO.oa_secret).check_connection()
    sandbox.state.wecom.add_app(DEMO.wecom_corp_id, "second-app-secret-0123456789abcdef")
    second = WeComClient(corp_id=DEMO.wecom_corp_id, secret="second-app-secret-0123456789abcdef")
    second.check_connection()
    assert second.tokens._key != make_client().tokens._key
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 2
    assert sandbox.calls("wechat", "/cgi-bin/stable_token") == 1


def test_a_waiter_gives_up_when_the_refresher_never_finishes(shared_cache):
    fetches, pauses = [], []
    now = [time.time()]

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    store = TokenStore(
        cache=shared_cache,
        key="platform-token:test-stuck",
        fetch=lambda: fetches.append(1),
        refresh_margin=300,
        lock_timeout=5,
        clock=lambda: now[0],
        sleep=sleep,
    )
    shared_cache.add("platform-token:test-stuck:lock", "someone-else", timeout=60)
    with pytest.raises(TokenUnavailable):
        store.get()
    assert fetches == []
    assert 5 <= sum(pauses) < 5.5
    assert pauses[:3] == [0.01, 0.02, 0.04] and max(pauses) == 0.25


def test_invalidating_a_token_that_was_already_replaced_keeps_the_new_one(shared_cache):
    values = iter(["first", "second", "third"])
    from wecom.clients.tokens import FetchedToken

    store = TokenStore(
        cache=shared_cache,
        key="platform-token:test-replace",
        fetch=lambda: FetchedToken(next(values), 7200),
        refresh_margin=300,
        lock_timeout=5,
    )
    assert store.get() == "first"
    store.invalidate("first")
    assert store.get() == "second"
    store.invalidate("first")  # a late worker reporting the old failure
    assert store.get() == "second"


def test_a_refresh_that_never_finishes_is_explained_not_a_crash(sandbox, shared_cache, clock):
    from django.utils import translation

    from wecom.clients import PlatformTransportError

    client = make_client(clock=clock)
    shared_cache.add(f"{client.tokens._key}:lock", "a stuck worker", timeout=600)
    with pytest.raises(PlatformTransportError) as caught:
        client.strategy_tag_list(strategy_id=1)
    with translation.override("zh-hans"):
        assert "正在获取企业微信的访问令牌" in str(caught.value)
    assert sandbox.total_calls() == 0
