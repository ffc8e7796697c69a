"""Chatbot skills for operators: import, export and push a bot's auto-replies.

    python manage.py skills import replies.json --bot "客服机器人" [--dry-run]
    python manage.py skills export --bot "客服机器人" [--format csv] > replies.json
    python manage.py skills push --bot "客服机器人" [--wait]
    python manage.py skills publish --bot "客服机器人" [--wait]
    python manage.py skills check --bot "客服机器人" --env debug|online

``import`` reads a JSON list (or a CSV file, by its extension) of
``{"skillname", "title", "questions", "content", "managerid"}`` and prints the row-by-row report;
refused rows are skipped and make the command exit with status 1. ``push`` submits the
background job that pushes every reply not in sync; with ``--wait`` it follows (and works on)
that job until it ends, and exits 0 only if every reply was accepted (2 if it is on hold).
``publish`` submits the job that publishes the bot (debug to online); with ``--wait`` it
follows (and works on) it with the progress bar, and exits 0 only if the publish succeeded.
``check`` asks the bot every standard and similar question (the regression run, worked on
here) and prints what it found; it exits 1 when a question is answered by another reply (or
one the console does not know), 0 otherwise. Following is the one of every command
(console/jobs/follow.py), working on the job's shards here as a worker would.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from django.utils.translation import gettext as _, ngettext

from chatbot.services import replies_push_changed
from chatbot.transfer import (
    CHANGED,
    CREATED,
    REFUSED,
    UNCHANGED,
    ImportFileError,
    export_csv,
    export_json,
    read_file,
    replies_import,
)
from console.audit import Actor
from console.cli import quiet_queue_logs, terminal_language
from console.jobs.follow import JobFollower
from console.jobs.selectors import job_reason, job_status_sentence
from console.models import Job, JobStatus
from wecom.models import ChatbotBot


class Command(BaseCommand):
    help = "Import, export and push a chatbot's auto-replies."

    def add_arguments(self, parser: Any) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        importing = commands.add_parser("import", help="import replies from a JSON or CSV file")
        importing.add_argument("path")
        importing.add_argument("--bot", required=True, help="the chatbot credential's name")
        importing.add_argument(
            "--dry-run", action="store_true", help="print the report, save nothing"
        )
        exporting = commands.add_parser("export", help="write the bot's replies to stdout")
        exporting.add_argument("--bot", required=True)
        exporting.add_argument("--format", choices=("json", "csv"), default="json")
        pushing = commands.add_parser("push", help="push every reply not in sync")
        pushing.add_argument("--bot", required=True)
        pushing.add_argument(
            "--wait",
            action="store_true",
            help="follow the job to its end; exit 0 only if every reply was accepted",
        )

        publishing = commands.add_parser("publish", help="publish the bot (debug to online)")
        publishing.add_argument("--bot", required=True)
        publishing.add_argument(
            "--wait",
            action="store_true",
            help="follow the publish to its end; exit 0 only if it succeeded",
        )

        checking = commands.add_parser(
            "check", help="ask the bot every question; exit 1 if one is misrouted"
        )
        checking.add_argument("--bot", required=True)
        checking.add_argument("--env", choices=("debug", "online"), required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        quiet_queue_logs()
        with translation.override(terminal_language()):
            bot = ChatbotBot.objects.filter(name=options["bot"]).first()
            if bot is None:
                names = ", ".join(ChatbotBot.objects.values_list("name", flat=True)) or "—"
                raise CommandError(
                    _("No chatbot named “%(name)s”. Chatbots: %(names)s")
                    % {"name": options["bot"], "names": names}
                )
            action = options["action"]
            if action == "export":
                text = export_csv(bot=bot) if options["format"] == "csv" else export_json(bot=bot)
                self.stdout.write(text, ending="")
            elif action == "import":
                self._import(bot, options)
            elif action == "publish":
                self._publish(bot, wait=options["wait"])
            elif action == "check":
                self._check(bot, env=options["env"])
            else:
                self._push(bot, wait=options["wait"])

    def _actor(self, command: str) -> Actor:
        return Actor.command_line(command=f"skills {command}")

    def _import(self, bot: ChatbotBot, options: dict[str, Any]) -> None:
        path = Path(options["path"])
        try:
            data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
        except OSError as error:
            raise CommandError(
                _("Cannot read %(path)s: %(error)s") % {"path": path, "error": error.strerror}
            ) from None
        try:
            records = read_file(path.name, data)
        except ImportFileError as error:
            raise CommandError(" ".join(error.messages)) from None
        plan = replies_import(
            bot=bot, records=records, actor=self._actor("import"), dry_run=options["dry_run"]
        )
        labels = {
            CREATED: _("new"),
            CHANGED: _("changed"),
            UNCHANGED: _("unchanged"),
            REFUSED: _("refused"),
        }
        for row in plan.rows:
            where = f"{row.skillname} / {row.title}".strip(" /") or "—"
            line = _("row %(row)d: %(status)s: %(where)s") % {
                "row": row.number,
                "status": labels[row.status],
                "where": where,
            }
            if row.changed_fields:
                line += " (" + ", ".join(row.changed_labels) + ")"
            self.stdout.write(line)
            for reason in row.reasons:
                self.stdout.write(f"    {reason}")
        self.stdout.write(plan.summary())
        if options["dry_run"]:
            self.stdout.write(_("Dry run: nothing was saved."))
        if plan.count(REFUSED):
            refused = plan.count(REFUSED)
            raise CommandError(
                ngettext(
                    "%(count)d row was refused; the others were imported.",
                    "%(count)d rows were refused; the others were imported.",
                    refused,
                )
                % {"count": refused}
                if not options["dry_run"]
                else ngettext(
                    "%(count)d row would be refused.", "%(count)d rows would be refused.", refused
                )
                % {"count": refused},
                returncode=1,
            )

    def _follow(self, job: Job) -> Job:
        """Follow the job to its end, working on its shards here too."""
        return JobFollower.to(self.stdout, job, work_here=True).follow()

    def _push(self, bot: ChatbotBot, *, wait: bool) -> None:
        try:
            job = replies_push_changed(bot=bot, actor=self._actor("push"))
        except ValidationError as error:
            self.stdout.write(" ".join(error.messages))
            return
        self.stdout.write(
            ngettext(
                "Job #%(id)s: %(title)s (%(total)d reply).",
                "Job #%(id)s: %(title)s (%(total)d replies).",
                job.total,
            )
            % {"id": job.pk, "title": job.title, "total": job.total}
        )
        if not wait:
            self.stdout.write(
                _(
                    "The background worker pushes them; follow the job in the admin (jobs), with "
                    "“python manage.py jobs wait %(id)s”, or run this command with --wait."
                )
                % {"id": job.pk}
            )
            return
        job = self._follow(job)
        progress = job.progress()
        sentence = job_status_sentence(job, progress)
        if job.status in (JobStatus.PAUSED, JobStatus.WAITING):
            raise CommandError(sentence, returncode=2)
        self.stdout.write(sentence)
        if job.status != JobStatus.DONE or progress.failed:
            for failure in job.failures.order_by("pk")[:20]:
                self.stdout.write(f"    {failure.item}: {failure.reason}")
            raise CommandError(
                _("Not every reply was accepted (%(failed)d failed).")
                % {"failed": progress.failed},
                returncode=1,
            )

    def _publish(self, bot: ChatbotBot, *, wait: bool) -> None:
        from chatbot.publishing import bot_publish

        try:
            job = bot_publish(bot=bot, actor=self._actor("publish"))
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(_("Job #%(id)s: %(title)s.") % {"id": job.pk, "title": job.title})
        if not wait:
            self.stdout.write(
                _(
                    "The background worker publishes it; follow the job in the admin (jobs), "
                    "with “python manage.py jobs wait %(id)s”, or run this command with --wait."
                )
                % {"id": job.pk}
            )
            return
        job = self._follow(job)
        self.stdout.write(job_status_sentence(job, job.progress()))
        if job.status != JobStatus.DONE:
            raise CommandError(job_reason(job) or job.get_status_display(), returncode=1)

    def _check(self, bot: ChatbotBot, *, env: str) -> None:
        from chatbot.checking import MISROUTED, UNKNOWN_REPLY, bot_check

        try:
            job = bot_check(bot=bot, env=env, actor=self._actor("check"))
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(_("Job #%(id)s: %(title)s.") % {"id": job.pk, "title": job.title})
        job = self._follow(job)
        for failure in job.failures.order_by("pk"):
            self.stdout.write(f"    {failure.item}: {failure.reason}")
        self.stdout.write(job_status_sentence(job, job.progress()))
        if job.status != JobStatus.DONE:
            raise CommandError(job_reason(job) or job.get_status_display(), returncode=2)
        misrouted = job.failures.filter(reason_code__in=(MISROUTED, UNKNOWN_REPLY)).count()
        if misrouted:
            raise CommandError(
                ngettext(
                    "%(count)d question is answered by another reply.",
                    "%(count)d questions are answered by another reply.",
                    misrouted,
                )
                % {"count": misrouted},
                returncode=1,
            )
