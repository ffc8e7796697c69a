"""WeCom strategy tags and corporate tags: every change the console makes, pushed to WeCom and
audited.

Corporate tags (企业客户标签) are the groups and tags of the app's corporate root (a
``Strategy`` of kind corporate, :func:`corporate_root`); every service here serves both, and
:func:`tag_library` picks the WeCom endpoints of the item's library.

Every service here follows the write path (docs/write-path.md): the intent (the wanted values
as pending, a new version) in a short transaction, the WeCom call with no transaction open
(``require_no_transaction`` refuses an outer one), then the outcome and its History entry in a
second short transaction. A change is validated with the rules of ``wecom/rules.py`` (the same
calls the admin forms make); a refusal puts the item back, is recorded in its History and is
raised as a ``ValidationError`` carrying WeCom's reason as a sentence.

A change that takes several calls (re-spacing a list's orders, a job: ``respacing.py``;
re-pushing failed items) first writes what it wants to do into the items' ``pending_*`` fields
and commits, then sends call after call, committing each outcome. A failure part-way leaves the
console true to WeCom (``name``/``order`` mirror it) with the rest of the change kept as
pending: "re-push failed" resumes it. Swapping two names compensates instead: the names go back
as they were.

A call that may or may not have happened (a timeout or a dropped connection) is settled by
reading WeCom back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Max, Model
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from console.audit import Actor, AuditAction, audit_record
from console.transactions import require_no_transaction
from console.versioning import StaleEdit as StaleEdit, check_version
from tagging.strategy.models import (
    CORPORATE_ROOT_NAME,
    CORPORATE_WECOM_ID,
    OrderedItem,
    Strategy,
    StrategyKind,
    StrategyPull,
    SyncState,
    Tag,
    TagGroup,
)
from wecom.clients.errors import PlatformAPIError, PlatformError, PlatformTransportError
from wecom.clients.wecom import NewTag, StrategyTag, StrategyTagGroup, TagLibrary
from wecom.connections import client_for
from wecom.models import WeComApp
from wecom.rules import (
    CORP_TAG_LIMIT,
    ORDER_MAX,
    validate_corp_tag_limit,
    validate_distinct_names,
    validate_first_level_strategy,
    validate_group_not_empty,
    validate_name_free,
    validate_order,
    validate_tag_name,
)

# Orders are spaced this far apart, so that moving one item lands between two neighbours with
# one edit call; only when two neighbours touch is the whole list re-spaced.
ORDER_GAP = 1024
ERR_NOT_FOUND = 40068

Item = TypeVar("Item", TagGroup, Tag)
Created = TypeVar("Created", StrategyTagGroup, StrategyTag)


# --- errors and outcomes ---------------------------------------------------------------------


@dataclass
class Outcome:
    """What a multi-call change did, as sentences for the user."""

    done: int = 0
    failed: int = 0
    messages: list[str] = field(default_factory=list)
    # The last failure itself, for a caller that waits out an outage but stops at a refusal.
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0


def _refusal(error: PlatformError, *, field_name: str | None = None) -> ValidationError:
    if field_name:
        return ValidationError({field_name: error.explanation}, code="wecom")
    return ValidationError(error.explanation, code="wecom")


def _maybe_happened(error: PlatformError) -> bool:
    """A transport failure on a call the client does not resend: it may have been carried out."""
    return isinstance(error, PlatformTransportError)


def admin_url(item: Model) -> str:
    meta = item._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[item.pk])


# --- validation: one implementation for forms and services -----------------------------------


def group_names_taken(strategy: Strategy, *, exclude: TagGroup | None = None) -> dict[str, str]:
    groups = TagGroup.objects.filter(strategy=strategy, pending_delete=False)
    if exclude is not None:
        groups = groups.exclude(pk=exclude.pk)
    return {group.name: admin_url(group) for group in groups.only("pk", "name")}


def tag_names_taken(group: TagGroup, *, exclude: Tag | None = None) -> dict[str, str]:
    tags = Tag.objects.filter(group=group, pending_delete=False)
    if exclude is not None:
        tags = tags.exclude(pk=exclude.pk)
    return {tag.name: admin_url(tag) for tag in tags.only("pk", "name")}


def corp_tag_count(app: WeComApp) -> int:
    """Tags of the app's corp the console knows of, strategy and corporate together (WeCom's
    10,000 counts both), each once however many apps of the corp mirror it."""
    return (
        Tag.objects.filter(app__corp_id=app.corp_id)
        .values("wecom_id")
        .distinct()
        .order_by()
        .count()
    )


# --- which tag library: strategy tags or the corporate tags (企业客户标签) ----------------------


def corporate_root(app: WeComApp) -> Strategy:
    """The app's corporate tag library (the ``Strategy`` row its corporate groups hang under),
    made the first time it is needed: the tree shows it, a pull fills it."""
    root, _created = Strategy.objects.get_or_create(
        app=app,
        wecom_id=CORPORATE_WECOM_ID,
        defaults={"kind": StrategyKind.CORPORATE, "name": CORPORATE_ROOT_NAME},
    )
    return root


def is_corporate(item: Strategy | OrderedItem) -> bool:
    """Whether ``item`` is (under) the corporate root: at most one query."""
    if isinstance(item, Strategy):
        return item.is_corporate
    if isinstance(item, TagGroup):
        strategies = Strategy.objects.filter(pk=item.strategy_id)
    else:
        assert isinstance(item, Tag)
        strategies = Strategy.objects.filter(groups__pk=item.group_id)
    return strategies.filter(kind=StrategyKind.CORPORATE).exists()


def tag_library(item: Strategy | OrderedItem) -> TagLibrary:
    """The WeCom calls of the library ``item`` belongs to (its app's client)."""
    return client_for(item.app).tag_library(corporate=is_corporate(item))


Check = tuple[str, Callable[[], None]]  # the field a message goes beside, and the check


def _field_errors(checks: Iterable[Check]) -> None:
    errors: dict[str, list[ValidationError]] = {}
    for field_name, check in checks:
        try:
            check()
        except ValidationError as error:
            errors.setdefault(field_name, []).append(error)
    if errors:
        raise ValidationError(errors)


def tag_group_validate(
    *,
    strategy: Strategy,
    name: str,
    order: int | None,
    tags: Sequence[tuple[str, int | None]],
    group: TagGroup | None = None,
) -> None:
    """A new group (``group`` None, with its ``tags``) or a changed one. Raises a
    ``ValidationError`` keyed by field: ``name``, ``order``, ``strategy``, ``tags``."""
    checks = _item_checks(
        name,
        order,
        taken=lambda: group_names_taken(strategy, exclude=group),
        what=_("Tag group"),
    )
    if group is None:
        checks.append(("tags", lambda: validate_group_not_empty(len(tags))))
        checks.append(("tags", lambda: validate_distinct_names([n for n, _o in tags])))
        for tag_name, tag_order in tags:
            checks.append(("tags", lambda n=tag_name: validate_tag_name(n)))
            if tag_order is not None:
                checks.append(("tags", lambda o=tag_order: validate_order(o)))
        checks += _new_item_checks(strategy, where="strategy", adding=len(tags), count="tags")
    _field_errors(_dedupe_checks(checks))


def tag_validate(*, group: TagGroup, name: str, order: int | None, tag: Tag | None = None) -> None:
    """A new tag (``tag`` None) in ``group`` or a changed one; errors keyed ``name``/``order``."""
    checks = _item_checks(
        name, order, taken=lambda: tag_names_taken(group, exclude=tag), what=_("Tag")
    )
    if tag is None:
        checks += _new_item_checks(group.strategy, where="group", adding=1, count="name")
    _field_errors(_dedupe_checks(checks))


def _item_checks(
    name: str, order: int | None, *, taken: Callable[[], dict[str, str]], what: Any
) -> list[Check]:
    """What every tag or tag group's name and order must be."""
    checks: list[Check] = [
        ("name", lambda: validate_tag_name(name)),
        ("name", lambda: validate_name_free(name, taken=taken(), what=what)),
    ]
    if order is not None:
        checks.append(("order", lambda: validate_order(order)))
    return checks


def _new_item_checks(strategy: Strategy, *, where: str, adding: int, count: str) -> list[Check]:
    """What a new item needs besides: a first-level strategy (the field ``where``), and room
    for ``adding`` more tags in the corp (said beside ``count``)."""
    return [
        (where, lambda: validate_first_level_strategy(is_first_level=strategy.is_first_level)),
        (
            count,
            lambda: validate_corp_tag_limit(existing=corp_tag_count(strategy.app), adding=adding),
        ),
    ]


def _dedupe_checks(checks: list[Check]) -> list[Check]:
    """Only the first failing check per field speaks: one clear message beside each field."""
    failed: set[str] = set()
    result = []
    for field_name, check in checks:

        def guarded(check: Callable[[], None] = check, field_name: str = field_name) -> None:
            if field_name in failed:
                return
            try:
                check()
            except ValidationError:
                failed.add(field_name)
                raise

        result.append((field_name, guarded))
    return result


def _locked(item: Item) -> Item:
    """The item re-read under a row lock: concurrent edits of one item queue up here."""
    return (
        type(item)
        .objects.select_for_update(of=("self",))
        .select_related("updated_by", "app")
        .get(pk=item.pk)
    )


def _mark_synced(item: OrderedItem, actor: Actor, now: Any, *, new_version: bool = True) -> None:
    if not item.has_pending:
        item.sync_state = SyncState.IN_SYNC
        item.sync_message = ""
    item.last_synced_at = now
    if new_version:
        item.version += 1
    item.updated_by = actor.user


def _record_refusal(
    item: OrderedItem | Strategy, *, actor: Actor, what: str, reason: str, state: str | None = None
) -> None:
    """A push WeCom refused (or that failed), in the item's History with the reason."""
    audit_record(
        actor=actor,
        obj=item,
        action=AuditAction.CHANGE,
        note=_("Not changed in WeCom (%(what)s): %(reason)s"),
        note_params={"what": what, "reason": reason},
    )
    if state is not None:
        type(item).objects.filter(pk=item.pk).update(sync_state=state, sync_message=reason[:500])


def _describe_edit(item: OrderedItem, name: str | None, order: int | None) -> str:
    parts = []
    if name is not None and name != item.name:
        parts.append(gettext("name “%(old)s” → “%(new)s”") % {"old": item.name, "new": name})
    if order is not None and order != item.order:
        parts.append(gettext("order %(old)s → %(new)s") % {"old": item.order, "new": order})
    if item.pending_delete:
        parts.append(gettext("delete"))
    return gettext("; ").join(parts) or gettext("no change")


# --- orders -----------------------------------------------------------------------------------


def _top_order(orders: Iterable[int]) -> int:
    highest = max(orders, default=None)
    if highest is None:
        return ORDER_GAP
    return min(highest + ORDER_GAP, ORDER_MAX) if highest < ORDER_MAX else ORDER_MAX


def spaced_orders(count: int) -> list[int]:
    """Orders for ``count`` items top to bottom, ORDER_GAP apart, the last at ORDER_GAP."""
    return [(count - index) * ORDER_GAP for index in range(count)]


def order_between(above: int | None, below: int | None) -> int | None:
    """An order strictly between two neighbours (larger is higher), or None if they touch."""
    if above is None and below is None:
        return ORDER_GAP
    if above is None:
        assert below is not None
        return (
            below + ORDER_GAP
            if below + ORDER_GAP <= ORDER_MAX
            else ((below + ORDER_MAX + 1) // 2 if below < ORDER_MAX else None)
        )
    if below is None:
        if above >= ORDER_GAP + 1:
            return above - ORDER_GAP
        return above // 2 if above >= 1 else None
    if above - below >= 2:
        return (above + below) // 2
    return None


# --- tag groups -------------------------------------------------------------------------------


def _settle_group_add(
    library: TagLibrary, *, strategy: Strategy, name: str, tag_names: list[str]
) -> StrategyTagGroup | None:
    """After an add that may have happened: the group as WeCom has it, if it has our tags."""
    for group in library.list(strategy_id=strategy.wecom_id):
        if group.group_name == name:
            have = {tag.name for tag in group.tags}
            if all(tag_name in have for tag_name in tag_names):
                return StrategyTagGroup(
                    group_id=group.group_id,
                    group_name=group.group_name,
                    order=group.order,
                    create_time=group.create_time,
                    strategy_id=group.strategy_id,
                    tags=[tag for tag in group.tags if tag.name in tag_names],
                )
    return None


def tag_group_create(
    *,
    strategy: Strategy,
    name: str,
    tags: Sequence[tuple[str, int | None]],
    actor: Actor,
    order: int | None = None,
) -> TagGroup:
    """A new tag group with its tags (WeCom has no empty groups): one add call.

    A new group has no row before WeCom gives it an id: the check is one short transaction, the
    call runs with none open, and what WeCom created is saved in a second one (a lost answer is
    settled by reading WeCom back)."""
    require_no_transaction("tag_group_create")
    with transaction.atomic():
        strategy = (
            Strategy.objects.select_for_update(of=("self",))
            .select_related("app")
            .get(pk=strategy.pk)
        )
        tag_group_validate(strategy=strategy, name=name, order=order, tags=tags)
        if order is None:
            order = _top_order(
                TagGroup.objects.filter(strategy=strategy).values_list("order", flat=True)
            )
    wanted: list[tuple[str, int]] = [
        (tag_name, tag_order if tag_order is not None else default)
        for (tag_name, tag_order), default in zip(tags, spaced_orders(len(tags)), strict=True)
    ]
    library = tag_library(strategy)
    answer, settled = _add_call(
        lambda: _add_group(library, strategy, name=name, order=order, tags=wanted),
        settle=lambda: _settle_group_add(
            library, strategy=strategy, name=name, tag_names=[n for n, _o in wanted]
        ),
        refusal_on=strategy,
        what=gettext("add tag group “%(name)s”") % {"name": name},
        not_created=gettext(
            "WeCom did not answer, and reading it back shows the group was not created. "
            "Nothing was saved; try again."
        ),
        actor=actor,
    )
    with transaction.atomic():
        return _save_created_group(strategy, answer, actor=actor, settled=settled)


def _add_group(
    library: TagLibrary, strategy: Strategy, *, name: str, order: int, tags: list[tuple[str, int]]
) -> StrategyTagGroup:
    return library.add(
        strategy_id=strategy.wecom_id,
        group_name=name,
        group_order=order,
        tags=[NewTag(name=tag_name, order=tag_order) for tag_name, tag_order in tags],
    )


def _add_tag(library: TagLibrary, group: TagGroup, *, name: str, order: int) -> StrategyTag:
    answer = library.add(
        strategy_id=group.strategy.wecom_id,
        group_id=group.wecom_id,
        tags=[NewTag(name=name, order=order)],
    )
    return next(tag for tag in answer.tags if tag.name == name)


def _add_call(
    call: Callable[[], Created],
    *,
    settle: Callable[[], Created | None],
    refusal_on: Model,
    what: str,
    not_created: str,
    actor: Actor,
) -> tuple[Created, bool]:
    """An add call, with no transaction open: what WeCom created, and whether that was
    settled by reading WeCom back after a lost answer. A refusal is recorded in the History of
    ``refusal_on`` (where the item would have gone) and raised with WeCom's reason."""
    try:
        return call(), False
    except PlatformError as error:
        if not _maybe_happened(error):
            _record_refusal(refusal_on, actor=actor, what=what, reason=error.explanation)
            raise _refusal(error, field_name="name") from error
        found = settle()
        if found is None:
            raise ValidationError(not_created, code="not_created") from error
        return found, True


def _save_created_group(
    strategy: Strategy, answer: StrategyTagGroup, *, actor: Actor, settled: bool
) -> TagGroup:
    now = timezone.now()
    group = TagGroup.objects.create(
        app=strategy.app,
        strategy=strategy,
        wecom_id=answer.group_id,
        name=answer.group_name,
        order=answer.order,
        last_synced_at=now,
        updated_by=actor.user,
    )
    created = Tag.objects.bulk_create(
        [
            Tag(
                app=strategy.app,
                group=group,
                wecom_id=tag.id,
                name=tag.name,
                order=tag.order,
                last_synced_at=now,
                updated_by=actor.user,
            )
            for tag in answer.tags
        ]
    )
    if created and created[0].pk is None:
        created = list(group.tags.all())
    for item in [group, *created]:
        _audit_created(item, actor=actor, settled=settled)
    return group


def _audit_created(item: OrderedItem, *, actor: Actor, settled: bool) -> None:
    audit_record(
        actor=actor,
        obj=item,
        action=AuditAction.ADD,
        changes={"name": (None, item.name), "order": (None, item.order)},
        note=_("Created in WeCom (confirmed by reading WeCom back after a lost answer).")
        if settled
        else _("Created in WeCom."),
    )


def tag_create(*, group: TagGroup, name: str, actor: Actor, order: int | None = None) -> Tag:
    """A new tag in an existing group: one add call with the group's id (checked, called and
    saved as :func:`tag_group_create` is)."""
    require_no_transaction("tag_create")
    with transaction.atomic():
        group = _locked(group)
        tag_validate(group=group, name=name, order=order)
        if order is None:
            order = _top_order(Tag.objects.filter(group=group).values_list("order", flat=True))
    library = tag_library(group)
    created, settled = _add_call(
        lambda: _add_tag(library, group, name=name, order=order),
        settle=lambda: next(
            (
                tag
                for remote in library.list(group_ids=[group.wecom_id])
                for tag in remote.tags
                if tag.name == name
            ),
            None,
        ),
        refusal_on=group,
        what=gettext("add tag “%(name)s”") % {"name": name},
        not_created=gettext(
            "WeCom did not answer, and reading it back shows the tag was not created. "
            "Nothing was saved; try again."
        ),
        actor=actor,
    )
    with transaction.atomic():
        tag = Tag.objects.create(
            app=group.app,
            group=group,
            wecom_id=created.id,
            name=created.name,
            order=created.order,
            last_synced_at=timezone.now(),
            updated_by=actor.user,
        )
        _audit_created(tag, actor=actor, settled=settled)
    return tag


def _read_back(item: OrderedItem) -> tuple[str, int] | None:
    """The item's name and order as WeCom has them now, or None if WeCom no longer has it."""
    library = tag_library(item)
    if isinstance(item, TagGroup):
        for remote in library.list(group_ids=[item.wecom_id]):
            return remote.group_name, remote.order
        return None
    for remote in library.list(tag_ids=[item.wecom_id]):
        for tag in remote.tags:
            if tag.id == item.wecom_id:
                return tag.name, tag.order
    return None


def _send_edit(item: OrderedItem, *, name: str | None, order: int | None) -> bool:
    """One edit call, no transaction open. True if WeCom has the change (answered, or read back
    after an answer that never came); raises the ``PlatformError`` of a refusal."""
    try:
        tag_library(item).edit(id=item.wecom_id, name=name, order=order)
        return False
    except PlatformError as error:
        if not _maybe_happened(error):
            raise
        try:
            remote = _read_back(item)
        except PlatformError:
            raise error from None
        if remote is None or (name is not None and remote[0] != name):
            raise
        if order is not None and remote[1] != order:
            raise
        return True


def _edit(
    item: Item,
    *,
    name: str | None,
    order: int | None,
    actor: Actor,
    expected_version: int | None = None,
    validate: bool = True,
    note: str = "",
) -> Item:
    """One edit call, on the write path: the intent (pending, with a new version) in a short
    transaction, the call with none open, the outcome and its History entry in a second one.

    A refusal puts the item back as it was, records the refusal in its History and raises a
    ``ValidationError`` with WeCom's reason keyed by the field it concerns.
    """
    require_no_transaction("tag_update")
    with transaction.atomic():
        item = _locked(item)
        check_version(item, expected_version, {"name": name, "order": order})
        if validate:
            _validate_change(item, name=name or item.name, order=order)
        changes: dict[str, tuple[Any, Any]] = {}
        if name is not None and name != item.name:
            changes["name"] = (item.name, name)
        if order is not None and order != item.order:
            changes["order"] = (item.order, order)
        # What the user saves replaces what was waiting to be pushed for the same field.
        overridden = False
        if name is not None and item.pending_name:
            item.pending_name, overridden = "", True
        if order is not None and item.pending_order is not None:
            item.pending_order, overridden = None, True
        if not changes:
            if overridden:
                _mark_synced(item, actor, timezone.now())
                item.save()
            return item
        before = {
            "pending_name": item.pending_name,
            "pending_order": item.pending_order,
            "sync_state": item.sync_state,
            "sync_message": item.sync_message,
            "version": item.version,
            "updated_by": item.updated_by,
        }
        if "name" in changes:
            item.pending_name = name  # type: ignore[assignment]
        if "order" in changes:
            item.pending_order = order
        item.sync_state = SyncState.PENDING
        item.sync_message = ""
        item.version += 1
        item.updated_by = actor.user
        item.save()
        intent_version = item.version
    what = _describe_edit(item, name if "name" in changes else None, order)
    try:
        settled = _send_edit(
            item,
            name=name if "name" in changes else None,
            order=order if "order" in changes else None,
        )
    except PlatformError as error:
        with transaction.atomic():
            current = _locked(item)
            if current.version == intent_version:
                for field_name, value in before.items():
                    setattr(current, field_name, value)
                current.save()
            _record_refusal(current, actor=actor, what=what, reason=error.explanation)
        raise _refusal(error, field_name="name" if "name" in changes else "order") from error
    with transaction.atomic():
        item = _locked(item)
        if "name" in changes:
            item.name = name  # type: ignore[assignment]
            if item.pending_name == name:
                item.pending_name = ""
        if "order" in changes:
            item.order = order  # type: ignore[assignment]
            if item.pending_order == order:
                item.pending_order = None
        _mark_synced(item, actor, timezone.now(), new_version=False)
        if item.has_pending:
            # Another change still waits (a failed order, say): it keeps its state and reason.
            item.sync_state = before["sync_state"]
            item.sync_message = before["sync_message"]
        item.save()
        if settled:
            note = note or _("Confirmed by reading WeCom back after a lost answer.")
        audit_record(actor=actor, obj=item, action=AuditAction.CHANGE, changes=changes, note=note)
    return item


def tag_group_update(
    *,
    group: TagGroup,
    actor: Actor,
    name: str | None = None,
    order: int | None = None,
    expected_version: int | None = None,
) -> TagGroup:
    """Rename or re-order a tag group: one edit call."""
    return _edit(group, name=name, order=order, actor=actor, expected_version=expected_version)


def tag_update(
    *,
    tag: Tag,
    actor: Actor,
    name: str | None = None,
    order: int | None = None,
    expected_version: int | None = None,
) -> Tag:
    """Rename or re-order a tag: one edit call."""
    return _edit(tag, name=name, order=order, actor=actor, expected_version=expected_version)


def _validate_change(item: OrderedItem, *, name: str, order: int | None) -> None:
    """The checks of a changed tag or tag group (the forms make the same ones)."""
    if isinstance(item, Tag):
        tag_validate(group=item.group, name=name, order=order, tag=item)
    else:
        assert isinstance(item, TagGroup)
        tag_group_validate(strategy=item.strategy, name=name, order=order, tags=(), group=item)


# --- moving: one call in the common case, re-spacing when two neighbours touch ---------------


class OrderChanged(ValidationError):
    """The orders a page showed are no longer the console's: someone moved something since."""

    def __init__(self) -> None:
        super().__init__(
            gettext(
                "Someone changed this list's order since the page was loaded. Nothing was sent "
                "to WeCom; the list now shows the current order. Move it again if needed."
            ),
            code="order_changed",
        )


def _siblings(item: OrderedItem) -> list[Any]:
    # What placing needs (the item moved is read again, whole, under its lock): a strategy's
    # 500 groups whole, dates parsed, were most of a move's time.
    if isinstance(item, Tag):
        tags = Tag.objects.filter(group_id=item.group_id).only("pk", "order", "app", "group")
        return list(tags.order_by("-order", "pk"))
    assert isinstance(item, TagGroup)
    groups = TagGroup.objects.filter(strategy_id=item.strategy_id)
    return list(groups.only("pk", "order", "app", "strategy").order_by("-order", "pk"))


def _check_shown(current: list[Any], shown: Mapping[int, int] | None) -> None:
    """Refuse a move made from a page that showed other orders than the console has."""
    if shown is None:
        return
    if {item.pk: item.order for item in current} != dict(shown):
        raise OrderChanged()


def _move(
    item: Item, *, to_index: int, actor: Actor, shown: Mapping[int, int] | None = None
) -> Outcome:
    siblings = _siblings(item)
    _check_shown(siblings, shown)
    others = [sibling for sibling in siblings if sibling.pk != item.pk]
    to_index = max(0, min(to_index, len(others)))
    if [s.pk for s in siblings].index(item.pk) == to_index:
        return Outcome()
    above = others[to_index - 1].order if to_index > 0 else None
    below = others[to_index].order if to_index < len(others) else None
    new_order = order_between(above, below)
    if new_order is not None:
        try:
            _edit(item, name=None, order=new_order, actor=actor, validate=False)
        except ValidationError as error:
            return Outcome(failed=1, messages=[_messages(error)])
        return Outcome(done=1)
    from tagging.strategy.respacing import respacing_start

    return respacing_start(items=[*others[:to_index], item, *others[to_index:]], actor=actor)


def tag_move(
    *, tag: Tag, to_index: int, actor: Actor, shown: Mapping[int, int] | None = None
) -> Outcome:
    """Move a tag to position ``to_index`` (0 = top) of its group. ``shown``: the orders the
    page showed ({pk: order}); if they changed meanwhile, nothing is sent."""
    return _move(tag, to_index=to_index, actor=actor, shown=shown)


def tag_group_move(
    *, group: TagGroup, to_index: int, actor: Actor, shown: Mapping[int, int] | None = None
) -> Outcome:
    """Move a tag group to position ``to_index`` (0 = top) of its strategy, likewise."""
    return _move(group, to_index=to_index, actor=actor, shown=shown)


def tags_reorder(
    *,
    group: TagGroup,
    tag_ids: Sequence[int],
    actor: Actor,
    shown: Mapping[int, int] | None = None,
) -> Outcome:
    """Put the group's tags in the order of ``tag_ids`` (top first), changing as few as the
    gaps allow: when exactly one tag moved, that is one call. ``shown``: the orders the page
    showed ({pk: order}); if the console's differ, nothing is sent (:class:`OrderChanged`)."""
    return _reorder(_siblings(Tag(group_id=group.pk)), tag_ids, actor=actor, shown=shown)


def tag_groups_reorder(
    *,
    strategy: Strategy,
    group_ids: Sequence[int],
    actor: Actor,
    shown: Mapping[int, int] | None = None,
) -> Outcome:
    """Put the strategy's groups in the order of ``group_ids`` (top first), likewise."""
    return _reorder(
        _siblings(TagGroup(strategy_id=strategy.pk)), group_ids, actor=actor, shown=shown
    )


def _reorder(
    current: list[Any],
    ids: Sequence[int],
    *,
    actor: Actor,
    shown: Mapping[int, int] | None = None,
) -> Outcome:
    tag_ids = ids
    by_pk = {item.pk: item for item in current}
    if sorted(by_pk) != sorted(tag_ids):
        if shown is not None:
            raise OrderChanged()
        raise ValidationError(
            gettext("The list changed meanwhile. Reload the page and try again."),
            code="stale",
        )
    _check_shown(current, shown)
    wanted = [by_pk[pk] for pk in tag_ids]
    moved = _single_move(current, wanted)
    if moved is not None:
        item, index = moved
        return _move(item, to_index=index, actor=actor)
    from tagging.strategy.respacing import respacing_start

    return respacing_start(items=wanted, actor=actor)


def _single_move(current: list[Any], wanted: list[Any]) -> tuple[Any, int] | None:
    """If ``wanted`` is ``current`` with one item moved, that item and its new index.

    Two neighbours swapped (a ▲ or ▼) are either of them moved by one: the one with room
    where it lands, so that a list just pulled (0, 1, 2…: no room between any two) still
    moves its second item to the top in one call.
    """
    now, then = [item.pk for item in current], [item.pk for item in wanted]
    differ = [index for index, (a, b) in enumerate(zip(now, then, strict=True)) if a != b]
    if not differ:
        return None
    first, last = differ[0], differ[-1]
    moves = []
    if then[first] == now[last] and then[first + 1 : last + 1] == now[first:last]:
        moves.append((current[last], first))  # moved up
    if then[last] == now[first] and then[first:last] == now[first + 1 : last + 1]:
        moves.append((current[first], last))  # moved down
    for item, index in moves:
        others = [other for other in current if other.pk != item.pk]
        above = others[index - 1].order if index > 0 else None
        below = others[index].order if index < len(others) else None
        if order_between(above, below) is not None:
            return item, index
    return moves[0] if moves else None


def items_push(*, items: Sequence[OrderedItem], actor: Actor) -> Outcome:
    """Send the pending changes of ``items`` to WeCom, one call each, committing each outcome.

    Each item on the write path: its pending change read under a lock, the call with no
    transaction open, the outcome and its History entry committed. Stops at the first failure:
    that item becomes "push failed" with WeCom's reason (in its History too), the rest stay
    pending. Used by multi-call changes, "re-push failed" and conflict choices.
    """
    require_no_transaction("items_push")
    outcome = Outcome()
    remaining = list(items)
    while remaining:
        item = remaining.pop(0)
        try:
            with transaction.atomic():
                item = _locked(item)
                pending = item.has_pending
                if pending:
                    _validate_pending(item)
            if pending:
                _push_pending(item, actor=actor)
            outcome.done += 1
        except (PlatformError, ValidationError) as error:
            reason = error.explanation if isinstance(error, PlatformError) else _messages(error)
            outcome.error = error
            with transaction.atomic():
                _record_refusal(
                    item,
                    actor=actor,
                    what=_describe_edit(item, item.pending_name or None, item.pending_order),
                    reason=reason,
                    state=SyncState.FAILED,
                )
            outcome.failed = 1 + len(remaining)
            outcome.messages.append(
                ngettext(
                    "WeCom refused a change after %(done)d was made: %(reason)s The remaining "
                    "%(left)d change is kept as pending; “Re-push failed” resumes it.",
                    "WeCom refused a change after %(done)d were made: %(reason)s The remaining "
                    "%(left)d changes are kept as pending; “Re-push failed” resumes them.",
                    outcome.failed,
                )
                % {"done": outcome.done, "reason": reason, "left": outcome.failed}
            )
            break
    return outcome


def _messages(error: ValidationError) -> str:
    return " ".join(str(message) for message in error.messages)


def _validate_pending(item: OrderedItem) -> None:
    name = item.pending_name or None
    if name is None or item.pending_delete:
        return
    _validate_change(item, name=name, order=None)


def _push_pending(item: OrderedItem, *, actor: Actor) -> None:
    """The pending change of one item (read under a lock just before): delete, or edit name
    and/or order. The call runs with no transaction open; the outcome is committed after."""
    if item.pending_delete:
        _delete_remote(tag_library(item), [item])
        with transaction.atomic():
            _audit_deleted(item, actor=actor, note=_("Deleted in WeCom."))
            type(item).objects.filter(pk=item.pk).delete()
        return
    name = item.pending_name or None
    order = item.pending_order
    send_name = name if name is not None and name != item.name else None
    send_order = order if order is not None and order != item.order else None
    settled = False
    if send_name is not None or send_order is not None:
        settled = _send_edit(item, name=send_name, order=send_order)
    with transaction.atomic():
        item = _locked(item)
        changes: dict[str, tuple[Any, Any]] = {}
        if send_name is not None:
            changes["name"] = (item.name, send_name)
            item.name = send_name
        if send_order is not None:
            changes["order"] = (item.order, send_order)
            item.order = send_order
        if item.pending_name == (name or ""):
            item.pending_name = ""
        if item.pending_order == order:
            item.pending_order = None
        _mark_synced(item, actor, timezone.now())
        item.save()
        if changes:
            audit_record(
                actor=actor,
                obj=item,
                action=AuditAction.CHANGE,
                changes=changes,
                note=_("Confirmed by reading WeCom back after a lost answer.") if settled else "",
            )


def items_repush_failed(*, items: Iterable[OrderedItem], actor: Actor) -> Outcome:
    """Resume: push every given item's pending change again (failed or pending ones)."""
    chosen = [item for item in items if item.has_pending]
    outcome = Outcome()
    # Deletes first (they cannot clash), then groups before tags.
    chosen.sort(key=lambda item: (not item.pending_delete, isinstance(item, Tag)))
    while chosen:
        step = items_push(items=chosen, actor=actor)
        outcome.done += step.done
        if step.failed:
            outcome.failed += 1
            outcome.messages.extend(step.messages[:1])
            # Go on with the others: one refusal should not hold every other item back.
            chosen = chosen[step.done + 1 :]
        else:
            chosen = []
    return outcome


# --- swapping two names: three calls, compensated on failure ---------------------------------


def names_swap(*, first: Item, second: Item, actor: Actor) -> Outcome:
    """Swap the names of two siblings: via a temporary name, as WeCom refuses a clash.

    On a failure part-way the calls already made are undone, so both keep their old names.
    """
    if type(first) is not type(second):
        raise ValidationError(gettext("Only two tags, or two tag groups, can swap names."))
    first_name, second_name = first.name, second.name
    temporary = _temporary_name(first_name)
    steps = [(first, temporary), (second, first_name), (first, second_name)]
    library = tag_library(first)
    made: list[tuple[OrderedItem, str, str]] = []  # (item, old remote name, new remote name)
    remote_names = {first.pk: first_name, second.pk: second_name}
    try:
        for item, new_name in steps:
            library.edit(id=item.wecom_id, name=new_name)
            made.append((item, remote_names[item.pk], new_name))
            remote_names[item.pk] = new_name
    except PlatformError as error:
        undone = _compensate(library, made)
        with transaction.atomic():
            for item in (first, second):
                _record_refusal(
                    item,
                    actor=actor,
                    what=gettext("swap names “%(first)s” ↔ “%(second)s”")
                    % {"first": first_name, "second": second_name},
                    reason=error.explanation,
                )
        if undone:
            message = gettext(
                "WeCom refused a step of the swap: %(reason)s The steps already made were "
                "undone; both keep their old names."
            ) % {"reason": error.explanation}
            raise ValidationError(message, code="swap_compensated") from error
        # Could not undo: record what WeCom has now, and say so.
        with transaction.atomic():
            for item in (first, second):
                type(item).objects.filter(pk=item.pk).update(
                    name=remote_names[item.pk],
                    sync_state=SyncState.FAILED,
                    sync_message=error.explanation[:500],
                    pending_name={first.pk: second_name, second.pk: first_name}[item.pk],
                )
        raise ValidationError(
            gettext(
                "WeCom refused a step of the swap and undoing it failed too: %(reason)s The "
                "console shows the names WeCom has now; “Re-push failed” finishes the swap."
            )
            % {"reason": error.explanation},
            code="swap_failed",
        ) from error
    with transaction.atomic():
        now = timezone.now()
        for item, old, new in ((first, first_name, second_name), (second, second_name, first_name)):
            locked = _locked(item)
            locked.name = new
            _mark_synced(locked, actor, now)
            locked.save()
            audit_record(
                actor=actor,
                obj=locked,
                action=AuditAction.CHANGE,
                changes={"name": (old, new)},
                note=_("Names swapped."),
            )
    return Outcome(done=2)


def _temporary_name(name: str) -> str:
    suffix = "~" + timezone.now().strftime("%H%M%S")
    return (name[: 30 - len(suffix)] + suffix).strip() or suffix


def _compensate(library: TagLibrary, made: list[tuple[OrderedItem, str, str]]) -> bool:
    for item, old, _new in reversed(made):
        try:
            library.edit(id=item.wecom_id, name=old)
        except PlatformError:
            return False
    return True


# --- deleting -----------------------------------------------------------------------------------


def _delete_remote(library: TagLibrary, items: Sequence[OrderedItem]) -> None:
    """Delete tags and groups of one library in WeCom with one call; settle what WeCom does not
    answer.

    An id WeCom no longer knows (40068: deleted there meanwhile) fails the whole call; then the
    ones still there are read back and deleted with a second call.
    """
    tag_ids = [item.wecom_id for item in items if isinstance(item, Tag)]
    group_ids = [item.wecom_id for item in items if isinstance(item, TagGroup)]
    try:
        library.delete(tag_ids=tag_ids, group_ids=group_ids)
        return
    except PlatformError as error:
        if not (_maybe_happened(error) or _is_not_found(error)):
            raise
    tags_left, groups_left = _still_in_wecom(library, tag_ids=tag_ids, group_ids=group_ids)
    if tags_left or groups_left:
        library.delete(tag_ids=tags_left, group_ids=groups_left)


def _is_not_found(error: PlatformError) -> bool:
    return isinstance(error, PlatformAPIError) and error.errcode == ERR_NOT_FOUND


def _still_in_wecom(
    library: TagLibrary, *, tag_ids: Sequence[str], group_ids: Sequence[str]
) -> tuple[list[str], list[str]]:
    groups_left: list[str] = []
    if group_ids:
        groups_left = [g.group_id for g in library.list(group_ids=group_ids)]
    tags_left: list[str] = []
    if tag_ids:
        present = {tag.id for group in library.list(tag_ids=tag_ids) for tag in group.tags}
        tags_left = [tag_id for tag_id in tag_ids if tag_id in present]
    return tags_left, groups_left


def items_delete(*, items: Sequence[OrderedItem], actor: Actor) -> Outcome:
    """Delete tags and tag groups in WeCom (one call per app) and here; every outcome in the
    History. Each app on the write path: the intent (pending deletion, a new version) in a
    short transaction, the call with none open, then what WeCom did: deleted here too, or put
    back as it was with WeCom's refusal. One app's refusal does not undo another app's
    deletion: the outcome says per item what happened.

    A group left without tags is gone in WeCom too, so it goes here as well.
    """
    require_no_transaction("items_delete")
    # One call per app and library: corporate tags and strategy tags have their own endpoints.
    by_app: dict[tuple[int, bool], list[OrderedItem]] = {}
    for item in items:
        by_app.setdefault((item.app_id, is_corporate(item)), []).append(item)
    outcome = Outcome()
    for (_app_id, corporate), app_items in by_app.items():
        with transaction.atomic():
            locked = [_locked(item) for item in app_items]
            group_pks = {item.pk for item in locked if isinstance(item, TagGroup)}
            # Tags of groups being deleted go with their group; sending them too would be
            # refused.
            sent = [
                item
                for item in locked
                if not (isinstance(item, Tag) and item.group_id in group_pks)
            ]
            before = {
                (type(item), item.pk): (item.pending_delete, item.sync_state) for item in sent
            }
            for item in sent:
                type(item).objects.filter(pk=item.pk).update(
                    pending_delete=True, sync_state=SyncState.PENDING, version=F("version") + 1
                )
        try:
            _delete_remote(client_for(locked[0].app).tag_library(corporate=corporate), sent)
        except PlatformError as error:
            with transaction.atomic():
                for item in sent:
                    was_pending, state = before[(type(item), item.pk)]
                    type(item).objects.filter(pk=item.pk).update(
                        pending_delete=was_pending, sync_state=state
                    )
                    audit_record(
                        actor=actor,
                        obj=item,
                        action=AuditAction.CHANGE,
                        note=_("Not deleted: WeCom refused the deletion: %(reason)s"),
                        note_params={"reason": error.explanation},
                    )
            outcome.failed += len(sent)
            outcome.messages.append(
                ngettext(
                    "%(count)d not deleted (%(names)s), refused by WeCom app “%(app)s”: %(reason)s",
                    "%(count)d not deleted (%(names)s), refused by WeCom app “%(app)s”: %(reason)s",
                    len(sent),
                )
                % {
                    "count": len(sent),
                    "names": gettext("; ").join(item.name for item in sent),
                    "app": locked[0].app.name,
                    "reason": error.explanation,
                }
            )
            continue
        with transaction.atomic():
            outcome.done += _record_deleted(sent, group_pks, actor=actor)
    return outcome


def _record_deleted(sent: Sequence[OrderedItem], group_pks: set[int], *, actor: Actor) -> int:
    """What WeCom deleted, deleted here too with its History entries."""
    touched_groups = {item.group_id for item in sent if isinstance(item, Tag)}
    deleted = 0
    for item in sent:
        _audit_deleted(item, actor=actor, note=_("Deleted in WeCom."))
        if isinstance(item, TagGroup):
            for tag in item.tags.all():
                _audit_deleted(tag, actor=actor, note=_("Deleted in WeCom with its tag group."))
        item.delete()
        deleted += 1
    emptied = TagGroup.objects.filter(pk__in=touched_groups - group_pks).annotate(
        tag_count=Count("tags")
    )
    for group in emptied.filter(tag_count=0):
        _audit_deleted(group, actor=actor, note=_("WeCom deleted the group with its last tag."))
        group.delete()
    return deleted


def _audit_deleted(item: OrderedItem, *, actor: Actor, note: str) -> None:
    audit_record(
        actor=actor,
        obj=item,
        action=AuditAction.DELETE,
        changes={"name": (item.name, None)},
        note=note,
    )


def tag_delete(*, tag: Tag, actor: Actor) -> Outcome:
    return items_delete(items=[tag], actor=actor)


def tag_group_delete(*, group: TagGroup, actor: Actor) -> Outcome:
    return items_delete(items=[group], actor=actor)


# --- limits, for the pages -----------------------------------------------------------------------


def corp_tag_headroom(app: WeComApp) -> int:
    return CORP_TAG_LIMIT - corp_tag_count(app)


def next_group_order(strategy: Strategy) -> int:
    highest = TagGroup.objects.filter(strategy=strategy).aggregate(top=Max("order"))["top"]
    return _top_order([highest] if highest is not None else [])


# --- what a pull leaves to the console: its record, and the conflicts it found -----------------


class Choice(StrEnum):
    """How a person settles a conflict (WeCom changed an item that has a local change)."""

    WECOM = "wecom"
    OURS = "ours"
    LATER = "later"


def strategy_pull_record(*, app: WeComApp, ok: bool, message: str) -> StrategyPull:
    """The app's last pull: when, whether WeCom answered, and what it did."""
    pull, _created = StrategyPull.objects.update_or_create(
        app=app, defaults={"pulled_at": timezone.now(), "ok": ok, "message": message[:500]}
    )
    return pull


def pull_failure_record(*, app: WeComApp, actor: Actor, error: PlatformError) -> None:
    """A pull WeCom did not answer: on the app's pull row and in its History, with the reason."""
    with transaction.atomic():
        pull = strategy_pull_record(app=app, ok=False, message=error.explanation)
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
    require_no_transaction("conflict_resolve")
    gone = _is_gone(item)
    if choice is Choice.WECOM:
        with transaction.atomic():
            if gone:
                _audit_deleted(
                    item, actor=actor, note=_("Conflict settled: WeCom's deletion taken.")
                )
                item.delete()
            else:
                _nothing_pending(item)
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
    library = tag_library(item)
    if isinstance(item, TagGroup):
        return not library.list(group_ids=[item.wecom_id])
    return not library.list(tag_ids=[item.wecom_id])


def _recreate(item: TagGroup | Tag, *, actor: Actor) -> Outcome:
    """Push ours for an item WeCom deleted: create it again with the local values (the add
    call with no transaction open, then its outcome and History entry)."""
    library = tag_library(item)
    name = item.pending_name or item.name
    order = item.pending_order if item.pending_order is not None else item.order
    tags = list(item.tags.all()) if isinstance(item, TagGroup) else []
    try:
        if isinstance(item, Tag):
            created = _add_tag(library, item.group, name=name, order=order)
        else:
            answer = _add_group(
                library,
                item.strategy,
                name=name,
                order=order,
                tags=[(t.name, t.order) for t in tags],
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
        _nothing_pending(item)
        audit_record(
            actor=actor,
            obj=item,
            action=AuditAction.ADD,
            changes={"name": (None, name)},
            note=_("Conflict settled: created again in WeCom with the local values."),
        )
    return Outcome(done=1)


def _nothing_pending(item: OrderedItem) -> None:
    """A settled conflict: the item as WeCom has it, in step, with nothing waiting."""
    type(item).objects.filter(pk=item.pk).update(
        pending_name="",
        pending_order=None,
        pending_delete=False,
        sync_state=SyncState.IN_SYNC,
        sync_message="",
        last_synced_at=timezone.now(),
        version=item.version + 1,
    )
