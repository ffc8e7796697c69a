"""Admin for Official Account tags: pulled from the platform, changed through the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext

from console.audit import Actor, AuditSource
from console.service_admin import ServiceBackedAdmin, ServiceForm, refusal_text
from console.versioning import StaleEdit
from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import (
    oa_tag_create,
    oa_tag_delete,
    oa_tag_rename,
    oa_tags_pull,
)
from wecom.clients import PlatformError
from wecom.models import OfficialAccount
from wecom.rules import validate_oa_tag_deletable


class OfficialAccountTagForm(ServiceForm, forms.ModelForm):
    """Saved through the services by the admin base; the platform's refusal shows on the
    form."""

    class Meta:
        model = OfficialAccountTag
        fields = ("account", "name")

    def push(self, cleaned: dict[str, Any]) -> OfficialAccountTag:
        try:
            if self.instance.pk is None:
                return oa_tag_create(
                    account=cleaned["account"], name=cleaned["name"], actor=self.actor()
                )
            return oa_tag_rename(
                tag=self.instance,
                # A reserved tag's name is read-only on its page: not in the form at all, and
                # the service refuses it with the lock sentence.
                name=cleaned.get("name", self.instance.name),
                actor=self.actor(),
                expected_version=cleaned.get("expected_version"),
            )
        except StaleEdit:
            raise
        except ValidationError as error:
            if "name" in self.fields:
                raise ValidationError({"name": error.messages}) from None
            raise ValidationError(error.messages) from None
        except PlatformError as error:
            raise ValidationError(str(error)) from None

    def _post_clean(self) -> None:
        # The service checks and saves; the model form must not change the tag before it.
        pass


@admin.register(OfficialAccountTag)
class OfficialAccountTagAdmin(ServiceBackedAdmin):
    form = OfficialAccountTagForm
    list_display = ("name", "account", "tag_id", "follower_count", "pulled_at")
    list_filter = ("account",)
    search_fields = ("name",)
    readonly_fields = ("tag_id", "follower_count", "pulled_at")
    change_list_template = "admin/tagging/officialaccounttag/change_list.html"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("account", "name")
        return ("account", "name", "tag_id", "follower_count", "pulled_at", "expected_version")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if obj.is_reserved:
            return ("account", "name", *self.readonly_fields)
        return ("account", *self.readonly_fields)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not obj.is_deletable:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one by one, through the service
        return actions

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        # Permission first: who may not delete tags learns nothing about which exist.
        if not super().has_delete_permission(request):
            raise PermissionDenied
        tag = self.get_object(request, unquote(object_id))
        if tag is None:
            raise Http404
        if request.method == "POST":
            if not super().has_delete_permission(request, tag):
                raise PermissionDenied
            try:
                oa_tag_delete(tag=tag, actor=Actor.from_request(request, source=AuditSource.ADMIN))
            except (ValidationError, PlatformError) as error:
                self.message_user(request, refusal_text(error), level=messages.ERROR)
                return HttpResponseRedirect(
                    reverse("admin:tagging_officialaccounttag_change", args=[tag.pk])
                )
            self.message_user(
                request, gettext("The tag “%(name)s” was deleted.") % {"name": tag.name}
            )
            return HttpResponseRedirect(reverse("admin:tagging_officialaccounttag_changelist"))
        try:
            validate_oa_tag_deletable(tag_id=tag.tag_id, follower_count=tag.follower_count)
        except ValidationError as error:
            self.message_user(request, refusal_text(error), level=messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:tagging_officialaccounttag_change", args=[tag.pk])
            )
        return super().delete_view(request, object_id, extra_context)

    def get_urls(self) -> list:
        return [
            path(
                "pull/",
                self.admin_site.admin_view(self.pull_view),
                name="tagging_officialaccounttag_pull",
            ),
            *super().get_urls(),
        ]

    def has_pull_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tagging.change_officialaccounttag")

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_pull": self.has_pull_permission(request)}
        return super().changelist_view(request, extra_context)

    def pull_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:tagging_officialaccounttag_changelist"))
        if not self.has_pull_permission(request):
            raise PermissionDenied
        actor = Actor.from_request(request, source=AuditSource.ADMIN)
        for account in OfficialAccount.objects.all():
            try:
                result = oa_tags_pull(account=account, actor=actor)
            except PlatformError as error:
                self.message_user(
                    request,
                    gettext("%(account)s: %(error)s") % {"account": account, "error": error},
                    level=messages.ERROR,
                )
                continue
            self.message_user(
                request,
                gettext(
                    "%(account)s: tags pulled (%(added)d new, %(changed)d renamed, "
                    "%(removed)d gone)."
                )
                % {
                    "account": account,
                    "added": result.added,
                    "changed": result.changed,
                    "removed": result.removed,
                },
            )
        return HttpResponseRedirect(reverse("admin:tagging_officialaccounttag_changelist"))
