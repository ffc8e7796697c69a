"""One admin base for every model whose saves go to a platform (docs/write-path.md).

Django's admin wraps the change form and the delete page in one database transaction and saves
the form's instance itself. A change that reaches a platform cannot work that way: its service
records the intent, calls the platform with no transaction open, then records the outcome and
its History entry. So :class:`ServiceBackedAdmin`

* runs the change form and the delete page without an outer transaction;
* turns the request into an :class:`~console.audit.Actor` and calls the form's ``push`` (the
  service) once the form is valid, from ``save_form``: never from ``clean()``;
* shows a refusal (a ``ValidationError`` from the service: the platform's reason, a stale
  version) beside the field it concerns, or at the top of the form, by rendering the form
  again with the refusal added to its errors;
* replaces Django's own log hooks: the services write the History, with old and new values.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.options import csrf_protect_m
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse

from console.admin import AuditedModelAdmin
from console.audit import Actor, AuditSource
from console.versioning import StaleEdit, VersionedFormMixin


def refusal_text(error: Exception) -> str:
    """A refusal as the sentence to show: a ``ValidationError``'s messages, or the exception's
    own text (a platform error's ``str()`` is its explanation)."""
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


class ServiceRefused(Exception):
    def __init__(self, error: ValidationError) -> None:
        super().__init__(error)
        self.error = error


class ServiceForm(VersionedFormMixin):
    """A ModelForm that the admin base saves through a service (:meth:`push`).

    Validation stays validation: ``clean()`` writes nothing. A refusal from the service comes
    back as the form's errors (:meth:`apply_refusal`)."""

    actor_source = AuditSource.ADMIN

    def __init__(self, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def actor(self) -> Actor:
        assert self.request is not None
        return Actor.from_request(self.request, source=self.actor_source)

    def push(self, cleaned: dict[str, Any]) -> models.Model:
        """Save through the service; return the saved object. Raises ``ValidationError``."""
        raise NotImplementedError

    def full_clean(self) -> None:
        super().full_clean()
        refusal = getattr(self.request, "_service_refusal", None)
        if refusal is not None and self.is_bound:
            self.apply_refusal(refusal)

    def apply_refusal(self, error: ValidationError) -> None:
        if hasattr(error, "error_dict"):
            for field_name, errors in error.error_dict.items():
                self.add_error(field_name if field_name in self.fields else None, errors)
            return
        self.add_error(None, error)
        if isinstance(error, StaleEdit):
            # Saving again overwrites on purpose: the warning has been seen.
            self.accept_stale(error)


class ServiceBackedAdmin(AuditedModelAdmin):
    """The admin of a model saved through services that call a platform."""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        if not issubclass(form_class, ServiceForm):
            return form_class

        class WithRequest(form_class):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **inner: Any) -> None:
                super().__init__(*args, request=request, **inner)

        return WithRequest

    @csrf_protect_m
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # No outer transaction: the service opens its own short ones around the platform call.
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            # The same form again, with the refusal among its errors; nothing is saved.
            request._service_refusal = refused.error  # type: ignore[attr-defined]
            return self._changeform_view(request, object_id, form_url, extra_context)

    @csrf_protect_m
    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return self._delete_view(request, object_id, extra_context)

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        if not isinstance(form, ServiceForm):
            return super().save_form(request, form, change)
        try:
            return form.push(form.cleaned_data)
        except ValidationError as error:
            raise ServiceRefused(error) from error

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Saved by the service (``save_form``), which wrote the History too."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing related is saved besides what the service saves."""

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> None:
        """Recorded by the service, with the values."""

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> None:
        """Recorded by the service, with the old and new values."""

    def log_deletion(self, request: HttpRequest, obj: Any, object_repr: str) -> None:
        """Recorded by the service."""

    def log_deletions(self, request: HttpRequest, queryset: Any) -> None:
        """Recorded by the service."""
