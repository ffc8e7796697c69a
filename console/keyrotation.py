"""Key rotation for encrypted secrets, and which stored secrets no configured key can read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import Actor, AuditAction, audit_record
from console.encryption import UnreadableSecret, key_ring
from console.fields import EncryptedSecretField


@dataclass
class RotationReport:
    key_id: str
    dry_run: bool
    rotated: int = 0
    current: int = 0
    unreadable: int = 0
    per_model: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        if self.dry_run:
            per_model = gettext("%(label)s: %(count)d secret(s) would be re-encrypted.")
            summary = gettext(
                "Would re-encrypt %(rotated)d; already under the current key: %(current)d; "
                "unreadable: %(unreadable)d."
            )
        else:
            per_model = gettext("%(label)s: %(count)d secret(s) re-encrypted.")
            summary = gettext(
                "Re-encrypted %(rotated)d; already under the current key: %(current)d; "
                "unreadable: %(unreadable)d."
            )
        lines = [gettext("Current key id: %(key_id)s") % {"key_id": self.key_id}]
        lines += [
            per_model % {"label": label, "count": count} for label, count in self.per_model.items()
        ]
        lines.append(
            summary
            % {"rotated": self.rotated, "current": self.current, "unreadable": self.unreadable}
        )
        return lines


@dataclass(frozen=True)
class UnreadableSecretRef:
    model_label: str
    verbose_name: Any
    object_repr: str
    field_name: Any


def _encrypted_models() -> list[tuple[type, list[EncryptedSecretField]]]:
    found = []
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedSecretField)]
        if fields:
            found.append((model, fields))
    return found


def unreadable_secrets() -> list[UnreadableSecretRef]:
    """Every stored secret that neither CREDENTIALS_KEY nor CREDENTIALS_OLD_KEYS opens."""
    found = []
    for model, fields in _encrypted_models():
        # Reading through the model: the field turns an envelope it cannot open into an
        # UnreadableSecret instead of failing.
        for obj in model._base_manager.all():
            for model_field in fields:
                if isinstance(getattr(obj, model_field.attname), UnreadableSecret):
                    found.append(
                        UnreadableSecretRef(
                            model_label=model._meta.label,
                            # Lazy: translated where they are shown, in that language.
                            verbose_name=model._meta.verbose_name,
                            object_repr=str(obj),
                            field_name=model_field.verbose_name,
                        )
                    )
    return found


def describe_unreadable_secrets(found: list[UnreadableSecretRef]) -> str:
    """One paragraph for an operator: how many, which, and how to fix it."""
    listed = "; ".join(f"{ref.verbose_name} “{ref.object_repr}”: {ref.field_name}" for ref in found)
    return gettext(
        "%(count)d stored secret(s) cannot be read with CREDENTIALS_KEY or CREDENTIALS_OLD_KEYS "
        "(%(listed)s). They were saved under another key: put that key back (as "
        "CREDENTIALS_KEY, or in CREDENTIALS_OLD_KEYS) and restart, or enter those secrets again "
        "in the admin."
    ) % {"count": len(found), "listed": listed}


def credentials_rotate(*, actor: Actor, dry_run: bool = False) -> RotationReport:
    """Re-encrypt, model by model, every secret not yet under the current key.

    Each model is rewritten in one transaction with its rows locked, so a concurrent edit can
    neither be overwritten nor read half-rotated.
    """
    ring = key_ring()
    report = RotationReport(key_id=ring.current.key_id, dry_run=dry_run)
    for model, fields in _encrypted_models():
        # The stored envelopes as text: the field itself would decrypt them on the way out.
        raw = {f"raw_{f.attname}": Cast(f.attname, output_field=TextField()) for f in fields}
        with transaction.atomic():
            rows = model._base_manager.select_for_update().annotate(**raw).values_list("pk", *raw)
            for pk, *envelopes in rows:
                stale = {}
                for model_field, envelope in zip(fields, envelopes, strict=True):
                    if not envelope:
                        continue
                    if ring.key_id_of(envelope) == ring.current.key_id:
                        report.current += 1
                        continue
                    secret = model_field.to_python(envelope)
                    if isinstance(secret, UnreadableSecret):
                        report.unreadable += 1
                        continue
                    stale[model_field.attname] = secret
                if stale:
                    report.rotated += len(stale)
                    label = model._meta.label
                    report.per_model[label] = report.per_model.get(label, 0) + len(stale)
                    if not dry_run:
                        # update(), not save(): nothing but the envelopes may change.
                        model._base_manager.filter(pk=pk).update(**stale)
                        audit_record(
                            actor=actor,
                            obj=model._base_manager.get(pk=pk),
                            action=AuditAction.CHANGE,
                            note=_("Secrets re-encrypted under key %(key_id)s."),
                            note_params={"key_id": ring.current.key_id},
                        )
    return report
