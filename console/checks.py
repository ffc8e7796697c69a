"""System checks for configuration that Django cannot judge by itself."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from console.credentials import KeyRing


@register(Tags.security, deploy=False)
def check_credentials_key(app_configs: Any, **kwargs: Any) -> list[Error]:
    try:
        KeyRing.from_settings()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="console.E001")]
    return []


@register(Tags.compatibility)
def check_task_queue_timing(app_configs: Any, **kwargs: Any) -> list[Error]:
    timeout, retry = settings.Q_CLUSTER.get("timeout"), settings.Q_CLUSTER.get("retry")
    if not timeout or not retry or retry < timeout * 1.5:
        return [
            Error(
                "Q_RETRY must be at least 1.5 × Q_TIMEOUT, or a slow task is handed to a "
                "second worker while the first still runs it.",
                id="console.E002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_job_timing(app_configs: Any, **kwargs: Any) -> list[Error]:
    from console.jobs.runner import longest_call_seconds

    errors = []
    if longest_call_seconds() >= settings.JOBS_LEASE_SECONDS:
        errors.append(
            Error(
                "JOBS_LEASE_SECONDS must be longer than the longest platform call "
                "(PLATFORM_RETRY_BUDGET + PLATFORM_CONNECT_TIMEOUT + PLATFORM_READ_TIMEOUT + 1 = "
                f"{longest_call_seconds():g} s), or a batch could be in flight on two workers.",
                id="console.E101",
            )
        )
    timeout = settings.Q_CLUSTER.get("timeout") or 0
    if timeout <= settings.JOBS_SLICE_SECONDS + settings.JOBS_LEASE_SECONDS:
        errors.append(
            Error(
                "JOBS_SLICE_SECONDS + JOBS_LEASE_SECONDS must stay below Q_TIMEOUT, or the task "
                "queue kills a job's task in the middle of a batch.",
                id="console.E102",
            )
        )
    return errors
