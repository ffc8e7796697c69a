"""`/healthz`: is the console able to serve? For load balancers and `make run`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker

logger = logging.getLogger(__name__)


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _caches() -> None:
    probe = f"healthz:{uuid.uuid4().hex}"
    for alias in sorted({"default", settings.SHARED_CACHE_ALIAS}):
        cache = caches[alias]
        cache.set(probe, "1", timeout=10)
        if cache.get(probe) != "1":
            raise RuntimeError(f"cache {alias} did not return what was stored")
        cache.delete(probe)


def _broker() -> None:
    broker = get_broker()
    broker.ping()
    broker.queue_size()


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "cache": _caches,
    "broker": _broker,
}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception:
            # The reason goes to the log; the answer says only which part failed.
            logger.exception("health check %s failed", name)
            results[name] = "fail"
        else:
            results[name] = "ok"
    healthy = all(result == "ok" for result in results.values())
    return JsonResponse(
        {"status": "ok" if healthy else "fail", "checks": results},
        status=200 if healthy else 503,
    )
