"""Job kinds: what each kind of background work does with a shard, and what its page adds.

One registration style: a kind's module defines its :class:`JobKind` as a constant and never
registers it on import; the ``AppConfig.ready()`` of the app that owns it registers it::

    class ChatbotConfig(AppConfig):
        def ready(self) -> None:
            register_job_kind(PUSH_JOB)

Tests add kinds of their own for one test with the ``job_kinds`` fixture (tests/conftest.py),
which takes them out again afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import Promise

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from console.jobs.runner import ShardRun
    from console.models import Job


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str | Promise
    # Processes the shard's items from its position on, checkpointing as it goes; returns when
    # `run.keep_going()` says stop or the shard's range is done.
    run_shard: Callable[[ShardRun], None]
    # Included on the job's page under the progress bar, with `job` in its context.
    detail_template: str | None = None
    # More context for that template (objects the job's params name).
    detail_context: Callable[[Job], dict[str, Any]] | None = None
    # Extra links on the job's page: (url, label) pairs the user may follow.
    actions: Callable[[Job, AbstractBaseUser], list[tuple[str, str]]] | None = None
    # Called once, after the last shard is done.
    on_finished: Callable[[Job], None] | None = None
    # Called when the job is cancelled or fails, in the transaction that changes its status
    # (after its open shards are closed): to let go of what only the job would have used up
    # (an uploaded file waiting to be read). It must not call a platform.
    on_stopped: Callable[[Job], None] | None = None


_KINDS: dict[str, JobKind] = {}


class UnknownJobKind(LookupError):
    pass


def register_job_kind(kind: JobKind) -> JobKind:
    """Make ``kind`` known to the workers and the pages; from its app's ``ready()``."""
    known = _KINDS.get(kind.name)
    if known is not None and known != kind:
        # Two kinds under one name: jobs of the first would silently run as the second.
        raise ImproperlyConfigured(f"job kind {kind.name!r} is registered twice")
    _KINDS[kind.name] = kind
    return kind


def job_kind(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownJobKind(name) from None


def job_kind_label(name: str) -> str:
    kind = _KINDS.get(name)
    return str(kind.label) if kind else name


def job_kinds() -> list[JobKind]:
    return sorted(_KINDS.values(), key=lambda kind: kind.name)
