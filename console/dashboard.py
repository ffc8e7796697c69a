"""The admin index as a dashboard: a few panels, each from a read-only selector.

Apps add panels with :func:`register_panel`; a panel function returns ``None`` when the user may
not see it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _, ngettext

from console.roles import ROLES

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)


@dataclass
class PanelBar:
    """A live progress bar on a panel: a job's title linked to its page, and its percentage."""

    label: str
    url: str
    percent: int
    progress_url: str
    status: str
    sentence: str = ""


@dataclass
class Panel:
    title: str
    status: str = "info"  # "ok", "warning", "error" or "info"
    lines: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    order: int = 100
    bars: list[PanelBar] = field(default_factory=list)


PanelFunction = Callable[["AbstractBaseUser"], Panel | None]
_PANELS: list[PanelFunction] = []


def register_panel(function: PanelFunction) -> PanelFunction:
    if function not in _PANELS:
        _PANELS.append(function)
    return function


def dashboard_panels(user: AbstractBaseUser) -> list[Panel]:
    panels = []
    for function in _PANELS:
        try:
            panel = function(user)
        except Exception:
            # A broken panel must not take the whole admin index down with it.
            logger.exception("dashboard panel %s failed", function.__name__)
            panel = Panel(
                title=_("Dashboard"),
                status="error",
                lines=[_("Part of the dashboard could not be loaded.")],
            )
        if panel is not None:
            panels.append(panel)
    return sorted(panels, key=lambda panel: panel.order)


@register_panel
def roles_panel(user: AbstractBaseUser) -> Panel:
    names = set(user.groups.values_list("name", flat=True))
    mine = [role for role in ROLES if role.group_name in names]
    if user.is_superuser:
        lines = [_("You are a superuser: you can see and change everything.")]
    elif mine:
        lines = [
            _("%(role)s: %(description)s") % {"role": role.label, "description": role.description}
            for role in mine
        ]
    else:
        lines = [_("You have no role yet. Ask an administrator to give you one.")]
    return Panel(title=_("Your role"), lines=lines, order=10)


@register_panel
def worker_panel(user: AbstractBaseUser) -> Panel:
    from django_q.brokers import get_broker
    from django_q.models import Failure
    from django_q.status import Stat

    from console.jobs.supervisor import worker_health

    broker = get_broker()
    clusters = Stat.get_all(broker=broker)
    queued = broker.queue_size()
    lines = []
    health = worker_health()
    if health.state == "stuck":
        status = "error"
        lines.append(
            _(
                "The background worker is stuck: no task has run for %(minutes)d minutes while "
                "work waits. It is being restarted."
            )
            % {"minutes": max(1, int((health.seconds_idle or 0) // 60))}
        )
    elif health.state == "absent" and settings.HEALTHZ_REQUIRES_WORKER:
        status = "warning"
        lines.append(
            _("The background worker is not running: bulk jobs and syncs wait in the queue.")
        )
    elif clusters:
        status = "ok"
        workers = sum(len(cluster.workers) for cluster in clusters)
        lines.append(
            ngettext(
                "The background worker is running (%(count)d process).",
                "The background worker is running (%(count)d processes).",
                workers,
            )
            % {"count": workers}
        )
    else:
        status = "warning"
        lines.append(
            _("The background worker is not running: bulk jobs and syncs wait in the queue.")
        )
    lines.append(
        ngettext("%(count)d task waiting.", "%(count)d tasks waiting.", queued) % {"count": queued}
    )
    links = []
    if user.has_perm("django_q.view_failure"):
        since = timezone.now() - timedelta(days=1)
        failures = Failure.objects.filter(stopped__gte=since).count()
        if failures:
            status = "error" if status == "ok" else status
            lines.append(
                ngettext(
                    "%(count)d task failed in the last 24 hours.",
                    "%(count)d tasks failed in the last 24 hours.",
                    failures,
                )
                % {"count": failures}
            )
        links.append((reverse("admin:django_q_failure_changelist"), _("Failed tasks")))
    return Panel(title=_("Background tasks"), status=status, lines=lines, links=links, order=20)
