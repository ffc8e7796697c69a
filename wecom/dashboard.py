"""The platform credentials panel of the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import reverse
from django.utils.translation import gettext as _, ngettext

from console.dashboard import Panel, register_panel
from console.keyrotation import describe_unreadable_secrets, unreadable_secrets
from wecom.models import ChatbotBot, OfficialAccount, WeComApp

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


@register_panel
def credentials_panel(user: AbstractBaseUser) -> Panel | None:
    models = [
        model
        for model in (WeComApp, OfficialAccount, ChatbotBot)
        if user.has_perm(f"wecom.view_{model._meta.model_name}")
    ]
    if not models:
        return None
    lines, links, status = [], [], "ok"
    for model in models:
        credentials = list(model._default_manager.only("name", "last_check_ok"))
        failing = [c.name for c in credentials if c.last_check_ok is False]
        untested = [c.name for c in credentials if c.last_check_ok is None]
        parts = [
            ngettext(
                "%(kind)s: %(count)d configured", "%(kind)s: %(count)d configured", len(credentials)
            )
            % {"kind": model._meta.verbose_name_plural, "count": len(credentials)}
        ]
        if failing:
            status = "error"
            parts.append(_("failing: %(names)s") % {"names": _(", ").join(failing)})
        if untested:
            status = "warning" if status == "ok" else status
            parts.append(_("not tested yet: %(names)s") % {"names": _(", ").join(untested)})
        lines.append(_("; ").join(parts))
        links.append(
            (
                reverse(f"admin:wecom_{model._meta.model_name}_changelist"),
                str(model._meta.verbose_name_plural),
            )
        )
    labels = {model._meta.label for model in models}
    unreadable = [ref for ref in unreadable_secrets() if ref.model_label in labels]
    if unreadable:
        status = "error"
        lines.insert(0, describe_unreadable_secrets(unreadable))
    if not any(model._default_manager.exists() for model in models):
        status = "warning"
        lines.append(_("No platform credentials yet: add one to start."))
    return Panel(title=_("Platform credentials"), status=status, lines=lines, links=links, order=30)
