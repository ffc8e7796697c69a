"""Official Account user tags: pull them, create, rename and delete them on the platform.

Each change is checked against the platform's rules (``wecom.rules``) before any call and follows
the write path (docs/write-path.md): the version checked and the intent taken in a short
transaction, the platform call with no transaction open, then the outcome and its History entry.
A platform error leaves the console as it was, is recorded in the tag's History, and is raised as
:class:`~wecom.clients.PlatformError`, whose ``str()`` is the sentence to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.audit import Actor, AuditAction, audit_record
from console.transactions import require_no_transaction
from console.versioning import check_version
from tagging.official_account.models import OfficialAccountTag
from wecom.clients import PlatformError
from wecom.connections import client_for
from wecom.models import OfficialAccount
from wecom.rules import (
    OA_TAG_NAME_MAX_LENGTH,
    validate_oa_tag_deletable,
    validate_oa_tag_id,
    validate_tag_name,
)


@dataclass(frozen=True)
class TagPullResult:
    added: int
    changed: int
    removed: int


def oa_tags_pull(*, account: OfficialAccount, actor: Actor) -> TagPullResult:
    """Bring the account's tags and follower counts into the console, as the platform has them."""
    require_no_transaction("oa_tags_pull")
    remote = {tag.id: tag for tag in client_for(account).tags()}
    now = timezone.now()
    added = changed = removed = 0
    with transaction.atomic():
        local = {
            tag.tag_id: tag
            for tag in OfficialAccountTag.objects.select_for_update().filter(account=account)
        }
        for tag_id, tag in local.items():
            if tag_id not in remote:
                audit_record(
                    actor=actor,
                    obj=tag,
                    action=AuditAction.DELETE,
                    note=_("The tag no longer exists on the platform."),
                )
                tag.delete()
                removed += 1
        for tag_id, found in remote.items():
            tag = local.get(tag_id)
            if tag is None:
                tag = OfficialAccountTag.objects.create(
                    account=account,
                    tag_id=tag_id,
                    name=found.name,
                    follower_count=found.count,
                    pulled_at=now,
                )
                audit_record(actor=actor, obj=tag, action=AuditAction.ADD)
                added += 1
                continue
            changes = {}
            if tag.name != found.name:
                changes["name"] = (tag.name, found.name)
            if tag.follower_count != found.count:
                changes["follower_count"] = (tag.follower_count, found.count)
            tag.name, tag.follower_count, tag.pulled_at = found.name, found.count, now
            tag.save(update_fields=["name", "follower_count", "pulled_at"])
            if "name" in changes:
                # Follower counts move all day: only a rename is worth a History line.
                audit_record(actor=actor, obj=tag, action=AuditAction.CHANGE, changes=changes)
                changed += 1
    return TagPullResult(added=added, changed=changed, removed=removed)


def _validate_name(name: str) -> None:
    validate_tag_name(name, max_length=OA_TAG_NAME_MAX_LENGTH)


def _check_unique_name(
    account: OfficialAccount, name: str, *, exclude: OfficialAccountTag | None = None
) -> None:
    same = OfficialAccountTag.objects.filter(account=account, name=name)
    if exclude is not None:
        same = same.exclude(pk=exclude.pk)
    if same.exists():
        raise ValidationError(
            _("The account has a tag named “%(name)s” already. Choose another name."),
            code="name_taken",
            params={"name": name},
        )


def oa_tag_create(*, account: OfficialAccount, name: str, actor: Actor) -> OfficialAccountTag:
    """A new tag: checked, created on the platform with no transaction open, then saved with
    its History entry (a new tag has no row before the platform gives it an id)."""
    require_no_transaction("oa_tag_create")
    _validate_name(name)
    _check_unique_name(account, name)
    created = client_for(account).tag_create(name=name)
    with transaction.atomic():
        tag = OfficialAccountTag.objects.create(
            account=account,
            tag_id=created.id,
            name=created.name or name,
            follower_count=0,
            pulled_at=timezone.now(),
            updated_by=actor.user,
        )
        audit_record(actor=actor, obj=tag, action=AuditAction.ADD)
    return tag


def _locked(tag: OfficialAccountTag) -> OfficialAccountTag:
    return (
        OfficialAccountTag.objects.select_for_update(of=("self",))
        .select_related("account", "updated_by")
        .get(pk=tag.pk)
    )


def _record_refusal(
    tag: OfficialAccountTag, *, actor: Actor, note: Any, error: PlatformError
) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            obj=tag,
            action=AuditAction.CHANGE,
            note=note,
            note_params={"reason": error.explanation},
        )


def oa_tag_rename(
    *,
    tag: OfficialAccountTag,
    name: str,
    actor: Actor,
    expected_version: int | None = None,
) -> OfficialAccountTag:
    """Rename a tag on the write path: the version checked and the intent taken (a new
    version, so that a form opened meanwhile is refused) in a short transaction, the call with
    none open, the outcome and its History entry in a second one. A refusal puts the tag back
    and is in its History with the platform's reason."""
    require_no_transaction("oa_tag_rename")
    validate_oa_tag_id(tag.tag_id)
    _validate_name(name)
    with transaction.atomic():
        tag = _locked(tag)
        check_version(tag, expected_version, {"name": name})
        if name == tag.name:
            return tag
        _check_unique_name(tag.account, name, exclude=tag)
        old, before_version = tag.name, tag.version
        OfficialAccountTag.objects.filter(pk=tag.pk).update(version=F("version") + 1)
    try:
        client_for(tag.account).tag_update(tag_id=tag.tag_id, name=name)
    except PlatformError as error:
        OfficialAccountTag.objects.filter(pk=tag.pk, version=before_version + 1).update(
            version=before_version
        )
        _record_refusal(
            tag, actor=actor, note=_("Not renamed: the platform refused: %(reason)s"), error=error
        )
        raise
    with transaction.atomic():
        tag = _locked(tag)
        tag.name = name
        tag.updated_by = actor.user
        tag.save(update_fields=["name", "updated_by", "updated_at"])
        audit_record(actor=actor, obj=tag, action=AuditAction.CHANGE, changes={"name": (old, name)})
    return tag


def oa_tag_delete(*, tag: OfficialAccountTag, actor: Actor) -> None:
    require_no_transaction("oa_tag_delete")
    validate_oa_tag_deletable(tag_id=tag.tag_id, follower_count=tag.follower_count)
    try:
        client_for(tag.account).tag_delete(tag_id=tag.tag_id)
    except PlatformError as error:
        _record_refusal(
            tag, actor=actor, note=_("Not deleted: the platform refused: %(reason)s"), error=error
        )
        raise
    with transaction.atomic():
        audit_record(actor=actor, obj=tag, action=AuditAction.DELETE)
        tag.delete()
