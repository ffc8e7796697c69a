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


class WorkerUnwell(Exception):
    pass


def _worker() -> None:
    """The task worker's supervisor was heard from lately and its cluster takes tasks.

    Stuck (tasks wait and none has run for WORKER_STUCK_SECONDS: the supervisor is restarting
    it) or absent (no heartbeat for WORKER_ABSENT_SECONDS) fails the check, so a production
    supervisor can act too. See console/jobs/supervisor.py.
    """
    from console.jobs.supervisor import worker_health

    health = worker_health()
    if not health.healthy:
        raise WorkerUnwell(health.state)


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "cache": _caches,
    "broker": _broker,
    "worker": _worker,
}


def _unreadable_secret_count() -> int | None:
    from console.keyrotation import unreadable_secrets

    try:
        return len(unreadable_secrets())
    except Exception:
        logger.exception("counting unreadable secrets failed")
        return None


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Each part's state; 503 when the console cannot serve.

    Stored secrets that no configured key reads (a wrong CREDENTIALS_KEY) leave the console
    able to serve, and a credential admin must be able to log in to enter them again: they make
    the status "degraded" with a 200, and their number is in the answer.
    """
    results = {}
    for name, check in CHECKS.items():
        if name == "worker" and not settings.HEALTHZ_REQUIRES_WORKER:
            continue
        try:
            check()
        except WorkerUnwell as unwell:
            logger.error("health check worker: %s", unwell)
            results[name] = str(unwell)  # "stuck" or "absent"
        except Exception:
            # The reason goes to the log; the answer says only which part failed.
            logger.exception("health check %s failed", name)
            results[name] = "fail"
        else:
            results[name] = "ok"
    healthy = all(result == "ok" for result in results.values())
    unreadable = _unreadable_secret_count() if results["database"] == "ok" else None
    if unreadable is not None:
        results["secrets"] = "ok" if unreadable == 0 else "unreadable"
    status = "ok" if healthy else "fail"
    if healthy and unreadable:
        status = "degraded"
    return JsonResponse(
        {"status": status, "checks": results, "unreadable_secrets": unreadable},
        status=200 if healthy else 503,
    )
