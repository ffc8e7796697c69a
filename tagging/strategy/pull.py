"""Pull and reconcile WeCom strategy tags: fetch, plan, apply.

:func:`strategy_pull_fetch` reads strategies, groups and tags from WeCom; :func:`pull_plan`
compares them with the console and lists what WeCom added, renamed, re-ordered, moved or
deleted, what waits locally, and the conflicts (WeCom changed an item that has a local change
pending). :func:`pull_apply` applies exactly a plan that was shown: it fetches again and refuses
(``PlanChanged``, with the new plan) if WeCom or the console changed meanwhile.

The apply reads the app's rows in three queries and writes in bulk, so its query count does not
grow with the number of tags (on SQLite, bulk writes are cut in batches by its parameter limit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import (
    Actor,
    AuditSource,
    console_message_part,
    describe_value,
    value_changes,
)
from console.transactions import require_no_transaction
from tagging.strategy.models import Strategy, StrategyPull, SyncState, Tag, TagGroup
from tagging.strategy.services import Outcome, items_push, wecom_client
from wecom.clients.errors import PlatformError
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
    strategy_wecom_id: int


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
    """Everything WeCom has for the app: strategies (paged), then all groups in one call.

    ``before_call`` runs before each platform call: a job renews its lease there, so a corp
    with many strategies never outlives it.
    """
    require_no_transaction("strategy_pull_fetch")
    before_call = before_call or (lambda: None)
    client = wecom_client(app)
    strategies = []
    before_call()
    for strategy_id in client.strategy_ids():
        before_call()
        strategy = client.strategy_get(strategy_id)
        strategies.append(
            RemoteStrategy(
                wecom_id=strategy.strategy_id,
                name=strategy.name,
                parent_wecom_id=strategy.parent_id,
            )
        )
    before_call()
    groups, tags = _remote_groups(client.strategy_tag_list())
    return Snapshot(strategies=strategies, groups=groups, tags=tags)


@dataclass(frozen=True)
class PullScope:
    """What a targeted pull reads and compares: one strategy, or one group of it."""

    strategy_wecom_id: int
    group_wecom_id: str = ""


def strategy_pull_fetch_scoped(
    app: WeComApp, scope: PullScope, *, before_call: Callable[[], None] | None = None
) -> Snapshot:
    """Only what ``scope`` names: the strategy (one call) and its groups, or the one group (one
    call), instead of every strategy and tag of the corp."""
    before_call = before_call or (lambda: None)
    client = wecom_client(app)
    before_call()
    strategy = client.strategy_get(scope.strategy_wecom_id)
    strategies = [
        RemoteStrategy(
            wecom_id=strategy.strategy_id, name=strategy.name, parent_wecom_id=strategy.parent_id
        )
    ]
    before_call()
    groups, tags = _remote_groups(
        client.strategy_tag_list(
            strategy_id=scope.strategy_wecom_id,
            group_ids=[scope.group_wecom_id] if scope.group_wecom_id else (),
        )
    )
    return Snapshot(strategies=strategies, groups=groups, tags=tags)


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
    local_pending: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.wecom_id}"

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[self.kind])

    @property
    def action_label(self) -> str:
        return gettext(", ").join(str(ACTION_LABELS[action]) for action in self.actions)

    def describe(self) -> str:
        """“name: old → new” parts, for the plan page and the CLI."""
        parts = []
        for key in ("name", "order", "parent"):
            if key in self.new and (key in self.old) and self.old[key] != self.new[key]:
                parts.append(f"{self.old[key]} → {self.new[key]}")
        return gettext("; ").join(parts)


@dataclass
class Pending:
    kind: str
    pk: int
    name: str
    state: str
    message: str


@dataclass
class Plan:
    app_id: int
    changes: list[Change]
    pending: list[Pending]
    first_import: bool
    snapshot: Snapshot
    local: _Local
    _fingerprint: str = ""

    @property
    def fingerprint(self) -> str:
        """WeCom's data and the console's versions as the plan saw them. Worked out when asked
        (a plan shown to a person), not for a scheduled pull that applies at once."""
        if not self._fingerprint:
            both = self.snapshot.digest() + self.local.digest()
            self._fingerprint = hashlib.sha256(both.encode()).hexdigest()
        return self._fingerprint

    @property
    def conflicts(self) -> list[Change]:
        return [change for change in self.changes if change.conflict]

    @property
    def clean_changes(self) -> list[Change]:
        return [change for change in self.changes if not change.conflict]

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for change in self.changes:
            for action in change.actions:
                counts[action.value] += 1
        counts["conflict"] = len(self.conflicts)
        counts["pending"] = len(self.pending)
        return counts


class PlanChanged(Exception):
    """WeCom or the console changed since the plan was shown; ``plan`` is the new one."""

    def __init__(self, plan: Plan) -> None:
        super().__init__("the plan changed")
        self.plan = plan


@dataclass
class _Local:
    strategies: dict[int, Strategy]
    groups: _Rows
    tags: _Rows

    def digest(self) -> str:
        versions = sorted(
            [f"s{s.pk}:{s.version}" for s in self.strategies.values()]
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


class _Row:
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


class _Rows(Mapping[str, _Row]):
    """Local groups or tags by WeCom id, kept as the database's tuples; a :class:`_Row` is
    made the first time one is looked at (and kept, so changes to it stay). A steady pull
    compares the tuples and makes none."""

    def __init__(self, model: type, tuples: dict[str, tuple], attention: list[str]) -> None:
        self.model = model
        self.tuples = tuples
        # The WeCom ids of the rows read whole: only these can be out of sync or pending.
        self.attention = attention
        self._rows: dict[str, _Row] = {}

    def __getitem__(self, wecom_id: str) -> _Row:
        row = self._rows.get(wecom_id)
        if row is None:
            row = self._rows[wecom_id] = _Row(self.model, self.tuples[wecom_id])
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


def _local_rows(model: type, queryset: QuerySet, parent: str) -> _Rows:
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
    return _Rows(model, rows, keys)


def _load_local(app: WeComApp, scope: PullScope | None = None) -> _Local:
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
    return _Local(strategies=strategies, groups=groups, tags=tags)


def _pending_text(item: TagGroup | Tag) -> str:
    parts = []
    if item.pending_delete:
        parts.append(gettext("delete"))
    if item.pending_name:
        parts.append(gettext("name → %(name)s") % {"name": item.pending_name})
    if item.pending_order is not None:
        parts.append(gettext("order → %(order)s") % {"order": item.pending_order})
    return gettext("; ").join(parts)


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
        local_pending=_pending_text(local) if local.has_pending else "",
    )


def _plan_from(app: WeComApp, snapshot: Snapshot, local: _Local) -> Plan:
    changes: list[Change] = []
    remote_strategy_names = {s.wecom_id: s.name for s in snapshot.strategies}
    for remote in snapshot.strategies:
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
        if wecom_id not in remote_strategies:
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
            continue  # the common case, kept cheap: nothing changed (and no _Row made)
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
            state=item.get_sync_state_display(),
            message=_pending_text(item),
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
        first_import=not local.strategies,
        snapshot=snapshot,
        local=local,
    )


def _local_group_name(local: _Local, wecom_id: str) -> str:
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
        local_pending=_pending_text(existing) if existing.has_pending else "",
    )


def pull_plan(app: WeComApp, snapshot: Snapshot | None = None) -> Plan:
    """Fetch (unless given) and compare: the plan, not applied."""
    if snapshot is None:
        snapshot = strategy_pull_fetch(app)
    return _plan_from(app, snapshot, _load_local(app))


# --- applying -----------------------------------------------------------------------------------


class Choice(StrEnum):
    WECOM = "wecom"
    OURS = "ours"
    LATER = "later"


@dataclass
class ApplyResult:
    applied: int = 0
    conflicts_left: int = 0
    resolved_wecom: int = 0
    resolved_ours: int = 0
    messages: list[str] = field(default_factory=list)


def pull_apply(
    *,
    app: WeComApp,
    fingerprint: str,
    actor: Actor,
    choices: Mapping[str, Choice] | None = None,
) -> ApplyResult:
    """Apply the plan whose fingerprint was shown; conflicts follow ``choices`` (by change key),
    and wait for a person when they have none. Raises :class:`PlanChanged` if WeCom or the
    console moved on since."""
    try:
        snapshot = strategy_pull_fetch(app)
    except PlatformError as error:
        pull_failure_record(app, actor=actor, error=error)
        raise
    with transaction.atomic():
        local = _load_local(app)
        plan = _plan_from(app, snapshot, local)
        if plan.fingerprint != fingerprint:
            raise PlanChanged(plan)
        applied, conflicts = _apply_plan_rows(app, plan, local, actor)
    return _settle(app, plan, applied, conflicts, actor=actor, choices=choices or {})


def pull_and_apply(
    *, app: WeComApp, actor: Actor, before_call: Callable[[], None] | None = None
) -> tuple[Plan, ApplyResult]:
    """What the schedule and ``wecom_pull`` do: plan and apply at once; conflicts wait."""
    try:
        snapshot = strategy_pull_fetch(app, before_call=before_call)
    except PlatformError as error:
        pull_failure_record(app, actor=actor, error=error)
        raise
    with transaction.atomic():
        local = _load_local(app)
        plan = _plan_from(app, snapshot, local)
        applied, conflicts = _apply_plan_rows(app, plan, local, actor)
    return plan, _settle(app, plan, applied, conflicts, actor=actor, choices={})


def pull_and_apply_scoped(
    *,
    app: WeComApp,
    scope: PullScope,
    actor: Actor,
    before_call: Callable[[], None] | None = None,
) -> tuple[Plan, ApplyResult]:
    """A targeted pull (a WeCom callback named ``scope``): the same plan and apply as the full
    pull, over the scope's rows only; conflicts wait. The full pull's record is left alone: it
    says when everything was last compared."""
    snapshot = strategy_pull_fetch_scoped(app, scope, before_call=before_call)
    with transaction.atomic():
        local = _load_local(app, scope)
        plan = _plan_from(app, snapshot, local)
        applied, conflicts = _apply_plan_rows(app, plan, local, actor)
    return plan, _settle(app, plan, applied, conflicts, actor=actor, choices={}, record_pull=False)


def _apply_plan_rows(app: WeComApp, plan: Plan, local: _Local, actor: Actor) -> tuple[int, int]:
    assert plan.snapshot is not None
    now = timezone.now()
    if not plan.changes:
        # WeCom and the console agree (the common scheduled pull): nothing to write.
        Strategy.objects.filter(app=app).update(last_synced_at=now)
        return 0, 0
    snapshot = plan.snapshot
    log = _AuditBatch(actor)

    # Strategies: add, rename, re-parent, delete.
    strategies_new = []
    strategies_changed = []
    for remote in snapshot.strategies:
        existing = local.strategies.get(remote.wecom_id)
        if existing is None:
            strategies_new.append(
                Strategy(
                    app=app,
                    wecom_id=remote.wecom_id,
                    name=remote.name,
                    parent_wecom_id=remote.parent_wecom_id,
                    last_synced_at=now,
                )
            )
        elif existing.name != remote.name or existing.parent_wecom_id != remote.parent_wecom_id:
            log.change(Strategy, existing.pk, remote.name, {"name": (existing.name, remote.name)})
            existing.name = remote.name
            existing.parent_wecom_id = remote.parent_wecom_id
            existing.version += 1
            strategies_changed.append(existing)
    created = Strategy.objects.bulk_create(strategies_new)
    for strategy in created:
        local.strategies[strategy.wecom_id] = strategy
        log.add(Strategy, strategy.pk, strategy.name, {"name": (None, strategy.name)})
    remote_strategy_ids = {s.wecom_id for s in snapshot.strategies}
    gone_strategies = [s for w, s in local.strategies.items() if w not in remote_strategy_ids]
    # Parents by WeCom id, once all strategies exist.
    parents_changed = []
    for strategy in local.strategies.values():
        parent = local.strategies.get(strategy.parent_wecom_id)
        parent_pk = parent.pk if parent else None
        if strategy.parent_id != parent_pk:
            strategy.parent_id = parent_pk
            parents_changed.append(strategy)
    Strategy.objects.bulk_update(
        {s.pk: s for s in strategies_changed + parents_changed}.values(),
        ["name", "parent_wecom_id", "parent", "version"],
    )

    # Groups.
    groups_new, groups_changed = [], []
    for remote in snapshot.groups:
        strategy = local.strategies.get(remote.strategy_wecom_id)
        if strategy is None:
            continue  # a strategy the app cannot see
        existing = local.groups.get(remote.wecom_id)
        if existing is None:
            groups_new.append(
                TagGroup(
                    app=app,
                    strategy_id=strategy.pk,
                    wecom_id=remote.wecom_id,
                    name=remote.name,
                    order=remote.order,
                    last_synced_at=now,
                )
            )
            continue
        changed = _follow(existing, remote.name, remote.order, log, now)
        if existing.parent_id != strategy.pk:
            existing.parent_id = strategy.pk
            changed = True
        if changed:
            groups_changed.append(existing.instance(app))
    group_pk_by_wecom = {wecom_id: row.pk for wecom_id, row in local.groups.items()}
    for group in TagGroup.objects.bulk_create(groups_new):
        group_pk_by_wecom[group.wecom_id] = group.pk
        log.add(
            TagGroup,
            group.pk,
            group.name,
            {"name": (None, group.name), "order": (None, group.order)},
        )
    TagGroup.objects.bulk_update(groups_changed, [*_FOLLOW_FIELDS, "strategy"])

    # Tags.
    tags_new, tags_changed = [], []
    local_tags = local.tags
    for wecom_id, name, order, group_wecom_id in snapshot.tags:
        group_pk = group_pk_by_wecom.get(group_wecom_id)
        if group_pk is None:
            continue
        existing = local_tags.get(wecom_id)
        if existing is None:
            tags_new.append((wecom_id, name, order, group_pk))
            continue
        if existing.name == name and existing.order == order and existing.parent_id == group_pk:
            continue
        changed = _follow(existing, name, order, log, now)
        if existing.parent_id != group_pk:
            existing.parent_id = group_pk
            changed = True
        if changed:
            tags_changed.append(existing.instance(app))
    if tags_new:
        _insert_tags(app, tags_new, now=now, user=actor.user)
        pks = dict(Tag.objects.filter(app=app).values_list("wecom_id", "pk"))
        for wecom_id, name, order, _group_pk in tags_new:
            log.add(Tag, pks[wecom_id], name, {"name": (None, name), "order": (None, order)})
    Tag.objects.bulk_update(tags_changed, [*_FOLLOW_FIELDS, "group"])

    # Deletions: items with a local change pending stay, as conflicts.
    remote_tags = {tag[0] for tag in snapshot.tags}
    remote_groups = {g.wecom_id for g in snapshot.groups}
    tags_gone, kept_tags, kept_groups = [], [], []
    for wecom_id, row in local.tags.items():
        if wecom_id in remote_tags:
            continue
        if row.has_pending and row.sync_state != SyncState.CONFLICT:
            kept_tags.append(_conflict_gone(row).instance(app))
        elif not row.has_pending:
            tags_gone.append(row)
    groups_gone = []
    for wecom_id, row in local.groups.items():
        if wecom_id in remote_groups:
            continue
        if row.has_pending and row.sync_state != SyncState.CONFLICT:
            kept_groups.append(_conflict_gone(row).instance(app))
        elif not row.has_pending:
            groups_gone.append(row)
    for row in tags_gone + groups_gone:
        log.delete(row.model, row.pk, row.name)
    Tag.objects.filter(pk__in=[t.pk for t in tags_gone]).delete()
    Tag.objects.bulk_update(kept_tags, ["sync_state", "sync_message"])
    TagGroup.objects.bulk_update(kept_groups, ["sync_state", "sync_message"])
    # Tags of deleted groups are deleted with them.
    Tag.objects.filter(group__in=[g.pk for g in groups_gone]).delete()
    TagGroup.objects.filter(pk__in=[g.pk for g in groups_gone]).delete()
    for strategy in gone_strategies:
        log.delete(Strategy, strategy.pk, strategy.name)
    Strategy.objects.filter(pk__in=[s.pk for s in gone_strategies]).delete()

    # Strategies are few: each carries the pull's time. Groups and tags carry the time of their
    # last change from either side; one in step was confirmed by the app's last pull too
    # (StrategyPull.pulled_at; see ``last_sync``), which saves rewriting 10,000 rows a pull.
    Strategy.objects.filter(app=app).update(last_synced_at=now)
    log.save()
    return len(plan.clean_changes), len(plan.conflicts)


def _insert_rows(model: type, columns: list[str], rows: list[tuple]) -> None:
    """Many rows at once: a first import writes 10,000 tags and as many history entries, where
    building a model instance per row costs more than the writing. PostgreSQL takes them with
    one COPY, SQLite with ``executemany`` (in-process); others in multi-row INSERTs."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = ", ".join(quote(model._meta.get_field(column).column) for column in columns)
    row_marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if connection.vendor == "sqlite":
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES {row_marks}",  # noqa: S608 - model names
                rows,
            )
            return
        limit = connection.features.max_query_params or 65_535
        size = max(1, min(1000, limit // len(columns)))
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            values = ", ".join([row_marks] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {values}",  # noqa: S608 - model names
                [value for row in chunk for value in row],
            )


def _insert_tags(
    app: WeComApp, rows: list[tuple[str, str, int, int]], *, now: Any, user: Any
) -> None:
    when = connection.ops.adapt_datetimefield_value(now)
    _insert_rows(
        Tag,
        [
            "app",
            "group",
            "wecom_id",
            "name",
            "order",
            "sync_state",
            "sync_message",
            "last_synced_at",
            "version",
            "updated_at",
            "updated_by",
            "pending_name",
            "pending_order",
            "pending_delete",
        ],
        [
            (
                app.pk,
                group_pk,
                wecom_id,
                name,
                order,
                SyncState.IN_SYNC.value,
                "",
                when,
                1,
                when,
                None,
                "",
                None,
                False,
            )
            for wecom_id, name, order, group_pk in rows
        ],
    )


_FOLLOW_FIELDS = ["name", "order", "version", "sync_state", "sync_message", "last_synced_at"]


def _follow(row: _Row, name: str, order: int, log: _AuditBatch, now: Any) -> bool:
    """Take WeCom's name and order. An item with a local change pending becomes a conflict."""
    changes: dict[str, tuple[Any, Any]] = {}
    if row.name != name:
        changes["name"] = (row.name, name)
    if row.order != order:
        changes["order"] = (row.order, order)
    if not changes:
        return False
    if row.has_pending:
        row.sync_state = SyncState.CONFLICT
        row.sync_message = (
            gettext("Changed in WeCom while a local change waited: %(changes)s")
            % {"changes": "; ".join(f"{old} → {new}" for old, new in changes.values())}
        )[:500]
    row.last_synced_at = now
    row.name, row.order = name, order
    row.version += 1
    log.change(row.model, row.pk, name, changes)
    return True


def _conflict_gone(row: _Row) -> _Row:
    row.sync_state = SyncState.CONFLICT
    row.sync_message = gettext("Deleted in WeCom while a local change waited.")
    return row


def _settle(
    app: WeComApp,
    plan: Plan,
    applied: int,
    conflicts: int,
    *,
    actor: Actor,
    choices: Mapping[str, Choice],
    record_pull: bool = True,
) -> ApplyResult:
    """After the plan's rows: the conflicts a person chose for, then the pull's record."""
    result = ApplyResult(applied=applied, conflicts_left=conflicts)
    for change in plan.conflicts:
        choice = choices.get(change.key, Choice.LATER)
        if choice is Choice.LATER or change.local_pk is None:
            continue
        model = TagGroup if change.kind == "group" else Tag
        item = model.objects.filter(pk=change.local_pk).first()
        if item is None:
            continue
        try:
            outcome = conflict_resolve(item=item, choice=choice, actor=actor)
        except (PlatformError, ValidationError) as error:
            # The plan itself is applied; this conflict waits, with the reason.
            reason = error.explanation if isinstance(error, PlatformError) else error.messages[0]
            result.messages.append(
                gettext("“%(name)s” stays a conflict: %(reason)s")
                % {"name": item.name, "reason": reason}
            )
            continue
        result.conflicts_left -= 1
        if choice is Choice.WECOM:
            result.resolved_wecom += 1
        else:
            result.resolved_ours += 1
        result.messages.extend(outcome.messages)
    if not record_pull:
        return result
    _record_pull(
        app,
        ok=True,
        message=gettext("Changes followed: %(applied)d; conflicts waiting: %(conflicts)d.")
        % {"applied": result.applied, "conflicts": result.conflicts_left},
    )
    return result


def _record_pull(app: WeComApp, *, ok: bool, message: str) -> StrategyPull:
    pull, _created = StrategyPull.objects.update_or_create(
        app=app, defaults={"pulled_at": timezone.now(), "ok": ok, "message": message[:500]}
    )
    return pull


def pull_failure_record(app: WeComApp, *, actor: Actor, error: PlatformError) -> None:
    """A pull WeCom did not answer: on the app's pull row and in its History, with the reason."""
    from console.audit import AuditAction, audit_record

    with transaction.atomic():
        pull = _record_pull(app, ok=False, message=error.explanation)
        audit_record(
            actor=actor,
            obj=pull,
            action=AuditAction.CHANGE,
            note=_("Pull from WeCom failed: %(reason)s"),
            note_params={"reason": error.explanation},
        )


def conflict_resolve(*, item: TagGroup | Tag, choice: Choice, actor: Actor) -> Outcome:
    """Settle one conflict: take WeCom's values (drop the local change) or push ours.

    On the write path: WeCom is read (and, for "push ours", written) with no transaction open;
    each choice is recorded with its note, the failed ones with WeCom's reason."""
    from console.audit import AuditAction, audit_record

    require_no_transaction("conflict_resolve")
    gone = _is_gone(item)
    if choice is Choice.WECOM:
        with transaction.atomic():
            if gone:
                audit_record(
                    actor=actor,
                    obj=item,
                    action=AuditAction.DELETE,
                    changes={"name": (item.name, None)},
                    note=_("Conflict settled: WeCom's deletion taken."),
                )
                item.delete()
            else:
                type(item).objects.filter(pk=item.pk).update(
                    pending_name="",
                    pending_order=None,
                    pending_delete=False,
                    sync_state=SyncState.IN_SYNC,
                    sync_message="",
                    last_synced_at=timezone.now(),
                    version=item.version + 1,
                )
                audit_record(
                    actor=actor,
                    obj=item,
                    action=AuditAction.CHANGE,
                    note=_("Conflict settled: WeCom's values taken, the local change dropped."),
                )
        return Outcome(done=1)
    if gone:
        return _recreate(item, actor=actor)
    outcome = items_push(items=[item], actor=actor)
    if outcome.ok:
        with transaction.atomic():
            audit_record(
                actor=actor,
                obj=item,
                action=AuditAction.CHANGE,
                note=_("Conflict settled: the console's values pushed to WeCom."),
            )
    return outcome


def _is_gone(item: TagGroup | Tag) -> bool:
    client = wecom_client(item.app)
    if isinstance(item, TagGroup):
        return not client.strategy_tag_list(group_ids=[item.wecom_id])
    return not client.strategy_tag_list(tag_ids=[item.wecom_id])


def _recreate(item: TagGroup | Tag, *, actor: Actor) -> Outcome:
    """Push ours for an item WeCom deleted: create it again with the local values (the add
    call with no transaction open, then its outcome and History entry)."""
    from console.audit import AuditAction, audit_record
    from wecom.clients.wecom import NewTag

    client = wecom_client(item.app)
    name = item.pending_name or item.name
    order = item.pending_order if item.pending_order is not None else item.order
    tags = list(item.tags.all()) if isinstance(item, TagGroup) else []
    try:
        if isinstance(item, Tag):
            group = item.group
            answer = client.strategy_tag_add(
                strategy_id=group.strategy.wecom_id,
                group_id=group.wecom_id,
                tags=[NewTag(name=name, order=order)],
            )
        else:
            answer = client.strategy_tag_add(
                strategy_id=item.strategy.wecom_id,
                group_name=name,
                group_order=order,
                tags=[NewTag(name=t.name, order=t.order) for t in tags],
            )
    except PlatformError as error:
        with transaction.atomic():
            type(item).objects.filter(pk=item.pk).update(
                sync_state=SyncState.FAILED, sync_message=error.explanation[:500]
            )
            audit_record(
                actor=actor,
                obj=item,
                action=AuditAction.CHANGE,
                note=_("Conflict not settled: WeCom refused to create it again: %(reason)s"),
                note_params={"reason": error.explanation},
            )
        return Outcome(failed=1, messages=[error.explanation])
    with transaction.atomic():
        if isinstance(item, Tag):
            created = answer.tags[0]
            Tag.objects.filter(pk=item.pk).update(
                wecom_id=created.id, name=created.name, order=created.order
            )
        else:
            TagGroup.objects.filter(pk=item.pk).update(
                wecom_id=answer.group_id, name=answer.group_name, order=answer.order
            )
            by_name = {t.name: t.id for t in answer.tags}
            for tag in tags:
                if tag.name in by_name:
                    Tag.objects.filter(pk=tag.pk).update(wecom_id=by_name[tag.name])
        type(item).objects.filter(pk=item.pk).update(
            pending_name="",
            pending_order=None,
            pending_delete=False,
            sync_state=SyncState.IN_SYNC,
            sync_message="",
            last_synced_at=timezone.now(),
            version=item.version + 1,
        )
        audit_record(
            actor=actor,
            obj=item,
            action=AuditAction.ADD,
            changes={"name": (None, name)},
            note=_("Conflict settled: created again in WeCom with the local values."),
        )
    return Outcome(done=1)


# --- audit in bulk ------------------------------------------------------------------------------


class _AuditBatch:
    """History entries for a pull, written with one bulk insert. The parts every entry shares
    (source, note, field labels) are worked out once, not once per tag."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.entries: list[tuple] = []
        self._now = connection.ops.adapt_datetimefield_value(timezone.now())
        self._part = console_message_part(
            source=actor.source, ip=actor.ip, detail=actor.detail, note=_("Pulled from WeCom.")
        )["console"]
        self._labels: dict[tuple[type, str], str] = {}
        self._content_types: dict[type, int] = {}

    def _label(self, model: type, name: str) -> str:
        key = (model, name)
        if key not in self._labels:
            self._labels[key] = value_changes(model, {name: (None, None)})[0].label
        return self._labels[key]

    def _entry(
        self, model: type, pk: int, text: str, flag: int, changes: dict[str, tuple[Any, Any]]
    ) -> None:
        values = [
            [name, self._label(model, name), describe_value(old), describe_value(new), False]
            for name, (old, new) in changes.items()
        ]
        message: list[dict[str, Any]] = []
        if flag == ADDITION:
            message.append({"added": {}})
        elif flag == CHANGE and values:
            message.append({"changed": {"fields": [value[1] for value in values]}})
        message.append({"console": {**self._part, "values": values}})
        if model not in self._content_types:
            self._content_types[model] = ContentType.objects.get_for_model(model).pk
        self.entries.append(
            (
                self._now,
                self.actor.user.pk,
                self._content_types[model],
                str(pk),
                text[:200],
                flag,
                json.dumps(message, ensure_ascii=False),
            )
        )

    def add(self, model: type, pk: int, text: str, changes: dict[str, tuple[Any, Any]]) -> None:
        self._entry(model, pk, text, ADDITION, changes)

    def change(self, model: type, pk: int, text: str, changes: dict[str, tuple[Any, Any]]) -> None:
        self._entry(model, pk, text, CHANGE, changes)

    def delete(self, model: type, pk: int, text: str) -> None:
        self._entry(model, pk, text, DELETION, {"name": (text, None)})

    def save(self) -> None:
        if self.entries:
            columns = ["action_time", "user", "content_type", "object_id", "object_repr",
                       "action_flag", "change_message"]  # fmt: skip
            _insert_rows(LogEntry, columns, self.entries)


def pull_actor_for_schedule() -> Actor:
    return Actor.system(source=AuditSource.PLATFORM, detail="wecom_pull schedule")


def plan_lines(plan: Plan) -> Iterable[str]:
    """The plan as lines of text, for the CLI."""
    for change in plan.changes:
        mark = "!" if change.conflict else ("+" if Action.ADD in change.actions else "~")
        if Action.DELETE in change.actions:
            mark = "!" if change.conflict else "-"
        text = f" {mark} {change.kind_label} “{change.name}”"
        if change.where:
            text += f" ({change.where})"
        text += f": {change.action_label}"
        detail = change.describe()
        if detail:
            text += f" [{detail}]"
        if change.conflict:
            text += " " + gettext("— conflict with the local change: %(pending)s") % {
                "pending": change.local_pending or "-"
            }
        yield text
    for pending in plan.pending:
        yield " * " + gettext("%(kind)s “%(name)s”: %(state)s (%(what)s)") % {
            "kind": KIND_LABELS[pending.kind],
            "name": pending.name,
            "state": pending.state,
            "what": pending.message,
        }
