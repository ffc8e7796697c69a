"""Tokens and rate counters through the database cache, the shared cache of a SQLite install.

The web server and the task workers of `make run` are separate processes that share nothing but
the database; these tests run the token store and the limiter on that cache table.
"""

from __future__ import annotations

import datetime

import pytest
from django.core.cache import caches
from django.core.management import call_command

from tests.fakes import FakeTime
from wecom.clients import WeComClient
from wecom.clients.ratelimit import RateLimiter
from wecom.clients.tokens import FetchedToken, TokenStore, TokenUnavailable, forget_local_tokens
from wecom.sandbox import DEMO


@pytest.fixture
def database_cache(settings, transactional_db):
    settings.CACHES = {
        **settings.CACHES,
        "shared": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "console_shared_cache",
        },
    }
    call_command("createcachetable", verbosity=0)
    cache = caches["shared"]
    cache.clear()
    return cache


def test_a_token_fetched_by_one_process_is_reused_by_another(database_cache, sandbox):
    WeComClient(corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret).check_connection()
    forget_local_tokens()  # what a second process knows
    WeComClient(corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret).strategy_tag_list()
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 1


def test_the_refresh_lock_holds_in_the_database(database_cache):
    fake = FakeTime()
    store = TokenStore(
        cache=database_cache,
        key="platform-token:db-lock",
        fetch=lambda: FetchedToken("never", 7200),
        refresh_margin=300,
        lock_timeout=3,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert database_cache.add("platform-token:db-lock:lock", "other-process", timeout=60)
    with pytest.raises(TokenUnavailable):
        store.get()
    assert sum(fake.pauses) >= 3


def test_the_rate_limit_counts_in_the_database(database_cache):
    fake = FakeTime()
    limiter = RateLimiter(
        cache=database_cache, key="rl:db", rate=5, clock=fake.clock, sleep=fake.sleep
    )
    for _ in range(12):
        limiter.acquire()
    assert len(fake.pauses) == 2


def test_rate_counters_expire_with_their_window(database_cache):
    from django.db import connection
    from django.utils import timezone

    limiter = RateLimiter(cache=database_cache, key="rl:expiry", rate=5)
    for _ in range(3):
        limiter.acquire()
    with connection.cursor() as cursor:
        cursor.execute("SELECT expires FROM console_shared_cache")
        expiries = [row[0] for row in cursor.fetchall()]
    assert expiries
    latest = max(expiries)
    if timezone.is_naive(latest):
        latest = latest.replace(tzinfo=datetime.UTC)
    # BaseCache.incr would have re-saved the counter for the default 300 seconds.
    assert (latest - timezone.now()).total_seconds() <= 3
