"""The one progress view: every background job's list and page, with a live progress bar."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet, Sum
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from console.audit import Actor
from console.ids import object_pk_or_404
from console.jobs.registry import UnknownJobKind, job_kind, job_kind_label, job_kinds
from console.jobs.selectors import (
    job_failure_header,
    job_failure_rows,
    job_progress_payload,
    job_status_sentence,
)
from console.jobs.services import JobStateError, job_cancel, job_pause, job_resume
from console.models import (
    ACTIVE_JOB_STATUSES,
    OPEN_JOB_STATUSES,
    Job,
    JobProgress,
    JobStatus,
)
from console.spreadsheets import csv_download


class JobKindFilter(admin.SimpleListFilter):
    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(kind.name, str(kind.label)) for kind in job_kinds()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value():
            return queryset.filter(kind=self.value())
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "kind_label",
        "status_label",
        "progress_bar",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    list_display_links = ("title",)
    list_filter = ("status", JobKindFilter)
    search_fields = ("title",)
    list_select_related = ("created_by",)
    date_hierarchy = "created_at"
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        # One query for the whole page: each row's progress is summed in the database.
        return (
            super()
            .get_queryset(request)
            .annotate(shards_done=Sum("shards__done"), shards_failed=Sum("shards__failed"))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a job is started from the page of what it works on

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its history and failed items stay readable

    @admin.display(description=_("kind"), ordering="kind")
    def kind_label(self, job: Job) -> str:
        return job_kind_label(job.kind)

    @admin.display(description=_("status"), ordering="status")
    def status_label(self, job: Job) -> str:
        return format_html(
            '<span class="console-job-status console-job-status-{}">{}</span>',
            job.status,
            job.get_status_display(),
        )

    @admin.display(description=_("progress"))
    def progress_bar(self, job: Job) -> str:
        progress = JobProgress(
            total=job.total,
            done=getattr(job, "shards_done", None) or 0,
            failed=getattr(job, "shards_failed", None) or 0,
        )
        return format_html(
            '<progress class="console-progress" max="100" value="{}"></progress> {}%',
            progress.percent,
            progress.percent,
        )

    # --- the job's page --------------------------------------------------------------------------

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<str:object_id>/progress/", wrap(self.progress_view), name="console_job_progress"
            ),
            path("<str:object_id>/pause/", wrap(self.pause_view), name="console_job_pause"),
            path("<str:object_id>/resume/", wrap(self.resume_view), name="console_job_resume"),
            path("<str:object_id>/cancel/", wrap(self.cancel_view), name="console_job_cancel"),
            path(
                "<str:object_id>/failures.csv",
                wrap(self.failures_view),
                name="console_job_failures",
            ),
            *super().get_urls(),
        ]

    def _job_or_404(self, request: HttpRequest, object_id: str, *, change: bool = False) -> Job:
        # Permission first: someone who may not see jobs learns nothing about which exist.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if change and not self.has_change_permission(request):
            raise PermissionDenied
        job = (
            Job.objects.select_related("created_by").filter(pk=object_pk_or_404(object_id)).first()
        )
        if job is None:
            raise Http404
        return job

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        job = self._job_or_404(request, object_id)
        progress = job.progress()
        can_change = self.has_change_permission(request, job)
        try:
            kind = job_kind(job.kind)
        except UnknownJobKind:
            kind = None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": job.title,
            "subtitle": job_kind_label(job.kind),
            "job": job,
            "progress": progress,
            "sentence": job_status_sentence(job, progress),
            "can_pause": can_change and job.status in ACTIVE_JOB_STATUSES,
            "can_resume": can_change
            and job.status in (JobStatus.PAUSED, JobStatus.WAITING, JobStatus.FAILED),
            "can_cancel": can_change and job.status in OPEN_JOB_STATUSES,
            "has_failures": progress.failed > 0 or job.failures.exists(),
            "kind_actions": kind.actions(job, request.user) if kind and kind.actions else [],
            "detail_template": kind.detail_template if kind else None,
            **(kind.detail_context(job) if kind and kind.detail_context else {}),
            "children": job.children.order_by("-pk")[:10],
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/console/job/detail.html", context)

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        job = self._job_or_404(request, object_id)
        return JsonResponse(job_progress_payload(job))

    def _state_change(self, request: HttpRequest, object_id: str, service: Any) -> HttpResponse:
        job = self._job_or_404(request, object_id, change=True)
        try:
            service(job=job, actor=Actor.from_request(request))
        except JobStateError as refusal:
            self.message_user(request, str(refusal), messages.WARNING)
        return HttpResponseRedirect(reverse("admin:console_job_change", args=[job.pk]))

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._state_change)(request, object_id, job_pause)

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._state_change)(request, object_id, job_resume)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._state_change)(request, object_id, job_cancel)

    def failures_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        job = self._job_or_404(request, object_id)
        return csv_download(
            job_failure_header(), job_failure_rows(job), filename=f"job-{job.pk}-failures.csv"
        )
