"""System checks for configuration that Django cannot judge by itself."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

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


@register(Tags.security)
def check_stored_secrets_readable(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """Stored secrets that no configured key opens: a well-formed but wrong CREDENTIALS_KEY."""
    from console.keyrotation import describe_unreadable_secrets, unreadable_secrets

    try:
        KeyRing.from_settings()
        found = unreadable_secrets()
    except (ImproperlyConfigured, DatabaseError):
        # A malformed key or an unusable database has its own check and message.
        return []
    if not found:
        return []
    return [Warning(describe_unreadable_secrets(found), id="console.W001")]
