"""Services of the console itself: the first administrator account, resubmitted tasks."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django_q.models import Task

from console.audit import Actor, AuditAction, audit_record
from console.on_commit import enqueue_after_commit


@dataclass(frozen=True)
class AdminAccount:
    user: AbstractBaseUser
    created: bool
    # Only set when this call generated the password: it is shown once and never stored.
    generated_password: str | None = None


@transaction.atomic
def admin_account_ensure(*, username: str, password: str, actor: Actor) -> AdminAccount:
    """Create a superuser named ``username`` unless an active superuser exists already."""
    user_model = get_user_model()
    existing = user_model._default_manager.filter(is_superuser=True, is_active=True).first()
    if existing is not None:
        return AdminAccount(user=existing, created=False)
    generated = None if password else secrets.token_urlsafe(12)
    user = user_model._default_manager.create_superuser(
        **{user_model.USERNAME_FIELD: username}, email="", password=password or generated
    )
    audit_record(actor=actor, obj=user, action=AuditAction.ADD)
    return AdminAccount(user=user, created=True, generated_password=generated)


@transaction.atomic
def task_resubmit(*, task: Task, actor: Actor) -> None:
    """Queue ``task`` again with its arguments; a failure record is removed once re-queued.

    The resubmission is in the admin history of the task, as ``actor``.
    """
    audit_record(
        actor=actor,
        obj=task,
        action=AuditAction.CHANGE,
        note=_("Resubmitted to the queue: %(func)s."),
        note_params={"func": task.func},
    )
    enqueue_after_commit(
        task.func,
        *(task.args or ()),
        group=task.group,
        hook=task.hook,
        task_kwargs=dict(task.kwargs or {}),
    )
    if not task.success:
        task.delete()
