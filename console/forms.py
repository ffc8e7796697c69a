"""Form pieces for write-only secrets."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext

from console.encryption import Secret, UnreadableSecret
from console.fields import secret_field_names


class SecretInput(forms.PasswordInput):
    """A password box that never renders a value back into the page."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(
            attrs={"autocomplete": "new-password", "spellcheck": "false", **(attrs or {})},
            render_value=False,
        )


class SecretFormField(forms.CharField):
    widget = SecretInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs["widget"] = SecretInput
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        # Nothing of a stored secret goes into the form's HTML.
        return ""

    def has_changed(self, initial: Any, data: Any) -> bool:
        if not data:
            return False
        if isinstance(initial, Secret):
            return initial != data
        return True


class SecretFieldsFormMixin:
    """Makes every encrypted field of a ModelForm write-only.

    Leaving a secret blank keeps the stored one; the help text shows its last four characters.
    A new object must be given each required secret.
    """

    instance: Any
    fields: dict[str, forms.Field]
    cleaned_data: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        for name in self._secret_field_names():
            current = getattr(self.instance, name, None)
            field = self.fields[name]
            if self.instance.pk and current:
                field.required = False
                tail = current.tail if isinstance(current, Secret) else ""
                if isinstance(current, UnreadableSecret):
                    # Short: saving without a new value shows the full explanation as an error.
                    note = gettext(
                        "The stored value cannot be read with the configured keys: enter it "
                        "again to replace it."
                    )
                elif tail:
                    note = gettext(
                        "A value is stored (ends in “%(tail)s”). Leave blank to keep it."
                    ) % {"tail": tail}
                else:
                    note = gettext("A value is stored. Leave blank to keep it.")
                # The admin shows help text as HTML: the note goes on a line of its own.
                field.help_text = format_html_join(
                    mark_safe("<br>"),
                    "{}",
                    [(part,) for part in (note, field.help_text) if part],
                )

    def _secret_field_names(self) -> list[str]:
        secret_fields = set(secret_field_names(type(self.instance)))
        return [name for name in self.fields if name in secret_fields]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()  # type: ignore[misc]
        for name in self._secret_field_names():
            if not cleaned.get(name) and self.instance.pk:
                current = getattr(self.instance, name, None)
                if current:
                    cleaned[name] = current
        return cleaned
