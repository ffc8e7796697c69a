"""Pages of the strategy tag admin beyond the lists: the tree and drag-and-drop.

Views only arrange: reads come from ``selectors.py``, changes from the services.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views import View
from django.views.decorators.http import require_GET, require_POST

from console.audit import Actor, AuditSource
from console.ids import object_pk, object_pk_or_404
from tagging.strategy.callbacks import callback_last_applied
from tagging.strategy.jobs import pull_interval_text
from tagging.strategy.models import Strategy, SyncState, TagGroup
from tagging.strategy.respacing import RespacingStarted, respacing_refuse_if_running
from tagging.strategy.selectors import app_pull, group_tags, list_orders, strategy_tree
from tagging.strategy.services import Outcome, tag_groups_reorder, tags_reorder
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp

# Names are at most 64 characters: a longer search finds nothing, and is not sent as such.
QUERY_MAX = 64
# Groups a page may ask to keep open when it refreshes its tree.
KEEP_OPEN_MAX = 500


# --- the tree ----------------------------------------------------------------------------------


def _can_edit(request: HttpRequest) -> bool:
    return request.user.has_perm("tagging.change_tag") and request.user.has_perm(
        "tagging.change_taggroup"
    )


def _query(request: HttpRequest) -> str:
    return request.GET.get("q", "").strip()[:QUERY_MAX]


def _keep_open(raw: str) -> set[int]:
    """The groups an open page shows open, "pk,pk,…"; what is not an id is left out."""
    ids = (object_pk(value) for value in raw.split(",")[:KEEP_OPEN_MAX])
    return {pk for pk in ids if pk is not None}


class StrategyTreeView(View):
    """The tree of one app; with ``partial``, only its strategies and groups (what the page's
    script swaps in for a search, another strategy or a refresh)."""

    model_admin: Any = None

    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        if not request.user.has_perm("tagging.view_tag"):
            raise PermissionDenied
        app = get_object_or_404(WeComApp, pk=object_pk_or_404(app_id))
        query = _query(request)
        tree = strategy_tree(
            app,
            # A hand-edited ?strategy= that is not an id shows the first strategy, not an error.
            strategy_id=object_pk(request.GET.get("strategy", "")),
            query=query,
            keep_open=_keep_open(request.GET.get("open", "")),
        )
        context: dict[str, Any] = {
            "tree": tree,
            "query": query,
            "can_edit": _can_edit(request),
            "can_follow_jobs": request.user.has_perm("console.view_job"),
            "tree_url": reverse("admin:tagging_strategy_tree", args=[app.pk]),
            "move_url": reverse("admin:tagging_strategy_move", args=[app.pk]),
            # The tags of group 0: the page's script puts the group it opens in its place.
            "tags_url": reverse("admin:tagging_strategy_group_tags", args=[app.pk, 0]),
            "tag_base": reverse("admin:tagging_tag_changelist"),
            "group_base": reverse("admin:tagging_taggroup_changelist"),
        }
        if request.GET.get("partial"):
            return TemplateResponse(request, "admin/tagging/strategy/tree_body.html", context)
        pull = app_pull(app)
        context |= {
            **self.model_admin.admin_site.each_context(request),
            "opts": Strategy._meta,
            "title": gettext("Strategy tags of %(app)s") % {"app": app.name},
            "apps": WeComApp.objects.only("pk", "name"),
            "can_pull": context["can_edit"],
            "pull": pull,
            "pull_interval": pull_interval_text(pull) if pull else "",
            "can_change_interval": request.user.has_perm("tagging.change_strategypull"),
            "changes_url": reverse("admin:tagging_strategy_changes", args=[app.pk]),
            "changes_since": callback_last_applied(app),
            "changes_poll_ms": int(getattr(settings, "STRATEGY_TREE_POLL_SECONDS", 5) * 1000),
        }
        return TemplateResponse(request, "admin/tagging/strategy/tree.html", context)


@require_GET
def group_tags_view(request: HttpRequest, app_id: str, group_id: str) -> HttpResponse:
    """The tags of one group, drawn when the page opens it; with ``q``, only those matching."""
    if not request.user.has_perm("tagging.view_tag"):
        raise PermissionDenied
    group = get_object_or_404(
        TagGroup, pk=object_pk_or_404(group_id), app_id=object_pk_or_404(app_id)
    )
    query = _query(request)
    context = {
        "group": group,
        "tags": group_tags(group, query=query),
        "whole": not query,
        "can_edit": _can_edit(request),
        "tag_base": reverse("admin:tagging_tag_changelist"),
        "group_base": reverse("admin:tagging_taggroup_changelist"),
    }
    return TemplateResponse(request, "admin/tagging/strategy/tree_group_body.html", context)


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
    elif kind == "group":
        parent = get_object_or_404(Strategy, pk=parent_id, app_id=app_pk)
    else:
        return JsonResponse(
            {"ok": False, "message": gettext("The request was not understood.")}, status=400
        )
    try:
        respacing_refuse_if_running(parent=parent)
        if kind == "tag":
            outcome = tags_reorder(group=parent, tag_ids=ids, actor=actor, shown=shown)
        else:
            outcome = tag_groups_reorder(strategy=parent, group_ids=ids, actor=actor, shown=shown)
    except ValidationError as error:
        outcome = Outcome(failed=1, messages=[" ".join(error.messages)])
    except PlatformError as error:
        outcome = Outcome(failed=1, messages=[error.explanation])
    # Every answer carries the true order, so the page never keeps a move that did not happen.
    rows = list_orders(parent)
    if isinstance(outcome, RespacingStarted) or not outcome.ok:
        message = " ".join(outcome.messages)
    else:
        message = ngettext(
            "Order saved in WeCom (%(count)d call).",
            "Order saved in WeCom (%(count)d calls).",
            outcome.done,
        ) % {"count": outcome.done}
    answer: dict[str, Any] = {
        "ok": outcome.ok,
        "message": message,
        "order": [pk for pk, _order, _state in rows],
        "orders": {str(pk): order for pk, order, _state in rows},
        "states": {str(pk): str(SyncState(state).label) for pk, _order, state in rows},
    }
    if isinstance(outcome, RespacingStarted) and outcome.job is not None:
        # The page redraws the list: its items pending, the job's bar following it.
        answer["job"] = outcome.job.pk
    return JsonResponse(answer)


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
