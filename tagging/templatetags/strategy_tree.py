"""The groups and tag chips of the strategy tree, rendered in Python.

A strategy can hold 10,000 tags in hundreds of groups; the template engine spent most of the
tree page's time on their few lines of markup. Every value that comes from data is escaped here.
What the rows hold is read in ``tagging/strategy/selectors.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext

from tagging.strategy.models import SyncState
from tagging.strategy.selectors import GroupNode

register = template.Library()


class _Labels:
    """What every item of one page says, translated and escaped once per page."""

    def __init__(self, context: Any) -> None:
        self.can_edit = bool(context.get("can_edit"))
        self.tag_base = escape(context["tag_base"])
        self.group_base = escape(context["group_base"])
        self.order = escape(gettext("order"))
        self.up, self.down = escape(gettext("Move up")), escape(gettext("Move down"))
        self.delete = escape(gettext("delete in WeCom"))
        self.add_tag = escape(gettext("Add tag"))
        self.delete_group = escape(gettext("Delete this tag group"))
        self.states = {state.value: escape(state.label) for state in SyncState}

    # No title on the handle, the buttons and the order of each item: the list's legend says
    # what they are once (a strategy's 500 groups drew 55 KB of the same tooltips).
    def handle(self) -> str:
        return '<span class="strategy-handle" aria-hidden="true">⠿</span>'

    def steps(self, name: str) -> str:
        return (
            f'<button type="button" class="strategy-step" data-step="up" '
            f'aria-label="{self.up}: {name}">▲</button><button type="button" '
            f'class="strategy-step" data-step="down" aria-label="{self.down}: {name}">▼</button>'
        )

    @staticmethod
    def order_badge(order: int) -> str:
        return f'<span class="strategy-order">{order}</span>'

    def state(self, item: Any) -> str:
        """What waits to be pushed, and the sync state unless it is in sync."""
        html = []
        if item.pending_name:
            pending_name = escape(item.pending_name)
            html.append(f'<span class="strategy-pending-value">→ {pending_name}</span>')
        if item.pending_order is not None:
            html.append(
                f'<span class="strategy-pending-value" title="{self.order}">'
                f"→ #{item.pending_order}</span>"
            )
        if item.pending_delete:
            html.append(f'<span class="strategy-pending-value">{self.delete}</span>')
        if item.sync_state != SyncState.IN_SYNC:
            message = escape(item.sync_message)
            html.append(
                f'<span class="strategy-sync strategy-sync-{escape(item.sync_state)}" '
                f'title="{message}">{self.states.get(item.sync_state, "")}</span>'
            )
            if item.sync_message:
                html.append(f'<span class="strategy-message">{message}</span>')
        return "".join(html)


def _chips(labels: _Labels, tags: Iterable[Any], *, orderable: bool) -> str:
    parts = []
    for tag in tags:
        name = escape(tag.name)
        html = [f'<li class="strategy-tag" id="tag-{tag.pk}" data-id="{tag.pk}">']
        if orderable:
            html.append(labels.handle())
        html.append(
            f'<a class="strategy-name" href="{labels.tag_base}{tag.pk}/change/?tree=1">{name}</a>'
        )
        if orderable:
            html.append(labels.steps(name))
        html.append(labels.order_badge(tag.order))
        html.append(labels.state(tag))
        html.append("</li>")
        parts.append("".join(html))
    return "".join(parts)


def _body(labels: _Labels, group_pk: int, tags: Iterable[Any], *, whole: bool) -> str:
    """An open group's tags (``whole``: all of them, so they can be re-ordered)."""
    html = ['<div class="strategy-group-body">']
    if labels.can_edit:
        html.append(
            f'<p class="strategy-group-actions"><a class="strategy-add-tag" '
            f'href="{labels.tag_base}add/?group={group_pk}">{labels.add_tag}</a> '
            f'<a class="strategy-delete" href="{labels.group_base}{group_pk}/delete/">'
            f"{labels.delete_group}</a></p>"
        )
    # Re-ordering needs the whole list on the page, not the matches of a search.
    orderable = labels.can_edit and whole
    sortable = ' data-sortable="1"' if orderable else ""
    html.append(f'<ol class="strategy-tags" data-kind="tag" data-parent="{group_pk}"{sortable}>')
    html.append(_chips(labels, tags, orderable=orderable))
    html.append("</ol></div>")
    return "".join(html)


def _count(node: GroupNode) -> str:
    if node.n_matches is None:
        return ngettext("%(n)s tag", "%(n)s tags", node.n_tags) % {"n": node.n_tags}
    return ngettext(
        "%(n)s tag, %(matches)s matching", "%(n)s tags, %(matches)s matching", node.n_tags
    ) % {"n": node.n_tags, "matches": node.n_matches}


class _Counts(dict[tuple[int, int | None], str]):
    """Each count's words, translated once per page (groups mostly hold the same few)."""

    def of(self, node: GroupNode) -> str:
        key = (node.n_tags, node.n_matches)
        if key not in self:
            self[key] = escape(_count(node))
        return self[key]


@register.simple_tag(takes_context=True)
def strategy_group_items(context: Any, nodes: Iterable[GroupNode], whole: bool) -> SafeString:
    """The groups of the tree (``whole``: all the strategy's, so they can be re-ordered), each
    with its count as the button that opens it; the tags of those drawn open (the others are
    fetched when opened)."""
    labels = _Labels(context)
    counts = _Counts()
    orderable = labels.can_edit and whole
    parts = []
    for node in nodes:
        group = node.group
        name = escape(group.name)
        filtered = " data-matches" if node.n_matches is not None else ""
        html = [
            f'<li class="strategy-group" id="group-{group.pk}" data-id="{group.pk}"{filtered}>'
            '<div class="strategy-group-head">'
        ]
        if orderable:
            html.append(labels.handle())
        html.append(
            f'<a class="strategy-name" href="{labels.group_base}{group.pk}/change/?tree=1">'
            f"{name}</a>"
        )
        if orderable:
            html.append(labels.steps(name))
        html.append(labels.order_badge(group.order))
        expanded = "true" if node.is_open else "false"
        html.append(
            f'<button type="button" class="strategy-count strategy-toggle" '
            f'aria-expanded="{expanded}">{counts.of(node)}</button>'
        )
        html.append(labels.state(group))
        html.append("</div>")
        if node.tags is not None:
            html.append(_body(labels, group.pk, node.tags, whole=node.n_matches is None))
        html.append("</li>")
        parts.append("".join(html))
    return mark_safe("".join(parts))  # noqa: S308 - every data value above is escaped


@register.simple_tag(takes_context=True)
def strategy_group_body(
    context: Any, group_pk: int, tags: Iterable[Any], whole: bool
) -> SafeString:
    """One group's tags, fetched when the group is opened."""
    body = _body(_Labels(context), group_pk, tags, whole=whole)
    return mark_safe(body)  # noqa: S308 - every data value is escaped in _body
