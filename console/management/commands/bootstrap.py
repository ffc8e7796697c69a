"""Prepares a fresh or existing installation to run; every step is safe to repeat."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from console.audit import Actor, system_user
from console.roles import roles_ensure
from console.services import admin_account_ensure


class Command(BaseCommand):
    help = (
        "Migrate, create the cache table, compile translations, collect static files, create "
        "the roles and the first administrator. Safe to run any number of times."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = {"verbosity": 0}
        self.stdout.write("Migrating the database…")
        call_command("migrate", interactive=False, **quiet)
        call_command("createcachetable", **quiet)
        call_command("compiletranslations", **quiet)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, **quiet)
        roles_ensure()
        system_user()
        account = admin_account_ensure(
            username=settings.ADMIN_USERNAME,
            password=settings.ADMIN_PASSWORD,
            actor=Actor.command_line(command="bootstrap"),
        )
        if account.generated_password:
            bar = "=" * 64
            self.stdout.write(
                self.style.WARNING(
                    f"{bar}\nCreated the administrator “{account.user.get_username()}” with "
                    f"password:\n\n    {account.generated_password}\n\n"
                    f"It is shown only this once. Change it after logging in.\n{bar}"
                )
            )
        elif account.created:
            self.stdout.write(
                f"Created the administrator “{account.user.get_username()}” with the password "
                "from ADMIN_PASSWORD."
            )
        self.stdout.write(self.style.SUCCESS("The console is ready."))
