"""Pulling WeCom strategy tags and corporate tags, part one: what WeCom has, and the plan.

:func:`strategy_pull_fetch` reads strategies, groups and tags from WeCom, and the corporate tags
(企业客户标签) as the groups of one more "strategy", the corporate root (``CORPORATE_WECOM_ID``,
which no WeCom strategy has): the plan and its apply treat both libraries alike. :func:`pull_plan`
compares them with the console and lists what WeCom added, renamed, re-ordered, moved or
deleted, what waits locally, and the conflicts (WeCom changed an item that has a local change
pending). Applying a plan is ``tagging/strategy/pull_apply.py``'s.

A plan shown to a person is kept as a :class:`PlanPreview` (plain JSON in the pull job's
shard), so the page and the command show it in the reader's language after the job planned it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _

from console.transactions import require_no_transaction
from tagging.strategy.models import (
    CORPORATE_ROOT_NAME,
    CORPORATE_WECOM_ID,
    Strategy,
    SyncState,
    Tag,
    TagGroup,
)
from wecom.clients.wecom import Strategy as WeComStrategy
from wecom.connections import client_for
from wecom.models import WeComApp

# --- what WeCom has ------------------------------------------------------------------------


class RemoteStrategy(NamedTuple):
    wecom_id: int
    name: str
    parent_wecom_id: int


class RemoteTag(NamedTuple):
    wecom_id: str
    name: str
    order: int
    group_wecom_id: str


class RemoteGroup(NamedTuple):
    wecom_id: str
    name: str
    order: int
    strategy_wecom_id: int  # CORPORATE_WECOM_ID for a corporate tag group


# The corporate library in a snapshot: the root every corporate group hangs under.
CORPORATE_REMOTE = RemoteStrategy(
    wecom_id=CORPORATE_WECOM_ID, name=CORPORATE_ROOT_NAME, parent_wecom_id=0
)


@dataclass
class Snapshot:
    strategies: list[RemoteStrategy]
    groups: list[RemoteGroup]
    tags: list[tuple[str, str, int, str]]  # RemoteTag's fields, as plain tuples

    def digest(self) -> str:
        text = json.dumps(
            [self.strategies, self.groups, self.tags], ensure_ascii=False, separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()


def strategy_pull_fetch(
    app: WeComApp, *, before_call: Callable[[], None] | None = None
) -> Snapshot:
    """Everything WeCom has for the app: strategies (paged), then all strategy groups in one
    call, then all corporate groups in one more.

    ``before_call`` runs before each platform call: a job renews its lease there, so a corp
    with many strategies never outlives it.
    """
    require_no_transaction("strategy_pull_fetch")
    before_call = before_call or (lambda: None)
    client = client_for(app)
    strategies = []
    before_call()
    for strategy_id in client.strategy_ids():
        before_call()
        strategies.append(_remote_strategy(client.strategy_get(strategy_id)))
    before_call()
    groups, tags = _remote_groups(client.strategy_tag_list())
    before_call()
    corp_groups, corp_tags = _remote_groups(client.corp_tag_list())
    return Snapshot(
        strategies=[*strategies, CORPORATE_REMOTE],
        groups=groups + corp_groups,
        tags=tags + corp_tags,
    )


@dataclass(frozen=True)
class PullScope:
    """What a targeted pull reads and compares: one strategy (or the corporate library:
    ``CORPORATE_WECOM_ID``), or one group of it."""

    strategy_wecom_id: int
    group_wecom_id: str = ""


def strategy_pull_fetch_scoped(
    app: WeComApp, scope: PullScope, *, before_call: Callable[[], None] | None = None
) -> Snapshot:
    """Only what ``scope`` names: the strategy (one call) and its groups, or the one group (one
    call), instead of every strategy and tag of the corp."""
    before_call = before_call or (lambda: None)
    client = client_for(app)
    group_ids = [scope.group_wecom_id] if scope.group_wecom_id else ()
    if scope.strategy_wecom_id == CORPORATE_WECOM_ID:
        before_call()
        groups, tags = _remote_groups(client.corp_tag_list(group_ids=group_ids))
        return Snapshot(strategies=[CORPORATE_REMOTE], groups=groups, tags=tags)
    before_call()
    strategies = [_remote_strategy(client.strategy_get(scope.strategy_wecom_id))]
    before_call()
    groups, tags = _remote_groups(
        client.strategy_tag_list(strategy_id=scope.strategy_wecom_id, group_ids=group_ids)
    )
    return Snapshot(strategies=strategies, groups=groups, tags=tags)


def _remote_strategy(strategy: WeComStrategy) -> RemoteStrategy:
    return RemoteStrategy(
        wecom_id=strategy.strategy_id, name=strategy.name, parent_wecom_id=strategy.parent_id
    )


def _remote_groups(answer: Iterable[Any]) -> tuple[list[RemoteGroup], list[tuple]]:
    groups: list[RemoteGroup] = []
    tags: list[tuple] = []
    for group in answer:
        groups.append(
            RemoteGroup(
                wecom_id=group.group_id,
                name=group.group_name,
                order=group.order,
                strategy_wecom_id=group.strategy_id or 0,
            )
        )
        group_id = group.group_id
        # Plain tuples in RemoteTag's field order: 10,000 of them are made per pull.
        tags += [(tag.id, tag.name, tag.order, group_id) for tag in group.tags]
    return groups, tags


# --- the plan ---------------------------------------------------------------------------------


class Action(StrEnum):
    ADD = "add"
    RENAME = "rename"
    REORDER = "reorder"
    MOVE = "move"
    DELETE = "delete"


ACTION_LABELS = {
    Action.ADD: _("added in WeCom"),
    Action.RENAME: _("renamed in WeCom"),
    Action.REORDER: _("re-ordered in WeCom"),
    Action.MOVE: _("moved in WeCom"),
    Action.DELETE: _("deleted in WeCom"),
}
KIND_LABELS = {
    "strategy": _("Strategy"),
    "group": _("Tag group"),
    "tag": _("Tag"),
}


class PendingFacts(NamedTuple):
    """A local change waiting to reach WeCom, as values (shown in the reader's language)."""

    delete: bool = False
    name: str = ""
    order: int | None = None

    @classmethod
    def of(cls, item: Any) -> PendingFacts:
        return cls(bool(item.pending_delete), item.pending_name or "", item.pending_order)

    def __str__(self) -> str:
        parts = []
        if self.delete:
            parts.append(gettext("delete"))
        if self.name:
            parts.append(gettext("name → %(name)s") % {"name": self.name})
        if self.order is not None:
            parts.append(gettext("order → %(order)s") % {"order": self.order})
        return gettext("; ").join(parts)


@dataclass
class Change:
    kind: str  # "strategy", "group", "tag"
    wecom_id: str
    actions: list[Action]
    name: str
    where: str = ""
    old: dict[str, Any] = field(default_factory=dict)
    new: dict[str, Any] = field(default_factory=dict)
    local_pk: int | None = None
    conflict: bool = False
    pending: PendingFacts | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.wecom_id}"

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[self.kind])

    @property
    def action_label(self) -> str:
        return gettext(", ").join(str(ACTION_LABELS[action]) for action in self.actions)

    @property
    def local_pending(self) -> str:
        """The local change this one conflicts with, in words."""
        return str(self.pending) if self.pending else ""

    def describe(self) -> str:
        """“name: old → new” parts, for the plan page and the CLI."""
        parts = []
        for key in ("name", "order", "parent"):
            if key in self.new and (key in self.old) and self.old[key] != self.new[key]:
                parts.append(f"{self.old[key]} → {self.new[key]}")
        return gettext("; ").join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "wecom_id": self.wecom_id,
            "actions": [action.value for action in self.actions],
            "name": self.name,
            "where": self.where,
            "old": self.old,
            "new": self.new,
            "local_pk": self.local_pk,
            "conflict": self.conflict,
            "pending": list(self.pending) if self.pending else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            **{
                **data,
                "actions": [Action(action) for action in data["actions"]],
                "pending": PendingFacts(*data["pending"]) if data.get("pending") else None,
            }
        )


