"""The admin history as the audit trail.

Every change to a console object ends as a ``django.contrib.admin`` LogEntry, so an object's
History page tells who changed what, when and from where. Admin form edits are logged by Django
(and enriched by :class:`console.admin.AuditedModelAdmin`); every other change, made by a service
on behalf of a user, a command, a background job or a pull from a platform, goes through
:func:`audit_record`.

The change message is Django's JSON list with one extra element, ``{"console": {...}}``, that
Django's own renderer ignores and :func:`audit_context` reads: the source, the client address,
old and new values. Field names and notes are stored untranslated and translated when shown.
"""

from __future__ import annotations

import functools
import getpass
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_lazy as _, override

from console.encryption import Secret

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.http import HttpRequest

_MAX_VALUE_LENGTH = 200


class AuditSource(StrEnum):
    """Where a change was made, as people know it (the History's "from where" column)."""

    ADMIN = "admin"  # a form
    TREE = "tree"
    LIST_ACTION = "action"
    IMPORT = "import"
    CONSOLE = "console"
    CLI = "cli"
    JOB = "job"
    SCHEDULE = "schedule"
    CALLBACK = "callback"
    PLATFORM = "platform"
    SYSTEM = "system"
    WECOM_CALLBACK = "wecom_callback"

    @property
    def label(self) -> str:
        return str(_SOURCE_LABELS[self])


_SOURCE_LABELS = {
    AuditSource.ADMIN: _("Form"),
    AuditSource.TREE: _("Tree page"),
    AuditSource.LIST_ACTION: _("List action"),
    AuditSource.IMPORT: _("Import"),
    AuditSource.SCHEDULE: _("Schedule"),
    AuditSource.CALLBACK: _("Platform callback"),
    AuditSource.CONSOLE: _("Console"),
    AuditSource.CLI: _("Command line"),
    AuditSource.JOB: _("Background job"),
    AuditSource.PLATFORM: _("Pulled from the platform"),
    AuditSource.SYSTEM: _("System"),
    AuditSource.WECOM_CALLBACK: _("WeCom callback"),
}


class AuditAction(StrEnum):
    ADD = "add"
    CHANGE = "change"
    DELETE = "delete"

    @property
    def flag(self) -> int:
        return {"add": ADDITION, "change": CHANGE, "delete": DELETION}[self.value]


