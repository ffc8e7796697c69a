"""Admin for WeCom strategy tags: strategies (read-only), tag groups and tags.

Saving calls the services (which push to WeCom and audit); the auditor sees everything with
nothing editable. The tree page and drag-and-drop live in ``tagging/strategy/views.py``, the
pull page in ``tagging/strategy/pull_views.py``; their URLs hang under the strategy admin.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from console.admin import AuditedModelAdmin, ReadOnlyAdminMixin
from console.audit import Actor, AuditSource
from console.ids import object_pk
from console.service_admin import ServiceBackedAdmin, ServiceForm, refusal_text
from tagging.strategy import views as strategy_views
from tagging.strategy.forms import TagAddForm, TagChangeForm, TagGroupAddForm, TagGroupChangeForm
from tagging.strategy.jobs import interval_words, pull_interval_text
from tagging.strategy.models import (
    PULL_MINUTES_MAX,
    Strategy,
    StrategyPull,
    SyncState,
    Tag,
    TagGroup,
)
from tagging.strategy.pull_views import PullView
from tagging.strategy.services import (
    Choice,
    Outcome,
    conflict_resolve,
    items_delete,
    items_repush_failed,
    names_swap,
)
from wecom.clients.errors import PlatformError

DELETE_WARNING = _(
    "Deleting a tag in WeCom takes it off every customer who has it, and cannot be undone. "
    "Deleting a tag group deletes all its tags."
)

STATE_CLASSES = {
    SyncState.IN_SYNC: "ok",
    SyncState.PENDING: "pending",
    SyncState.FAILED: "failed",
    SyncState.CONFLICT: "conflict",
}


def sync_badge(item: Any) -> str:
    state = SyncState(item.sync_state)
    return format_html(
        '<span class="strategy-sync strategy-sync-{}" title="{}">{}</span>',
        STATE_CLASSES[state],
        item.sync_message,
        state.label,
    )


class SyncStateFilter(admin.SimpleListFilter):
    title = _("sync state")
    parameter_name = "sync_state__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(SyncState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(sync_state=self.value()) if self.value() else queryset


class AppFilter(admin.SimpleListFilter):
    """By WeCom app: choices from the small app table, not a DISTINCT over every tag."""

    title = _("WeCom app")
    parameter_name = "app__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, Any]]:
        from wecom.models import WeComApp

        return [(str(pk), name) for pk, name in WeComApp.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(app_id=self.value()) if self.value() else queryset


class StrategyFilter(admin.SimpleListFilter):
    title = _("strategy")
    parameter_name = "strategy"
    field_path = "strategy"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, Any]]:
        return [
            (str(pk), name)
            for pk, name in Strategy.objects.order_by("app_id", "wecom_id").values_list(
                "pk", "name"
            )
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        strategy_id = object_pk(self.value())
        if strategy_id is None:
            raise IncorrectLookupParameters
        return queryset.filter(**{f"{self.field_path}_id": strategy_id})


class TagStrategyFilter(StrategyFilter):
    field_path = "group__strategy"


class _AnnotatedColumns:
    """Columns read from what the list's queryset annotates (``app_label``, ``n_tags``): the
    app's name without loading the app (which decrypts its secret), counts without a query
    per row."""

    @admin.display(description=_("WeCom app"), ordering="app__name")
    def app_name(self, obj: Any) -> str:
        return obj.app_label

    @admin.display(description=_("tags"), ordering="n_tags")
    def tag_count(self, obj: Any) -> int:
        return obj.n_tags


class _ItemAdmin(ServiceBackedAdmin):
    """What tag groups and tags share: saving through services, audited there."""

    add_form: type
    change_form: type
    list_per_page = 100
    show_full_result_count = False

    class Media:
        css = {"all": ["tagging/strategy.css"]}

    change_form_template = "admin/tagging/strategy_item_change_form.html"
    delete_confirmation_template = "admin/tagging/strategy_delete_confirmation.html"
    delete_selected_confirmation_template = (
        "admin/tagging/strategy_delete_selected_confirmation.html"
    )

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if not self.has_change_permission(request, obj) and obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        kwargs["form"] = self.change_form if obj is not None else self.add_form
        kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is not None and not self.has_change_permission(request, obj):
            return ["name", "order", "sync_state", "sync_message", "wecom_id"]
        form = self.change_form if obj is not None else self.add_form
        return list(dict.fromkeys([*form._meta.fields, *form.declared_fields]))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is not None and not self.has_change_permission(request, obj):
            return self.get_fields(request, obj)
        return []

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            extra["strategy_item"] = obj
            extra["sync_badge"] = sync_badge(obj)
            extra["pending"] = pending_description(obj) if obj.has_pending else ""
            pull = StrategyPull.objects.filter(app_id=obj.app_id, ok=True).first()
            extra["last_sync"] = obj.last_sync(pull.pulled_at if pull else None)
            extra["tree_url"] = reverse("admin:tagging_strategy_tree", args=[obj.app_id])
        return super().change_view(request, object_id, form_url, extra)

    def _back_to_tree(self, request: HttpRequest, obj: Any, response: HttpResponse) -> HttpResponse:
        """Saved from the tree (its links carry ?tree, ?strategy or ?group): back to it."""
        came_from_tree = any(key in request.GET for key in ("tree", "strategy", "group"))
        staying = "_continue" in request.POST or "_addanother" in request.POST
        if not came_from_tree or staying or not isinstance(response, HttpResponseRedirect):
            return response
        strategy_id = obj.strategy_id if isinstance(obj, TagGroup) else obj.group.strategy_id
        kind = "group" if isinstance(obj, TagGroup) else "tag"
        # The item's group drawn open, whatever the size of the strategy.
        group_id = obj.pk if isinstance(obj, TagGroup) else obj.group_id
        url = reverse("admin:tagging_strategy_tree", args=[obj.app_id])
        return HttpResponseRedirect(f"{url}?strategy={strategy_id}&open={group_id}#{kind}-{obj.pk}")

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        return self._back_to_tree(
            request, obj, super().response_add(request, obj, post_url_continue)
        )

    def response_change(self, request: HttpRequest, obj: Any) -> Any:
        return self._back_to_tree(request, obj, super().response_change(request, obj))

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {key: value for key, value in request.GET.items() if key != "tree"}

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._delete(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._delete(request, list(queryset))

    def _delete(self, request: HttpRequest, items: list[Any]) -> None:
        outcome = items_delete(
            items=items, actor=Actor.from_request(request, source=AuditSource.ADMIN)
        )
        if outcome.failed:
            request._strategy_delete_failed = True  # type: ignore[attr-defined]
            self.message_user(request, deleted_sentence(outcome), messages.ERROR)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        if getattr(request, "_strategy_delete_failed", False):
            return HttpResponseRedirect(
                reverse(f"admin:tagging_{self.opts.model_name}_change", args=[obj_id])
            )
        return super().response_delete(request, obj_display, obj_id)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        return super().delete_view(
            request, object_id, {**(extra_context or {}), "wecom_warning": DELETE_WARNING}
        )

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        """A deleted item's history stays readable."""
        if self.get_object(request, object_id) is not None:
            return super().history_view(request, object_id, extra_context)
        if not self.has_view_permission(request):
            return super().history_view(request, object_id, extra_context)
        entries = (
            LogEntry.objects.filter(
                object_id=object_id,
                content_type=ContentType.objects.get_for_model(self.model),
            )
            .select_related("user")
            .order_by("action_time")
        )
        if not entries:
            return super().history_view(request, object_id, extra_context)
        paginator = self.get_paginator(request, entries, 100)
        page = paginator.get_page(request.GET.get(PAGE_VAR, 1))
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Change history: %(name)s (deleted)")
            % {"name": entries.last().object_repr},
            "subtitle": None,
            "action_list": page,
            "page_range": paginator.get_elided_page_range(page.number),
            "page_var": PAGE_VAR,
            "pagination_required": paginator.count > 100,
            "module_name": self.opts.verbose_name_plural,
            "object": None,
            "opts": self.opts,
            "preserved_filters": self.get_preserved_filters(request),
        }
        return TemplateResponse(request, "admin/tagging/strategy_deleted_history.html", context)

    # --- bulk actions, each with a confirmation page ---------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            for name in (
                "repush_failed",
                "conflict_take_wecom",
                "conflict_push_ours",
                "swap_names",
            ):
                actions.pop(name, None)
        return actions

    def _confirm(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        *,
        action: str,
        title: str,
        explanation: str,
        describe: Any,
    ) -> HttpResponse | None:
        if request.POST.get("confirm") == "yes":
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "explanation": explanation,
            "items": [(item, describe(item)) for item in queryset],
            "action": action,
            "opts": self.opts,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/tagging/strategy_confirm_action.html", context)

    @admin.action(description=_("Delete selected %(verbose_name_plural)s"), permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Django's confirmation page; then per item what WeCom did, never Django's count of
        what was asked."""
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        if not self.has_delete_permission(request):
            raise PermissionDenied
        outcome = items_delete(
            items=list(queryset), actor=Actor.from_request(request, source=AuditSource.LIST_ACTION)
        )
        self.message_user(
            request,
            deleted_sentence(outcome),
            messages.SUCCESS
            if outcome.ok
            else (messages.WARNING if outcome.done else messages.ERROR),
        )
        return None

    @admin.action(description=_("Re-push failed changes to WeCom"), permissions=["change"])
    def repush_failed(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        chosen = queryset.exclude(sync_state=SyncState.IN_SYNC)
        page = self._confirm(
            request,
            chosen,
            action="repush_failed",
            title=gettext("Re-push failed changes"),
            explanation=gettext(
                "These changes will be sent to WeCom again, one call each, in this order."
            ),
            describe=pending_description,
        )
        if page is not None:
            return page
        outcome = items_repush_failed(
            items=list(chosen), actor=Actor.from_request(request, source=AuditSource.LIST_ACTION)
        )
        self.message_user(
            request,
            ngettext(
                "%(count)d change reached WeCom.", "%(count)d changes reached WeCom.", outcome.done
            )
            % {"count": outcome.done},
            messages.SUCCESS if outcome.ok else messages.WARNING,
        )
        for message in outcome.messages:
            self.message_user(request, message, messages.ERROR)
        return None

    def _resolve(
        self, request: HttpRequest, queryset: QuerySet, choice: Choice, action: str
    ) -> HttpResponse | None:
        chosen = queryset.filter(sync_state=SyncState.CONFLICT)
        if not chosen.exists():
            # Not a confirmation page listing nothing.
            self.message_user(
                request,
                gettext("None of the selected items is in conflict: nothing was changed."),
                messages.WARNING,
            )
            return None
        if choice is Choice.WECOM:
            title = gettext("Take WeCom's values")
            explanation = gettext(
                "The local changes below are dropped; the console keeps what WeCom has."
            )
        else:
            title = gettext("Push the console's values")
            explanation = gettext(
                "The local changes below are sent to WeCom and replace what was changed there."
            )
        page = self._confirm(
            request,
            chosen,
            action=action,
            title=title,
            explanation=explanation,
            describe=lambda item: f"{item.sync_message} — {pending_description(item)}",
        )
        if page is not None:
            return page
        actor = Actor.from_request(request, source=AuditSource.LIST_ACTION)
        done = 0
        for item in chosen:
            try:
                outcome = conflict_resolve(item=item, choice=choice, actor=actor)
            except (PlatformError, ValidationError) as error:
                self.message_user(request, refusal_text(error), messages.ERROR)
                continue
            done += outcome.done
            for message in outcome.messages:
                self.message_user(request, message, messages.ERROR)
        if done and choice is Choice.WECOM:
            self.message_user(
                request,
                ngettext(
                    "%(count)d conflict settled: the console keeps WeCom's values.",
                    "%(count)d conflicts settled: the console keeps WeCom's values.",
                    done,
                )
                % {"count": done},
                messages.SUCCESS,
            )
        elif done:
            self.message_user(
                request,
                ngettext(
                    "%(count)d conflict settled: WeCom now has the console's values.",
                    "%(count)d conflicts settled: WeCom now has the console's values.",
                    done,
                )
                % {"count": done},
                messages.SUCCESS,
            )
        return None

    @admin.action(description=_("Swap the names of the two selected"), permissions=["change"])
    def swap_names(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        chosen = list(queryset[:3])
        parent = "group_id" if self.model is Tag else "strategy_id"
        if len(chosen) != 2 or getattr(chosen[0], parent) != getattr(chosen[1], parent):
            self.message_user(
                request,
                gettext("Select exactly two items of the same group (or strategy) to swap."),
                messages.WARNING,
            )
            return None
        first, second = chosen
        page = self._confirm(
            request,
            queryset,
            action="swap_names",
            title=gettext("Swap names"),
            explanation=gettext(
                "WeCom refuses two siblings of one name, so the swap takes three calls through a "
                "temporary name; if one fails, the calls made are undone."
            ),
            describe=lambda item: (
                gettext("will be named “%(name)s”")
                % {"name": (second if item.pk == first.pk else first).name}
            ),
        )
        if page is not None:
            return page
        try:
            names_swap(
                first=first,
                second=second,
                actor=Actor.from_request(request, source=AuditSource.LIST_ACTION),
            )
        except ValidationError as error:
            self.message_user(request, refusal_text(error), messages.ERROR)
            return None
        self.message_user(request, gettext("Names swapped."), messages.SUCCESS)
        return None

    @admin.action(description=_("Conflicts: take WeCom's values"), permissions=["change"])
    def conflict_take_wecom(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._resolve(request, queryset, Choice.WECOM, "conflict_take_wecom")

    @admin.action(description=_("Conflicts: push the console's values"), permissions=["change"])
    def conflict_push_ours(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._resolve(request, queryset, Choice.OURS, "conflict_push_ours")

    @admin.display(description=_("sync state"), ordering="sync_state")
    def sync(self, item: Any) -> str:
        if item.sync_state == SyncState.IN_SYNC:
            return sync_badge(item)
        # What needs a person, readable in the list: why, and the change that waits.
        details = [item.sync_message, pending_description(item) if item.has_pending else ""]
        return format_html(
            '{} <span class="strategy-message">{}</span>',
            sync_badge(item),
            gettext("; ").join(detail for detail in details if detail),
        )

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Any) -> str:
        """Django's checkbox, written out: rendering a widget template for each of 100 rows
        was a fifth of the list's time."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            admin.helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html(gettext("Select this object for an action - {}"), obj.name),
        )


