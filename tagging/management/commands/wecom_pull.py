"""Pull WeCom strategy tags into the console: print the plan, then apply it.

    python manage.py wecom_pull                   # every WeCom app
    python manage.py wecom_pull --app "主企业"     # one app
    python manage.py wecom_pull --dry-run         # the plan only, nothing changes
    python manage.py wecom_pull --app "主企业" --every 30       # automatic pull every 30 min
    python manage.py wecom_pull --app "主企业" --every 0        # no automatic pull
    python manage.py wecom_pull --app "主企业" --every default  # STRATEGY_PULL_MINUTES

Changes without conflicts are applied; a conflict (WeCom changed an item that has a local change
pending) waits for a person in the admin. Each app's pull is a job (tagging/strategy/jobs.py),
run by the background worker; the command follows it with a progress bar, then prints its plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from console.audit import Actor
from console.cli import quiet_queue_logs, terminal_language
from console.jobs.follow import JobFollower
from console.jobs.selectors import job_status_sentence
from console.models import JobStatus
from tagging.strategy.jobs import (
    PullMode,
    pull_interval_text,
    pull_job_outcome,
    strategy_pull_interval_set,
    strategy_pull_job_create,
    strategy_pull_next_run,
    strategy_pull_schedules_ensure,
)
from tagging.strategy.models import StrategyPull
from tagging.strategy.pull_plan import KIND_LABELS, Action, PlanPreview
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
        quiet_queue_logs()
        actor = Actor.command_line(command="wecom_pull")
        mode = PullMode.PLAN if options["dry_run"] else PullMode.APPLY
        jobs = [
            (app, strategy_pull_job_create(app=app, actor=actor, mode=mode, changes_by=actor))
            for app in apps
        ]
        failed = False
        for app, job in jobs:
            self.stdout.write(_("WeCom app “%(name)s”:") % {"name": app.name})
            job = JobFollower.to(self.stdout, job).follow()
            outcome = pull_job_outcome(job)
            plan, result = outcome.plan, outcome.result
            if job.status != JobStatus.DONE or plan is None:
                failed = True
                self.stderr.write(job_status_sentence(job, job.progress()))
                continue
            self._print_plan(plan)
            if result is None:
                self.stdout.write(_("Dry run: nothing was changed."))
                continue
            self.stdout.write(
                _("Changes applied: %(applied)d; conflicts waiting in the admin: %(conflicts)d.")
                % {"applied": result["applied"], "conflicts": result["conflicts_left"]}
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

    def _print_plan(self, plan: PlanPreview) -> None:
        if plan.first_import:
            self.stdout.write(_("First pull of this app: everything is imported."))
        lines = list(plan_lines(plan))
        if not lines:
            self.stdout.write(_("The console and WeCom agree: nothing to do."))
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(
            _(
                "Plan: %(add)d added, %(rename)d renamed, %(reorder)d re-ordered, %(move)d "
                "moved, %(delete)d deleted in WeCom; conflicts: %(conflict)d; local changes "
                "pending: %(pending)d."
            )
            % plan.counts
        )


def plan_lines(plan: PlanPreview) -> Iterable[str]:
    """The plan as lines of text."""
    for change in plan.changes:
        mark = "!" if change.conflict else ("+" if Action.ADD in change.actions else "~")
        if Action.DELETE in change.actions:
            mark = "!" if change.conflict else "-"
        text = f" {mark} {change.kind_label} “{change.name}”"
        if change.where:
            text += f" ({change.where})"
        text += f": {change.action_label}"
        detail = change.describe()
        if detail:
            text += f" [{detail}]"
        if change.conflict:
            text += " " + _("— conflict with the local change: %(pending)s") % {
                "pending": change.local_pending or "-"
            }
        yield text
    for pending in plan.pending:
        yield " * " + _("%(kind)s “%(name)s”: %(state)s (%(what)s)") % {
            "kind": KIND_LABELS[pending.kind],
            "name": pending.name,
            "state": pending.state,
            "what": pending.message,
        }
    if plan.more:
        yield " " + _("… and %(count)d more.") % {"count": plan.more}
