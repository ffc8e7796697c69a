"""Pull WeCom strategy tags into the console: print the plan, then apply it.

    python manage.py wecom_pull                   # every WeCom app
    python manage.py wecom_pull --app "主企业"     # one app
    python manage.py wecom_pull --dry-run         # the plan only, nothing changes

Changes without conflicts are applied; a conflict (WeCom changed an item that has a local change
pending) waits for a person in the admin.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from django.utils.translation import gettext as _

from console.audit import Actor
from console.cli import terminal_language
from tagging.strategy_pull import plan_lines, pull_and_apply, pull_plan
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp


class Command(BaseCommand):
    help = "Pull WeCom strategies, tag groups and tags; print the plan and apply it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--app", help="the WeCom app credential's name (default: all)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print the plan without applying it"
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
                _("Applied %(applied)d changes; %(conflicts)d conflicts wait in the admin.")
                % {"applied": result.applied, "conflicts": result.conflicts_left}
            )
        if failed:
            raise CommandError(_("At least one pull failed."))

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
                "moved, %(delete)d deleted in WeCom; %(conflict)d conflicts; %(pending)d local "
                "changes pending."
            )
            % counts
        )