def deleted_sentence(outcome: Outcome) -> str:
    """What a delete did, per item: “2 deleted, 1 refused by WeCom: …”."""
    if not outcome.failed:
        return ngettext(
            "%(count)d deleted in WeCom and here.",
            "%(count)d deleted in WeCom and here.",
            outcome.done,
        ) % {"count": outcome.done}
    return gettext("%(deleted)s, %(refused)s: %(reasons)s") % {
        "deleted": ngettext("%(count)d deleted", "%(count)d deleted", outcome.done)
        % {"count": outcome.done},
        "refused": ngettext(
            "%(count)d refused by WeCom", "%(count)d refused by WeCom", outcome.failed
        )
        % {"count": outcome.failed},
        "reasons": " ".join(outcome.messages),
    }


def pending_description(item: Any) -> str:
    parts = []
    if item.pending_delete:
        parts.append(gettext("delete in WeCom"))
    if item.pending_name:
        parts.append(
            gettext("name “%(old)s” → “%(new)s”") % {"old": item.name, "new": item.pending_name}
        )
    if item.pending_order is not None:
        parts.append(
            gettext("order %(old)s → %(new)s") % {"old": item.order, "new": item.pending_order}
        )
    return gettext("; ").join(parts) or gettext("nothing pending")


@admin.register(Strategy)
class StrategyAdmin(ReadOnlyAdminMixin, _AnnotatedColumns, AuditedModelAdmin):
    """Strategies are managed in WeCom: read-only here, filled by pulls."""

    list_display = ("name", "app_name", "wecom_id", "parent", "level", "group_count", "tag_count",
                    "last_synced_at")  # fmt: skip
    list_filter = (AppFilter,)
    search_fields = ("name",)
    list_select_related = ("parent",)
    change_list_template = "admin/tagging/strategy/change_list.html"
    actions = ["pull_from_wecom"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_groups=Count("groups", distinct=True),
                n_tags=Count("groups__tags", distinct=True),
                app_label=F("app__name"),
            )
        )

    def has_pull_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tagging.change_tag")

    @admin.display(description=_("level"))
    def level(self, strategy: Strategy) -> str:
        if strategy.is_corporate:
            return gettext("corporate tags")
        return gettext("first level") if strategy.is_first_level else gettext("child")

    @admin.display(description=_("tag groups"), ordering="n_groups")
    def group_count(self, strategy: Strategy) -> int:
        return strategy.n_groups  # type: ignore[attr-defined]

    @admin.action(description=_("Pull from WeCom"), permissions=["pull"])
    def pull_from_wecom(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        app_ids = sorted(set(queryset.values_list("app_id", flat=True)))
        return HttpResponseRedirect(reverse("admin:tagging_strategy_pull", args=[app_ids[0]]))

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        from wecom.models import WeComApp

        extra = {
            **(extra_context or {}),
            "wecom_apps": list(WeComApp.objects.only("pk", "name")),
            "can_pull": self.has_pull_permission(request),
        }
        return super().changelist_view(request, extra)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "tree/<str:app_id>/",
                wrap(strategy_views.StrategyTreeView.as_view(model_admin=self)),
                name="tagging_strategy_tree",
            ),
            path(
                "tree/<str:app_id>/changes/",
                wrap(strategy_views.changes_view),
                name="tagging_strategy_changes",
            ),
            path(
                "tree/<str:app_id>/move/",
                wrap(strategy_views.move_view),
                name="tagging_strategy_move",
            ),
            path(
                "tree/<str:app_id>/groups/<str:group_id>/tags/",
                wrap(strategy_views.group_tags_view),
                name="tagging_strategy_group_tags",
            ),
            path(
                "pull/<str:app_id>/",
                wrap(PullView.as_view(model_admin=self)),
                name="tagging_strategy_pull",
            ),
            *super().get_urls(),
        ]


