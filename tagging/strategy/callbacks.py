"""Targeted pulls after WeCom's tag-change callbacks (``wecom.callbacks`` records the events).

Each recorded event asks for a job of this kind, unless one that has not started yet will take
it. The job waits until the oldest event is a few seconds old (a person's burst of edits then
makes one pull, not one per edit), claims every unclaimed event of the app, and pulls only what
they name: the one group, or the strategy (events without a strategy: the corporate tags, read
as the corporate root's). Plan and apply are the full pull's
(``tagging/strategy/pull_plan.py`` and ``pull_apply.py``), so a delete is applied only when
WeCom no longer has the item, and conflicts wait for a person. A lost event is caught by the
scheduled full pull.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import Actor, AuditSource
from console.jobs import JobKind, ShardRun
from console.models import OPEN_JOB_STATUSES, Job, ShardStatus
from tagging.strategy.models import CORPORATE_WECOM_ID, Tag
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp, WeComCallbackEvent

CALLBACK_PULL_KIND = "tagging.callback_pull"
# How long events gather before one targeted pull takes them all.
DEFAULT_COALESCE_SECONDS = 3.0
# Applied events are kept this long: WeCom's retries of an event come within minutes, so
# deduplication needs far less; the rest is for someone looking into what arrived.
EVENT_RETENTION = timedelta(days=7)


def callback_pull_ensure(*, app_id: int) -> Job | None:
    """A targeted-pull job for the app, unless one that has not started will take the events."""
    from console.jobs.services import job_create

    app = WeComApp.objects.filter(pk=app_id).first()
    if app is None:
        return None
    not_started = Job.objects.filter(
        kind=CALLBACK_PULL_KIND,
        target_id=str(app_id),
        status__in=OPEN_JOB_STATUSES,
        shards__status=ShardStatus.PENDING,
    ).exists()
    if not_started:
        return None
    return job_create(
        kind=CALLBACK_PULL_KIND,
        title=gettext("Follow the changes WeCom reported for “%(app)s”") % {"app": app.name},
        total=1,
        shards=[(0, 1)],
        params={"app_id": app.pk},
        actor=Actor.system(source=AuditSource.WECOM_CALLBACK, detail="callback"),
        target=app,
    )


def callback_scopes(app: WeComApp, events: Iterable[WeComCallbackEvent]) -> list:
    """What the events name, coalesced: a strategy read whole covers its groups.

    Events without a strategy are about corporate tags: the corporate library
    (``CORPORATE_WECOM_ID``) is read as a strategy is, whole or one group of it.
    """
    from tagging.strategy.pull_plan import PullScope

    whole: set[int] = set()
    groups: set[tuple[int, str]] = set()
    tag_ids: dict[str, int] = {}
    for event in events:
        strategy = event.strategy_id or CORPORATE_WECOM_ID
        if event.tag_type == "tag_group" and event.item_id:
            groups.add((strategy, event.item_id))
        elif event.tag_type == "tag" and event.item_id and event.change_type != "create":
            tag_ids[event.item_id] = strategy
        else:
            # A new tag (its group is not known here) or a re-order of the groups.
            whole.add(strategy)
    if tag_ids:
        known = dict(
            Tag.objects.filter(app=app, wecom_id__in=list(tag_ids)).values_list(
                "wecom_id", "group__wecom_id"
            )
        )
        for tag_id, strategy in tag_ids.items():
            if tag_id in known:
                groups.add((strategy, known[tag_id]))
            else:
                whole.add(strategy)
    scopes = [PullScope(strategy_wecom_id=strategy) for strategy in sorted(whole)]
    scopes += [
        PullScope(strategy_wecom_id=strategy, group_wecom_id=group)
        for strategy, group in sorted(groups)
        if strategy not in whole
    ]
    return scopes


def callback_last_applied(app: WeComApp) -> int:
    """The newest applied callback event of the app (0: none): a tree page compares it."""
    return (
        WeComCallbackEvent.objects.filter(app=app, processed_at__isnull=False)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
        or 0
    )


def _coalesce(app: WeComApp) -> None:
    """Let a burst of events gather: wait until the oldest unclaimed one is old enough."""
    window = float(getattr(settings, "WECOM_CALLBACK_COALESCE_SECONDS", DEFAULT_COALESCE_SECONDS))
    oldest = (
        WeComCallbackEvent.objects.filter(
            app=app, claimed_by__isnull=True, processed_at__isnull=True
        )
        .order_by("received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    if oldest is None or window <= 0:
        return
    age = (timezone.now() - oldest).total_seconds()
    if age < window:
        time.sleep(min(window - age, window))


def run_callback_pull_shard(run: ShardRun) -> None:
    from tagging.strategy.jobs import pull_job_app, pull_job_fail
    from tagging.strategy.pull_apply import pull_and_apply_scoped

    app = pull_job_app(run)
    if app is None:
        return
    _coalesce(app)
    WeComCallbackEvent.objects.filter(
        app=app, claimed_by__isnull=True, processed_at__isnull=True
    ).update(claimed_by=run.job)
    events = list(WeComCallbackEvent.objects.filter(claimed_by=run.job))
    actor = Actor.system(source=AuditSource.WECOM_CALLBACK, detail=f"job {run.job.pk}")
    applied = conflicts = 0
    try:
        for scope in callback_scopes(app, events):
            _plan, result = pull_and_apply_scoped(
                app=app, scope=scope, actor=actor, before_call=run.ensure_lease
            )
            applied += result.applied
            conflicts += result.conflicts_left
    except PlatformError as error:
        # The events stay claimed and unapplied: the scheduled full pull is the safety net.
        pull_job_fail(run, error)
        return
    now = timezone.now()
    WeComCallbackEvent.objects.filter(pk__in=[event.pk for event in events]).update(
        processed_at=now
    )
    WeComCallbackEvent.objects.filter(app=app, processed_at__lt=now - EVENT_RETENTION).delete()
    with run.checkpoint(advance=1, done=1):
        Job.objects.filter(pk=run.job.pk).update(
            status_message=gettext(
                "Events: %(events)d; changes followed: %(applied)d; "
                "conflicts waiting for a person: %(conflicts)d."
            )
            % {"events": len(events), "applied": applied, "conflicts": conflicts}
        )


CALLBACK_PULL_JOB = JobKind(
    name=CALLBACK_PULL_KIND,
    label=_("WeCom callback pull"),
    run_shard=run_callback_pull_shard,
)