def system_user() -> AbstractBaseUser:
    """The account that background jobs and platform pulls act as; it cannot log in."""
    user_model = get_user_model()
    user, created = user_model._default_manager.get_or_create(
        **{user_model.USERNAME_FIELD: settings.CONSOLE_SYSTEM_USERNAME},
        defaults={"is_active": False},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where. Services take one and hand it to :func:`audit_record`."""

    user: AbstractBaseUser
    source: AuditSource
    ip: str | None = None
    user_agent: str = ""
    detail: str = ""

    @classmethod
    def from_request(
        cls, request: HttpRequest, *, source: AuditSource = AuditSource.CONSOLE
    ) -> Actor:
        return cls(
            user=request.user,  # type: ignore[arg-type]
            source=source,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", "")[:200],
        )

    @classmethod
    def system(cls, *, source: AuditSource = AuditSource.JOB, detail: str = "") -> Actor:
        return cls(user=system_user(), source=source, detail=detail)

    @classmethod
    def command_line(cls, *, user: AbstractBaseUser | None = None, command: str = "") -> Actor:
        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):
            os_user = "?"
        where = f"{os_user}@{socket.gethostname()}"
        return cls(
            user=user or system_user(),
            source=AuditSource.CLI,
            detail=f"{command} ({where})" if command else where,
        )

    def as_params(self) -> dict[str, Any]:
        """The actor as JSON values, for work done later on their behalf (a job's params)."""
        return {
            "user": self.user.pk,
            "source": self.source.value,
            "ip": self.ip,
            "agent": self.user_agent,
            "detail": self.detail,
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Actor:
        """The actor :meth:`as_params` stored; the system account if that user is gone."""
        user = get_user_model()._default_manager.filter(pk=params.get("user")).first()
        return cls(
            user=user or system_user(),
            source=AuditSource(params.get("source", AuditSource.SYSTEM)),
            ip=params.get("ip"),
            user_agent=params.get("agent", ""),
            detail=params.get("detail", ""),
        )


def client_ip(request: HttpRequest) -> str | None:
    proxies = settings.AUDIT_TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [
            part.strip()
            for part in request.headers.get("x-forwarded-for", "").split(",")
            if part.strip()
        ]
        # Each trusted proxy appends the address it saw; anything further left is claimed by
        # the client and could be forged.
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


@dataclass(frozen=True)
class ValueChange:
    field: str
    label: str
    old: str | None
    new: str | None
    secret: bool = False


@dataclass
class AuditContext:
    source: str
    source_label: str
    ip: str | None = None
    user_agent: str = ""
    detail: str = ""
    note: str = ""
    changes: list[ValueChange] = field(default_factory=list)
    # Django's own sentence for the entry ("Changed name."), or nothing.
    django_message: str = ""


def describe_change(change: ValueChange) -> str:
    """One change as a sentence fragment: “name: old → new”, in the active language."""
    if change.secret:
        return gettext("%(field)s: changed (not shown)") % {"field": change.label}
    return gettext("%(field)s: %(old)s → %(new)s") % {
        "field": change.label,
        "old": change.old or "—",
        "new": change.new or "—",
    }


def describe_value(value: Any) -> str | None:
    """A short, readable form of a value for the history page."""
    if value is None:
        return None
    if isinstance(value, Secret):
        return None
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, models.Model):
        text = str(value)
    elif isinstance(value, list | tuple | set):
        text = ", ".join(str(item) for item in value)
    else:
        text = str(value)
    if len(text) > _MAX_VALUE_LENGTH:
        text = text[: _MAX_VALUE_LENGTH - 1] + "…"
    return text


@functools.cache
def _field_facts(model: type[models.Model]) -> tuple[dict[str, str], frozenset[str]]:
    """The model's field labels, untranslated (stored so, translated when shown), and its
    secret fields: worked out once per model, not once per History entry."""
    from console.fields import secret_field_names

    with override(None):
        labels = {
            field.name: str(field.verbose_name)
            for field in model._meta.get_fields()
            if hasattr(field, "verbose_name")
        }
    return labels, frozenset(secret_field_names(model))


def value_changes(
    model: type[models.Model], changes: Mapping[str, tuple[Any, Any]]
) -> list[ValueChange]:
    labels, secrets = _field_facts(model)
    result = []
    for name, (old, new) in changes.items():
        is_secret = name in secrets
        result.append(
            ValueChange(
                field=name,
                label=labels.get(name, name),
                old=None if is_secret else describe_value(old),
                new=None if is_secret else describe_value(new),
                secret=is_secret,
            )
        )
    return result


def console_message_part(
    *,
    source: AuditSource,
    ip: str | None = None,
    user_agent: str = "",
    detail: str = "",
    note: str | Promise = "",
    note_params: Mapping[str, Any] | None = None,
    changes: list[ValueChange] | None = None,
) -> dict[str, Any]:
    with override(None):
        note_text = str(note)
    part: dict[str, Any] = {"source": source.value}
    if ip:
        part["ip"] = ip
    if user_agent:
        part["agent"] = user_agent
    if detail:
        part["detail"] = detail
    if note_text:
        part["note"] = note_text
        if note_params:
            part["note_params"] = {key: str(value) for key, value in note_params.items()}
    if changes:
        part["values"] = [
            [change.field, change.label, change.old, change.new, change.secret]
            for change in changes
        ]
    return {"console": part}


def _change_message(
    *,
    actor: Actor,
    obj: models.Model,
    action: AuditAction,
    changes: Mapping[str, tuple[Any, Any]] | None,
    note: str | Promise,
    note_params: Mapping[str, Any] | None,
) -> str:
    """Django's change message with the console's part: source, address, old → new, note."""
    part = _actor_part(actor, note=note, note_params=note_params)
    return _message(action, value_changes(type(obj), changes or {}), part)


def _actor_part(
    actor: Actor, *, note: str | Promise, note_params: Mapping[str, Any] | None
) -> dict[str, Any]:
    return console_message_part(
        source=actor.source,
        ip=actor.ip,
        user_agent=actor.user_agent,
        detail=actor.detail,
        note=note,
        note_params=note_params,
    )["console"]


def _message(action: AuditAction, value_list: list[ValueChange], part: dict[str, Any]) -> str:
    """The one format of a History entry's change message (see the module's docstring)."""
    message: list[dict[str, Any]] = []
    if action is AuditAction.ADD:
        message.append({"added": {}})
    elif action is AuditAction.CHANGE and value_list:
        message.append({"changed": {"fields": [change.label for change in value_list]}})
    if value_list:
        part = {
            **part,
            "values": [
                [change.field, change.label, change.old, change.new, change.secret]
                for change in value_list
            ],
        }
    message.append({"console": part})
    return json.dumps(message, ensure_ascii=False)


def audit_record(
    *,
    actor: Actor,
    obj: models.Model,
    action: AuditAction,
    changes: Mapping[str, tuple[Any, Any]] | None = None,
    note: str | Promise = "",
    note_params: Mapping[str, Any] | None = None,
) -> LogEntry:
    """Record a change to ``obj`` in the admin history, as ``actor``.

    ``changes`` maps field names to ``(old, new)``; secret fields are recorded as changed
    without their values. ``note`` is a translatable sentence (``gettext_lazy``), stored
    untranslated with ``note_params`` and translated when shown.
    """
    message = _change_message(
        actor=actor, obj=obj, action=action, changes=changes, note=note, note_params=note_params
    )
    return LogEntry.objects.log_actions(
        user_id=actor.user.pk,
        queryset=[obj],
        action_flag=action.flag,
        change_message=message,
        single_object=True,
    )


def _translated_note(note: str, params: dict[str, str] | None) -> str:
    if not note:
        return ""
    translated = gettext(note)
    if not params:
        return translated
    try:
        return translated % params
    except (KeyError, TypeError, ValueError):
        # A translation that lost a placeholder: show the stored sentence and its values.
        return f"{note} {params}"


def audit_context(entry: LogEntry) -> AuditContext | None:
    """What the console added to a history entry, translated for the current language."""
    try:
        parts = json.loads(entry.change_message) if entry.change_message.startswith("[") else []
    except (json.JSONDecodeError, AttributeError):
        return None
    console_parts = [
        part["console"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("console"), dict)
    ]
    if not console_parts:
        return None
    data = console_parts[0]
    django_parts = [part for part in parts if isinstance(part, dict) and "console" not in part]
    django_message = ""
    if django_parts:
        django_message = str(LogEntry(change_message=json.dumps(django_parts)).get_change_message())
    try:
        source = AuditSource(data.get("source", "system"))
    except ValueError:
        source = AuditSource.SYSTEM
    detail = data.get("detail", "")
    if source is AuditSource.PLATFORM and detail == "schedule":
        # Entries of scheduled pulls stored before the schedule was a source of its own.
        source, detail = AuditSource.SCHEDULE, ""
    note = _translated_note(data.get("note", ""), data.get("note_params"))
    changes = []
    for row in data.get("values", []):
        name, label, old, new, secret = (list(row) + [False] * 5)[:5]
        changes.append(
            ValueChange(field=name, label=gettext(label), old=old, new=new, secret=bool(secret))
        )
    return AuditContext(
        source=source.value,
        source_label=source.label,
        ip=data.get("ip"),
        user_agent=data.get("agent", ""),
        detail=detail,
        note=note,
        changes=changes,
        django_message=django_message,
    )


class AuditBatch:
    """History entries of many objects by one actor with one note, written at once: what
    :func:`audit_record` writes, entry for entry, for imports and pulls of thousands of rows.

    Entries are given as rows (model, primary key, text), so that a caller holding plain
    tuples need not build model instances; the parts every entry shares are worked out once.
    Nothing is written before :meth:`save` (call it inside the transaction of the changes).
    """

    _COLUMNS = ("action_time", "user", "content_type", "object_id", "object_repr",
                "action_flag", "change_message")  # fmt: skip

    def __init__(
        self,
        *,
        actor: Actor,
        note: str | Promise = "",
        note_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.actor = actor
        self._part = _actor_part(actor, note=note, note_params=note_params)
        self._rows: list[tuple] = []
        self._content_types: dict[type[models.Model], int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self,
        model: type[models.Model],
        pk: Any,
        text: str,
        action: AuditAction,
        changes: Mapping[str, tuple[Any, Any]] | None = None,
    ) -> None:
        """One entry: ``action`` on the ``model`` row ``pk``, shown as ``text``."""
        if model not in self._content_types:
            from django.contrib.contenttypes.models import ContentType

            self._content_types[model] = ContentType.objects.get_for_model(
                model, for_concrete_model=False
            ).pk
        message = _message(action, value_changes(model, changes or {}), self._part)
        self._rows.append(
            (self._content_types[model], str(pk), str(text)[:200], action.flag, message)
        )

    def save(self) -> None:
        """Write the entries (one statement, or one COPY on PostgreSQL) and start afresh."""
        from console.bulk_rows import rows_insert

        if not self._rows:
            return
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        user = self.actor.user.pk
        rows_insert(
            LogEntry,
            self._COLUMNS,
            [(now, user, *row) for row in self._rows],
        )
        self._rows = []


def audit_record_many(
    *,
    actor: Actor,
    entries: list[tuple[models.Model, AuditAction, Mapping[str, tuple[Any, Any]] | None]],
    note: str | Promise = "",
    note_params: Mapping[str, Any] | None = None,
) -> None:
    """:func:`audit_record` for many objects in one INSERT (imports of thousands of rows).

    Each entry is ``(obj, action, changes)``; the entries read exactly as ``audit_record``'s.
    """
    batch = AuditBatch(actor=actor, note=note, note_params=note_params)
    for obj, action, changes in entries:
        batch.add(type(obj), obj.pk, str(obj), action, changes)
    batch.save()
