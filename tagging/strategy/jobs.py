"""The scheduled pull of WeCom strategy tags, as a job of the shared job machinery.

The schedule (django-q2, per app every ``StrategyPull.every_minutes``, by default
``STRATEGY_PULL_MINUTES``) starts a one-item job per app;
the job page shows its progress and outcome. The job applies what has no conflict and leaves
conflicts for a person (counted on the dashboard).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from console.audit import Actor, AuditSource
from console.jobs import JobKind, ShardRun
from console.models import OPEN_JOB_STATUSES, Job
from tagging.strategy.models import StrategyPull
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp

PULL_KIND = "tagging.strategy.pull"
SCHEDULE_TASK = "tagging.strategy.jobs.strategy_pull_scheduled"
SCHEDULE_PREFIX = "tagging-strategy-pull-"


def strategy_pull_job_create(*, app: WeComApp, actor: Actor) -> Job:
    from console.jobs.services import job_create

    return job_create(
        kind=PULL_KIND,
        title=gettext("Pull strategy tags of “%(app)s”") % {"app": app.name},
        total=1,
        shards=[(0, 1)],
        params={"app_id": app.pk},
        actor=actor,
        target=app,
    )


def run_pull_shard(run: ShardRun) -> None:
    from console.jobs.services import job_fail
    from tagging.strategy.pull import pull_and_apply

    if not run.keep_going():
        return
    app = WeComApp.objects.filter(pk=run.job.params.get("app_id")).first()
    if app is None:
        job_fail(job=run.job, message=_("The WeCom app no longer exists."))
        return
    try:
        _plan, result = pull_and_apply(
            app=app,
            actor=Actor.system(source=AuditSource.PLATFORM, detail=f"job {run.job.pk}"),
            before_call=run.ensure_lease,
        )
    except PlatformError as error:
        with run.checkpoint(advance=1, failed=1):
            pass
        job_fail(job=run.job, message="%(error)s", params={"error": error.note()})
        return
    with run.checkpoint(advance=1, done=1):
        Job.objects.filter(pk=run.job.pk).update(
            status_message=gettext(
                "Changes followed: %(applied)d; conflicts waiting for a person: %(conflicts)d."
            )
            % {"applied": result.applied, "conflicts": result.conflicts_left}
        )


def strategy_pull_scheduled(app_id: int) -> None:
    """The schedule's task: a pull job for the app, unless one is still open (a stopped worker
    must not leave a pile of pulls of the same app to run at once)."""
    app = WeComApp.objects.filter(pk=app_id).first()
    still_open = Job.objects.filter(
        kind=PULL_KIND, target_id=str(app_id), status__in=OPEN_JOB_STATUSES
    ).exists()
    if app is not None and not still_open:
        strategy_pull_job_create(app=app, actor=Actor.system(source=AuditSource.SCHEDULE))


def strategy_pull_schedules_ensure() -> None:
    """One django-q schedule per WeCom app, every ``StrategyPull.effective_minutes`` (the app's
    own interval, or STRATEGY_PULL_MINUTES), none where that is 0. Run after migrate, when an
    app is saved or deleted, and when an app's interval changes; safe to run any number of
    times (a schedule whose interval did not change keeps its next run)."""
    from django_q.models import Schedule

    pulls = {pull.app_id: pull for pull in StrategyPull.objects.all()}
    missing = [
        StrategyPull(app_id=pk)
        for pk in WeComApp.objects.values_list("pk", flat=True)
        if pk not in pulls
    ]
    if missing:
        StrategyPull.objects.bulk_create(missing, ignore_conflicts=True)
        pulls = {pull.app_id: pull for pull in StrategyPull.objects.all()}
    wanted = {
        f"{SCHEDULE_PREFIX}{app_id}": (app_id, pull.effective_minutes)
        for app_id, pull in pulls.items()
        if pull.effective_minutes > 0
    }
    Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).exclude(name__in=wanted).delete()
    existing = {
        schedule.name: schedule for schedule in Schedule.objects.filter(name__in=list(wanted))
    }
    now = timezone.now()
    for name, (app_id, minutes) in wanted.items():
        schedule = existing.get(name)
        if schedule is None:
            # The first run is now: a new app's first pull imports everything.
            Schedule.objects.create(
                name=name,
                func=SCHEDULE_TASK,
                args=repr((app_id,)),
                schedule_type=Schedule.MINUTES,
                minutes=minutes,
                repeats=-1,
                next_run=now,
            )
        elif (
            schedule.minutes != minutes
            or schedule.schedule_type != Schedule.MINUTES
            or schedule.func != SCHEDULE_TASK  # a schedule saved before the task moved
        ):
            schedule.schedule_type = Schedule.MINUTES
            schedule.minutes = minutes
            schedule.func = SCHEDULE_TASK
            # A shorter interval takes effect now, not after the longer one has run out.
            soonest = now + timedelta(minutes=minutes)
            if schedule.next_run is None or schedule.next_run > soonest:
                schedule.next_run = soonest
            schedule.save(update_fields=["schedule_type", "minutes", "next_run", "func"])


def strategy_pull_next_run(app_id: int) -> datetime | None:
    """When the schedule will next pull the app, if it has one."""
    from django_q.models import Schedule

    return (
        Schedule.objects.filter(name=f"{SCHEDULE_PREFIX}{app_id}")
        .values_list("next_run", flat=True)
        .first()
    )


def interval_words(minutes: int) -> str:
    """“every 15 minutes”, or “no automatic pull” for 0."""
    if minutes <= 0:
        return gettext("no automatic pull")
    return ngettext("every %(count)d minute", "every %(count)d minutes", minutes) % {
        "count": minutes
    }


def pull_interval_text(pull: StrategyPull) -> str:
    """How often the app is pulled automatically, saying whether it is the console's default."""
    text = interval_words(pull.effective_minutes)
    if pull.every_minutes is None:
        text = gettext("%(interval)s (console default)") % {"interval": text}
    return text


def strategy_pull_interval_set(
    *,
    pull: StrategyPull,
    every_minutes: int | None,
    actor: Actor,
    expected_version: int | None = None,
) -> StrategyPull:
    """Set how often the app is pulled automatically (None: the console's default, 0: never),
    audited in the pull settings' history, and the app's schedule follows. A form opened
    before someone else's change (``expected_version``) is refused with who, when and both
    values."""
    from console.audit import AuditAction, audit_record
    from console.versioning import check_version, version_bump

    if every_minutes is not None:
        # The model field's own validators (0 to PULL_MINUTES_MAX): the form uses the same.
        try:
            StrategyPull._meta.get_field("every_minutes").run_validators(every_minutes)
        except ValidationError as error:
            raise ValidationError({"every_minutes": error.messages}) from error
    with transaction.atomic():
        locked = (
            StrategyPull.objects.select_for_update(of=("self",))
            .select_related("updated_by")
            .get(pk=pull.pk)
        )
        old = locked.every_minutes
        if old != every_minutes:
            check_version(locked, expected_version, {"every_minutes": every_minutes})
        if old == every_minutes:
            return locked
        locked.every_minutes = every_minutes
        version_bump(locked, actor.user)
        locked.save(update_fields=["every_minutes", "version", "updated_by", "updated_at"])
        audit_record(
            actor=actor,
            obj=locked,
            action=AuditAction.CHANGE,
            changes={"every_minutes": (old, every_minutes)},
        )
        strategy_pull_schedules_ensure()
    return locked


PULL_JOB = JobKind(name=PULL_KIND, label=_("Strategy tag pull"), run_shard=run_pull_shard)
