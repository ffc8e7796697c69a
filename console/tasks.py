"""Queueing background work from services.

A service queues work only once its transaction has committed: a task must never run against
data that a rollback takes back, nor start before the rows it loads by id are visible to the
worker's connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django_q.tasks import async_task


def enqueue_after_commit(
    task: str | Callable[..., Any],
    *args: Any,
    task_name: str | None = None,
    group: str | None = None,
) -> None:
    """Queue ``task(*args)`` for the worker when the current transaction commits.

    Pass ids, never objects or secrets: arguments are pickled into the broker. Outside a
    transaction the task is queued at once.
    """
    options: dict[str, Any] = {}
    if task_name:
        options["task_name"] = task_name
    if group:
        options["group"] = group
    transaction.on_commit(lambda: async_task(task, *args, **options))
