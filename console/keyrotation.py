"""Key rotation for encrypted secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.apps import apps
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import Actor, AuditAction, audit_record
from console.credentials import UnreadableSecret, key_ring
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


def credentials_rotate(*, actor: Actor, dry_run: bool = False) -> RotationReport:
    """Re-encrypt, model by model, every secret not yet under the current key.

    Each model is rewritten in one transaction with its rows locked, so a concurrent edit can
    neither be overwritten nor read half-rotated.
    """
    ring = key_ring()
    report = RotationReport(key_id=ring.current.key_id, dry_run=dry_run)
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedSecretField)]
        if not fields:
            continue
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
