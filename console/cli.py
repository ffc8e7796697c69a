"""Helpers for management commands that people run by hand."""

from __future__ import annotations

import contextlib
import gc
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


def end_without_final_collections() -> None:
    """What ``manage.py`` does as a command ends: close the database connections, then freeze
    the garbage collector.

    Why: Python's last collections at exit walk every object of a loaded Django, again and
    again as modules are torn down: 0.3 to 0.8 s at the end of every command (``tag_users
    --wait`` returned, then its process lingered; bench/bulk_whole_path.py), against 0.05 to
    0.09 s frozen. Nothing worth collecting is left by then: the memory goes back to the system
    with the process. The connections are closed first, in words the server understands,
    rather than left to a finaliser that a frozen collector would no longer run.
    """
    with contextlib.suppress(Exception):  # settings that could not load: nothing is open
        from django.db import connections

        connections.close_all()
    gc.freeze()
