"""“Push all changed” as a kind of the shared background job (console/jobs).

The job's items are the ids of the replies that were not in sync when it was submitted, in
``params["reply_ids"]``; a shard's positions index that list. Each reply is one
``setautoreply`` call through :func:`chatbot.services.reply_push`, which records the result on
the reply; the checkpoint counts it and keeps failures (with the sentence) for the job's page.

Also what the chatbot's three kinds (push, publish, check) share: one open job per bot and kind,
the bot and its client as a shard finds them, and who their changes are recorded as.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import transaction
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_lazy as _

from chatbot.models import AutoReply
from chatbot.selectors import bot_open_job, question_clashes
from console.audit import Actor, AuditSource
from console.jobs import JobKind, PlatformUnavailable, ShardRun
from console.models import Job, JobItemFailure
from wecom.clients import PlatformError
from wecom.connections import client_for
from wecom.models import ChatbotBot

if TYPE_CHECKING:
    from wecom.clients import ChatbotClient

KIND = "chatbot.push_changed"
BATCH = 20
SHARD_SIZE = 200
# No answer (connection, timeout, HTTP 5xx) or "busy": waited out, never a reply's failure.
OUTAGE_CODES = frozenset({"transport", "-1"})
# Errors about the bot itself: every other reply would fail the same way.
BOT_LEVEL_CODES = frozenset({"1001", "1002", "1005", "credential"})


def bot_job_submit(*, kind: str, bot: ChatbotBot, create: Callable[[], Job]) -> Job:
    """The bot's open job of ``kind``, or the one ``create`` makes when there is none.

    Under the bot row's lock, so that two editors submitting at once get one job.
    """
    with transaction.atomic():
        ChatbotBot.objects.select_for_update().filter(pk=bot.pk).first()
        return bot_open_job(kind=kind, bot=bot) or create()


def job_bot_client(
    job: Job, *, deleted: str | Promise
) -> tuple[ChatbotBot, ChatbotClient] | str | Promise:
    """The job's bot and a client for it; or, when there is none, the sentence the job stops
    with: ``deleted`` for a deleted bot, or why its stored secrets cannot be used."""
    bot = ChatbotBot.objects.filter(pk=job.params.get("bot_id")).first()
    if bot is None:
        return deleted
    try:
        return bot, client_for(bot)
    except PlatformError as error:
        return error.explanation


def job_actor(job: Job) -> Actor:
    """Who a chatbot job's changes are recorded as: its submitter, through the job."""
    return Actor(
        user=job.created_by,
        source=AuditSource.JOB,
        detail=gettext("job #%(id)s") % {"id": job.pk},
    )


def run_push_shard(run: ShardRun) -> None:
    from chatbot.services import PushOutcome, push_record, reply_send

    job = run.job
    ids: list[int] = list(job.params.get("reply_ids", []))
    found = job_bot_client(job, deleted=_("The chatbot was deleted; nothing more was pushed."))
    if not isinstance(found, tuple):
        run.fail_job(message=found)
        return
    bot, client = found
    actor = job_actor(job)
    while run.keep_going():
        start = run.position
        batch = ids[start : min(start + BATCH, run.end)]
        replies = AutoReply.objects.in_bulk(batch)
        # The check across replies once per batch, not once per reply of a 2,000-reply bot.
        clashes = question_clashes(bot_ids=[bot.pk])
        failures: list[JobItemFailure] = []
        # What each reply's push did, recorded on the reply and in its History together with
        # the checkpoint: a batch sent again after a lost lease is recorded once.
        sent: list[tuple[AutoReply, PushOutcome]] = []
        stop = ""
        for reply_id in batch:
            reply = replies.get(reply_id)
            if reply is None:
                failures.append(
                    JobItemFailure(
                        job=job,
                        shard=run.shard,
                        item=str(reply_id),
                        reason_code="deleted",
                        reason=gettext("The reply was deleted before it was pushed."),
                    )
                )
                continue
            run.ensure_lease()
            sent_reply, outcome = reply_send(
                reply=reply, client=client, clashes=clashes.get(reply_id, [])
            )
            if not outcome.ok and outcome.reason_code in OUTAGE_CODES:
                # The platform cannot be reached: the job waits and goes on from this batch
                # (the replies sent before in it are sent again then, and recorded once).
                raise PlatformUnavailable(outcome.message)
            sent.append((sent_reply, outcome))
            if not outcome.ok:
                failures.append(
                    JobItemFailure(
                        job=job,
                        shard=run.shard,
                        item=f"{reply_id} {reply.title}"[:200],
                        reason_code=outcome.reason_code[:32],
                        reason=outcome.message,
                        retryable=outcome.retryable,
                    )
                )
                if outcome.reason_code in BOT_LEVEL_CODES:
                    stop = outcome.message
                    break
        processed = len(batch) if not stop else batch.index(reply_id) + 1
        with run.checkpoint(
            advance=processed, done=processed - len(failures), failed=len(failures)
        ):
            for sent_reply, outcome in sent:
                push_record(reply=sent_reply, outcome=outcome, actor=actor)
            JobItemFailure.objects.bulk_create(failures)
        if stop:
            run.fail_job(message="%(error)s", params={"error": stop})
            return


def push_job_actions(job: object, user: object) -> list[tuple[str, str]]:
    params = getattr(job, "params", {}) or {}
    url = reverse("admin:chatbot_autoreply_changelist")
    return [
        (
            f"{url}?skill__bot__id__exact={params.get('bot_id', '')}&sync_state__exact=failed",
            str(_("Replies whose push failed")),
        ),
        (f"{url}?skill__bot__id__exact={params.get('bot_id', '')}", str(_("All replies"))),
    ]


PUSH_JOB = JobKind(
    name=KIND,
    label=_("Push changed chatbot replies"),
    run_shard=run_push_shard,
    actions=push_job_actions,  # type: ignore[arg-type]
)
