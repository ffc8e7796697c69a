"""What every ModelAdmin of the console does with ids and filters typed by a person.

The console's admin site (``console.admin_site``) puts :class:`GuardedAdminMixin` in front of
every ModelAdmin registered with it, ours and third-party ones, so that no page has to remember:

* an object id in Django's own change, delete and history URLs is ASCII digits within the
  database's range (``console.ids``), else 404: "²" or "abc" never reaches ``int()`` or the
  database, and " 1" or "١" never address object 1;
* those pages check the model permission before looking anything up: who may not see a model
  gets 403 whatever the id, and learns nothing about which ids exist;
* a changelist's filters are checked before the query: an integer out of range, a non-ASCII
  digit, a NUL character or a date drill-down outside the years a date can hold gives the
  unfiltered list with a sentence, never a traceback;
* ids selected for an action are checked the same way.
"""

from __future__ import annotations

import calendar
from typing import Any

from django.contrib import messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, IGNORED_PARAMS
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext

from console.ids import is_integer_field, object_pk, pk_internal_type

# Django's date drill-down adds a day, a month or a year to the chosen date and makes it aware
# in the console's time zone: years at either end of what datetime holds overflow.
DATE_YEARS = (1900, 9998)
_INTEGER_LOOKUPS = {"exact", "in", "gt", "gte", "lt", "lte", "iexact"}


def filter_refusal_message() -> str:
    return gettext("A filter of this list was not understood; the whole list is shown instead.")


def _date_hierarchy_problem(request: HttpRequest, field_name: str | None) -> bool:
    if not field_name:
        return False
    values = {
        part: request.GET.getlist(f"{field_name}__{part}") for part in ("year", "month", "day")
    }
    if not any(values.values()):
        return False
    numbers: dict[str, int] = {}
    for part, given in values.items():
        if not given:
            continue
        number = object_pk(given[-1], internal_type="SmallIntegerField")
        if number is None:
            return True
        numbers[part] = number
    year = numbers.get("year")
    if year is None or not DATE_YEARS[0] <= year <= DATE_YEARS[1]:
        return True
    month = numbers.get("month", 1)
    if not 1 <= month <= 12:
        return True
    day = numbers.get("day", 1)
    return not 1 <= day <= calendar.monthrange(year, month)[1]


def _integer_field_of(model: Any, key: str) -> tuple[str | None, str]:
    """The integer type a filter key compares with, and its lookup; (None, "") if it is not
    an integer field of the model (a custom filter's own name, a text field...)."""
    parts = key.split("__")
    lookup = "exact"
    if len(parts) > 1 and parts[-1] in _INTEGER_LOOKUPS | {"isnull", "contains", "icontains"}:
        lookup = parts.pop()
    field = None
    current = model
    for part in parts:
        if current is None:
            return None, ""
        try:
            field = current._meta.pk if part == "pk" else current._meta.get_field(part)
        except FieldDoesNotExist:
            return None, ""
        current = field.related_model if getattr(field, "is_relation", False) else None
    if field is None:
        return None, ""
    return is_integer_field(field), lookup


def _filter_problem(request: HttpRequest, model: Any, model_admin: Any) -> bool:
    for key, values in request.GET.lists():
        if key in IGNORED_PARAMS or key == ERROR_FLAG:
            continue
        for value in values:
            if "\x00" in value:
                return True
        internal, lookup = _integer_field_of(model, key)
        if internal is None or lookup not in _INTEGER_LOOKUPS:
            continue
        for value in values:
            parts = value.split(",") if lookup == "in" else [value]
            if any(object_pk(part, internal_type=internal) is None for part in parts):
                return True
    return _date_hierarchy_problem(request, model_admin.date_hierarchy)


class GuardedAdminMixin:
    """See the module's docstring."""

    model: Any
    date_hierarchy: Any

    # --- one object --------------------------------------------------------------------------

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        internal = pk_internal_type(self.model) if from_field is None else None
        if internal is not None and object_pk(object_id, internal_type=internal) is None:
            raise Http404
        if "\x00" in str(object_id):  # a text key (django-q2's tasks): PostgreSQL refuses NUL
            raise Http404
        return super().get_object(request, object_id, from_field)  # type: ignore[misc]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        if object_id is not None and not self.has_view_or_change_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_delete_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        return super().delete_view(request, object_id, extra_context)  # type: ignore[misc]

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_view_or_change_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        return super().history_view(request, object_id, extra_context)  # type: ignore[misc]

    # --- the list ----------------------------------------------------------------------------

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        if _filter_problem(request, self.model, self):
            self._refuse_filter(request)
        try:
            # What the checks above let through and the database still refuses. (No savepoint:
            # it would cost every list two statements; the checks are what keep PostgreSQL's
            # transaction usable.)
            return super().get_changelist_instance(request)  # type: ignore[misc]
        except (
            IncorrectLookupParameters,
            OverflowError,
            ValueError,
            ValidationError,
            DatabaseError,
        ):
            self._refuse_filter(request)

    def _refuse_filter(self, request: HttpRequest) -> None:
        if ERROR_FLAG not in request.GET:
            messages.warning(request, filter_refusal_message())
        raise IncorrectLookupParameters

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME) if request.method == "POST" else []
        internal = pk_internal_type(self.model)
        if any(
            "\x00" in value
            or (internal is not None and object_pk(value, internal_type=internal) is None)
            for value in selected
        ):
            messages.warning(
                request,
                gettext("The selection was not understood: nothing was done. Select again."),
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


def guarded(admin_class: type) -> type:
    """``admin_class`` with :class:`GuardedAdminMixin` in front (once)."""
    if issubclass(admin_class, GuardedAdminMixin):
        return admin_class
    return type(
        admin_class.__name__,
        (GuardedAdminMixin, admin_class),
        {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__},
    )
