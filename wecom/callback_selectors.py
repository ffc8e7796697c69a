"""What a WeCom app's page says about its callbacks."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext, ngettext

from wecom.models import CallbackRefusal, WeComApp, WeComCallbackStatus


def callback_path(*, app: WeComApp) -> str:
    return reverse("wecom_callback", args=[app.pk])


def callback_configured(app: WeComApp) -> bool:
    return bool(app.callback_token) and bool(app.callback_encoding_aes_key)


def callback_state_sentence(*, app: WeComApp) -> str:
    """Not configured / verified / last event N minutes ago / refused (with why), in words."""
    if not callback_configured(app):
        return gettext(
            "Not configured: enter the callback Token and EncodingAESKey above, then set the "
            "URL in WeCom's admin."
        )
    status = WeComCallbackStatus.objects.filter(app=app).first()
    now = timezone.now()
    parts = []
    if status is None or status.verified_at is None:
        parts.append(gettext("WeCom has not verified the URL yet."))
    else:
        parts.append(
            gettext("URL verified by WeCom %(ago)s ago.")
            % {"ago": timesince(status.verified_at, now)}
        )
    if status is None or not status.events_received:
        parts.append(gettext("No events received yet."))
    else:
        parts.append(
            ngettext(
                "%(count)d event received; the last one %(ago)s ago (%(what)s).",
                "%(count)d events received; the last one %(ago)s ago (%(what)s).",
                status.events_received,
            )
            % {
                "count": status.events_received,
                "ago": timesince(status.last_event_at, now) if status.last_event_at else "-",
                "what": status.last_event_summary,
            }
        )
        if status.events_duplicate:
            parts.append(
                ngettext(
                    "%(count)d duplicate delivery ignored.",
                    "%(count)d duplicate deliveries ignored.",
                    status.events_duplicate,
                )
                % {"count": status.events_duplicate}
            )
    if status is not None and status.events_refused:
        parts.append(
            ngettext(
                "%(count)d request refused; the last one %(ago)s ago: %(why)s.",
                "%(count)d requests refused; the last one %(ago)s ago: %(why)s.",
                status.events_refused,
            )
            % {
                "count": status.events_refused,
                "ago": timesince(status.last_refused_at, now) if status.last_refused_at else "-",
                "why": CallbackRefusal(status.last_refusal).label if status.last_refusal else "-",
            }
        )
    return " ".join(parts)
