"""Re-encrypts every stored secret under the current CREDENTIALS_KEY."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from django.utils.translation import gettext as _

from console.audit import Actor
from console.cli import terminal_language
from console.keyrotation import credentials_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored platform secret under the current CREDENTIALS_KEY. "
        "Put the previous key in CREDENTIALS_OLD_KEYS first; remove it once this has run."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would change, change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with translation.override(terminal_language()):
            self._rotate(dry_run=options["dry_run"])

    def _rotate(self, *, dry_run: bool) -> None:
        report = credentials_rotate(
            actor=Actor.command_line(command="rotate_credentials_key"),
            dry_run=dry_run,
        )
        for line in report.lines():
            self.stdout.write(line)
        if report.unreadable:
            raise CommandError(
                _(
                    "%(count)d secret(s) could not be decrypted with any configured key; they "
                    "were left as they are. Add the key that encrypted them to "
                    "CREDENTIALS_OLD_KEYS and run this again."
                )
                % {"count": report.unreadable}
            )