@admin.register(TagGroup)
class TagGroupAdmin(_AnnotatedColumns, _ItemAdmin):
    add_form = TagGroupAddForm
    change_form = TagGroupChangeForm
    list_display = ("name", "strategy", "app_name", "order", "tag_count", "sync")
    list_filter = (AppFilter, StrategyFilter, SyncStateFilter)
    search_fields = ("name", "strategy__name")
    list_select_related = ("strategy",)
    ordering = ("app", "strategy__wecom_id", "-order", "pk")
    actions = [
        "delete_selected",
        "repush_failed",
        "swap_names",
        "conflict_take_wecom",
        "conflict_push_ours",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super().get_queryset(request).annotate(n_tags=Count("tags"), app_label=F("app__name"))
        )


@admin.register(Tag)
class TagAdmin(_ItemAdmin):
    add_form = TagAddForm
    change_form = TagChangeForm
    # Few columns: a changelist of 100 rows is mostly cell rendering. The app is a filter, the
    # last sync on the change page. The group and strategy are shown by name (annotations), so
    # a row is one Tag of a few fields, not a Tag, a TagGroup and a Strategy.
    list_display = ("name", "group_name", "strategy_name", "order", "sync")
    list_filter = (AppFilter, TagStrategyFilter, SyncStateFilter)
    search_fields = ("name", "group__name", "group__strategy__name")
    # Not "app": loading a WeComApp decrypts its secret, for every row.
    list_select_related = False
    # Group by group, each in WeCom's order: an index walk, where ordering by the groups' own
    # order would sort all 10,000 joined rows for every page.
    ordering = ("group_id", "-order", "pk")
    actions = [
        "delete_selected",
        "repush_failed",
        "swap_names",
        "conflict_take_wecom",
        "conflict_push_ours",
    ]
    # What the list's cells read; the rest of a row is not loaded for the page.
    list_fields = ("pk", "name", "order", "sync_state", "sync_message", "group_id", "app_id",
                   "pending_name", "pending_order", "pending_delete")  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(group_label=F("group__name"), strategy_label=F("group__strategy__name"))
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type:
        return TagChangeList

    @admin.display(description=_("tag group"), ordering="group__name")
    def group_name(self, tag: Tag) -> str:
        return tag.group_label  # type: ignore[attr-defined]

    @admin.display(description=_("strategy"), ordering="group__strategy__name")
    def strategy_name(self, tag: Tag) -> str:
        return tag.strategy_label  # type: ignore[attr-defined]


