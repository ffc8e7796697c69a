"""Services for platform credentials: create or update them, and test their connections."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.audit import Actor, AuditAction, audit_record
from console.transactions import require_no_transaction
from console.versioning import version_bump
from wecom.clients import PlatformError
from wecom.connections import client_for
from wecom.models import ChatbotBot, OfficialAccount, PlatformCredential, WeComApp


@dataclass(frozen=True)
class CredentialKind:
    model: type[PlatformCredential]
    # What `manage.py credential set` calls each field.
    keys: Mapping[str, str]


CREDENTIAL_KINDS: dict[str, CredentialKind] = {
    "wecom": CredentialKind(
        WeComApp,
        {
            "corp_id": "corp_id",
            "secret": "secret",
            "agent_id": "agent_id",
            "callback_token": "callback_token",
            "callback_encoding_aes_key": "callback_encoding_aes_key",
            "rate_limit": "rate_limit",
        },
    ),
    "oa": CredentialKind(
        OfficialAccount, {"appid": "appid", "secret": "secret", "rate_limit": "rate_limit"}
    ),
    "chatbot": CredentialKind(
        ChatbotBot,
        {
            "appid": "appid",
            "token": "token",
            "encoding_aes_key": "encoding_aes_key",
            "managerid": "default_manager_id",
            "rate_limit": "rate_limit",
        },
    ),
}


@dataclass(frozen=True)
class CredentialSetResult:
    credential: PlatformCredential
    created: bool
    changed: list[str]


def resolve_value(raw: str) -> str:
    """``env:NAME`` reads the environment variable NAME, keeping secrets out of shell history."""
    if raw.startswith("env:"):
        name = raw[4:]
        if name not in os.environ:
            raise ValidationError(
                _("The environment variable %(name)s is not set."),
                code="env_missing",
                params={"name": name},
            )
        return os.environ[name]
    return raw


@transaction.atomic
def credential_set(
    *, kind: str, name: str, values: Mapping[str, str], actor: Actor
) -> CredentialSetResult:
    """Create the credential ``name`` of ``kind`` or update the fields given in ``values``.

    Values are validated as the admin form validates them; nothing is saved unless all are
    valid.
    """
    if kind not in CREDENTIAL_KINDS:
        raise ValidationError(
            _("Unknown credential kind “%(kind)s”: use one of %(kinds)s."),
            code="kind",
            params={"kind": kind, "kinds": ", ".join(CREDENTIAL_KINDS)},
        )
    spec = CREDENTIAL_KINDS[kind]
    unknown = sorted(set(values) - set(spec.keys))
    if unknown:
        raise ValidationError(
            _("Unknown key(s) %(keys)s for %(kind)s; use: %(allowed)s."),
            code="keys",
            params={"keys": ", ".join(unknown), "kind": kind, "allowed": ", ".join(spec.keys)},
        )
    # The name as the model keeps it (trimmed), so " 主企业" finds "主企业" instead of a twin;
    # checked before the lookup, which a NUL character would break on PostgreSQL.
    try:
        name = spec.model._meta.get_field("name").clean(name, None)
    except ValidationError as error:
        raise ValidationError({"name": error.error_list}) from None
    credential = spec.model._default_manager.select_for_update().filter(name=name).first()
    created = credential is None
    if credential is None:
        credential = spec.model(name=name)
    before: dict[str, Any] = {}
    for key, raw in values.items():
        field_name = spec.keys[key]
        field = spec.model._meta.get_field(field_name)
        value: Any = resolve_value(raw)
        if value == "" and field.null:
            value = None
        before[field_name] = getattr(credential, field_name, None)
        setattr(credential, field_name, value)
    credential.full_clean()
    changes = {
        field_name: (old, getattr(credential, field_name))
        for field_name, old in before.items()
        if created or old != getattr(credential, field_name)
    }
    if created or changes:
        credential.forget_connection_check(changed=changes)
        if created:
            credential.updated_by = actor.user
        else:
            version_bump(credential, actor.user)
        credential.save()
        audit_record(
            actor=actor,
            obj=credential,
            action=AuditAction.ADD if created else AuditAction.CHANGE,
            changes=changes,
        )
    return CredentialSetResult(credential=credential, created=created, changed=sorted(changes))


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


_SUCCESS = {
    WeComApp: _(
        "Connected: WeCom accepted the corp ID and secret and answered a read of the customer "
        "strategies."
    ),
    OfficialAccount: _(
        "Connected: the Official Account platform accepted the AppID and AppSecret and answered "
        "a read of the account's tags."
    ),
    ChatbotBot: _("Connected: the dialogue platform accepted the TOKEN, EncodingAESKey and AppID."),
}


def credential_test_connection(*, credential: PlatformCredential, actor: Actor) -> ConnectionCheck:
    """Make a harmless authenticated call with the credential; record and return the result.

    The platform is contacted every time (a cached token alone proves nothing). The network
    call happens outside any transaction; only the result is written.
    """
    require_no_transaction("credential_test_connection")
    try:
        client_for(credential).verify_connection()
    except PlatformError as error:
        check = ConnectionCheck(ok=False, message=error.explanation)
    else:
        check = ConnectionCheck(ok=True, message=str(_SUCCESS[type(credential)]))
    _record_check(credential=credential, check=check, actor=actor)
    return check


@transaction.atomic
def _record_check(*, credential: PlatformCredential, check: ConnectionCheck, actor: Actor) -> None:
    model: type[models.Model] = type(credential)
    model._default_manager.filter(pk=credential.pk).update(
        last_checked_at=timezone.now(),
        last_check_ok=check.ok,
        last_check_message=check.message[:500],
    )
    credential.refresh_from_db(fields=["last_checked_at", "last_check_ok", "last_check_message"])
    audit_record(
        actor=actor,
        obj=credential,
        action=AuditAction.CHANGE,
        note=_("Connection test passed.") if check.ok else _("Connection test failed: %(reason)s"),
        note_params=None if check.ok else {"reason": check.message},
    )


# What `make run` registers for the sandbox's demo data (wecom.sandbox.DEMO).
DEMO_CREDENTIAL_NAMES = {
    "wecom": "演示企业（沙盒）",
    "oa": "演示公众号（沙盒）",
    "chatbot": "演示机器人（沙盒）",
}


def demo_credentials_ensure(*, actor: Actor) -> list[CredentialSetResult]:
    """Register the sandbox's demo credentials, unless credentials of those names exist."""
    from wecom.sandbox import DEMO

    values = {
        "wecom": {
            "corp_id": DEMO.wecom_corp_id,
            "secret": DEMO.wecom_secret,
            "agent_id": str(DEMO.wecom_agent_id),
        },
        "oa": {"appid": DEMO.oa_appid, "secret": DEMO.oa_secret},
        "chatbot": {
            "appid": DEMO.bot_appid,
            "token": DEMO.bot_token,
            "encoding_aes_key": DEMO.bot_encoding_aes_key,
            "managerid": DEMO.bot_manager_id,
        },
    }
    results = []
    for kind, name in DEMO_CREDENTIAL_NAMES.items():
        if CREDENTIAL_KINDS[kind].model._default_manager.filter(name=name).exists():
            continue
        results.append(credential_set(kind=kind, name=name, values=values[kind], actor=actor))
    return results
