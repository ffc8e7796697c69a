"""Tag (or untag) the OpenIDs of a file in the background, from a terminal.

    python manage.py tag_users --oa "品牌公众号" --tagid 134 --file list.csv [--column openid]
    python manage.py tag_users --bot "客服机器人" --category 完件 --label 完成 --desc "…" \\
        [--appid wx…] --file list.xlsx [--batch-size 50] [--wait [--timeout SECONDS]]
    python manage.py tag_users --wecom "主企业" --add et… [et…] [--remove et… …] \
        --file customers.csv [--wait]      # WeCom customers: external_userid [, userid]
    python manage.py tag_users --purge-expired   # what the daily schedule does

With --wait it follows the job (console/jobs/follow.py, as ``jobs wait`` does) and exits with
status 0 only if every accepted OpenID succeeded. ``--purge-expired`` deletes the lists older
than BULK_AUDIENCE_KEEP_DAYS that no open job reads. The job's other controls: ``jobs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _, ngettext

from console.audit import Actor
from console.cli import quiet_queue_logs, terminal_language
from console.jobs.follow import job_wait_in_command
from console.jobs.runner import LeaseLost
from console.jobs.services import READER_GONE, JobStoppedWhileReading
from tagging.bulk.audience import AudienceError
from tagging.bulk.jobs import TAG, UNTAG
from tagging.bulk.retention import audience_purge_expired
from tagging.bulk.services import BotLabel, bulk_job_start_reading
from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import oa_tags_pull
from wecom.clients import PlatformError
from wecom.models import ChatbotBot, OfficialAccount

SHOWN_REFUSALS = 10


class Command(BaseCommand):
    help = (
        "Tag or untag the OpenIDs of a file (CSV, TXT, XLSX), or the WeCom customers of a file, "
        "in the background."
    )
    # Django's system checks (every admin, URL and setting: 0.1 to 0.45 s at each start,
    # bench/bulk_whole_path.py) run where a wrong setting does harm: qcluster, runserver,
    # `check --deploy`. An operator runs this once per file, and waits for it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--oa", metavar="NAME", help="Official Account credential name")
        target.add_argument("--bot", metavar="NAME", help="chatbot credential name")
        target.add_argument(
            "--wecom", metavar="NAME", help="WeCom app credential name (tag WeCom customers)"
        )
        target.add_argument(
            "--purge-expired",
            action="store_true",
            help="delete the lists older than BULK_AUDIENCE_KEEP_DAYS that no open job reads",
        )
        parser.add_argument("--tagid", type=int, help="Official Account tag id")
        parser.add_argument("--category")
        parser.add_argument("--label")
        parser.add_argument("--desc")
        parser.add_argument("--appid", default="", help="AppID the OpenIDs belong to")
        parser.add_argument("--untag", action="store_true", help="remove the tag instead")
        parser.add_argument(
            "--add", nargs="+", default=[], metavar="TAG_ID", help="with --wecom: tags to add"
        )
        parser.add_argument(
            "--remove",
            nargs="+",
            default=[],
            metavar="TAG_ID",
            help="with --wecom: tags to remove",
        )
        parser.add_argument("--file", type=Path)
        parser.add_argument("--column", default="", help="header of the OpenID column")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--wait", action="store_true", help="follow the job; exit 0 only if all succeeded"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="with --wait: stop following after this long (exit status 2; the job goes on)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        quiet_queue_logs()
        with translation.override(terminal_language()):
            if options["purge_expired"]:
                self._purge_expired()
            elif options["wecom"]:
                self._handle_wecom(options)
            else:
                self._handle(options)

    def _target(self, options: dict[str, Any]) -> Any:
        actor = Actor.command_line(command="tag_users")
        if options["oa"]:
            account = OfficialAccount.objects.filter(name=options["oa"]).first()
            if account is None:
                raise CommandError(
                    _("There is no Official Account “%(name)s”.") % {"name": options["oa"]}
                )
            if options["tagid"] is None:
                raise CommandError(_("--oa needs --tagid."))
            tag = OfficialAccountTag.objects.filter(
                account=account, tag_id=options["tagid"]
            ).first()
            if tag is None:
                try:
                    oa_tags_pull(account=account, actor=actor)
                except PlatformError as error:
                    raise CommandError(str(error)) from None
                tag = OfficialAccountTag.objects.filter(
                    account=account, tag_id=options["tagid"]
                ).first()
            if tag is None:
                raise CommandError(
                    _("The Official Account “%(name)s” has no tag %(tagid)s.")
                    % {"name": account, "tagid": options["tagid"]}
                )
            return tag
        bot = ChatbotBot.objects.filter(name=options["bot"]).first()
        if bot is None:
            raise CommandError(_("There is no chatbot “%(name)s”.") % {"name": options["bot"]})
        missing = [name for name in ("category", "label", "desc") if not options[name]]
        if missing:
            raise CommandError(
                _("--bot needs %(options)s.")
                % {"options": ", ".join(f"--{name}" for name in missing)}
            )
        return BotLabel(
            bot=bot,
            category=options["category"],
            label=options["label"],
            desc=options["desc"],
            appid=options["appid"],
        )

    def _handle(self, options: dict[str, Any]) -> None:
        target = self._target(options)
        path: Path | None = options["file"]
        if path is None:
            raise CommandError(_("--oa and --bot need --file."))
        if not path.is_file():
            raise CommandError(_("There is no file %(path)s.") % {"path": path})
        actor = Actor.command_line(command="tag_users")
        try:
            # The first OpenIDs are sent while the rest of the file is read.
            with path.open("rb") as stream:
                audience, job = bulk_job_start_reading(
                    stream=stream,
                    name=path.name,
                    size=path.stat().st_size,
                    column=options["column"],
                    target=target,
                    operation=UNTAG if options["untag"] else TAG,
                    batch_size=options["batch_size"],
                    actor=actor,
                )
        except JobStoppedWhileReading:
            raise CommandError(
                _("The job was cancelled while its list was read: the rest was not read.")
            ) from None
        except LeaseLost:
            raise CommandError(str(READER_GONE)) from None
        except AudienceError as error:
            raise CommandError(str(error)) from None
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(
            # Counts as "label: number", so that no count needs a plural of its own.
            _(
                "OpenIDs accepted: %(accepted)s; duplicates dropped: %(duplicates)s; blank "
                "lines dropped: %(blanks)s; values refused: %(refused)s."
            )
            % {
                "accepted": audience.accepted,
                "duplicates": audience.duplicates,
                "blanks": audience.blanks,
                "refused": audience.refused,
            }
        )
        for refusal in audience.refusals.order_by("line")[:SHOWN_REFUSALS]:
            self.stdout.write(f"  {refusal.line}: {refusal.value} — {refusal.reason}")
        self._started(job, options)

    def _handle_wecom(self, options: dict[str, Any]) -> None:
        """Tag WeCom customers: one mark_tag per (member, customer) of the file."""
        from tagging.customers.audience import customer_audience_from_file
        from tagging.customers.services import customers_job_start
        from wecom.models import WeComApp

        app = WeComApp.objects.filter(name=options["wecom"]).first()
        if app is None:
            raise CommandError(_("There is no WeCom app “%(name)s”.") % {"name": options["wecom"]})
        path: Path | None = options["file"]
        if path is None:
            raise CommandError(_("--wecom needs --file."))
        if not path.is_file():
            raise CommandError(_("There is no file %(path)s.") % {"path": path})
        if not options["add"] and not options["remove"]:
            raise CommandError(_("--wecom needs --add or --remove (tag ids)."))
        actor = Actor.command_line(command="tag_users")
        try:
            with path.open("rb") as stream:
                audience = customer_audience_from_file(
                    app=app,
                    stream=stream,
                    name=path.name,
                    size=path.stat().st_size,
                    user=actor.user,
                )
            job = customers_job_start(
                audience=audience, add=options["add"], remove=options["remove"], actor=actor
            )
        except (AudienceError, PlatformError) as error:
            raise CommandError(str(error)) from None
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(
            _(
                "Pairs (member, customer) accepted: %(accepted)s (one call each); customers: "
                "%(customers)s; duplicates dropped: %(duplicates)s; blank lines dropped: "
                "%(blanks)s; values refused: %(refused)s."
            )
            % {
                "accepted": audience.accepted,
                "customers": audience.customers,
                "duplicates": audience.duplicates,
                "blanks": audience.blanks,
                "refused": audience.refused,
            }
        )
        members = ", ".join(f"{userid} ({count})" for userid, count in audience.members.items())
        self.stdout.write(_("Members: %(members)s") % {"members": members})
        for refusal in audience.refusals.order_by("line")[:SHOWN_REFUSALS]:
            self.stdout.write(f"  {refusal.line}: {refusal.value} — {refusal.reason}")
        self._started(job, options)

    def _started(self, job: Any, options: dict[str, Any]) -> None:
        self.stdout.write(
            _("Job %(id)s started: %(title)s (%(url)s)")
            % {
                "id": job.pk,
                "title": job.title,
                "url": reverse("admin:console_job_change", args=[job.pk]),
            }
        )
        if options["wait"]:
            job_wait_in_command(self.stdout, job, timeout=options["timeout"])

    def _purge_expired(self) -> None:
        report = audience_purge_expired(
            actor=Actor.command_line(command="tag_users --purge-expired")
        )
        self.stdout.write(
            ngettext(
                "Deleted %(count)s list older than %(days)s days (OpenIDs: %(members)s).",
                "Deleted %(count)s lists older than %(days)s days (OpenIDs: %(members)s).",
                report.audiences,
            )
            % {
                "count": report.audiences,
                "days": settings.BULK_AUDIENCE_KEEP_DAYS,
                "members": report.members,
            }
        )
        if not report.customer_lists:
            return
        self.stdout.write(
            ngettext(
                "Deleted %(count)s WeCom customer list older than %(days)s days (pairs: "
                "%(pairs)s).",
                "Deleted %(count)s WeCom customer lists older than %(days)s days (pairs: "
                "%(pairs)s).",
                report.customer_lists,
            )
            % {
                "count": report.customer_lists,
                "days": settings.BULK_AUDIENCE_KEEP_DAYS,
                "pairs": report.pairs,
            }
        )
