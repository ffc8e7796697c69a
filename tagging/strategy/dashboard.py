"""The strategy tags panel of the dashboard: per app, the last pull and what waits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _, ngettext

from console.dashboard import Panel, register_panel
from tagging.strategy.models import StrategyPull, SyncState, Tag, TagGroup
from wecom.models import WeComApp

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def sync_counts() -> dict[tuple[int, str], int]:
    """(app id, sync state) → groups plus tags in that state, in two queries."""
    counts: dict[tuple[int, str], int] = {}
    for model in (TagGroup, Tag):
        rows = (
            model.objects.exclude(sync_state=SyncState.IN_SYNC)
            .values_list("app_id", "sync_state")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for app_id, state, n in rows:
            counts[(app_id, state)] = counts.get((app_id, state), 0) + n
    return counts


@register_panel
def strategy_tags_panel(user: AbstractBaseUser) -> Panel | None:
    if not user.has_perm("tagging.view_tag"):
        return None
    # A row exists for every app (its pull settings); pulled_at says whether it was pulled.
    pulls = {pull.app_id: pull for pull in StrategyPull.objects.filter(pulled_at__isnull=False)}
    # Apps are named once their tags are in the console; a credential nobody pulled yet stays
    # the credential admin's business (the dashboard shows no credential names to editors).
    apps = list(WeComApp.objects.filter(pk__in=list(pulls)).only("pk", "name"))
    never_pulled = WeComApp.objects.exclude(pk__in=list(pulls)).count()
    counts = sync_counts()
    tags_url = reverse("admin:tagging_tag_changelist")
    lines: list[str] = []
    links: list[tuple[str, str]] = []
    status = "ok"
    for app in apps:
        pull = pulls[app.pk]
        if pull.pulled_at is None:
            last = _("never pulled")
            status = "warning" if status == "ok" else status
        else:
            last = date_format(timezone.localtime(pull.pulled_at), "DATETIME_FORMAT")
            if pull.ok is False:
                status = "error"
                last = _("%(when)s, failed: %(reason)s") % {"when": last, "reason": pull.message}
        pending = counts.get((app.pk, SyncState.PENDING), 0)
        failed = counts.get((app.pk, SyncState.FAILED), 0)
        conflicts = counts.get((app.pk, SyncState.CONFLICT), 0)
        if failed or conflicts:
            status = "error" if failed else ("warning" if status == "ok" else status)
        lines.append(
            _(
                "%(app)s: last pull %(last)s; pending: %(pending)d, failed: %(failed)d, "
                "conflicts: %(conflicts)d"
            )
            % {
                "app": app.name,
                "last": last,
                "pending": pending,
                "failed": failed,
                "conflicts": conflicts,
            }
        )
        for state, label, n in (
            (SyncState.PENDING, _("pending"), pending),
            (SyncState.FAILED, _("failed"), failed),
            (SyncState.CONFLICT, _("conflicts"), conflicts),
        ):
            if n:
                links.append(
                    (
                        f"{tags_url}?app__id__exact={app.pk}&sync_state__exact={state}",
                        f"{app.name} · {label} ({n})",
                    )
                )
        tree_label = _("Tag tree")
        links.append(
            (reverse("admin:tagging_strategy_tree", args=[app.pk]), f"{app.name} · {tree_label}")
        )
    if never_pulled:
        lines.append(
            ngettext(
                "%(count)d WeCom app was never pulled: use “Pull from WeCom” on the strategies.",
                "%(count)d WeCom apps were never pulled: use “Pull from WeCom” on the strategies.",
                never_pulled,
            )
            % {"count": never_pulled}
        )
        links.append((reverse("admin:tagging_strategy_changelist"), _("Strategies")))
        status = "warning" if status == "ok" else status
    if not apps and not never_pulled:
        lines.append(_("No WeCom app yet: a credential admin adds one, then pull its tags."))
        status = "warning"
    return Panel(title=_("WeCom strategy tags"), status=status, lines=lines, links=links, order=40)