class TagChangeList(ChangeList):
    """The tag list, reading only the columns its cells show when it is only shown (a GET);
    actions (a POST) get whole rows, since their confirmation pages read pending changes."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        if request.method == "GET":
            queryset = queryset.only(*TagAdmin.list_fields)
        return queryset


class StrategyPullForm(ServiceForm, forms.ModelForm):
    class Meta:
        model = StrategyPull
        fields = ["every_minutes"]
        widgets = {"every_minutes": forms.NumberInput(attrs={"min": 0, "max": PULL_MINUTES_MAX})}

    def push(self, cleaned: dict[str, Any]) -> StrategyPull:
        from tagging.strategy.jobs import strategy_pull_interval_set

        return strategy_pull_interval_set(
            pull=self.instance,
            every_minutes=cleaned.get("every_minutes"),
            actor=self.actor(),
            expected_version=cleaned.get("expected_version"),
        )

    def _post_clean(self) -> None:
        # The service saves; the model form must not change the row before it.
        pass


@admin.register(StrategyPull)
class StrategyPullAdmin(_AnnotatedColumns, ServiceBackedAdmin):
    """Per WeCom app: the last pull and how often the schedule pulls (one row per app, made
    with the app). Editors change the interval; the service audits it and moves the schedule."""

    form = StrategyPullForm
    list_display = ("app_name", "pulled_at", "ok", "message", "interval", "next_run")
    list_display_links = ("app_name",)
    readonly_fields = ("app_name", "pulled_at", "ok", "message", "next_run")
    fields = (
        "app_name",
        "every_minutes",
        "next_run",
        "pulled_at",
        "ok",
        "message",
        "expected_version",
    )
    ordering = ("app__name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The app's name only: loading a WeComApp decrypts its secret.
        return super().get_queryset(request).annotate(app_label=F("app__name"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Only with its app: whoever may delete the app deletes this row with it (the admin
        # asks every registered model of the cascade); never on its own.
        return request.user.has_perm("wecom.delete_wecomapp")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        raise PermissionDenied

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "show_delete": False}
        return super().change_view(request, object_id, form_url, extra)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        field = form_class.base_fields.get("every_minutes")
        if field is not None:
            field.help_text = gettext(
                "Minutes between two automatic pulls of this app's strategy tags from WeCom, "
                "from 0 to %(max)d. Empty: the console's default (%(default)s). "
                "0: no automatic pull; “Pull from WeCom” still works."
            ) % {
                "max": PULL_MINUTES_MAX,
                "default": interval_words(StrategyPull(every_minutes=None).effective_minutes),
            }
        return form_class

    @admin.display(description=_("automatic pull"))
    def interval(self, pull: StrategyPull) -> str:
        return pull_interval_text(pull)

    @admin.display(description=_("next automatic pull"))
    def next_run(self, pull: StrategyPull) -> Any:
        from tagging.strategy.jobs import strategy_pull_next_run

        when = strategy_pull_next_run(pull.app_id)
        return date_format(timezone.localtime(when), "DATETIME_FORMAT") if when else "—"
