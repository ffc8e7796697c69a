"""Follow-ups of a finished job ("retry failed only", "undo"), shared by the kinds that offer
them: the links on the job's page (:func:`follow_up_actions`) and the page that starts one
(:func:`follow_up_job_view`): confirm on GET, start on POST, back to the job's page with a
sentence when it cannot be done. Kinds give the service that starts it and the confirmation's
template and facts. (The failed items a retry takes: ``job_retryable_failures`` in
console/jobs/selectors.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext

from console.audit import Actor, AuditSource
from console.ids import object_pk_or_404
from console.models import Job
from console.service_admin import refusal_text


def follow_up_actions(
    job: Job,
    user: AbstractBaseUser,
    *,
    add_permission: str,
    retry_url_name: str,
    undo_url_name: str,
    undo_refusal: Callable[[Job], str | None],
    audience: Any,
    audience_url_name: str,
    view_permission: str,
) -> list[tuple[str, str]]:
    """The links of a finished tagging job's page: "Retry failed only" where a failure may pass
    now, "Undo" where it can be undone, and its audience (unless deleted)."""
    actions = []
    if job.is_final and user.has_perm(add_permission):
        if job.failures.filter(retryable=True).exists():
            actions.append((reverse(retry_url_name, args=[job.pk]), gettext("Retry failed only")))
        if undo_refusal(job) is None:
            actions.append((reverse(undo_url_name, args=[job.pk]), gettext("Undo")))
    if audience is not None and user.has_perm(view_permission):
        actions.append(
            (reverse(audience_url_name, args=[audience.pk]), gettext("Audience and refused values"))
        )
    return actions


def follow_up_job_view(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    job_id: str,
    *,
    kind: str,
    start: Callable[..., Job],
    template: str,
    title: str,
    facts: Callable[[Job], dict[str, Any]],
    refusal: Callable[[Job], str | None] = lambda job: None,
    refused: tuple[type[Exception], ...] = (ValidationError,),
) -> HttpResponse:
    # Permission first: who may not start jobs learns nothing about which exist.
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    job = get_object_or_404(Job, pk=object_pk_or_404(job_id), kind=kind)
    back = HttpResponseRedirect(reverse("admin:console_job_change", args=[job.pk]))
    if request.method == "POST":
        try:
            new_job = start(job=job, actor=Actor.from_request(request, source=AuditSource.ADMIN))
        except refused as error:
            model_admin.message_user(request, refusal_text(error), level=messages.ERROR)
            return back
        return HttpResponseRedirect(reverse("admin:console_job_change", args=[new_job.pk]))
    reason = refusal(job)
    if reason is not None:
        model_admin.message_user(request, reason, level=messages.ERROR)
        return back
    return TemplateResponse(
        request,
        template,
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "app_label": model_admin.model._meta.app_label,
            "title": title % {"job": job},
            "job": job,
            **facts(job),
        },
    )
