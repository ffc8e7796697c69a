"""How long lists are kept: ``BULK_AUDIENCE_KEEP_DAYS`` (30), then deleted. Both kinds: the
Official Account / chatbot lists of OpenIDs (``BulkAudience``) and the WeCom customer lists of
(member, customer) pairs (``CustomerAudience``).

An audience's member rows (one per OpenID, millions for a large campaign) are most of what the
console stores; once its jobs have ended they only serve the audience's preview page. Every day a
schedule deletes the audiences older than that which no open job (queued, running, paused, on
hold) still reads, a chunk of rows per transaction so that running workers are never held up for
long, each deletion in the History. A job's counts, failed OpenIDs and "retry failed only" do
not need the audience and stay. A job can only be started on an audience at least a day short of
that age, so the daily purge never deletes an audience under a job that has just started.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _, ngettext_lazy

from console.audit import Actor, AuditAction, audit_record
from console.models import OPEN_JOB_STATUSES, Job
from tagging.bulk.jobs import KIND
from tagging.bulk.models import BulkAudience, BulkAudienceMember, BulkAudienceRefusal
from tagging.bulk.reading import READ_KIND

PURGE_SCHEDULE_NAME = "tagging: delete expired bulk audiences"
PURGE_TASK = "tagging.bulk.retention.audiences_purge_scheduled"
# Member rows deleted per transaction: a fraction of a second on SQLite, whose writers queue.
DELETE_CHUNK = 20_000
# A job may start on an audience only this long before the purge may delete it.
START_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class PurgeReport:
    audiences: int
    # OpenIDs of the bulk lists deleted.
    members: int
    # WeCom customer lists deleted, and their (member, customer) pairs.
    customer_lists: int = 0
    pairs: int = 0


@dataclass(frozen=True)
class _KeptList:
    """A kind of list the purge deletes: its models, and the job kinds that read it."""

    audience: type[models.Model]
    rows: type[models.Model]
    refusals: type[models.Model]
    job_kinds: tuple[str, ...]
    note: Promise


_OPENIDS_NOTE = _(
    "Deleted %(days)s days after it was read, with the OpenIDs it held (%(members)s); the jobs "
    "that used it keep their counts and failed OpenIDs."
)
_PAIRS_NOTE = _(
    "Deleted %(days)s days after it was read, with the (member, customer) pairs it held "
    "(%(members)s); the jobs that used it keep their counts and failed pairs."
)


def _kept_lists() -> Iterator[_KeptList]:
    from tagging.customers.audience import MEMBERS_READ_KIND, READ_KIND as CUSTOMERS_READ_KIND
    from tagging.customers.jobs import KIND as CUSTOMERS_KIND
    from tagging.customers.models import (
        CustomerAudience,
        CustomerAudiencePair,
        CustomerAudienceRefusal,
    )

    yield _KeptList(
        BulkAudience, BulkAudienceMember, BulkAudienceRefusal, (KIND, READ_KIND), _OPENIDS_NOTE
    )
    yield _KeptList(
        CustomerAudience,
        CustomerAudiencePair,
        CustomerAudienceRefusal,
        (CUSTOMERS_KIND, CUSTOMERS_READ_KIND, MEMBERS_READ_KIND),
        _PAIRS_NOTE,
    )


def audience_expiry(audience: BulkAudience) -> datetime:
    """When the daily purge may delete ``audience`` (if no open job reads it then)."""
    return audience.created_at + timedelta(days=settings.BULK_AUDIENCE_KEEP_DAYS)


def audience_check_startable(*, audience: BulkAudience, now: datetime | None = None) -> None:
    """Refuse to start a job on an audience the purge is about to delete."""
    if (now or timezone.now()) > audience_expiry(audience) - START_MARGIN:
        raise ValidationError(
            ngettext_lazy(
                "This list was read more than %(days)s day ago and is about to be deleted. "
                "Upload or paste it again to start a job.",
                "This list was read more than %(days)s days ago and is about to be deleted. "
                "Upload or paste it again to start a job.",
                "days",
            ),
            code="audience_expired",
            params={"days": settings.BULK_AUDIENCE_KEEP_DAYS - 1},
        )


def audiences_in_use(job_kinds: tuple[str, ...] = (KIND, READ_KIND)) -> set[int]:
    """The lists that open jobs of ``job_kinds`` read (bulk lists by default)."""
    ids = Job.objects.filter(kind__in=job_kinds, status__in=OPEN_JOB_STATUSES).values_list(
        "params__audience_id", flat=True
    )
    return {int(audience_id) for audience_id in ids if audience_id is not None}


def audience_purge_expired(*, actor: Actor, now: datetime | None = None) -> PurgeReport:
    """Delete the lists older than ``BULK_AUDIENCE_KEEP_DAYS`` that no open job reads."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.BULK_AUDIENCE_KEEP_DAYS)
    counts: list[tuple[int, int]] = []
    for kept in _kept_lists():
        expired = (
            kept.audience.objects.filter(created_at__lt=cutoff)  # type: ignore[attr-defined]
            .exclude(pk__in=audiences_in_use(kept.job_kinds))
            .order_by("pk")
        )
        lists = rows = 0
        for audience in list(expired):
            rows += _audience_delete(audience=audience, kept=kept, actor=actor)
            lists += 1
        counts.append((lists, rows))
    (audiences, members), (customer_lists, pairs) = counts
    return PurgeReport(
        audiences=audiences, members=members, customer_lists=customer_lists, pairs=pairs
    )


def _audience_delete(*, audience: Any, kept: _KeptList, actor: Actor) -> int:
    # By ranges of positions (dense 0..accepted-1), each found by the (audience, position)
    # index where it starts: finding a chunk's end by counting rows from the first position
    # walked again past every row deleted before it, not yet vacuumed (1,000,000 rows took
    # 69x the time of 100,000 on PostgreSQL).
    deleted = 0
    for start in range(0, audience.accepted, DELETE_CHUNK):
        with transaction.atomic():
            count, _by_model = kept.rows.objects.filter(  # type: ignore[attr-defined]
                audience=audience, position__gte=start, position__lt=start + DELETE_CHUNK
            ).delete()
        deleted += count
    with transaction.atomic():
        kept.refusals.objects.filter(audience=audience).delete()  # type: ignore[attr-defined]
        audit_record(
            actor=actor,
            obj=audience,
            action=AuditAction.DELETE,
            note=kept.note,
            note_params={"days": settings.BULK_AUDIENCE_KEEP_DAYS, "members": deleted},
        )
        # Deletes whatever no range held (there is nothing, unless the rows were not numbered),
        # and the parts of a file never read.
        _count, by_model = audience.delete()
    return deleted + by_model.get(kept.rows._meta.label, 0)


def audiences_purge_scheduled() -> None:
    """The daily schedule's task."""
    audience_purge_expired(actor=Actor.system())


def audiences_purge_schedule_ensure() -> None:
    """The daily purge's schedule, created or corrected (after every migrate)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=PURGE_SCHEDULE_NAME,
        defaults={"func": PURGE_TASK, "schedule_type": Schedule.DAILY, "repeats": -1},
    )
