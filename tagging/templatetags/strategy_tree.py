"""The tag chips of the strategy tree, rendered in Python.

A strategy can hold hundreds of tags; the template engine spent most of the tree page's time
on their few lines of markup. Every value that comes from data is escaped here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from tagging.strategy.models import SyncState, Tag

register = template.Library()


@register.simple_tag(takes_context=True)
def strategy_tag_items(context: Any, tags: Iterable[Tag]) -> SafeString:
    can_edit = bool(context.get("can_edit"))
    base = escape(context["tag_base"])
    drag = escape(gettext("Drag to re-order"))
    order_label = escape(gettext("order"))
    up, down = escape(gettext("Move up")), escape(gettext("Move down"))
    delete_label = escape(gettext("delete in WeCom"))
    states = {state.value: escape(state.label) for state in SyncState}
    parts = []
    for tag in tags:
        name = escape(tag.name)
        html = [f'<li class="strategy-tag" id="tag-{tag.pk}" data-id="{tag.pk}">']
        if can_edit:
            html.append(f'<span class="strategy-handle" title="{drag}" aria-hidden="true">⠿</span>')
        html.append(f'<a class="strategy-name" href="{base}{tag.pk}/change/?tree=1">{name}</a>')
        if can_edit:
            html.append(
                f'<button type="button" class="strategy-step" data-step="up" title="{up}" '
                f'aria-label="{up}: {name}">▲</button><button type="button" '
                f'class="strategy-step" data-step="down" title="{down}" '
                f'aria-label="{down}: {name}">▼</button>'
            )
        html.append(f'<span class="strategy-order" title="{order_label}">{tag.order}</span>')
        if tag.pending_name:
            html.append(f'<span class="strategy-pending-value">→ {escape(tag.pending_name)}</span>')
        if tag.pending_delete:
            html.append(f'<span class="strategy-pending-value">{delete_label}</span>')
        if tag.sync_state != SyncState.IN_SYNC:
            message = escape(tag.sync_message)
            html.append(
                f'<span class="strategy-sync strategy-sync-{escape(tag.sync_state)}" '
                f'title="{message}">{states.get(tag.sync_state, "")}</span>'
            )
            if tag.sync_message:
                html.append(f'<span class="strategy-message">{message}</span>')
        html.append("</li>")
        parts.append("".join(html))
    return mark_safe("".join(parts))  # noqa: S308 - every data value above is escaped
