"""Several worker processes sharing Redis fetch one token between them.

Threads in one process prove the algorithm (tests/platform/test_tokens.py); this proves that the
shared cache really is shared. It needs a cache that other processes can reach: Redis (the CI run
with REDIS_URL). The SQLite run's shared cache lives in an in-memory test database that no other
process can open, and is covered by tests/test_shared_cache_database.py instead.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest
from django.conf import settings

from wecom.sandbox import DEMO

WORKERS = 4

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs REDIS_URL: other processes cannot reach this cache"
)


def _worker(base_url: str, barrier, results) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from wecom.clients import WeComClient

    client = WeComClient(corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret, base_url=base_url)
    barrier.wait(timeout=60)
    results.put(len(client.strategy_tag_list(strategy_id=1)))


def test_worker_processes_share_one_token_through_redis(sandbox):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(sandbox.wecom_base, barrier, results))
        for _ in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * WORKERS
    assert sorted(results.get(timeout=5) for _ in range(WORKERS)) == [3] * WORKERS
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 1
    assert sandbox.calls("wecom", "/cgi-bin/externalcontact/get_strategy_tag_list") == WORKERS
