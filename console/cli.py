"""Helpers for management commands that people run by hand."""

from __future__ import annotations

import logging
import os

from django.utils import translation


def terminal_language() -> str:
    """The console language matching the terminal's locale: zh-hans for any Chinese locale."""
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if value and value not in {"C", "POSIX"} and not value.startswith("C."):
            return "zh-hans" if value.lower().startswith("zh") else "en"
    return "en"


def activate_terminal_language() -> None:
    """Speak the operator's language: messages of a command follow the terminal's locale."""
    translation.activate(terminal_language())


def quiet_queue_logs() -> None:
    """No django-q INFO lines ("Enqueued …") among a command's own output."""
    logging.getLogger("django-q").setLevel(logging.WARNING)
