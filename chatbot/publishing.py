"""Going live: publishing a bot (debug copied to online) and where each reply stands.

PLATFORM.md section 4, "Going live": what ``setautoreply`` changes lands in the bot's debug
environment; users get it after a publish. A reply is live when it was pushed before a publish
that succeeded, and that publish's start is what the console compares: a push made while a
publish runs may or may not be in it, so it counts as not live until the next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, CharField, Count, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _

from chatbot.models import AutoReply, BotPublish, LiveState, PublishStatus, ReplySyncState
from console.audit import Actor, AuditAction, audit_record
from wecom.models import ChatbotBot

if TYPE_CHECKING:
    from console.models import Job

PUBLISH_KIND = "chatbot.publish"
# The job's bar is the platform's percentage.
PUBLISH_TOTAL = 100

# ---- reads ----------------------------------------------------------------------------------


def _last_publish_start(bot_ref: str) -> Subquery:
    return Subquery(
        BotPublish.objects.filter(
            bot=OuterRef(bot_ref), status=PublishStatus.SUCCEEDED, started_at__isnull=False
        )
        .order_by("-started_at")
        .values("started_at")[:1]
    )


def replies_with_live_state(queryset: QuerySet[AutoReply]) -> QuerySet[AutoReply]:
    """``queryset`` with ``live_state`` (a :class:`LiveState` value) and ``published_at`` (the
    start of the bot's last publish that succeeded) on each reply. One query."""
    return queryset.annotate(published_at=_last_publish_start("skill__bot")).annotate(
        live_state=Case(
            When(~Q(sync_state=ReplySyncState.IN_SYNC), then=Value(LiveState.CHANGED.value)),
            When(
                published_at__isnull=False,
                last_pushed_at__lte=F("published_at"),
                then=Value(LiveState.LIVE.value),
            ),
            default=Value(LiveState.PUSHED.value),
            output_field=CharField(),
        )
    )


def reply_live_state(reply: AutoReply) -> LiveState:
    state = (
        replies_with_live_state(AutoReply.objects.filter(pk=reply.pk))
        .values_list("live_state", flat=True)
        .first()
    )
    return LiveState(state or LiveState.CHANGED)


def bots_not_live_counts() -> dict[int, int]:
    """Per bot id, how many replies are pushed but not yet live (bots with none left out)."""
    rows = (
        replies_with_live_state(AutoReply.objects.all())
        .filter(live_state=LiveState.PUSHED)
        .values("skill__bot")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("skill__bot", "n")
    )
    return dict(rows)


# ---- writes ---------------------------------------------------------------------------------


def bot_publish(*, bot: ChatbotBot, actor: Actor) -> Job:
    """Submit a background job that publishes ``bot`` and follows it to the end.

    An open publish job of the bot is returned instead of a second one. Raises
    ValidationError when the bot has no default manager ID (the platform needs one).
    """
    from chatbot.jobs import bot_job_submit
    from console.jobs.services import job_create

    if not bot.default_manager_id:
        raise ValidationError(
            gettext(
                "%(bot)s has no default manager ID, which publishing needs. Ask a credential "
                "admin to set it."
            )
            % {"bot": bot.name},
            code="managerid",
        )
    return bot_job_submit(
        kind=PUBLISH_KIND,
        bot=bot,
        create=lambda: job_create(
            kind=PUBLISH_KIND,
            title=gettext("Publish %(bot)s") % {"bot": bot.name},
            total=PUBLISH_TOTAL,
            shards=[(0, PUBLISH_TOTAL)],
            params={"bot_id": bot.pk},
            actor=actor,
            target=bot,
        ),
    )


@transaction.atomic
def publish_begin(*, bot: ChatbotBot, job: Job | None, started: bool, actor: Actor) -> BotPublish:
    """Record a publish before the platform is asked to start it (``started``), or one already
    running there that the console follows (``started=False``: it makes nothing live here)."""
    publish = BotPublish.objects.create(
        bot=bot, job=job, started_at=timezone.now() if started else None
    )
    audit_record(
        actor=actor,
        obj=publish,
        action=AuditAction.ADD,
        note=_("Publishing the chatbot.")
        if started
        else _("A publish was already running: following it instead of starting another."),
    )
    return publish


@transaction.atomic
def publish_progress_record(*, publish: BotPublish, progress: int) -> None:
    BotPublish.objects.filter(pk=publish.pk, status=PublishStatus.RUNNING).update(progress=progress)
    publish.progress = progress


@transaction.atomic
def publish_finish(*, publish: BotPublish, ok: bool, message: str, actor: Actor) -> None:
    """Record how the publish ended, with the sentence, in the publish's history."""
    publish.status = PublishStatus.SUCCEEDED if ok else PublishStatus.FAILED
    if ok:
        publish.progress = 100
    publish.message = message[:500]
    publish.finished_at = timezone.now()
    publish.save(update_fields=["status", "progress", "message", "finished_at"])
    audit_record(
        actor=actor,
        obj=publish,
        action=AuditAction.CHANGE,
        changes={"status": (PublishStatus.RUNNING.label, publish.get_status_display())},
        note=_("Publish ended: %(result)s"),
        note_params={"result": message},
    )
