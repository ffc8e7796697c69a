"""Object ids from URLs, query strings and forms: ASCII digits within the database's range.

Django's own checks let through what ``int()`` or the database then refuses with a traceback:
``str.isdigit()`` accepts "²" and "①" (``int()`` does not), ``int()`` accepts " 1", "١" and
"1_000" (and so they address real objects), and a 20-digit number overflows SQLite's and
PostgreSQL's integers. Every id typed by a person goes through :func:`object_pk` first.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.db.models import Model
from django.http import Http404

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")  # fullmatch: no sign, space or other script
_INTEGER_TYPES = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)


def integer_range(internal_type: str = "BigAutoField") -> tuple[int, int]:
    """The values the database stores in a column of that type (0 at least: ids are not
    negative)."""
    low, high = connection.ops.integer_field_range(internal_type)
    return max(0, low if low is not None else 0), high if high is not None else 2**63 - 1


def object_pk(value: Any, *, internal_type: str = "BigAutoField") -> int | None:
    """The id written in ``value``, or None if it is not one: ASCII digits only, in range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    low, high = integer_range(internal_type)
    return number if low <= number <= high else None


def object_pk_or_404(value: Any, *, internal_type: str = "BigAutoField") -> int:
    number = object_pk(value, internal_type=internal_type)
    if number is None:
        raise Http404
    return number


def pk_internal_type(model: type[Model]) -> str | None:
    """The pk's integer type, or None when the model's pk is not an integer (django-q2's
    tasks are keyed by text)."""
    field = model._meta.pk
    target = field.target_field if field.is_relation else field
    internal = target.get_internal_type()
    return internal if internal in _INTEGER_TYPES else None


def is_integer_field(field: Any) -> str | None:
    """The integer type behind a model field (a foreign key's target's), or None."""
    target = getattr(field, "target_field", None) if getattr(field, "is_relation", False) else field
    if target is None or not hasattr(target, "get_internal_type"):
        return None
    internal = target.get_internal_type()
    return internal if internal in _INTEGER_TYPES else None
