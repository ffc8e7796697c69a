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
    hook: str | None = None,
    task_kwargs: dict[str, Any] | None = None,
) -> None:
    """Queue ``task(*args)`` for the worker when the current transaction commits.

    Pass ids, never objects or secrets: arguments are pickled into the broker. Outside a
    transaction the task is queued at once. ``task_kwargs`` are the task's own keyword
    arguments, given apart from the queue's options.
    """
    options: dict[str, Any] = {}
    if task_name:
        options["task_name"] = task_name
    if group:
        options["group"] = group
    if hook:
        options["hook"] = hook
    transaction.on_commit(lambda: async_task(task, *args, **(task_kwargs or {}), **options))
