"""Admin for platform credentials: write-only secrets, a connection test, full history."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from console.admin import AuditedModelAdmin
from console.audit import Actor, AuditSource
from console.fields import secret_field_names
from console.forms import SecretFieldsFormMixin
from console.versioning import StaleCheckedFormMixin, version_bump
from wecom.callback_selectors import callback_path, callback_state_sentence
from wecom.models import ChatbotBot, OfficialAccount, PlatformCredential, WeComApp
from wecom.services import credential_test_connection


class CredentialForm(StaleCheckedFormMixin, SecretFieldsFormMixin, forms.ModelForm):
    stale_hidden_fields = ("secret", "token", "encoding_aes_key")


class CredentialAdmin(AuditedModelAdmin):
    form = CredentialForm
    actions = ["test_connection"]
    status_fields = ("connection_status", "last_checked_at", "created_at", "updated_at")
    readonly_fields = status_fields
    search_fields = ("name",)
    change_form_template = "admin/wecom/credential_change_form.html"
    identity_fields: tuple[str, ...] = ()

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        secrets = tuple(secret_field_names(self.model))
        return ("name", *self.identity_fields, *secrets, "connection", "last_checked_at")

    @admin.display(description=_("connection"), ordering="last_check_ok")
    def connection(self, credential: PlatformCredential) -> str:
        """The list's short form: an icon and a word; the sentence shows on hover."""
        if credential.last_check_ok is None:
            return _("not tested yet")
        icon = "admin/img/icon-yes.svg" if credential.last_check_ok else "admin/img/icon-no.svg"
        word = _("passed") if credential.last_check_ok else _("failed")
        return format_html(
            '<span title="{}"><img src="{}" alt=""> {}</span>',
            credential.last_check_message,
            static(icon),
            word,
        )

    @admin.display(description=_("connection"))
    def connection_status(self, credential: PlatformCredential) -> str:
        if credential.last_check_ok is None:
            return _("not tested yet")
        icon = "admin/img/icon-yes.svg" if credential.last_check_ok else "admin/img/icon-no.svg"
        return format_html(
            '<img src="{}" alt="{}"> {}',
            static(icon),
            _("passed") if credential.last_check_ok else _("failed"),
            credential.last_check_message,
        )

    # Secrets typed into the form must not reach an error report.
    @method_decorator(
        sensitive_post_parameters(
            "secret",
            "token",
            "encoding_aes_key",
            "callback_token",
            "callback_encoding_aes_key",
        )
    )
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.forget_connection_check(changed=form.changed_data)
        if change:
            version_bump(obj, request.user)
        else:
            obj.updated_by = request.user
        super().save_model(request, obj, form, change)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        if obj is None:
            # Nothing to show about a credential that does not exist yet.
            return [name for name in fields if name not in self.status_fields]
        return fields

    def has_test_connection_permission(self, request: HttpRequest) -> bool:
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.test_connection_{opts.model_name}")

    @admin.action(description=_("Test connection"), permissions=["test_connection"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = Actor.from_request(request, source=AuditSource.ADMIN)
        for credential in queryset:
            check = credential_test_connection(credential=credential, actor=actor)
            self.message_user(
                request,
                gettext("%(name)s: %(result)s") % {"name": credential, "result": check.message},
                level=messages.SUCCESS if check.ok else messages.ERROR,
            )

    def get_urls(self) -> list:
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name=f"{opts.app_label}_{opts.model_name}_test_connection",
            ),
            *super().get_urls(),
        ]

    @method_decorator(require_POST)
    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # Permission first: to anyone who may not test, every id, existing or not, malformed
        # or not, gets the same 403.
        if not self.has_test_connection_permission(request):
            raise PermissionDenied
        # get_object() turns an id of the wrong type ("abc") into None instead of a 500.
        credential = self.get_object(request, unquote(object_id))
        if credential is None:
            raise Http404
        self.test_connection(request, self.model._default_manager.filter(pk=credential.pk))
        opts = self.model._meta
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[credential.pk])
        )

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context["can_test_connection"] = self.has_test_connection_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)


@admin.register(WeComApp)
class WeComAppAdmin(CredentialAdmin):
    identity_fields = ("corp_id", "agent_id")
    fields = (
        "name",
        "corp_id",
        "secret",
        "agent_id",
        "rate_limit",
        "callback_token",
        "callback_encoding_aes_key",
        *CredentialAdmin.status_fields,
    )

    class Media:
        js = ("wecom/callback_copy.js",)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        app = context.get("original")
        if app is not None and app.pk:
            context["wecom_callback"] = {
                # The address this console answers at, as the browser reached it.
                "url": request.build_absolute_uri(callback_path(app=app)),
                "state": callback_state_sentence(app=app),
            }
        return super().render_change_form(request, context, *args, **kwargs)


@admin.register(OfficialAccount)
class OfficialAccountAdmin(CredentialAdmin):
    identity_fields = ("appid",)
    fields = ("name", "appid", "secret", "rate_limit", *CredentialAdmin.status_fields)


@admin.register(ChatbotBot)
class ChatbotBotAdmin(CredentialAdmin):
    identity_fields = ("appid", "default_manager_id")
    fields = (
        "name",
        "appid",
        "token",
        "encoding_aes_key",
        "default_manager_id",
        "rate_limit",
        *CredentialAdmin.status_fields,
    )
