"""The chatbot panel of the dashboard: how many replies wait for a push, and which failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count
from django.urls import reverse
from django.utils.translation import gettext as _, ngettext

from chatbot.models import AutoReply, ReplySyncState
from console.dashboard import Panel, register_panel

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


@register_panel
def chatbot_panel(user: AbstractBaseUser) -> Panel | None:
    if not user.has_perm("chatbot.view_autoreply"):
        return None
    counts = dict(AutoReply.objects.values_list("sync_state").annotate(n=Count("id")).order_by())
    total = sum(counts.values())
    changed = counts.get(ReplySyncState.CHANGED, 0)
    failed = counts.get(ReplySyncState.FAILED, 0)
    url = reverse("admin:chatbot_autoreply_changelist")
    lines = [
        ngettext(
            "%(count)d auto-reply, %(in_sync)d in sync.",
            "%(count)d auto-replies, %(in_sync)d in sync.",
            total,
        )
        % {"count": total, "in_sync": counts.get(ReplySyncState.IN_SYNC, 0)}
    ]
    links = [(url, _("Auto-replies"))]
    status = "ok"
    if changed:
        status = "warning"
        lines.append(
            ngettext(
                "%(count)d changed and not pushed yet.",
                "%(count)d changed and not pushed yet.",
                changed,
            )
            % {"count": changed}
        )
        links.append((f"{url}?sync_state__exact=changed", _("Changed, not pushed")))
    if failed:
        status = "error"
        lines.append(
            ngettext("%(count)d push failed.", "%(count)d pushes failed.", failed)
            % {"count": failed}
        )
        links.append((f"{url}?sync_state__exact=failed", _("Failed pushes")))
    if not total:
        status = "info"
        lines = [_("No auto-replies yet: add one, or import a file.")]
    return Panel(title=_("Chatbot skills"), status=status, lines=lines, links=links, order=40)


@register_panel
def chatbot_live_panel(user: AbstractBaseUser) -> Panel | None:
    """Replies pushed to the bot's debug environment and not yet published to users."""
    from chatbot.publishing import bots_not_live_counts
    from wecom.models import ChatbotBot

    if not user.has_perm("chatbot.view_autoreply"):
        return None
    counts = bots_not_live_counts()
    if not counts:
        return None
    url = reverse("admin:chatbot_autoreply_changelist")
    publish_url = reverse("admin:chatbot_autoreply_publish")
    lines: list[str] = []
    links: list[tuple[str, str]] = []
    for bot in ChatbotBot.objects.filter(pk__in=counts).order_by("name"):
        count = counts[bot.pk]
        lines.append(
            ngettext(
                "%(bot)s: %(count)d reply pushed, not yet live.",
                "%(bot)s: %(count)d replies pushed, not yet live.",
                count,
            )
            % {"bot": bot.name, "count": count}
        )
        links.append((f"{url}?skill__bot__id__exact={bot.pk}&live_state=pushed", bot.name))
        if user.has_perm("chatbot.publish_bot"):
            links.append(
                (
                    f"{publish_url}?bot={bot.pk}",
                    _("Publish %(bot)s online") % {"bot": bot.name},
                )
            )
    return Panel(
        title=_("Chatbot: not yet live"), status="warning", lines=lines, links=links, order=41
    )
