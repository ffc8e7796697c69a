"""System checks for configuration that Django cannot judge by itself."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.utils import translation

from console.cli import terminal_language
from console.encryption import KeyRing


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
    if settings.WORKER_STUCK_SECONDS <= settings.JOBS_SLICE_SECONDS:
        errors.append(
            Error(
                "WORKER_STUCK_SECONDS must be longer than JOBS_SLICE_SECONDS, or the supervisor "
                "of qcluster restarts a cluster whose workers are busy with long slices.",
                id="console.E105",
            )
        )
    if not 0 <= settings.JOBS_CHECKPOINT_SECONDS <= 1:
        errors.append(
            Error(
                "JOBS_CHECKPOINT_SECONDS must be between 0 and 1: it is how many seconds of "
                "batches a killed worker's successor sends again.",
                id="console.E103",
            )
        )
    if settings.BULK_AUDIENCE_KEEP_DAYS < 2:
        errors.append(
            Error(
                "BULK_AUDIENCE_KEEP_DAYS must be at least 2: a job may start on a list only up "
                "to a day before it is deleted.",
                id="console.E104",
            )
        )
    return errors


def _reason(exc: Exception) -> str:
    from console.settings_parsing import hide_passwords

    text = " ".join(str(exc).split()) or type(exc).__name__
    # The reason sits inside our sentence: its own final punctuation would double ours.
    return hide_passwords(text)[:300].rstrip(" .?!")


@register(Tags.compatibility)
def check_services_reachable(app_configs: Any, **kwargs: Any) -> list[Error]:
    """The database, and with REDIS_URL the cache and the broker, answer: before anything runs.

    Without REDIS_URL the cache and the queue are tables that `bootstrap` creates, so only the
    database connection itself is tried.
    """
    from django.db import connection

    errors = []
    try:
        connection.ensure_connection()
    except Exception as exc:
        errors.append(
            Error(
                f"The database named by DATABASE_URL cannot be reached: {_reason(exc)}. Check "
                "the host, port, name, user and password, and that the server is running.",
                id="console.E010",
            )
        )
    if settings.REDIS_URL:
        from django.core.cache import caches
        from django_q.brokers import get_broker

        try:
            caches[settings.SHARED_CACHE_ALIAS].get("console:reachable")
        except Exception as exc:
            errors.append(
                Error(
                    f"The cache at REDIS_URL cannot be reached: {_reason(exc)}. Check the host, "
                    "port and password, and that Redis is running.",
                    id="console.E011",
                )
            )
        else:
            try:
                get_broker().ping()
            except Exception as exc:
                errors.append(
                    Error(
                        f"The task queue at REDIS_URL cannot be reached: {_reason(exc)}.",
                        id="console.E012",
                    )
                )
    return errors


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
    with translation.override(terminal_language()):
        return [Warning(describe_unreadable_secrets(found), id="console.W001")]


_SANDBOX_PATHS = {
    "WECOM_API_BASE": "wecom",
    "WECHAT_API_BASE": "wechat",
    "CHATBOT_API_BASE": "chatbot",
}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@register(Tags.compatibility)
def check_sandbox_ports(app_configs: Any, **kwargs: Any) -> list[Error]:
    """With the sandbox on, an API base on this machine must be the sandbox's port.

    A base left over in .env from a run on another SANDBOX_PORT would send every call, secrets
    included, to whatever else listens on the old port.
    """
    if not settings.SANDBOX_ENABLED:
        return []
    errors = []
    if settings.CONSOLE_PORT == settings.SANDBOX_PORT:
        errors.append(
            Error(
                f"PORT and SANDBOX_PORT are both {settings.SANDBOX_PORT}: the web server and the "
                "sandbox need a port each.",
                id="console.E013",
            )
        )
    for name, path in _SANDBOX_PATHS.items():
        base = getattr(settings, name)
        try:
            parts = urlsplit(base)
            port = parts.port
        except ValueError:
            errors.append(Error(f"{name} “{base}” is not a URL.", id="console.E014"))
            continue
        if parts.hostname in _LOOPBACK and port != settings.SANDBOX_PORT:
            errors.append(
                Error(
                    f"{name} is {base}, but the sandbox listens on SANDBOX_PORT="
                    f"{settings.SANDBOX_PORT}: calls and secrets would go to whatever listens "
                    f"on port {port}. Empty {name} in .env to follow SANDBOX_PORT (http://"
                    f"127.0.0.1:{settings.SANDBOX_PORT}/{path}), or set it to where the "
                    "platform really is.",
                    id="console.E014",
                )
            )
    return errors
