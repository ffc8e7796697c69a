"""Pull WeCom strategy tags into the console: print the plan, then apply it.

    python manage.py wecom_pull                   # every WeCom app
    python manage.py wecom_pull --app "主企业"     # one app
    python manage.py wecom_pull --dry-run         # the plan only, nothing changes
    python manage.py wecom_pull --app "主企业" --every 30       # automatic pull every 30 min
    python manage.py wecom_pull --app "主企业" --every 0        # no automatic pull
    python manage.py wecom_pull --app "主企业" --every default  # STRATEGY_PULL_MINUTES

Changes without conflicts are applied; a conflict (WeCom changed an item that has a local change
pending) waits for a person in the admin.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from console.audit import Actor
from console.cli import terminal_language
from tagging.strategy.jobs import (
    pull_interval_text,
    strategy_pull_interval_set,
    strategy_pull_next_run,
    strategy_pull_schedules_ensure,
)
from tagging.strategy.models import StrategyPull
from tagging.strategy.pull import plan_lines, pull_and_apply, pull_plan
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp


class Command(BaseCommand):
    help = "Pull WeCom strategies, tag groups and tags; print the plan and apply it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--app", help="the WeCom app credential's name (default: all)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print the plan without applying it"
        )
        parser.add_argument(
            "--every",
            metavar="MINUTES",
            help="set how often the app is pulled automatically instead of pulling now: "
            "minutes, 0 for never, or 'default' for the console's STRATEGY_PULL_MINUTES",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        translation.activate(terminal_language())
        apps = WeComApp.objects.all()
        if options["app"]:
            apps = apps.filter(name=options["app"])
            if not apps.exists():
                names = ", ".join(WeComApp.objects.values_list("name", flat=True)) or "-"
                raise CommandError(
                    _("There is no WeCom app named “%(name)s”. Known: %(names)s")
                    % {"name": options["app"], "names": names}
                )
        if options["every"] is not None:
            self._set_interval(apps, options["every"])
            return
        failed = False
        for app in apps:
            self.stdout.write(_("WeCom app “%(name)s”:") % {"name": app.name})
            try:
                if options["dry_run"]:
                    plan = pull_plan(app)
                    self._print_plan(plan)
                    self.stdout.write(_("Dry run: nothing was changed."))
                    continue
                plan, result = pull_and_apply(
                    app=app, actor=Actor.command_line(command="wecom_pull")
                )
            except PlatformError as error:
                failed = True
                self.stderr.write(_("Pull failed: %(reason)s") % {"reason": error.explanation})
                continue
            self._print_plan(plan)
            self.stdout.write(
                _("Changes applied: %(applied)d; conflicts waiting in the admin: %(conflicts)d.")
                % {"applied": result.applied, "conflicts": result.conflicts_left}
            )
        if failed:
            raise CommandError(_("At least one pull failed."))

    def _set_interval(self, apps: Any, every: str) -> None:
        if every.strip().lower() == "default":
            minutes = None
        else:
            try:
                minutes = int(every)
            except ValueError:
                raise CommandError(
                    _("--every takes a number of minutes, 0 (never) or “default”, not “%(value)s”.")
                    % {"value": every}
                ) from None
        strategy_pull_schedules_ensure()  # every app has its pull settings
        actor = Actor.command_line(command="wecom_pull --every")
        for app in apps:
            try:
                pull = strategy_pull_interval_set(
                    pull=StrategyPull.objects.get(app=app), every_minutes=minutes, actor=actor
                )
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from None
            when = strategy_pull_next_run(app.pk)
            self.stdout.write(
                _("WeCom app “%(name)s”: automatic pull %(interval)s (next: %(when)s).")
                % {
                    "name": app.name,
                    "interval": pull_interval_text(pull),
                    "when": date_format(timezone.localtime(when), "DATETIME_FORMAT")
                    if when
                    else "—",
                }
            )

    def _print_plan(self, plan: Any) -> None:
        if plan.first_import:
            self.stdout.write(_("First pull of this app: everything is imported."))
        lines = list(plan_lines(plan))
        if not lines:
            self.stdout.write(_("The console and WeCom agree: nothing to do."))
        for line in lines:
            self.stdout.write(line)
        counts = plan.counts()
        self.stdout.write(
            _(
                "Plan: %(add)d added, %(rename)d renamed, %(reorder)d re-ordered, %(move)d "
                "moved, %(delete)d deleted in WeCom; conflicts: %(conflict)d; local changes "
                "pending: %(pending)d."
            )
            % counts
        )
