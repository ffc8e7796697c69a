"""Sentences stored untranslated and read in each reader's language.

A note is a ``gettext_lazy`` sentence kept as its msgid, with its values; a value may itself be
a note (``{"msgid": …, "params": {…}}``), as a platform's error inside a job's reason is.
Workers store notes; pages and commands translate them when they show them.
"""

from __future__ import annotations

from typing import Any

from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext


def msgid(text: str | Promise) -> str:
    """A lazy sentence's untranslated text; a plain string as it is."""
    if isinstance(text, Promise):
        with translation.override(None):
            return str(text)
    return text


def note(text: str | Promise, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A note of ``text`` and its ``params`` (lazy values become notes too)."""
    return {"msgid": msgid(text), "params": _storable(params or {})}


def _storable(params: dict[str, Any]) -> dict[str, Any]:
    return {
        key: note(value) if isinstance(value, Promise) else value for key, value in params.items()
    }


def note_text(value: Any) -> Any:
    """A note rendered in the active language; any other value as it is."""
    if not isinstance(value, dict) or "msgid" not in value:
        return value
    text = gettext(value["msgid"]) if value["msgid"] else ""
    if value.get("capitalize"):
        text = text[:1].upper() + text[1:]
    params = {key: note_text(item) for key, item in (value.get("params") or {}).items()}
    if not params:
        return text
    try:
        return text % params
    except (KeyError, TypeError, ValueError):
        # A translation that lost a placeholder: the sentence as stored, with its values.
        return f"{value['msgid']} {params}"
