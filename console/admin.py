"""Admin pieces shared by every app: audited model admins and the audit log for auditors."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.forms import BaseForm, ModelChoiceField
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import (
    AuditSource,
    audit_context,
    client_ip,
    console_message_part,
    describe_change,
    value_changes,
)


def _initial_object(form_field: Any, value: Any) -> Any:
    """The object behind a choice field's initial primary key, for a readable old value."""
    if isinstance(form_field, ModelChoiceField) and value not in (None, ""):
        return form_field.queryset.filter(pk=value).first() or value
    return value


class AuditedAdminMixin:
    """Makes a ModelAdmin's history entries also say from where, with old and new values."""

    model: Any

    def _request_part(self, request: HttpRequest, changes: list | None = None) -> dict[str, Any]:
        return console_message_part(
            source=AuditSource.ADMIN,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", "")[:200],
            changes=changes,
        )

    def construct_change_message(
        self, request: HttpRequest, form: BaseForm, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        message = super().construct_change_message(  # type: ignore[misc]
            request, form, formsets, add
        )
        model = self.model
        model_fields = {f.name for f in model._meta.get_fields()}
        for part in message:
            changed = part.get("changed")
            if changed is not None and "name" not in changed:
                # Django stores the form's capitalised label ("App secret"), which no catalogue
                # translates; the field's verbose name ("app secret") is in ours.
                changed["fields"] = [
                    change.label
                    for change in value_changes(
                        model, {name: (None, None) for name in form.changed_data}
                    )
                    if change.field in model_fields
                ] or changed["fields"]
        changes = None
        if not add and form.changed_data:
            changes = value_changes(
                model,
                {
                    name: (
                        _initial_object(form.fields[name], form.initial.get(name)),
                        form.cleaned_data.get(name),
                    )
                    for name in form.changed_data
                    if name in model_fields
                },
            )
        return [*message, self._request_part(request, changes)]

    def log_deletions(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=queryset,
            action_flag=DELETION,
            change_message=json.dumps([self._request_part(request)], ensure_ascii=False),
        )


class ReadOnlyAdminMixin:
    """The admin of records only the console writes (History, publish runs): read, never
    added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    pass


@admin.register(LogEntry)
class AuditLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every change in one read-only list, for auditors."""

    list_display = ("action_time", "user", "action_label", "object_link", "summary", "where")
    list_filter = (
        "action_flag",
        ("content_type", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("object_repr", "change_message", "user__username")
    date_hierarchy = "action_time"
    list_select_related = ("user", "content_type")
    list_per_page = 50

    @admin.display(description=_("Action"), ordering="action_flag")
    def action_label(self, entry: LogEntry) -> str:
        return entry.get_action_flag_display()

    @admin.display(description=_("Object"), ordering="object_repr")
    def object_link(self, entry: LogEntry) -> str:
        if entry.action_flag != DELETION and entry.content_type_id and entry.object_id:
            try:
                url = reverse(
                    f"admin:{entry.content_type.app_label}_{entry.content_type.model}_history",
                    args=[entry.object_id],
                )
                return format_html('<a href="{}">{}</a>', url, entry.object_repr)
            except NoReverseMatch:
                pass
        return entry.object_repr

    @admin.display(description=_("Change"))
    def summary(self, entry: LogEntry) -> str:
        context = audit_context(entry)
        if context is None:
            return str(entry.get_change_message())
        parts = [context.django_message or (gettext("Deleted.") if entry.is_deletion() else "")]
        parts.extend(describe_change(change) for change in context.changes)
        parts.append(context.note)
        # One line each: Django's sentence, every field's old → new, the note.
        return format_html_join(mark_safe("<br>"), "{}", [(part,) for part in parts if part])

    @admin.display(description=_("From where"))
    def where(self, entry: LogEntry) -> str:
        context = audit_context(entry)
        if context is None:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "{}",
            [(part,) for part in (context.source_label, context.ip, context.detail) if part],
        )


class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    pass


class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, AuditedGroupAdmin)

# django-q2's task pages with the resubmit action for administrators only (imported for effect).
from console import queue_admin  # noqa: E402, F401
from console.jobs import admin as jobs_admin  # noqa: E402,F401  (registers the job pages)
