"""Re-encrypts every stored secret under the current CREDENTIALS_KEY."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from console.audit import Actor
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
        report = credentials_rotate(
            actor=Actor.command_line(command="rotate_credentials_key"),
            dry_run=options["dry_run"],
        )
        for line in report.lines():
            self.stdout.write(line)
        if report.unreadable:
            raise CommandError(
                f"{report.unreadable} secret(s) could not be decrypted with any configured key; "
                "they were left as they are. Add the key that encrypted them to "
                "CREDENTIALS_OLD_KEYS and run this again."
            )
