"""Admin pages of WeCom customer-tagging jobs: tags and customers, preview, start; retry.

The job itself is shown by the shared job page (``console.jobs``); these pages only make one.
The upload is bounded while it arrives, as for bulk jobs (``UploadSizeLimit``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext, gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt

from console.audit import Actor, AuditSource
from console.ids import object_pk_or_404
from console.jobs.follow_up import follow_up_job_view
from console.models import Job
from console.service_admin import refusal_text
from console.spreadsheets import csv_download
from tagging.bulk.admin import ListJobAdminMixin
from tagging.bulk.audience import (
    AudienceError,
)
from tagging.bulk.models import AudienceStatus
from tagging.bulk.reading import read_follow_context
from tagging.customers.audience import (
    customer_audience_members_start,
    customer_audience_preview,
    customer_audience_upload,
    customer_refusal_rows,
    reading_of,
)
from tagging.customers.forms import FILE, CustomerJobForm, CustomerTagsForm, TagSearchForm
from tagging.customers.jobs import KIND, labelled_tags
from tagging.customers.models import CustomerAudience
from tagging.customers.services import (
    customers_job_retry_failed,
    customers_job_start,
    customers_job_undo,
    customers_job_undo_refusal,
)
from tagging.strategy.selectors import TagLabel, pickable_tags, tag_labels
from wecom.models import WeComApp


@admin.register(CustomerAudience)
class CustomerAudienceAdmin(ListJobAdminMixin, admin.ModelAdmin):
    job_form_class = CustomerJobForm
    job_form_template = "admin/tagging/customers_job_form.html"
    job_form_title = _("New WeCom customer tagging job")
    start_url_name = "admin:tagging_customers_start"
    list_display = (
        "__str__",
        "app",
        "status",
        "accepted",
        "customers",
        "duplicates",
        "refused",
        "created_by",
        "created_at",
    )
    list_select_related = ("created_by", "app")
    list_filter = ("source", "status")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an audience is what was uploaded; it is never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # jobs read their pairs from it

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "add/",
                wrap(csrf_exempt(self.add_with_upload_limit)),
                name="tagging_customeraudience_add",
            ),
            path("tags/", wrap(self.tags_view), name="tagging_customeraudience_tags"),
            path("<str:object_id>/start/", wrap(self.start_view), name="tagging_customers_start"),
            path(
                "<str:object_id>/refused.csv",
                wrap(self.refused_view),
                name="tagging_customers_refused",
            ),
            path("retry/<str:job_id>/", wrap(self.retry_view), name="tagging_customers_retry"),
            path("undo/<str:job_id>/", wrap(self.undo_view), name="tagging_customers_undo"),
            *super().get_urls(),
        ]

    # --- step 1: tags and customers (ListJobAdminMixin's add page) --------------------------

    def _start_query(self, form: CustomerJobForm) -> dict[str, Any]:
        return form.tag_data()

    def tags_view(self, request: HttpRequest) -> HttpResponse:
        """The tag picker's search: the chosen app's tags that exist in WeCom whose name holds
        ``q`` (at most ``PICKER_LIMIT``), or the names of the tags ``ids`` (pasted ids)."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not (self.has_add_permission(request) and request.user.has_perm("tagging.view_tag")):
            return JsonResponse(
                {"error": gettext("You may not start WeCom customer-tagging jobs.")}, status=403
            )
        search = TagSearchForm(request.GET)
        if not search.is_valid():
            return JsonResponse({"error": search.refusal()}, status=400)
        # Only the id: the credential's secret is neither needed nor decrypted here.
        app = WeComApp.objects.filter(pk=search.cleaned_data["app"]).only("pk").first()
        if app is None:
            return JsonResponse(
                {"error": gettext("This WeCom app does not exist (any more).")}, status=404
            )
        ids = search.cleaned_data["ids"]
        if ids:
            known = tag_labels(app.pk, ids)
            return JsonResponse(
                {
                    "results": [known[tag_id].as_json() for tag_id in ids if tag_id in known],
                    "unknown": [tag_id for tag_id in ids if tag_id not in known],
                }
            )
        found, more = pickable_tags(app, query=search.cleaned_data["q"].strip())
        return JsonResponse({"results": [label.as_json() for label in found], "more": more})

    def _audience(self, request: HttpRequest, form: CustomerJobForm) -> CustomerAudience:
        data = form.cleaned_data
        if data["source"] == FILE:
            # Kept for a worker to read (tagging/bulk/reading.py): the request answers at once.
            upload = data["file"]
            return customer_audience_upload(
                app=data["app"],
                stream=upload.file,
                name=upload.name,
                size=upload.size,
                actor=Actor.from_request(request, source=AuditSource.ADMIN),
            )
        # Read by a job too: every member's customers can be thousands of WeCom calls.
        return customer_audience_members_start(
            app=data["app"],
            userids=data["members"],
            having=data["having"],
            lacking=data["lacking"],
            actor=Actor.from_request(request, source=AuditSource.ADMIN),
        )

    # --- step 2: preview, then start ---------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        return self.start_view(request, object_id)

    def _audience_or_404(self, request: HttpRequest, object_id: str) -> CustomerAudience:
        # Permission first: who may not see lists learns nothing about which exist.
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(
            CustomerAudience.objects.select_related("app"), pk=object_pk_or_404(object_id)
        )

    def start_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        audience = self._audience_or_404(request, object_id)
        ready = audience.status == AudienceStatus.READY
        can_start = self.has_add_permission(request) and audience.created_by_id == request.user.pk
        data = request.POST if request.method == "POST" else request.GET
        form = CustomerTagsForm(data) if ("add" in data or "remove" in data) else None
        if request.method == "POST":
            if not can_start or form is None or not ready:
                raise PermissionDenied
            if form.is_valid():
                try:
                    job = customers_job_start(
                        audience=audience,
                        add=form.cleaned_data["add"],
                        remove=form.cleaned_data["remove"],
                        actor=Actor.from_request(request, source=AuditSource.ADMIN),
                    )
                except ValidationError as error:
                    form.add_error(None, refusal_text(error))
                else:
                    self.message_user(
                        request, gettext("The job has started: “%(title)s”.") % {"title": job}
                    )
                    return HttpResponseRedirect(reverse("admin:console_job_change", args=[job.pk]))
        tags: dict[str, list[tuple[str, TagLabel | None]]] = {}
        if form is not None and form.is_valid() and ready:
            tags = labelled_tags(
                audience.app_id,
                add=form.cleaned_data["add"],
                remove=form.cleaned_data["remove"],
            )
        return TemplateResponse(
            request,
            "admin/tagging/customers_preview.html",
            self._context(
                request,
                title=gettext("Preview: %(audience)s") % {"audience": audience},
                audience=audience,
                preview=customer_audience_preview(audience=audience) if ready else None,
                **read_follow_context(reading=reading_of(audience), audience=audience),
                form=form,
                tags=tags,
                can_start=can_start and form is not None and ready,
                jobs=Job.objects.filter(kind=KIND, params__audience_id=audience.pk),
            ),
        )

    def refused_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        audience = self._audience_or_404(request, object_id)
        return csv_download(
            [gettext("line"), gettext("value"), gettext("reason")],
            customer_refusal_rows(audience=audience),
            filename=f"refused-customers-{audience.pk}.csv",
        )

    # --- retry failed only, undo ------------------------------------------------------------

    def retry_view(self, request: HttpRequest, job_id: str) -> HttpResponse:
        return follow_up_job_view(
            self,
            request,
            job_id,
            kind=KIND,
            start=customers_job_retry_failed,
            template="admin/tagging/customers_retry.html",
            title=gettext("Retry the failed pairs of “%(job)s”"),
            facts=lambda job: {"retryable": job.failures.filter(retryable=True).count()},
            refused=(ValidationError, AudienceError),
        )

    def undo_view(self, request: HttpRequest, job_id: str) -> HttpResponse:
        return follow_up_job_view(
            self,
            request,
            job_id,
            kind=KIND,
            start=customers_job_undo,
            template="admin/tagging/customers_undo.html",
            title=gettext("Undo “%(job)s”"),
            facts=lambda job: {"changed": job.progress().done},
            refusal=lambda job: customers_job_undo_refusal(job=job),
            refused=(ValidationError, AudienceError),
        )
