"""Pulling WeCom strategy tags, part two: applying a plan.

:func:`pull_apply` applies exactly a plan that was shown: it fetches again and refuses
(``PlanChanged``, with the new plan) if WeCom or the console changed meanwhile.
:func:`pull_and_apply` (the schedule, ``wecom_pull``) and :func:`pull_and_apply_scoped` (a WeCom
callback) plan and apply at once; their conflicts wait for a person.

The apply reads the app's rows in three queries and writes in bulk, so its query count does not
grow with the number of tags (on SQLite, bulk writes are cut in batches by its parameter limit);
its History entries go through one :class:`console.audit.AuditBatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import Actor, AuditAction, AuditBatch
from console.bulk_rows import rows_insert
from tagging.strategy.models import CORPORATE_WECOM_ID, Strategy, SyncState, Tag, TagGroup
from tagging.strategy.pull_plan import (
    LocalItems,
    LocalRow,
    Plan,
    PlanChanged,
    PullScope,
    Snapshot,
    local_load,
    plan_from,
    strategy_pull_fetch,
    strategy_pull_fetch_scoped,
)
from tagging.strategy.services import (
    Choice,
    conflict_resolve,
    corporate_root,
    pull_failure_record,
    strategy_pull_record,
)
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp


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
    before_call: Callable[[], None] | None = None,
) -> ApplyResult:
    """Apply the plan whose fingerprint was shown; conflicts follow ``choices`` (by change key),
    and wait for a person when they have none. Raises :class:`PlanChanged` if WeCom or the
    console moved on since."""
    snapshot = _fetch(app, actor=actor, before_call=before_call)
    plan, applied, conflicts = _apply(app, snapshot, actor=actor, fingerprint=fingerprint)
    return _settle(app, plan, applied, conflicts, actor=actor, choices=choices or {})


def pull_and_apply(
    *, app: WeComApp, actor: Actor, before_call: Callable[[], None] | None = None
) -> tuple[Plan, ApplyResult]:
    """What the schedule and ``wecom_pull`` do: plan and apply at once; conflicts wait."""
    snapshot = _fetch(app, actor=actor, before_call=before_call)
    plan, applied, conflicts = _apply(app, snapshot, actor=actor)
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
    plan, applied, conflicts = _apply(app, snapshot, actor=actor, scope=scope)
    return plan, _settle(app, plan, applied, conflicts, actor=actor, choices={}, record_pull=False)


def _fetch(app: WeComApp, *, actor: Actor, before_call: Callable[[], None] | None) -> Snapshot:
    """The whole app's snapshot; a pull WeCom did not answer is recorded, then raised."""
    try:
        return strategy_pull_fetch(app, before_call=before_call)
    except PlatformError as error:
        pull_failure_record(app=app, actor=actor, error=error)
        raise


def _apply(
    app: WeComApp,
    snapshot: Snapshot,
    *,
    actor: Actor,
    scope: PullScope | None = None,
    fingerprint: str | None = None,
) -> tuple[Plan, int, int]:
    """Plan against the console's rows and apply, in one transaction: the plan, and how many
    changes were followed and how many conflicts wait."""
    with transaction.atomic():
        if any(s.wecom_id == CORPORATE_WECOM_ID for s in snapshot.strategies):
            corporate_root(app)  # the corporate groups' parent, before they are compared
        local = local_load(app, scope)
        plan = plan_from(app, snapshot, local)
        if fingerprint is not None and plan.fingerprint != fingerprint:
            raise PlanChanged(plan)
        applied, conflicts = _apply_plan_rows(app, plan, local, actor)
    return plan, applied, conflicts


