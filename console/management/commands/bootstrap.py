"""Prepares a fresh or existing installation to run; every step is safe to repeat."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import translation
from django.utils.translation import gettext as _

from console.audit import Actor, system_user
from console.cli import terminal_language
from console.jobs.services import jobs_schedule_ensure
from console.roles import roles_ensure
from console.services import admin_account_ensure


class Command(BaseCommand):
    help = (
        "Migrate, create the cache table, compile translations, collect static files, create "
        "the roles and the first administrator. Safe to run any number of times."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with translation.override(terminal_language()):
            self._bootstrap()

    def _bootstrap(self) -> None:
        quiet = {"verbosity": 0}
        self.stdout.write(_("Migrating the database…"))
        call_command("migrate", interactive=False, **quiet)
        call_command("createcachetable", **quiet)
        call_command("compiletranslations", **quiet)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, **quiet)
        roles_ensure()
        jobs_schedule_ensure()
        system_user()
        account = admin_account_ensure(
            username=settings.ADMIN_USERNAME,
            password=settings.ADMIN_PASSWORD,
            actor=Actor.command_line(command="bootstrap"),
        )
        username = account.user.get_username()
        if account.generated_password:
            bar = "=" * 64
            self.stdout.write(
                self.style.WARNING(
                    "\n".join(
                        [
                            bar,
                            _("Created the administrator “%(username)s” with the password:")
                            % {"username": username},
                            "",
                            f"    {account.generated_password}",
                            "",
                            _("It is shown only this once. Change it after logging in."),
                            bar,
                        ]
                    )
                )
            )
        elif account.created:
            self.stdout.write(
                _("Created the administrator “%(username)s” with the password from ADMIN_PASSWORD.")
                % {"username": username}
            )
        self.stdout.write(self.style.SUCCESS(_("The console is ready.")))
