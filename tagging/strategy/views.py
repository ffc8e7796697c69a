"""Pages of the strategy tag admin beyond the lists: the tree and drag-and-drop.

Views only arrange: reads come from the selectors below, changes from the services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views import View
from django.views.decorators.http import require_POST

from console.audit import Actor, AuditSource
from console.ids import object_pk, object_pk_or_404
from tagging.strategy.callbacks import callback_last_applied
from tagging.strategy.jobs import pull_interval_text
from tagging.strategy.models import Strategy, StrategyPull, SyncState, Tag, TagGroup
from tagging.strategy.services import Outcome, tag_groups_reorder, tags_reorder
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp

SEARCH_LIMIT = 100
# What a tag chip of the tree shows (tagging/templatetags/strategy_tree.py).
TAG_CHIP_FIELDS = (
    "pk", "name", "order", "pending_name", "pending_delete", "sync_state", "sync_message",
    "group_id",
)  # fmt: skip


# --- selectors ---------------------------------------------------------------------------------


@dataclass
class GroupNode:
    group: TagGroup
    # Named rows of TAG_CHIP_FIELDS, read like tags.
    tags: list[Any] = field(default_factory=list)


@dataclass
class StrategyTree:
    app: WeComApp
    strategies: list[Strategy]
    selected: Strategy | None
    groups: list[GroupNode]
    children: dict[int, list[Strategy]]


def strategy_tree(app: WeComApp, *, strategy_id: int | None) -> StrategyTree:
    """The app's strategies with counts, and one strategy's groups and tags: three queries,
    whatever the number of tags."""
    strategies = list(Strategy.objects.filter(app=app).order_by("wecom_id"))
    # Counts per strategy by two grouped queries over the app's rows, not joins per strategy.
    group_counts = dict(
        TagGroup.objects.filter(app=app)
        .order_by()
        .values_list("strategy_id")
        .annotate(n=Count("pk"))
    )
    tag_counts = {
        strategy_id: (n, attention)
        for strategy_id, n, attention in Tag.objects.filter(app=app)
        .order_by()
        .values_list("group__strategy_id")
        .annotate(n=Count("pk"), attention=Count("pk", filter=~Q(sync_state=SyncState.IN_SYNC)))
    }
    for strategy in strategies:
        strategy.n_groups = group_counts.get(strategy.pk, 0)  # type: ignore[attr-defined]
        strategy.n_tags, strategy.n_attention = tag_counts.get(strategy.pk, (0, 0))  # type: ignore[attr-defined]
    selected = next((s for s in strategies if s.pk == strategy_id), None)
    if selected is None:
        selected = next(
            (s for s in strategies if s.n_groups), strategies[0] if strategies else None
        )  # type: ignore[attr-defined]
    children: dict[int, list[Strategy]] = {}
    for strategy in strategies:
        if strategy.parent_id:
            children.setdefault(strategy.parent_id, []).append(strategy)
    nodes: list[GroupNode] = []
    if selected is not None:
        groups = list(TagGroup.objects.filter(strategy=selected).select_related("updated_by"))
        by_pk = {group.pk: GroupNode(group=group) for group in groups}
        # Rows, not models: the chips only read these, and 500 Tag instances (with their
        # dates parsed) were a good part of the page's time.
        for tag in (
            Tag.objects.filter(group__strategy=selected)
            .order_by("-order", "pk")
            .values_list(*TAG_CHIP_FIELDS, named=True)
        ):
            by_pk[tag.group_id].tags.append(tag)
        nodes = [by_pk[group.pk] for group in groups]
    return StrategyTree(
        app=app, strategies=strategies, selected=selected, groups=nodes, children=children
    )


def strategy_search(app: WeComApp, query: str) -> dict[str, list[Any]]:
    """Names containing ``query`` at every level of the app's tree."""
    return {
        "strategies": list(Strategy.objects.filter(app=app, name__icontains=query)[:SEARCH_LIMIT]),
        "groups": list(
            TagGroup.objects.filter(app=app, name__icontains=query).select_related("strategy")[
                :SEARCH_LIMIT
            ]
        ),
        "tags": list(
            Tag.objects.filter(app=app, name__icontains=query).select_related("group__strategy")[
                :SEARCH_LIMIT
            ]
        ),
    }


# --- the tree ----------------------------------------------------------------------------------


def _can_edit(request: HttpRequest) -> bool:
    return request.user.has_perm("tagging.change_tag") and request.user.has_perm(
        "tagging.change_taggroup"
    )


