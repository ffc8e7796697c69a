"""Compiles the .po catalogues to .mo with Babel, so that no GNU gettext is needed to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _


def catalogue_paths() -> list[Path]:
    """The project-wide catalogue (LOCALE_PATHS) and the catalogue of each of our own apps."""
    base = Path(settings.BASE_DIR).resolve()
    locale_dirs = {Path(locale_dir).resolve() for locale_dir in settings.LOCALE_PATHS}
    for app_config in apps.get_app_configs():
        app_locale = Path(app_config.path).resolve() / "locale"
        if app_locale.is_relative_to(base) and "site-packages" not in app_locale.parts:
            locale_dirs.add(app_locale)
    return sorted(
        path for locale_dir in locale_dirs for path in locale_dir.glob("*/LC_MESSAGES/*.po")
    )


class Command(BaseCommand):
    # It only writes .mo files: the database, the cache and the keys are none of its business.
    requires_system_checks: list[str] = []
    help = "Compile the console's translation catalogues (.po) into .mo files."

    def handle(self, *args: Any, **options: Any) -> None:
        paths = catalogue_paths()
        if not paths:
            raise CommandError(_("No .po catalogues found under LOCALE_PATHS."))
        for po_path in paths:
            mo_path = po_path.with_suffix(".mo")
            if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
                continue
            with po_path.open("rb") as po_file:
                catalog = read_po(po_file, abort_invalid=True)
            with mo_path.open("wb") as mo_file:
                write_mo(mo_file, catalog, use_fuzzy=False)
            if options["verbosity"] >= 1:
                self.stdout.write(f"Compiled {po_path.relative_to(settings.BASE_DIR)}")