@dataclass
class Pending:
    kind: str
    pk: int
    name: str
    sync_state: str
    facts: PendingFacts

    @property
    def state(self) -> str:
        return str(SyncState(self.sync_state).label)

    @property
    def message(self) -> str:
        return str(self.facts)

    def as_json(self) -> list[Any]:
        return [self.kind, self.pk, self.name, self.sync_state, list(self.facts)]

    @classmethod
    def from_json(cls, data: list[Any]) -> Pending:
        kind, pk, name, sync_state, facts = data
        return cls(kind, pk, name, sync_state, PendingFacts(*facts))


class _Changes:
    """What a plan and its preview say of their changes."""

    changes: list[Change]

    @property
    def conflicts(self) -> list[Change]:
        return [change for change in self.changes if change.conflict]

    @property
    def clean_changes(self) -> list[Change]:
        return [change for change in self.changes if not change.conflict]

    @property
    def empty(self) -> bool:
        return not self.changes


@dataclass
class Plan(_Changes):
    app_id: int
    changes: list[Change]
    pending: list[Pending]
    first_import: bool
    snapshot: Snapshot
    local: LocalItems
    _fingerprint: str = ""

    @property
    def fingerprint(self) -> str:
        """WeCom's data and the console's versions as the plan saw them. Worked out when asked
        (a plan shown to a person), not for a scheduled pull that applies at once."""
        if not self._fingerprint:
            both = self.snapshot.digest() + self.local.digest()
            self._fingerprint = hashlib.sha256(both.encode()).hexdigest()
        return self._fingerprint

    def counts(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for change in self.changes:
            for action in change.actions:
                counts[action.value] += 1
        counts["conflict"] = len(self.conflicts)
        counts["pending"] = len(self.pending)
        return counts

    def preview(self, *, with_fingerprint: bool = True) -> PlanPreview:
        """What a person is shown of the plan: every conflict, and the first
        ``PREVIEW_LIMIT`` other changes and pending items (the rest are counted)."""
        clean = self.clean_changes
        return PlanPreview(
            fingerprint=self.fingerprint if with_fingerprint else "",
            first_import=self.first_import,
            counts=self.counts(),
            changes=self.conflicts + clean[:PREVIEW_LIMIT],
            pending=self.pending[:PREVIEW_LIMIT],
            more=max(len(clean) - PREVIEW_LIMIT, 0),
        )


# A first import lists every tag as added: a person reads the first ones, the rest are counted.
PREVIEW_LIMIT = 500


@dataclass
class PlanPreview(_Changes):
    """A plan as kept for showing it later (:meth:`Plan.preview`): plain values only."""

    fingerprint: str
    first_import: bool
    counts: dict[str, int]
    changes: list[Change]
    pending: list[Pending]
    more: int = 0  # changes without a conflict left out

    def as_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "first_import": self.first_import,
            "counts": self.counts,
            "changes": [change.as_json() for change in self.changes],
            "pending": [item.as_json() for item in self.pending],
            "more": self.more,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanPreview:
        return cls(
            fingerprint=data["fingerprint"],
            first_import=data["first_import"],
            counts=data["counts"],
            changes=[Change.from_json(change) for change in data["changes"]],
            pending=[Pending.from_json(item) for item in data["pending"]],
            more=data.get("more", 0),
        )


class PlanChanged(Exception):
    """WeCom or the console changed since the plan was shown; ``plan`` is the new one."""

    def __init__(self, plan: Plan) -> None:
        super().__init__("the plan changed")
        self.plan = plan


@dataclass
class LocalItems:
    strategies: dict[int, Strategy]
    groups: LocalRows
    tags: LocalRows

    def digest(self) -> str:
        # Not the corporate root: the console makes it (when a page or an apply first needs
        # it), so a plan shown before it existed still applies.
        versions = sorted(
            [
                f"s{s.pk}:{s.version}"
                for s in self.strategies.values()
                if s.wecom_id != CORPORATE_WECOM_ID
            ]
            + [f"g{g.pk}:{g.version}:{g.sync_state}" for g in self.groups.values()]
            + [f"t{t.pk}:{t.version}:{t.sync_state}" for t in self.tags.values()]
        )
        return hashlib.sha256("|".join(versions).encode()).hexdigest()


# Not sync_message: the longest column, and only an item with a local change pending has one
# (which the pull then only replaces); the others' is empty. Every row is read with the
# fields a comparison needs (the parent's id stands in the middle, named per model); only the
# rows that need attention (not in sync, or a change pending: few) with the rest as well.
_SLIM_FIELDS = ("id", "wecom_id", "name", "order")
_ATTENTION_FIELDS = ("version", "sync_state", "pending_name", "pending_order", "pending_delete")
_SLIM_FIELDS_AFTER_PARENT = ("version",)
# Positions in a row tuple.
_PK, _WECOM_ID, _NAME, _ORDER, _PARENT, _VERSION = 0, 1, 2, 3, 4, 5
_SYNC_STATE, _PENDING_NAME, _PENDING_ORDER, _PENDING_DELETE = 6, 7, 8, 9
# What a row read without its attention fields has there: in sync, nothing pending.
_IN_STEP_TAIL = (SyncState.IN_SYNC.value, "", None, False)


class LocalRow:
    """A tag group or tag as the pull needs it: a tuple's worth, not a model instance (10,000
    model instances cost more than fetching them from WeCom)."""

    __slots__ = (
        "changed",
        "last_synced_at",
        "model",
        "name",
        "order",
        "parent_id",
        "pending_delete",
        "pending_name",
        "pending_order",
        "pk",
        "sync_message",
        "sync_state",
        "version",
        "wecom_id",
    )  # fmt: skip

    def __init__(self, model: type, values: tuple) -> None:
        self.model = model
        (
            self.pk, self.wecom_id, self.name, self.order, self.parent_id, self.version,
            self.sync_state, self.pending_name, self.pending_order, self.pending_delete,
        ) = values if len(values) > _SYNC_STATE else values + _IN_STEP_TAIL  # fmt: skip
        self.pending_delete = bool(self.pending_delete)
        self.sync_message = ""
        self.last_synced_at = None
        self.changed = False

    def __str__(self) -> str:
        return self.name

    @property
    def has_pending(self) -> bool:
        return bool(self.pending_name) or self.pending_order is not None or self.pending_delete

    def get_sync_state_display(self) -> str:
        return str(SyncState(self.sync_state).label)

    def instance(self, app: WeComApp) -> TagGroup | Tag:
        """A model instance carrying the fields a bulk update writes."""
        parent = (
            {"strategy_id": self.parent_id}
            if self.model is TagGroup
            else {"group_id": self.parent_id}
        )
        item = self.model(
            id=self.pk,
            app_id=app.pk,
            wecom_id=self.wecom_id,
            name=self.name,
            order=self.order,
            version=self.version,
            sync_state=self.sync_state,
            sync_message=self.sync_message,
            last_synced_at=self.last_synced_at or timezone.now(),
            **parent,
        )
        return item


def _tuple_has_pending(values: tuple) -> bool:
    return len(values) > _SYNC_STATE and (
        bool(values[_PENDING_NAME])
        or values[_PENDING_ORDER] is not None
        or bool(values[_PENDING_DELETE])
    )


class LocalRows(Mapping[str, LocalRow]):
    """Local groups or tags by WeCom id, kept as the database's tuples; a :class:`LocalRow` is
    made the first time one is looked at (and kept, so changes to it stay). A steady pull
    compares the tuples and makes none."""

    def __init__(self, model: type, tuples: dict[str, tuple], attention: list[str]) -> None:
        self.model = model
        self.tuples = tuples
        # The WeCom ids of the rows read whole: only these can be out of sync or pending.
        self.attention = attention
        self._rows: dict[str, LocalRow] = {}

    def __getitem__(self, wecom_id: str) -> LocalRow:
        row = self._rows.get(wecom_id)
        if row is None:
            row = self._rows[wecom_id] = LocalRow(self.model, self.tuples[wecom_id])
        return row

    def __iter__(self) -> Iterator[str]:
        return iter(self.tuples)

    def __len__(self) -> int:
        return len(self.tuples)

    def __contains__(self, wecom_id: object) -> bool:
        return wecom_id in self.tuples


def _fetch_tuples(queryset: QuerySet) -> list[tuple]:
    """All rows of a values_list queryset at once: the ORM's iterator reads 100 rows a call
    and converts each, which for 10,000 tags cost more than the reading itself."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _local_rows(model: type, queryset: QuerySet, parent: str) -> LocalRows:
    """Row tuples by WeCom id: every row's slim fields, and the attention fields of those that
    need it (two queries whatever the number of rows)."""
    attention = ~Q(sync_state=SyncState.IN_SYNC) | ~Q(pending_name="")
    attention |= Q(pending_order__isnull=False) | Q(pending_delete=True)
    queryset = queryset.order_by()
    rows = {
        values[_WECOM_ID]: values
        for values in _fetch_tuples(
            queryset.values_list(*_SLIM_FIELDS, parent, *_SLIM_FIELDS_AFTER_PARENT)
        )
    }
    keys = []
    for values in _fetch_tuples(
        queryset.filter(attention).values_list(*_SLIM_FIELDS, parent, *_ATTENTION_FIELDS)
    ):
        rows[values[_WECOM_ID]] = values
        keys.append(values[_WECOM_ID])
    return LocalRows(model, rows, keys)


def local_load(app: WeComApp, scope: PullScope | None = None) -> LocalItems:
    """The console's rows of the app, or of the scope only (what a targeted pull compares)."""
    strategy_rows = Strategy.objects.filter(app=app)
    group_rows = TagGroup.objects.filter(app=app)
    tag_rows = Tag.objects.filter(app=app)
    if scope is not None:
        strategy_rows = strategy_rows.filter(wecom_id=scope.strategy_wecom_id)
        group_rows = group_rows.filter(strategy__wecom_id=scope.strategy_wecom_id)
        if scope.group_wecom_id:
            group_rows = group_rows.filter(wecom_id=scope.group_wecom_id)
        tag_rows = tag_rows.filter(group__in=group_rows.values("pk"))
    strategies = {
        s.wecom_id: s
        for s in strategy_rows.only(
            "id",
            "app_id",
            "kind",
            "wecom_id",
            "name",
            "parent_id",
            "parent_wecom_id",
            "version",
            "sync_state",
        )
    }
    groups = _local_rows(TagGroup, group_rows, "strategy_id")
    tags = _local_rows(Tag, tag_rows, "group_id")
    return LocalItems(strategies=strategies, groups=groups, tags=tags)


def _compare(
    kind: str,
    local: TagGroup | Tag,
    *,
    name: str,
    order: int,
    parent_changed: bool,
    old_parent: str,
    new_parent: str,
    where: str,
) -> Change | None:
    actions = []
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    if local.name != name:
        actions.append(Action.RENAME)
        old["name"], new["name"] = local.name, name
    if local.order != order:
        actions.append(Action.REORDER)
        old["order"], new["order"] = local.order, order
    if parent_changed:
        actions.append(Action.MOVE)
        old["parent"], new["parent"] = old_parent, new_parent
    if not actions:
        return None
    return Change(
        kind=kind,
        wecom_id=local.wecom_id,
        actions=actions,
        name=name,
        where=where,
        old=old,
        new=new,
        local_pk=local.pk,
        conflict=local.has_pending,
        pending=PendingFacts.of(local) if local.has_pending else None,
    )


def plan_from(app: WeComApp, snapshot: Snapshot, local: LocalItems) -> Plan:
    changes: list[Change] = []
    remote_strategy_names = {s.wecom_id: s.name for s in snapshot.strategies}
    for remote in snapshot.strategies:
        if remote.wecom_id == CORPORATE_WECOM_ID:
            continue  # the console's own root: nothing WeCom adds, renames or deletes
        existing = local.strategies.get(remote.wecom_id)
        if existing is None:
            changes.append(
                Change(
                    kind="strategy",
                    wecom_id=str(remote.wecom_id),
                    actions=[Action.ADD],
                    name=remote.name,
                    new={"name": remote.name},
                )
            )
        elif existing.name != remote.name or existing.parent_wecom_id != remote.parent_wecom_id:
            changes.append(
                Change(
                    kind="strategy",
                    wecom_id=str(remote.wecom_id),
                    actions=[Action.RENAME],
                    name=remote.name,
                    old={"name": existing.name},
                    new={"name": remote.name},
                    local_pk=existing.pk,
                )
            )
    remote_strategies = {s.wecom_id for s in snapshot.strategies}
    for wecom_id, existing in local.strategies.items():
        if wecom_id not in remote_strategies and wecom_id != CORPORATE_WECOM_ID:
            changes.append(
                Change(
                    kind="strategy",
                    wecom_id=str(wecom_id),
                    actions=[Action.DELETE],
                    name=existing.name,
                    old={"name": existing.name},
                    local_pk=existing.pk,
                )
            )

    strategy_by_pk = {s.pk: s.wecom_id for s in local.strategies.values()}
    group_names = {g.wecom_id: g.name for g in snapshot.groups}
    for remote in snapshot.groups:
        existing = local.groups.get(remote.wecom_id)
        where = remote_strategy_names.get(remote.strategy_wecom_id, "")
        if existing is None:
            changes.append(
                Change(
                    kind="group",
                    wecom_id=remote.wecom_id,
                    actions=[Action.ADD],
                    name=remote.name,
                    where=where,
                    new={"name": remote.name, "order": remote.order},
                )
            )
            continue
        old_strategy = strategy_by_pk.get(existing.parent_id)
        change = _compare(
            "group",
            existing,
            name=remote.name,
            order=remote.order,
            parent_changed=old_strategy != remote.strategy_wecom_id,
            old_parent=remote_strategy_names.get(old_strategy or 0, ""),
            new_parent=where,
            where=where,
        )
        if change:
            changes.append(change)
    remote_groups = {g.wecom_id for g in snapshot.groups}
    for wecom_id, existing in local.groups.items():
        if wecom_id not in remote_groups:
            # Where it was, as the console knows it: WeCom no longer says.
            strategy = local.strategies.get(strategy_by_pk.get(existing.parent_id, 0))
            changes.append(_deleted("group", existing, where=strategy.name if strategy else ""))

    group_by_pk = {g.pk: g.wecom_id for g in local.groups.values()}
    group_pk_of = {g.wecom_id: g.pk for g in local.groups.values()}
    local_tuples = local.tags.tuples
    for wecom_id, name, order, group_wecom_id in snapshot.tags:
        values = local_tuples.get(wecom_id)
        if (
            values is not None
            and values[_NAME] == name
            and values[_ORDER] == order
            and values[_PARENT] == group_pk_of.get(group_wecom_id)
        ):
            continue  # the common case, kept cheap: nothing changed (and no LocalRow made)
        where = group_names.get(group_wecom_id, "")
        existing = local.tags[wecom_id] if values is not None else None
        if existing is None:
            changes.append(
                Change(
                    kind="tag",
                    wecom_id=wecom_id,
                    actions=[Action.ADD],
                    name=name,
                    where=where,
                    new={"name": name, "order": order},
                )
            )
            continue
        old_group = group_by_pk.get(existing.parent_id, "")
        change = _compare(
            "tag",
            existing,
            name=name,
            order=order,
            parent_changed=old_group != group_wecom_id,
            old_parent=group_names.get(old_group, "") or _local_group_name(local, old_group),
            new_parent=where,
            where=where,
        )
        if change:
            changes.append(change)
    remote_tags = {tag[0] for tag in snapshot.tags}
    for wecom_id in [key for key in local.tags.tuples if key not in remote_tags]:
        existing = local.tags[wecom_id]
        # A tag of a deleted group goes with its group, unless a local change waits on it.
        if group_by_pk.get(existing.parent_id) in remote_groups or existing.has_pending:
            old_group = group_by_pk.get(existing.parent_id, "")
            changes.append(
                _deleted(
                    "tag",
                    existing,
                    where=group_names.get(old_group, "") or _local_group_name(local, old_group),
                )
            )

    changed_keys = {change.key for change in changes}
    pending = [
        Pending(
            kind=kind,
            pk=item.pk,
            name=item.name,
            sync_state=item.sync_state,
            facts=PendingFacts.of(item),
        )
        for kind, rows in (("group", local.groups), ("tag", local.tags))
        for item in (
            rows[wecom_id]
            for wecom_id in rows.attention
            if _tuple_has_pending(rows.tuples[wecom_id])
        )
        if f"{kind}:{item.wecom_id}" not in changed_keys
    ]
    return Plan(
        app_id=app.pk,
        changes=changes,
        pending=pending,
        first_import=not any(w != CORPORATE_WECOM_ID for w in local.strategies),
        snapshot=snapshot,
        local=local,
    )


def _local_group_name(local: LocalItems, wecom_id: str) -> str:
    group = local.groups.get(wecom_id)
    return group.name if group else ""


def _deleted(kind: str, existing: TagGroup | Tag, *, where: str = "") -> Change:
    return Change(
        kind=kind,
        wecom_id=existing.wecom_id,
        actions=[Action.DELETE],
        name=existing.name,
        where=where,
        old={"name": existing.name},
        local_pk=existing.pk,
        conflict=existing.has_pending,
        pending=PendingFacts.of(existing) if existing.has_pending else None,
    )


def pull_plan(
    app: WeComApp,
    snapshot: Snapshot | None = None,
    *,
    before_call: Callable[[], None] | None = None,
) -> Plan:
    """Fetch (unless given) and compare: the plan, not applied."""
    if snapshot is None:
        snapshot = strategy_pull_fetch(app, before_call=before_call)
    return plan_from(app, snapshot, local_load(app))
