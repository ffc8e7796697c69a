"""Starting bulk user-tag jobs: from an audience to a job of the shared machinery."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import formats
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from console.audit import Actor
from console.jobs.selectors import job_retryable_failures
from console.jobs.services import job_create, shard_ranges
from console.jobs.undo import job_undo_refusal
from console.models import Job
from tagging.bulk.audience import audience_from_openids, audience_of_job_successes
from tagging.bulk.jobs import KIND, TAG, UNTAG, BulkSpec
from tagging.bulk.models import AudienceStatus, BulkAudience
from tagging.bulk.retention import audience_check_startable
from tagging.official_account.models import OfficialAccountTag
from wecom.clients.errors import CHATBOT, WECHAT
from wecom.models import ChatbotBot
from wecom.rules import (
    validate_bulk_batch_size,
    validate_bulk_operation,
    validate_chatbot_label_text,
)


@dataclass(frozen=True)
class BotLabel:
    """A dialogue-platform user label: the target of a chatbot bulk job (seed 000)."""

    bot: ChatbotBot
    category: str
    label: str
    desc: str
    # The Official Account or mini program the OpenIDs belong to; the bot's own by default.
    appid: str = ""


Target = OfficialAccountTag | BotLabel


def _check_label(target: BotLabel) -> None:
    errors = {}
    for name in ("category", "label", "desc"):
        try:
            validate_chatbot_label_text(getattr(target, name))
        except ValidationError as error:
            errors[name] = error.messages[0]
    if errors:
        raise ValidationError(errors)


def _shard_size(batch_size: int) -> int:
    # Shards hold whole batches, so a fault-free job makes exactly ceil(N / batch) calls.
    return max(batch_size, settings.BULK_SHARD_SIZE // batch_size * batch_size)


def bulk_job_start(
    *,
    audience: BulkAudience,
    target: Target,
    operation: str = TAG,
    batch_size: int | None = None,
    actor: Actor,
    parent: Job | None = None,
    undoes: Job | None = None,
) -> Job:
    """Start tagging (or untagging) every OpenID of ``audience`` in the background."""
    if audience.status != AudienceStatus.READY:
        # Its members are written in the read's last step: before it, there are none.
        raise ValidationError(
            _("This list is still being read, or could not be read: no job can start on it."),
            code="audience_not_ready",
        )
    audience_check_startable(audience=audience)
    if isinstance(target, OfficialAccountTag):
        platform = WECHAT
        size = batch_size or settings.BULK_OA_BATCH_SIZE
    else:
        platform = CHATBOT
        size = batch_size or settings.BULK_CHATBOT_BATCH_SIZE
        _check_label(target)
    validate_bulk_operation(operation, platform=platform)
    if operation not in (TAG, UNTAG):
        raise ValidationError(_("Choose tag or untag."), code="operation")
    validate_bulk_batch_size(size, platform=platform)
    count = formats.number_format(audience.accepted, force_grouping=True)
    if isinstance(target, OfficialAccountTag):
        spec = BulkSpec(
            audience_id=audience.pk,
            platform=platform,
            operation=operation,
            batch_size=size,
            account_id=target.account_id,
            tag_id=target.tag_id,
            undoes=undoes.pk if undoes else None,
        )
        template = (
            ngettext(
                "Tag %(count)s follower with “%(tag)s” (%(account)s)",
                "Tag %(count)s followers with “%(tag)s” (%(account)s)",
                audience.accepted,
            )
            if operation == TAG
            else ngettext(
                "Remove “%(tag)s” from %(count)s follower (%(account)s)",
                "Remove “%(tag)s” from %(count)s followers (%(account)s)",
                audience.accepted,
            )
        )
        title = template % {"count": count, "tag": target.name, "account": target.account.name}
        job_target = target
    else:
        spec = BulkSpec(
            audience_id=audience.pk,
            platform=platform,
            operation=operation,
            batch_size=size,
            bot_id=target.bot.pk,
            appid=target.appid or target.bot.appid,
            category=target.category,
            label=target.label,
            desc=target.desc,
            undoes=undoes.pk if undoes else None,
        )
        title = ngettext(
            "Label %(count)s user “%(category)s / %(label)s” (%(bot)s)",
            "Label %(count)s users “%(category)s / %(label)s” (%(bot)s)",
            audience.accepted,
        ) % {
            "count": count,
            "category": target.category,
            "label": target.label,
            "bot": target.bot.name,
        }
        job_target = target.bot
    with transaction.atomic():
        return job_create(
            kind=KIND,
            title=title,
            total=audience.accepted,
            shards=shard_ranges(total=audience.accepted, shard_size=_shard_size(size)),
            actor=actor,
            params=spec.to_params(),
            target=job_target,
            parent=parent,
        )


def bulk_job_target(job: Job) -> Target:
    """What a bulk job works on, as ``bulk_job_start`` takes it."""
    spec = BulkSpec.from_params(job.params)
    if spec.platform == WECHAT:
        tag = OfficialAccountTag.objects.filter(
            account_id=spec.account_id, tag_id=spec.tag_id
        ).first()
        if tag is None:
            raise ValidationError(
                _("The tag of this job no longer exists in the console; pull the tags first."),
                code="target_gone",
            )
        return tag
    bot = ChatbotBot.objects.filter(pk=spec.bot_id).first()
    if bot is None:
        raise ValidationError(_("The chatbot of this job no longer exists."), code="target_gone")
    return BotLabel(
        bot=bot,
        category=spec.category,
        label=spec.label,
        desc=spec.desc,
        appid=spec.appid,
    )


def bulk_job_retry_failed(*, job: Job, actor: Actor) -> Job:
    """A new job of the failed OpenIDs of ``job`` that another attempt may pass."""
    failed = job_retryable_failures(
        job=job,
        kind=KIND,
        not_final=_("Only a bulk job that has ended can have its failed OpenIDs retried."),
        nothing_to_retry=_(
            "No failed OpenID of this job can be retried: the platform refused them for good."
        ),
    )
    spec = BulkSpec.from_params(job.params)
    with transaction.atomic():
        audience = audience_from_openids(
            openids=failed.values_list("item", flat=True).iterator(chunk_size=5000),
            label=gettext("job #%(id)s") % {"id": job.pk},
            user=actor.user,
        )
        return bulk_job_start(
            audience=audience,
            target=bulk_job_target(job),
            operation=spec.operation,
            batch_size=spec.batch_size,
            actor=actor,
            parent=job,
        )


REVERSE = {TAG: UNTAG, UNTAG: TAG}


def bulk_job_undo_refusal(*, job: Job) -> str | None:
    """Why ``job`` cannot be undone now, as a sentence; None when it can."""
    if job.kind != KIND:
        return gettext("Only a job that has ended can be undone.")
    spec = BulkSpec.from_params(job.params)
    if spec.platform == CHATBOT:
        return gettext(
            "A chatbot label cannot be undone: the dialogue platform has no call that removes a "
            "label from users."
        )
    return job_undo_refusal(
        job=job, list_kept=BulkAudience.objects.filter(pk=spec.audience_id).exists()
    )


def bulk_job_undo(*, job: Job, actor: Actor) -> Job:
    """A new job doing the reverse of ``job`` for exactly the OpenIDs it changed: untag what it
    tagged (or tag again what it untagged). Failed OpenIDs and those it never reached (a
    cancelled job) are left alone."""
    with transaction.atomic():
        # The row lock makes two clicks on "undo" start one job, not two.
        job = Job.objects.select_for_update().get(pk=job.pk)
        refusal = bulk_job_undo_refusal(job=job)
        if refusal is not None:
            raise ValidationError(refusal, code="cannot_undo")
        spec = BulkSpec.from_params(job.params)
        audience = audience_of_job_successes(
            job_id=job.pk,
            audience_id=spec.audience_id,
            label=gettext("undo of job #%(id)s") % {"id": job.pk},
            user=actor.user,
        )
        if not audience.accepted:
            raise ValidationError(
                gettext("Nothing to undo: this job changed nothing."), code="nothing_to_undo"
            )
        return bulk_job_start(
            audience=audience,
            target=bulk_job_target(job),
            operation=REVERSE[spec.operation],
            batch_size=spec.batch_size,
            actor=actor,
            parent=job,
            undoes=job,
        )