def _apply_plan_rows(app: WeComApp, plan: Plan, local: LocalItems, actor: Actor) -> tuple[int, int]:
    assert plan.snapshot is not None
    now = timezone.now()
    if not plan.changes:
        # WeCom and the console agree (the common scheduled pull): nothing to write.
        Strategy.objects.filter(app=app).update(last_synced_at=now)
        return 0, 0
    snapshot = plan.snapshot
    log = AuditBatch(actor=actor, note=_("Pulled from WeCom."))

    # Strategies: add, rename, re-parent, delete.
    strategies_new = []
    strategies_changed = []
    for remote in snapshot.strategies:
        if remote.wecom_id == CORPORATE_WECOM_ID:
            continue  # the corporate root: made above, never renamed or deleted by a pull
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
            log.add(
                Strategy,
                existing.pk,
                remote.name,
                AuditAction.CHANGE,
                {"name": (existing.name, remote.name)},
            )
            existing.name = remote.name
            existing.parent_wecom_id = remote.parent_wecom_id
            existing.version += 1
            strategies_changed.append(existing)
    created = Strategy.objects.bulk_create(strategies_new)
    for strategy in created:
        local.strategies[strategy.wecom_id] = strategy
        log.add(
            Strategy, strategy.pk, strategy.name, AuditAction.ADD, {"name": (None, strategy.name)}
        )
    remote_strategy_ids = {s.wecom_id for s in snapshot.strategies}
    gone_strategies = [
        s
        for w, s in local.strategies.items()
        if w not in remote_strategy_ids and w != CORPORATE_WECOM_ID
    ]
    # Parents by WeCom id, once all strategies exist (0 is "no parent", not the corporate root).
    parents_changed = []
    for strategy in local.strategies.values():
        parent = (
            local.strategies.get(strategy.parent_wecom_id)
            if strategy.parent_wecom_id != CORPORATE_WECOM_ID
            else None
        )
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
            AuditAction.ADD,
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
        _insert_tags(app, tags_new, now=now)
        pks = dict(Tag.objects.filter(app=app).values_list("wecom_id", "pk"))
        for wecom_id, name, order, _group_pk in tags_new:
            log.add(
                Tag,
                pks[wecom_id],
                name,
                AuditAction.ADD,
                {"name": (None, name), "order": (None, order)},
            )
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
        log.add(row.model, row.pk, row.name, AuditAction.DELETE, {"name": (row.name, None)})
    Tag.objects.filter(pk__in=[t.pk for t in tags_gone]).delete()
    Tag.objects.bulk_update(kept_tags, ["sync_state", "sync_message"])
    TagGroup.objects.bulk_update(kept_groups, ["sync_state", "sync_message"])
    # Tags of deleted groups are deleted with them.
    Tag.objects.filter(group__in=[g.pk for g in groups_gone]).delete()
    TagGroup.objects.filter(pk__in=[g.pk for g in groups_gone]).delete()
    for strategy in gone_strategies:
        log.add(
            Strategy,
            strategy.pk,
            strategy.name,
            AuditAction.DELETE,
            {"name": (strategy.name, None)},
        )
    Strategy.objects.filter(pk__in=[s.pk for s in gone_strategies]).delete()

    # Strategies are few: each carries the pull's time. Groups and tags carry the time of their
    # last change from either side; one in step was confirmed by the app's last pull too
    # (StrategyPull.pulled_at; see ``last_sync``), which saves rewriting 10,000 rows a pull.
    Strategy.objects.filter(app=app).update(last_synced_at=now)
    log.save()
    return len(plan.clean_changes), len(plan.conflicts)


def _insert_tags(app: WeComApp, rows: list[tuple[str, str, int, int]], *, now: Any) -> None:
    """A first import's thousands of tags, as rows (a model instance each cost more)."""
    when = connection.ops.adapt_datetimefield_value(now)
    rows_insert(
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


def _follow(row: LocalRow, name: str, order: int, log: AuditBatch, now: Any) -> bool:
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
    log.add(row.model, row.pk, name, AuditAction.CHANGE, changes)
    return True


def _conflict_gone(row: LocalRow) -> LocalRow:
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
    strategy_pull_record(
        app=app,
        ok=True,
        message=gettext("Changes followed: %(applied)d; conflicts waiting: %(conflicts)d.")
        % {"applied": result.applied, "conflicts": result.conflicts_left},
    )
    return result
