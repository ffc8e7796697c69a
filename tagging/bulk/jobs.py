"""The bulk user-tag job kind ("tagging.bulk") on the shared job machinery.

A shard is a range of audience positions; it is sent batch by batch through the platform client
(shared token, rate limit and retries), each batch checkpointed with its failed OpenIDs in one
transaction. A batch the platform refuses because of one of its OpenIDs (40003, 49003, 45059: the
errcodes with an ``item`` in the client's registry, ``wecom/clients/errors.py``; the platform
does not say which) is split in halves until the bad ones stand alone, so the good
ones are still tagged. Sending a batch again is harmless (tagging is idempotent on both
platforms), which is why a batch interrupted before its checkpoint is simply sent again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from console.jobs import JobKind, PlatformUnavailable, ShardRun
from console.jobs.undo import job_undo_of
from console.models import Job, JobItemFailure
from tagging.bulk.audience import audience_openids
from tagging.bulk.models import AudienceStatus, BulkAudience
from wecom.clients import (
    PlatformError,
    PlatformTransportError,
)
from wecom.clients.errors import CHATBOT, WECHAT
from wecom.connections import client_for

KIND = "tagging.bulk"
TAG = "tag"
UNTAG = "untag"
TAG_NOT_READY = 45159
QUOTA_TIMEZONE = ZoneInfo("Asia/Shanghai")
# Pauses between attempts at a batch that failed for a passing reason, after the client's own
# retries; then the job is put on hold and tried again later (console.jobs: PlatformUnavailable).
_OUTAGE_PAUSES = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class BulkSpec:
    """A job's parameters (``Job.params``), as the worker reads them."""

    audience_id: int
    platform: str  # WECHAT or CHATBOT
    operation: str
    batch_size: int
    account_id: int | None = None
    tag_id: int | None = None
    bot_id: int | None = None
    appid: str = ""
    category: str = ""
    label: str = ""
    desc: str = ""
    # The job this one undoes (its reverse, over the OpenIDs that job changed).
    undoes: int | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> BulkSpec:
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in params.items() if key in known})

    def to_params(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def sender_for(spec: BulkSpec) -> Callable[[Sequence[str]], None]:
    """One call of the platform for a batch of OpenIDs; raises PlatformError."""
    from wecom.models import ChatbotBot, OfficialAccount

    if spec.platform == WECHAT:
        client = client_for(OfficialAccount.objects.get(pk=spec.account_id))
        tag_id = int(spec.tag_id or 0)
        if spec.operation == UNTAG:
            return lambda openids: client.batch_untag(tag_id=tag_id, openids=openids)
        return lambda openids: client.batch_tag(tag_id=tag_id, openids=openids)
    bot = client_for(ChatbotBot.objects.get(pk=spec.bot_id))
    return lambda openids: bot.label_batchset(
        appid=spec.appid,
        category=spec.category,
        label=spec.label,
        desc=spec.desc,
        openids=openids,
    )


def next_quota_reset(now: datetime | None = None) -> datetime:
    """Midnight in Beijing after ``now``: when the platforms' daily quotas start again."""
    local = (now or timezone.now()).astimezone(QUOTA_TIMEZONE)
    return (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class BatchOutcome:
    done: int = 0
    failures: list[tuple[str, str, str, bool]] = field(default_factory=list)  # item, code, why


class _Stop(Exception):
    """The job was put on hold or stopped while a batch was under way."""


def _send_batch(
    run: ShardRun,
    send: Callable[[Sequence[str]], None],
    openids: list[str],
    spec: BulkSpec,
) -> BatchOutcome:
    """Send a batch until each of its OpenIDs is tagged or has failed for a reason of its own."""
    outcome = BatchOutcome()
    parts: list[list[str]] = [openids]
    tag_retried = False
    outages = 0
    while parts:
        part = parts[0]
        try:
            run.ensure_lease()  # every call under a lease that outlasts it
            send(part)
        except PlatformError as error:
            code = error.errcode
            if error.item is not None:
                # One OpenID spoils the batch and the platform does not say which: halves.
                parts.pop(0)
                if len(part) > 1:
                    middle = len(part) // 2
                    parts[0:0] = [part[:middle], part[middle:]]
                else:
                    outcome.failures.append(
                        (part[0], str(code), str(error.item.reason), error.item.retryable)
                    )
                continue
            if spec.platform == WECHAT and code == TAG_NOT_READY and not tag_retried:
                # Seen for a moment after a tag is created: once more, a little later.
                tag_retried = True
                time.sleep(settings.BULK_45159_RETRY_SECONDS)
                continue
            if error.quota:
                until = next_quota_reset()
                run.pause_job(
                    until=until,
                    message=_(
                        "The daily quota of the platform is spent (%(error)s). The job waits "
                        "until it resets at midnight Beijing time, or until it is resumed by hand."
                    ),
                    params={"error": error.note()},
                )
                raise _Stop from None
            if error.retryable or _is_outage(error):
                pauses = getattr(settings, "BULK_OUTAGE_PAUSES", _OUTAGE_PAUSES)
                if outages >= len(pauses):
                    # The job waits, backing off, and goes on from this batch; never fails.
                    # Whoever sends it then, the call that timed out has had time to finish.
                    _settle(run, error, 0.0)
                    raise PlatformUnavailable(str(error), error.note()) from None
                _settle(run, error, pauses[outages])
                outages += 1
                if not run.keep_going():
                    raise _Stop from None
                continue
            # A credential that no longer works, a tag that does not exist…: no batch can pass.
            run.fail_job(message="%(error)s", params={"error": error.note()})
            raise _Stop from None
        else:
            parts.pop(0)
            outcome.done += len(part)
            outages = 0
    return outcome


def _settle(run: ShardRun, error: PlatformError, pause: float) -> None:
    """Pause before the batch is sent again: ``pause``, or longer while the call that timed out
    may still be running on the platform (``settle_until``, set by the transport), so that no
    item of the batch is ever in flight twice at once. The lease is renewed first if the pause
    could outlast it: no other worker may take the batch up meanwhile."""
    pause = max(pause, error.settle_until - time.monotonic())
    if pause > 0:
        run.ensure_lease()
        time.sleep(pause)


def _is_outage(error: PlatformError) -> bool:
    # A token refused again right after the client fetched a new one: another process renewed
    # it in between (or the platform revoked it). Not the credential's fault: wait and go on.
    return isinstance(error, PlatformTransportError) or error.errcode == -1 or error.token_problem


class _Window:
    """The shard's OpenIDs read ahead a few dozen batches at a time: one query per window
    instead of one per batch, and never more than a window in memory."""

    def __init__(self, audience_id: int, batches: int) -> None:
        self.audience_id = audience_id
        self.batches = batches
        self.start = 0
        self.openids: list[str] = []

    def get(self, start: int, end: int, shard_end: int) -> list[str]:
        if not self.start <= start or end > self.start + len(self.openids):
            size = end - start
            self.start = start
            self.openids = audience_openids(
                audience_id=self.audience_id,
                start=start,
                end=min(start + size * self.batches, shard_end),
            )
        return self.openids[start - self.start : end - self.start]


READ_AHEAD_BATCHES = 50


def _checkpoint(run: ShardRun, advance: int, outcome: BatchOutcome) -> None:
    # Not durable and coalesced (ShardRun.advance says what both mean): a checkpoint lost with a
    # crashed database server or worker only means its batches are sent again, and tagging the
    # same OpenIDs again changes nothing on either platform; the counts went with the position.
    if not outcome.failures:
        run.advance(advance=advance, done=outcome.done, durable=False, coalesce=True)
        return
    # The failed OpenIDs are recorded in the checkpoint's transaction: both or neither.
    with run.checkpoint(
        advance=advance, done=outcome.done, failed=len(outcome.failures), durable=False
    ):
        JobItemFailure.objects.bulk_create(
            JobItemFailure(
                job=run.job,
                shard=run.shard,
                item=item,
                reason_code=code,
                reason=reason,
                retryable=retryable,
            )
            for item, code, reason, retryable in outcome.failures
        )


def run_bulk_shard(run: ShardRun) -> None:
    """Send the shard batch by batch; batches done within ``JOBS_CHECKPOINT_SECONDS`` of each
    other share one checkpoint statement (one with failed OpenIDs is written at once).

    Measured (bench/bulk_jobs.py, rate limit lifted, ~1,800 calls/s): a statement per batch
    cost 16% of the worker's time on SQLite and 41% on PostgreSQL, where the worker waits for
    the server's round trip; sharing it puts both above a bare loop (1.04-1.15x).
    Sending the next batch from a helper thread while the checkpoint was written cost more in
    thread hand-offs than it hid, so the loop stays sequential.
    """
    spec = BulkSpec.from_params(run.job.params)
    try:
        # The job's next shard in the same task keeps the client and its open connection.
        send = run.reuse("sender", lambda: sender_for(spec))
    except ObjectDoesNotExist:
        # The account or bot was deleted after the job was started: no batch can pass.
        run.fail_job(message=_("The Official Account or chatbot of this job was deleted."))
        return
    window = _Window(spec.audience_id, READ_AHEAD_BATCHES)
    # Failure sentences in the console's language: the worker has no request to take one from.
    with translation.override(settings.LANGUAGE_CODE):
        while run.keep_going():
            start = run.position
            end = min(start + spec.batch_size, run.end)
            openids = window.get(start, end, run.end)
            try:
                outcome = _send_batch(run, send, openids, spec)
            except _Stop:
                return
            _checkpoint(run, end - start, outcome)


def bulk_job_actions(job: Job, user: AbstractBaseUser) -> list[tuple[str, str]]:
    from console.jobs.follow_up import follow_up_actions
    from tagging.bulk.services import bulk_job_undo_refusal

    return follow_up_actions(
        job,
        user,
        add_permission="tagging.add_bulkaudience",
        retry_url_name="admin:tagging_bulk_retry",
        undo_url_name="admin:tagging_bulk_undo",
        undo_refusal=lambda job: bulk_job_undo_refusal(job=job),
        audience=job_audience(job),
        audience_url_name="admin:tagging_bulkaudience_change",
        view_permission="tagging.view_bulkaudience",
    )


def job_audience(job: Job) -> BulkAudience | None:
    """The job's list, unless it was deleted after BULK_AUDIENCE_KEEP_DAYS; read once per page
    (the kind's links and its detail block both ask)."""
    if not hasattr(job, "_bulk_audience"):
        audience_id = job.params.get("audience_id")
        job._bulk_audience = (  # type: ignore[attr-defined]
            BulkAudience.objects.filter(pk=audience_id).first() if audience_id else None
        )
    return job._bulk_audience  # type: ignore[attr-defined]


def bulk_job_detail_context(job: Job) -> dict[str, Any]:
    spec = BulkSpec.from_params(job.params)
    return {
        "audience": job_audience(job),
        "audience_keep_days": settings.BULK_AUDIENCE_KEEP_DAYS,
        # Chatbot labels have no unset call: the page says why "undo" is not offered.
        "undo_impossible": job.is_final and spec.platform == CHATBOT,
        "undoes": Job.objects.filter(pk=spec.undoes).first() if spec.undoes else None,
        "undone_by": job_undo_of(job=job) if job.is_final else None,
    }


def bulk_job_stopped(job: Job) -> None:
    """``on_stopped``: a list still being read for this job (``tag_users``, whose process
    died) will never be read to its end."""
    BulkAudience.objects.filter(
        pk=(job.params or {}).get("audience_id"), status=AudienceStatus.READING
    ).update(status=AudienceStatus.FAILED)


BULK_JOB = JobKind(
    name=KIND,
    label=_("Bulk user tagging"),
    run_shard=run_bulk_shard,
    detail_template="admin/tagging/bulk_job_detail.html",
    detail_context=bulk_job_detail_context,
    actions=bulk_job_actions,
    on_stopped=bulk_job_stopped,
)
