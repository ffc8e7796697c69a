"""Starting bulk user-tag jobs: from an audience to a job of the shared machinery."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import formats
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from console.audit import Actor
from console.jobs.runner import LeaseLost, ShardRun, new_owner
from console.jobs.selectors import job_retryable_failures
from console.jobs.services import (
    READER_GONE,
    JobStoppedWhileReading,
    job_create,
    job_fail,
    job_parts_add,
    job_reader,
    job_reading_done,
    shard_ranges,
)
from console.jobs.undo import job_undo_refusal
from console.models import Job
from tagging.bulk.audience import (
    AudienceError,
    audience_from_openids,
    audience_of_job_successes,
    audience_read_in_parts,
    check_upload_size,
)
from tagging.bulk.jobs import KIND, TAG, UNTAG, BulkSpec
from tagging.bulk.models import AudienceSource, AudienceStatus, BulkAudience
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


@dataclass(frozen=True)
class _Plan:
    """What a bulk job is, checked: its params, its title for a count of OpenIDs, its target."""

    spec: BulkSpec
    # The title's template for a count (its plural), and what fills it besides the count.
    template: Callable[[int], str]
    names: dict[str, str]
    target: OfficialAccountTag | ChatbotBot

    def title(self, count: int | None) -> str:
        # None while the list is still being read (tag_users): "…" stands for the count.
        shown = "…" if count is None else formats.number_format(count, force_grouping=True)
        return self.template(2 if count is None else count) % {**self.names, "count": shown}

    @property
    def shard_size(self) -> int:
        # Shards hold whole batches, so a fault-free job makes exactly ceil(N / batch) calls.
        size = self.spec.batch_size
        return max(size, settings.BULK_SHARD_SIZE // size * size)


def _bulk_plan(
    *,
    audience_id: int,
    target: Target,
    operation: str,
    batch_size: int | None,
    undoes: Job | None,
) -> _Plan:
    """Check what the job is to do (raises ValidationError with the sentence to show)."""
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
    if isinstance(target, OfficialAccountTag):
        spec = BulkSpec(
            audience_id=audience_id,
            platform=platform,
            operation=operation,
            batch_size=size,
            account_id=target.account_id,
            tag_id=target.tag_id,
            undoes=undoes.pk if undoes else None,
        )

        def tag_template(count: int) -> str:
            return (
                ngettext(
                    "Tag %(count)s follower with “%(tag)s” (%(account)s)",
                    "Tag %(count)s followers with “%(tag)s” (%(account)s)",
                    count,
                )
                if operation == TAG
                else ngettext(
                    "Remove “%(tag)s” from %(count)s follower (%(account)s)",
                    "Remove “%(tag)s” from %(count)s followers (%(account)s)",
                    count,
                )
            )

        return _Plan(
            spec=spec,
            template=tag_template,
            names={"tag": target.name, "account": target.account.name},
            target=target,
        )
    spec = BulkSpec(
        audience_id=audience_id,
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

    def label_template(count: int) -> str:
        return ngettext(
            "Label %(count)s user “%(category)s / %(label)s” (%(bot)s)",
            "Label %(count)s users “%(category)s / %(label)s” (%(bot)s)",
            count,
        )

    return _Plan(
        spec=spec,
        template=label_template,
        names={"category": target.category, "label": target.label, "bot": target.bot.name},
        target=target.bot,
    )


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
    plan = _bulk_plan(
        audience_id=audience.pk,
        target=target,
        operation=operation,
        batch_size=batch_size,
        undoes=undoes,
    )
    with transaction.atomic():
        return job_create(
            kind=KIND,
            title=plan.title(audience.accepted),
            total=audience.accepted,
            shards=shard_ranges(total=audience.accepted, shard_size=plan.shard_size),
            actor=actor,
            params=plan.spec.to_params(),
            target=plan.target,
            parent=parent,
        )


def bulk_job_start_reading(
    *,
    stream: IO[bytes],
    name: str,
    size: int,
    column: str = "",
    target: Target,
    operation: str = TAG,
    batch_size: int | None = None,
    actor: Actor,
) -> tuple[BulkAudience, Job]:
    """Start the job on a file before it is read to its end, sending its first OpenIDs while the
    rest is read (``tag_users``: the file is at hand, and no preview to wait for).

    The list is committed part by part (:func:`audience_read_in_parts`), each part becoming the
    job's next shards at once: whole batches, so a fault-free job still makes exactly
    ceil(N / batch) calls. The job is created with the first part, so a file refused before it
    (no OpenID, not CSV, too large) leaves nothing behind, as a list read whole. From then on
    the reading holds the job's reading part (``job_create``'s ``reader``): if this process
    dies, the job fails with a sentence once its lease runs out, and the list with it. A file
    that cannot be read to its end fails the job and the list with that sentence; what was sent
    stays sent, and the job's History says how far it went.

    Raises :class:`AudienceError`, :class:`JobStoppedWhileReading` (cancelled meanwhile),
    :class:`LeaseLost` (taken over after this process stalled past its lease), and
    ValidationError for a job that cannot start.
    """
    check_upload_size(size)
    plan = _bulk_plan(
        audience_id=0, target=target, operation=operation, batch_size=batch_size, undoes=None
    )
    audience = BulkAudience.objects.create(
        source=AudienceSource.FILE,
        source_label=name[:255],
        column=column.strip()[:100],
        file_size=size,
        created_by=actor.user,
        status=AudienceStatus.READING,
    )
    reading = _JobWhileReading(
        plan=dataclasses.replace(
            plan, spec=dataclasses.replace(plan.spec, audience_id=audience.pk)
        ),
        actor=actor,
    )
    try:
        audience = audience_read_in_parts(
            audience=audience,
            stream=stream,
            name=name,
            publish=reading.publish,
            alive=reading.alive,
        )
    except (AudienceError, JobStoppedWhileReading, LeaseLost) as error:
        reading.failed(audience=audience, error=error)
        raise
    except KeyboardInterrupt:
        # Ctrl-C: what was read is being sent; the rest never will be. Said at once.
        reading.failed(audience=audience, error=AudienceError(READER_GONE))
        raise
    # Anything else (a bug, SIGKILL) leaves the reading part to its lease: a worker takes it up
    # when it runs out (at once, if on this host) and fails the job, and the list with it.
    return audience, reading.done(audience)


class _JobWhileReading:
    """The job of :func:`bulk_job_start_reading`, as its list's parts come."""

    def __init__(self, *, plan: _Plan, actor: Actor) -> None:
        self.plan = plan
        self.actor = actor
        self.owner = new_owner()
        self.job: Job | None = None
        self.reader: ShardRun | None = None
        self.sent = 0

    def publish(self, accepted: int, final: bool) -> None:
        """In the part's transaction: its OpenIDs become shards (whole batches until the last)."""
        end = accepted if final else accepted - accepted % self.plan.spec.batch_size
        size = self.plan.shard_size
        ranges = [(start, min(start + size, end)) for start in range(self.sent, end, size)]
        if self.job is None:
            self.job = job_create(
                kind=KIND,
                title=self.plan.title(None if not final else accepted),
                total=end,
                shards=ranges,
                actor=self.actor,
                params=self.plan.spec.to_params(),
                target=self.plan.target,
                reader=self.owner,
            )
            self.reader = job_reader(job=self.job, owner=self.owner)
        else:
            assert self.reader is not None
            job_parts_add(reader=self.reader, ranges=ranges)
        self.sent = end

    def alive(self) -> None:
        """After each chunk of lines: the lease renewed when due, the job's status watched."""
        if self.reader is None:
            return
        self.reader.ensure_lease()
        if not self.reader.job_open():
            raise JobStoppedWhileReading(self.reader.job.pk)

    def done(self, audience: BulkAudience) -> Job:
        assert self.job is not None and self.reader is not None
        Job.objects.filter(pk=self.job.pk).update(title=self.plan.title(audience.accepted)[:200])
        job_reading_done(
            reader=self.reader,
            note=_("List read: %(accepted)s OpenIDs in %(shards)s parts."),
            note_params={
                "accepted": audience.accepted,
                "shards": self.job.shards.exclude(index=0).count(),
            },
        )
        self.job.refresh_from_db()
        return self.job

    def failed(
        self, *, audience: BulkAudience, error: AudienceError | JobStoppedWhileReading | LeaseLost
    ) -> None:
        """Before the first part, nothing is kept (as a list read whole). After it, the list is
        marked "could not be read" (the members committed stay, for the job's counts and an
        undo) and the job fails with the reader's sentence."""
        if self.job is None:
            audience.delete()
            return
        BulkAudience.objects.filter(pk=audience.pk).update(status=AudienceStatus.FAILED)
        Job.objects.filter(pk=self.job.pk).update(title=self.plan.title(self.sent)[:200])
        if isinstance(error, AudienceError):
            job_fail(job=self.job, message=error.message, params=error.params)


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
