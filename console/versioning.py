"""Optimistic locking, once for every object two people can open (docs/write-path.md).

A model that people edit in pages carries :class:`Versioned`'s three fields: ``version``
(incremented by every change), ``updated_at`` and ``updated_by``. A form sends the version it was
opened with (:class:`VersionedFormMixin`); the service re-reads the row under a lock and calls
:func:`check_version`, which refuses a save from an older version with who changed it, when,
and both values (:class:`StaleEdit`). Saving the refused form again overwrites on purpose: the
form then carries the version the refusal showed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, gettext_lazy as _


class Versioned(models.Model):
    """Optimistic locking fields: every change increments ``version``."""

    version = models.PositiveIntegerField(_("version"), default=1)
    updated_at = models.DateTimeField(_("changed"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("changed by"),
    )

    class Meta:
        abstract = True


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return str(value)


class StaleEdit(ValidationError):
    """The object changed since the form was opened: says by whom, when, and both values.

    ``yours`` maps field names to the values of the refused save; ``describe`` may turn a
    field's value into words (an answer as its text, not its JSON)."""

    def __init__(
        self,
        *,
        item: models.Model,
        yours: Mapping[str, Any],
        describe: Callable[[str, Any], str] | None = None,
    ) -> None:
        user = getattr(item, "updated_by", None)
        who = user.get_username() if user is not None else gettext("someone")
        changed_at = getattr(item, "updated_at", None)
        when = date_format(timezone.localtime(changed_at), "DATETIME_FORMAT") if changed_at else "—"
        show = describe or (lambda _name, value: _shown(value))
        differences = [
            gettext("%(field)s: now “%(theirs)s”, yours “%(yours)s”")
            % {
                "field": type(item)._meta.get_field(name).verbose_name,
                "theirs": show(name, getattr(item, name)),
                "yours": show(name, value),
            }
            for name, value in yours.items()
            if value is not None and value != getattr(item, name)
        ]
        message = gettext(
            "Changed by %(who)s at %(when)s since you opened it. %(differences)s Check the "
            "values and save again to overwrite, or reload the page."
        ) % {"who": who, "when": when, "differences": "; ".join(differences)}
        super().__init__(message, code="stale")
        self.item = item


def check_version(
    item: models.Model,
    expected_version: int | None,
    yours: Mapping[str, Any],
    *,
    describe: Callable[[str, Any], str] | None = None,
) -> None:
    """Refuse a save made from an older version of ``item`` (re-read under a lock)."""
    if expected_version is not None and item.version != expected_version:  # type: ignore[attr-defined]
        raise StaleEdit(item=item, yours=yours, describe=describe)


class VersionedFormMixin(forms.Form):
    """A form that sends the version it was opened with, as ``expected_version``.

    After a :class:`StaleEdit` the form carries the version the refusal showed, so saving it
    again overwrites on purpose (:meth:`accept_stale`)."""

    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = getattr(self, "instance", None)
        if instance is not None and instance.pk:
            self.fields["expected_version"].initial = instance.version

    def accept_stale(self, error: StaleEdit) -> None:
        data = self.data.copy()
        data[self.add_prefix("expected_version")] = str(error.item.version)  # type: ignore[attr-defined]
        self.data = data


class StaleCheckedFormMixin(VersionedFormMixin):
    """For a ModelForm that Django's admin saves itself (no platform call, one transaction):
    ``clean()`` reads the row's current version (a read, never a write) and refuses a form
    opened at an older one; the admin's ``save_model`` calls :func:`version_bump`. Fields in
    ``stale_hidden_fields`` (secrets) are never shown in the refusal."""

    stale_hidden_fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        instance = getattr(self, "instance", None)
        expected = cleaned.get("expected_version")
        if instance is None or instance.pk is None or expected is None:
            return cleaned
        current = (
            type(instance)
            ._default_manager.select_related("updated_by")
            .filter(pk=instance.pk)
            .first()
        )
        if current is not None and current.version != expected:
            yours = {
                name: cleaned.get(name)
                for name in self.changed_data  # type: ignore[attr-defined]
                if name in cleaned
                and name != "expected_version"
                and name not in self.stale_hidden_fields
            }
            error = StaleEdit(item=current, yours=yours)
            self.add_error(None, error)
            self.accept_stale(error)
        return cleaned


def version_bump(obj: models.Model, user: Any) -> None:
    """A change saved: the next form opened at the old version is refused."""
    obj.version = (obj.version or 0) + 1  # type: ignore[attr-defined]
    obj.updated_by = user  # type: ignore[attr-defined]
