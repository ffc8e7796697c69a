"""Model fields shared by the console's apps."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from console.encryption import (
    ENVELOPE_RE,
    CredentialDecryptError,
    Secret,
    UnreadableSecret,
    key_ring,
)

UNREADABLE_SECRET = _(
    "The stored value was saved under another CREDENTIALS_KEY and cannot be read. Enter it "
    "again, or restore the key it was saved with (as CREDENTIALS_KEY, or in "
    "CREDENTIALS_OLD_KEYS) and restart the console."
)


class EncryptedSecretField(models.TextField):
    """A secret stored as AES-GCM ciphertext and read back as a :class:`Secret`.

    The ciphertext is bound to ``<app_label>.<model>.<field>``; only ``isnull`` lookups are
    possible, since equal secrets encrypt to different envelopes.
    """

    description = _("Secret, encrypted at rest")

    @property
    def encryption_context(self) -> str:
        return f"{self.model._meta.label_lower}.{self.name}"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Secret | None:
        if value is None:
            return None
        if value == "":
            # What get_prep_value stores for an empty optional secret: no envelope to open.
            return Secret("")
        return self._open(value)

    def to_python(self, value: Any) -> Secret | None:
        if value is None or isinstance(value, Secret):
            return value
        text = str(value)
        if ENVELOPE_RE.match(text):
            # Fixtures and dumpdata carry envelopes, never plaintext.
            return self._open(text)
        return Secret(text)

    def get_prep_value(self, value: Any) -> str | None:
        value = self.to_python(value)
        if value is None:
            return None
        if isinstance(value, UnreadableSecret):
            return value.envelope
        plaintext = value.reveal()
        if not plaintext:
            return ""
        return key_ring().encrypt(plaintext, context=self.encryption_context)

    def value_to_string(self, obj: models.Model) -> str:
        return self.get_prep_value(self.value_from_object(obj)) or ""

    def run_validators(self, value: Any) -> None:
        # An envelope no configured key opens cannot be checked, nor used: saving it again
        # would keep a record that cannot work. The user enters the secret or restores the key.
        if isinstance(value, UnreadableSecret):
            raise ValidationError(UNREADABLE_SECRET, code="unreadable")
        # Validators see the plaintext; the Secret wrapper would show them only a mask.
        if isinstance(value, Secret):
            value = value.reveal()
        super().run_validators(value)

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)

    def formfield(self, **kwargs: Any) -> Any:
        from console.forms import SecretFormField, SecretInput

        # Forced, not defaulted: the admin would otherwise substitute its textarea, which
        # renders the value back into the page.
        return super().formfield(**{**kwargs, "form_class": SecretFormField, "widget": SecretInput})

    def _open(self, envelope: str) -> Secret:
        try:
            return Secret(key_ring().decrypt(envelope, context=self.encryption_context))
        except CredentialDecryptError:
            return UnreadableSecret(envelope)


def secret_field_names(model: type[models.Model]) -> list[str]:
    return [
        field.name for field in model._meta.get_fields() if isinstance(field, EncryptedSecretField)
    ]
