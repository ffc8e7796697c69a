"""Official Account user tags: pull them, create, rename and delete them on the platform.

Each change is checked against the platform's rules (``wecom.rules``) before any call, made on
the platform first, then saved and recorded in the History. A platform error leaves the console
as it was and is raised as :class:`~wecom.clients.PlatformError`, whose ``str()`` is the sentence
to show.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.audit import Actor, AuditAction, audit_record
from tagging.oa_models import OfficialAccountTag
from wecom.clients import OfficialAccountClient
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


def _client(account: OfficialAccount) -> OfficialAccountClient:
    client = client_for(account)
    assert isinstance(client, OfficialAccountClient)
    return client


def oa_tags_pull(*, account: OfficialAccount, actor: Actor) -> TagPullResult:
    """Bring the account's tags and follower counts into the console, as the platform has them."""
    remote = {tag.id: tag for tag in _client(account).tags()}
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
    _validate_name(name)
    _check_unique_name(account, name)
    created = _client(account).tag_create(name=name)
    with transaction.atomic():
        tag = OfficialAccountTag.objects.create(
            account=account,
            tag_id=created.id,
            name=created.name or name,
            follower_count=0,
            pulled_at=timezone.now(),
        )
        audit_record(actor=actor, obj=tag, action=AuditAction.ADD)
    return tag


def oa_tag_rename(*, tag: OfficialAccountTag, name: str, actor: Actor) -> OfficialAccountTag:
    validate_oa_tag_id(tag.tag_id)
    _validate_name(name)
    if name == tag.name:
        return tag
    _check_unique_name(tag.account, name, exclude=tag)
    _client(tag.account).tag_update(tag_id=tag.tag_id, name=name)
    with transaction.atomic():
        old = tag.name
        tag.name = name
        tag.save(update_fields=["name"])
        audit_record(actor=actor, obj=tag, action=AuditAction.CHANGE, changes={"name": (old, name)})
    return tag


def oa_tag_delete(*, tag: OfficialAccountTag, actor: Actor) -> None:
    validate_oa_tag_deletable(tag_id=tag.tag_id, follower_count=tag.follower_count)
    _client(tag.account).tag_delete(tag_id=tag.tag_id)
    with transaction.atomic():
        audit_record(actor=actor, obj=tag, action=AuditAction.DELETE)
        tag.delete()
