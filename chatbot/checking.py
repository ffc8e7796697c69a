"""“检查所有问题”: ask the bot every standard and similar question of the console's replies and
report each one the bot answers with another reply, does not match, or answers with other
content. A kind of the shared background job (console/jobs); the findings are the job's failed
items (with the job page's CSV), the questions answered as expected its done items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from chatbot.asking import compare_with_console, console_replies
from chatbot.jobs import bot_job_submit, job_bot_client
from chatbot.models import AutoReply
from console.audit import Actor
from console.jobs import JobKind, ShardRun
from console.models import JobItemFailure
from wecom.clients import PlatformError
from wecom.clients.chatbot import ENVIRONMENTS
from wecom.models import ChatbotBot

if TYPE_CHECKING:
    from console.models import Job

CHECK_KIND = "chatbot.check"
SHARD_SIZE = 500
BATCH = 20
MISROUTED = "misrouted"
NO_MATCH = "nomatch"
OTHER_CONTENT = "content"
UNKNOWN_REPLY = "unknown"
# Errors about the bot itself: every other question would fail the same way.
BOT_LEVEL_CODES = frozenset({1001, 1002, 1005, 1006})


def check_questions(bot: ChatbotBot) -> list[tuple[int, str]]:
    """(reply id, question) for every standard and similar question of the bot's replies."""
    items: list[tuple[int, str]] = []
    rows = AutoReply.objects.filter(skill__bot=bot).order_by("skill__name", "title", "pk")
    for reply_id, title, questions in rows.values_list("pk", "title", "questions"):
        items.append((reply_id, title))
        items.extend((reply_id, question) for question in questions or [])
    return items


def bot_check(*, bot: ChatbotBot, env: str, actor: Actor) -> Job:
    """Submit the regression run of ``bot`` in ``env``; an open one is returned instead."""
    from console.jobs.services import job_create, shard_ranges

    if env not in ENVIRONMENTS:
        raise ValidationError(gettext("Choose debug or online."), code="env")

    def create() -> Job:
        items = check_questions(bot)
        if not items:
            raise ValidationError(
                gettext("%(bot)s has no replies: there is nothing to check.") % {"bot": bot.name},
                code="nothing",
            )
        return job_create(
            kind=CHECK_KIND,
            title=ngettext(
                "Check %(count)d question of %(bot)s (%(env)s)",
                "Check %(count)d questions of %(bot)s (%(env)s)",
                len(items),
            )
            % {"count": len(items), "bot": bot.name, "env": env},
            total=len(items),
            shards=shard_ranges(total=len(items), shard_size=SHARD_SIZE),
            params={"bot_id": bot.pk, "env": env, "items": items},
            actor=actor,
            target=bot,
        )

    return bot_job_submit(kind=CHECK_KIND, bot=bot, create=create)


def run_check_shard(run: ShardRun) -> None:
    job = run.job
    found = job_bot_client(job, deleted=gettext("The chatbot was deleted; the check stopped."))
    if not isinstance(found, tuple):
        run.fail_job(message=found)
        return
    bot, client = found
    env = job.params["env"]
    items = job.params.get("items", [])
    userid = f"console-check-{job.pk}"
    while run.keep_going():
        start = run.position
        batch = items[start : min(start + BATCH, run.end)]
        replies = console_replies(bot)
        by_id = {reply.pk: reply for reply in replies}
        failures: list[JobItemFailure] = []
        for reply_id, question in batch:
            run.ensure_lease()
            try:
                answer = client.ask(query=question, env=env, userid=userid)
            except PlatformError as error:
                if error.errcode in BOT_LEVEL_CODES:
                    run.fail_job(message=error.explanation)
                    return
                failures.append(_failure(run, question, "error", error.explanation))
                continue
            outcome = compare_with_console(
                bot=bot, query=question, env=env, answer=answer, replies=replies
            )
            finding = _finding(by_id.get(reply_id), question, outcome)
            if finding is not None:
                failures.append(_failure(run, question, *finding))
        with run.checkpoint(
            advance=len(batch), done=len(batch) - len(failures), failed=len(failures)
        ):
            JobItemFailure.objects.bulk_create(failures)


def _failure(run: ShardRun, question: str, code: str, reason: str) -> JobItemFailure:
    return JobItemFailure(
        job=run.job, shard=run.shard, item=question[:200], reason_code=code, reason=reason
    )


def _finding(reply: AutoReply | None, question: str, outcome: object) -> tuple[str, str] | None:
    from chatbot.asking import AskOutcome

    assert isinstance(outcome, AskOutcome)
    title = reply.title if reply is not None else "—"
    if not outcome.standard_question:
        return NO_MATCH, gettext(
            "Not matched (%(status)s): the bot does not answer it with “%(title)s”."
        ) % {"status": outcome.status_label, "title": title}
    if outcome.reply_id is None:
        return UNKNOWN_REPLY, gettext(
            "Answered with “%(other)s” (skill “%(skill)s”), which the console does not know, "
            "instead of “%(title)s”."
        ) % {"other": outcome.standard_question, "skill": outcome.skill_name, "title": title}
    if reply is not None and outcome.reply_id != reply.pk:
        return MISROUTED, gettext("Answered with the reply “%(other)s” instead of “%(title)s”.") % {
            "other": outcome.standard_question,
            "title": title,
        }
    if not outcome.same_content:
        return OTHER_CONTENT, " ".join(outcome.warnings)
    return None


def check_job_actions(job: Job, user: object) -> list[tuple[str, str]]:
    params = job.params or {}
    url = reverse("admin:chatbot_autoreply_changelist")
    return [(f"{url}?skill__bot__id__exact={params.get('bot_id', '')}", str(_("All replies")))]


CHECK_JOB = JobKind(
    name=CHECK_KIND,
    label=_("Check every question of a chatbot"),
    run_shard=run_check_shard,
    actions=check_job_actions,  # type: ignore[arg-type]
)