class StrategyTreeView(View):
    model_admin: Any = None

    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        if not request.user.has_perm("tagging.view_tag"):
            raise PermissionDenied
        app = get_object_or_404(WeComApp, pk=object_pk_or_404(app_id))
        # A hand-edited ?strategy= that is not an id shows the first strategy, not an error.
        tree = strategy_tree(app, strategy_id=object_pk(request.GET.get("strategy", "")))
        query = request.GET.get("q", "").strip()
        can_edit = _can_edit(request)
        pull = StrategyPull.objects.filter(app=app).first()
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": Strategy._meta,
            "title": gettext("Strategy tags of %(app)s") % {"app": app.name},
            "tree": tree,
            "apps": WeComApp.objects.only("pk", "name"),
            "query": query,
            "results": strategy_search(app, query) if query else None,
            "can_edit": can_edit,
            "can_pull": can_edit,
            "pull": pull,
            "pull_interval": pull_interval_text(pull) if pull else "",
            "can_change_interval": request.user.has_perm("tagging.change_strategypull"),
            "move_url": reverse("admin:tagging_strategy_move", args=[app.pk]),
            "tag_base": reverse("admin:tagging_tag_changelist"),
            "group_base": reverse("admin:tagging_taggroup_changelist"),
            "changes_url": reverse("admin:tagging_strategy_changes", args=[app.pk]),
            "changes_since": callback_last_applied(app),
            "changes_poll_ms": int(getattr(settings, "STRATEGY_TREE_POLL_SECONDS", 5) * 1000),
        }
        return TemplateResponse(request, "admin/tagging/strategy/tree.html", context)


def changes_view(request: HttpRequest, app_id: str) -> JsonResponse:
    """What an open tree page polls: has a WeCom callback been applied since it was drawn?"""
    if not request.user.has_perm("tagging.view_tag"):
        raise PermissionDenied
    app = get_object_or_404(WeComApp, pk=object_pk_or_404(app_id))
    since = object_pk(request.GET.get("since", "")) or 0
    last = callback_last_applied(app)
    return JsonResponse({"changed": last > since, "last": last})


@require_POST
def move_view(request: HttpRequest, app_id: str) -> JsonResponse:
    """Drag-and-drop: the list's new order (ids top first); one edit call when one item moved."""
    if not _can_edit(request):
        return JsonResponse(
            {"ok": False, "message": gettext("You may not change tags.")}, status=403
        )
    kind = request.POST.get("kind")
    app_pk = object_pk_or_404(app_id)
    parent_id = object_pk(request.POST.get("parent", ""))
    ids = [object_pk(value) for value in request.POST.get("ids", "").split(",") if value]
    try:
        shown = _shown_orders(request.POST.get("shown"))
    except ValueError:
        shown = None
        parent_id = None
    if parent_id is None or None in ids:
        return JsonResponse(
            {"ok": False, "message": gettext("The request was not understood.")}, status=400
        )
    actor = Actor.from_request(request, source=AuditSource.TREE)
    if kind == "tag":
        parent: Any = get_object_or_404(TagGroup, pk=parent_id, app_id=app_pk)
        items: Any = Tag.objects.filter(group=parent)
    elif kind == "group":
        parent = get_object_or_404(Strategy, pk=parent_id, app_id=app_pk)
        items = TagGroup.objects.filter(strategy=parent)
    else:
        return JsonResponse(
            {"ok": False, "message": gettext("The request was not understood.")}, status=400
        )
    try:
        if kind == "tag":
            outcome = tags_reorder(group=parent, tag_ids=ids, actor=actor, shown=shown)
        else:
            outcome = tag_groups_reorder(strategy=parent, group_ids=ids, actor=actor, shown=shown)
    except ValidationError as error:
        outcome = Outcome(failed=1, messages=[" ".join(error.messages)])
    except PlatformError as error:
        outcome = Outcome(failed=1, messages=[error.explanation])
    # Every answer carries the true order, so the page never keeps a move that did not happen.
    rows = list(items.order_by("-order", "pk").values_list("pk", "order", "sync_state"))
    message = (
        ngettext(
            "Order saved in WeCom (%(count)d call).",
            "Order saved in WeCom (%(count)d calls).",
            outcome.done,
        )
        % {"count": outcome.done}
        if outcome.ok
        else " ".join(outcome.messages)
    )
    return JsonResponse(
        {
            "ok": outcome.ok,
            "message": message,
            "order": [pk for pk, _order, _state in rows],
            "orders": {str(pk): order for pk, order, _state in rows},
            "states": {str(pk): str(SyncState(state).label) for pk, _order, state in rows},
        }
    )


def _shown_orders(raw: str | None) -> dict[int, int] | None:
    """The orders the page showed, "pk:order,pk:order"; None from a page that sends none."""
    if raw is None:
        return None
    shown = {}
    for pair in raw.split(","):
        if pair:
            raw_pk, raw_order = pair.split(":")
            pk, order = object_pk(raw_pk), int(raw_order)
            if pk is None:
                raise ValueError(raw_pk)
            shown[pk] = order
    return shown
