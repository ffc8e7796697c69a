"""Admin pages of bulk jobs: choose target and audience, preview, start; retry failed only.

The job itself is shown by the shared job page (``console.jobs``); these pages only make one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext, gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from console.audit import Actor, AuditSource
from console.ids import object_pk_or_404
from console.jobs.follow_up import follow_up_job_view
from console.models import Job
from console.service_admin import refusal_text
from console.spreadsheets import csv_download
from tagging.bulk.audience import (
    TOO_LARGE,
    AudienceError,
    UploadSizeLimit,
    audience_from_tag,
    audience_from_text,
    audience_preview,
    audience_refusal_rows,
    upload_limit,
    upload_size_refusal,
)
from tagging.bulk.forms import FILE, PASTE, BulkJobForm, BulkTargetForm
from tagging.bulk.jobs import KIND, TAG, BulkSpec
from tagging.bulk.models import AudienceStatus, BulkAudience
from tagging.bulk.reading import BULK_READING, audience_upload, read_follow_context
from tagging.bulk.retention import audience_expiry
from tagging.bulk.services import (
    bulk_job_retry_failed,
    bulk_job_start,
    bulk_job_undo,
    bulk_job_undo_refusal,
)
from wecom.clients import PlatformError


class ListJobAdminMixin:
    """The first step shared by the admins that start a job on an uploaded list (bulk lists,
    WeCom customer lists): the add page with the upload limit enforced while the file arrives,
    its form, and on success the list's own page. Subclasses name the form, the template, the
    title, the start page and the query it carries (the job's target or tags), and make the
    audience from the valid form (``_audience``)."""

    job_form_class: type[Any]
    job_form_template: str
    job_form_title: Any
    start_url_name: str

    def _context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "opts": self.model._meta,  # type: ignore[attr-defined]
            "app_label": self.model._meta.app_label,  # type: ignore[attr-defined]
            **extra,
        }

    def add_with_upload_limit(self, request: HttpRequest) -> HttpResponse:
        """The add page, with the upload limit enforced while the file arrives.

        Upload handlers must be in place before anything reads the body; the CSRF check
        reads it, so this view is exempt from the middleware's check and makes the same
        check itself right after (Django's documented pattern).
        """
        request.upload_handlers.insert(0, UploadSizeLimit(request))
        return csrf_protect(self.add_view)(request)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        form = self.job_form_class(
            request.POST or None,
            request.FILES or None,
            upload_refusal=upload_size_refusal(request) if request.method == "POST" else None,
        )
        if request.method == "POST" and form.is_valid():
            try:
                audience = self._audience(request, form)
            except (AudienceError, PlatformError, ValidationError) as error:
                form.add_error(None, refusal_text(error))
            else:
                url = reverse(self.start_url_name, args=[audience.pk])
                return HttpResponseRedirect(f"{url}?{urlencode(self._start_query(form))}")
        return TemplateResponse(
            request,
            self.job_form_template,
            self._context(
                request,
                title=str(self.job_form_title),
                form=form,
                limit_mb=upload_limit() // (1024 * 1024),
                limit_bytes=upload_limit(),
                # The browser says it before sending the file, in the server's own words.
                too_large=str(TOO_LARGE),
            ),
        )

    def _audience(self, request: HttpRequest, form: Any) -> Any:
        raise NotImplementedError

    def _start_query(self, form: Any) -> dict[str, Any]:
        raise NotImplementedError


@admin.register(BulkAudience)
class BulkAudienceAdmin(ListJobAdminMixin, admin.ModelAdmin):
    job_form_class = BulkJobForm
    job_form_template = "admin/tagging/bulk_job_form.html"
    job_form_title = _("New bulk tagging job")
    start_url_name = "admin:tagging_bulk_start"
    list_display = (
        "__str__",
        "status",
        "accepted",
        "duplicates",
        "blanks",
        "refused",
        "created_by",
        "created_at",
        "kept_until",
    )
    list_select_related = ("created_by",)
    list_filter = ("source", "status")
    date_hierarchy = "created_at"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an audience is what was uploaded; it is never edited

    @admin.display(description=_("kept until"))
    def kept_until(self, audience: BulkAudience) -> Any:
        return audience_expiry(audience)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # jobs read their OpenIDs from it

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            # Before the standard "add" page, which it replaces: see add_with_upload_limit.
            path(
                "add/",
                wrap(csrf_exempt(self.add_with_upload_limit)),
                name="tagging_bulkaudience_add",
            ),
            path("<str:object_id>/start/", wrap(self.start_view), name="tagging_bulk_start"),
            path(
                "<str:object_id>/refused.csv", wrap(self.refused_view), name="tagging_bulk_refused"
            ),
            path("retry/<str:job_id>/", wrap(self.retry_view), name="tagging_bulk_retry"),
            path("undo/<str:job_id>/", wrap(self.undo_view), name="tagging_bulk_undo"),
            *super().get_urls(),
        ]

    def _start_query(self, form: BulkJobForm) -> dict[str, Any]:
        return form.target_data()

    def _audience(self, request: HttpRequest, form: BulkJobForm) -> BulkAudience:
        data = form.cleaned_data
        if data["source"] == FILE:
            # Kept for a worker to read (tagging/bulk/reading.py): the request answers at once.
            upload = data["file"]
            return audience_upload(
                stream=upload.file,
                name=upload.name,
                size=upload.size,
                column=data["column"],
                actor=Actor.from_request(request, source=AuditSource.ADMIN),
            )
        if data["source"] == PASTE:
            return audience_from_text(text=data["text"], user=request.user)
        return audience_from_tag(tag=data["source_tag"], user=request.user)

    # --- step 2: preview, then start -----------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        return self.start_view(request, object_id)

    def _audience_or_404(self, request: HttpRequest, object_id: str) -> BulkAudience:
        # Permission first: who may not see lists learns nothing about which exist.
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(BulkAudience, pk=object_pk_or_404(object_id))

    def start_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        audience = self._audience_or_404(request, object_id)
        can_start = self.has_add_permission(request) and audience.created_by_id == request.user.pk
        data: QueryDict = request.POST if request.method == "POST" else request.GET
        form = BulkTargetForm(data) if "target_kind" in data else None
        if request.method == "POST":
            if not can_start or form is None:
                raise PermissionDenied
            if form.is_valid():
                try:
                    job = bulk_job_start(
                        audience=audience,
                        target=form.target(),
                        operation=form.cleaned_data["operation"],
                        batch_size=form.cleaned_data["batch_size"],
                        actor=Actor.from_request(request, source=AuditSource.ADMIN),
                    )
                except ValidationError as error:
                    form.add_error(None, refusal_text(error))
                else:
                    self.message_user(
                        request, gettext("The job has started: “%(title)s”.") % {"title": job}
                    )
                    return HttpResponseRedirect(reverse("admin:console_job_change", args=[job.pk]))
        target_summary = None
        if form is not None and form.is_valid():
            target_summary = form.target()
        ready = audience.status == AudienceStatus.READY
        return TemplateResponse(
            request,
            "admin/tagging/bulk_preview.html",
            self._context(
                request,
                title=gettext("Preview: %(audience)s") % {"audience": audience},
                audience=audience,
                preview=audience_preview(audience=audience) if ready else None,
                **self._reading(audience),
                form=form,
                target=target_summary,
                can_start=can_start and form is not None and ready,
                jobs=Job.objects.filter(kind=KIND, params__audience_id=audience.pk),
                kept_until=audience_expiry(audience),
            ),
        )

    def _reading(self, audience: BulkAudience) -> dict[str, Any]:
        """The read job of an uploaded list not ready yet: its bar, or why it failed; for a
        list ``tag_users`` reads (or read, cut short) while its job sends it, that job."""
        context = read_follow_context(reading=BULK_READING, audience=audience)
        if audience.status != AudienceStatus.READY and not context:
            sending = Job.objects.filter(kind=KIND, params__audience_id=audience.pk)
            context["sending_job"] = sending.order_by("pk").first()
        return context

    def refused_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        audience = self._audience_or_404(request, object_id)
        return csv_download(
            [gettext("line"), gettext("value"), gettext("reason")],
            audience_refusal_rows(audience=audience),
            filename=f"refused-{audience.pk}.csv",
        )

    # --- retry failed only, undo ------------------------------------------------------------

    def retry_view(self, request: HttpRequest, job_id: str) -> HttpResponse:
        return follow_up_job_view(
            self,
            request,
            job_id,
            kind=KIND,
            start=bulk_job_retry_failed,
            template="admin/tagging/bulk_retry.html",
            title=gettext("Retry the failed OpenIDs of “%(job)s”"),
            facts=lambda job: {"retryable": job.failures.filter(retryable=True).count()},
            refused=(ValidationError, AudienceError),
        )

    def undo_view(self, request: HttpRequest, job_id: str) -> HttpResponse:
        return follow_up_job_view(
            self,
            request,
            job_id,
            kind=KIND,
            start=bulk_job_undo,
            template="admin/tagging/bulk_undo.html",
            title=gettext("Undo “%(job)s”"),
            facts=lambda job: {
                "changed": job.progress().done,
                "untag": BulkSpec.from_params(job.params).operation == TAG,
            },
            refusal=lambda job: bulk_job_undo_refusal(job=job),
        )
