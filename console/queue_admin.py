"""django-q2's task pages, with its "resubmit" action kept for administrators and audited.

django-q2 offers the action to anyone who can open the list, a view-only Auditor included, and
re-runs the task without a trace. Here only superusers see or run it, through a service that
records each resubmission in the admin history.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _, ngettext
from django_q import admin as q_admin
from django_q.models import Failure, Success

from console.audit import Actor, AuditSource
from console.services import task_resubmit


class _ResubmitForAdminsMixin:
    actions = ["resubmit_tasks"]

    def has_resubmit_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.action(description=_("Resubmit selected tasks to the queue"), permissions=["resubmit"])
    def resubmit_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = Actor.from_request(request, source=AuditSource.ADMIN)
        count = 0
        for task in queryset:
            task_resubmit(task=task, actor=actor)
            count += 1
        self.message_user(  # type: ignore[attr-defined]
            request,
            ngettext(
                "%(count)d task was queued again.", "%(count)d tasks were queued again.", count
            )
            % {"count": count},
            messages.SUCCESS,
        )


class SuccessAdmin(_ResubmitForAdminsMixin, q_admin.TaskAdmin):
    pass


class FailureAdmin(_ResubmitForAdminsMixin, q_admin.FailAdmin):
    pass


for _model, _admin_class in ((Success, SuccessAdmin), (Failure, FailureAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin_class)
