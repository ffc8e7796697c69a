"""Pulls of WeCom strategy tags as jobs of the shared job machinery.

The schedule (django-q2, per app every ``StrategyPull.every_minutes``, by default
``STRATEGY_PULL_MINUTES``) starts a one-item job per app that plans and applies at once: what
has no conflict is applied, conflicts are left for a person (counted on the dashboard).
``wecom_pull`` starts the same job (or, with ``--dry-run``, one that only plans) and follows it.

A pull from the admin page is a job of two steps with a person between them: the job plans
(fetching WeCom, with the bar moving on the page), keeps the plan in its shard and waits; the
person reviews it on the page and applies it (:func:`strategy_pull_plan_approve`), and the job
goes on to apply exactly that plan, or plans again if WeCom or the console changed meanwhile.
Every pull so has its progress, its pause and its History as a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from console.audit import Actor, AuditSource
from console.jobs import JobKind, ShardRun
from console.models import OPEN_JOB_STATUSES, Job, JobStatus
from tagging.strategy.models import StrategyPull
from tagging.strategy.pull_plan import Plan, PlanChanged, PlanPreview, pull_plan
from tagging.strategy.services import Choice
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp

PULL_KIND = "tagging.strategy_pull"  # stored in Job.kind: never renamed with the module
SCHEDULE_TASK = "tagging.strategy.jobs.strategy_pull_scheduled"
SCHEDULE_PREFIX = "tagging-strategy-pull-"


class PullMode(StrEnum):
    APPLY = "apply"  # plan and apply at once; conflicts wait (the schedule, wecom_pull)
    PLAN = "plan"  # plan only (wecom_pull --dry-run)
    REVIEW = "review"  # plan, wait for a person's review, apply what they approved (admin)


PLAN_READY = _("The plan is ready: review it on the pull page, then apply it.")
PLAN_CHANGED = _(
    "WeCom or the console changed since the plan was shown: nothing was applied. "
    "Here is the new plan."
)


def strategy_pull_job_create(
    *,
    app: WeComApp,
    actor: Actor,
    mode: PullMode = PullMode.APPLY,
    changes_by: Actor | None = None,
) -> Job:
    """A pull job for the app. ``changes_by``: whom the History of what the pull changes
    names (by default the platform, as this job); a reviewed pull names whoever applies it."""
    from console.jobs.services import job_create

    steps = 2 if mode is PullMode.REVIEW else 1
    params: dict[str, Any] = {"app_id": app.pk, "mode": mode.value}
    if changes_by is not None:
        params["changes_by"] = changes_by.as_params()
    return job_create(
        kind=PULL_KIND,
        title=gettext("Pull strategy tags of “%(app)s”") % {"app": app.name},
        total=steps,
        shards=[(0, steps)],
        params=params,
        actor=actor,
        target=app,
    )


def strategy_pull_review_start(*, app: WeComApp, actor: Actor) -> Job:
    """A pull from the admin page: planned by a job, then shown to ``actor`` for review. Their
    earlier pulls of the app still waiting for a review are replaced (cancelled)."""
    from console.jobs.services import job_cancel

    for earlier in Job.objects.filter(
        kind=PULL_KIND,
        target_id=str(app.pk),
        created_by=actor.user,
        status=JobStatus.WAITING,
        params__mode=PullMode.REVIEW.value,
    ):
        job_cancel(job=earlier, actor=actor)
    return strategy_pull_job_create(app=app, actor=actor, mode=PullMode.REVIEW)


def strategy_pull_plan_approve(
    *, job: Job, fingerprint: str, choices: Mapping[str, Choice], actor: Actor
) -> Job:
    """``actor`` applies the plan the job showed them (``fingerprint``), settling its conflicts
    as ``choices`` say: the job goes on, applying it as ``actor``. Raises ``JobStateError``
    when the job does not wait for a review (applied already, cancelled, still planning)."""
    from console.jobs.services import JobStateError, job_resume

    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if not pull_waits_for_review(locked):
            raise JobStateError(
                gettext("“%(title)s” does not wait for a review: nothing was applied.")
                % {"title": locked.title}
            )
        locked.params = {
            **locked.params,
            "approved": {
                "fingerprint": fingerprint,
                "choices": {key: choice.value for key, choice in choices.items()},
                "actor": actor.as_params(),
            },
        }
        locked.save(update_fields=["params"])
        return job_resume(job=locked, actor=actor)


def pull_waits_for_review(job: Job) -> bool:
    """Whether the job planned a pull and waits for a person to apply it."""
    return (
        job.kind == PULL_KIND
        and job.params.get("mode") == PullMode.REVIEW.value
        and job.status == JobStatus.WAITING
        and job.shards.filter(position=1).exists()
    )


@dataclass(frozen=True)
class PullOutcome:
    """What a pull job keeps for the page and the command (in its shard's state)."""

    plan: PlanPreview | None  # the plan it made, or applied
    result: dict[str, Any] | None  # once applied, what applying did (ApplyResult's fields)
    plan_changed: bool  # the approved plan was not applied: WeCom or the console moved on


def pull_job_outcome(job: Job) -> PullOutcome:
    state = job.shards.values_list("state", flat=True).first() or {}
    return PullOutcome(
        plan=PlanPreview.from_json(state["plan"]) if "plan" in state else None,
        result=state.get("result"),
        plan_changed=bool(state.get("changed")),
    )


def pull_job_app(run: ShardRun) -> WeComApp | None:
    """The WeCom app a pull job's shard works on, if the shard is to go on now; the job fails
    when the app was deleted meanwhile."""
    if not run.keep_going():
        return None
    app = WeComApp.objects.filter(pk=run.job.params.get("app_id")).first()
    if app is None:
        run.fail_job(message=_("The WeCom app no longer exists."))
    return app


def pull_job_fail(run: ShardRun, error: PlatformError) -> None:
    """WeCom did not answer the pull: the rest of the shard counts as failed, and the job stops
    with WeCom's reason (resumable by hand; the next scheduled pull tries again anyway)."""
    with run.checkpoint(advance=run.remaining, failed=1):
        pass
    run.fail_job(message="%(error)s", params={"error": error.note()})


def run_pull_shard(run: ShardRun) -> None:
    app = pull_job_app(run)
    if app is None:
        return
    mode = PullMode(run.job.params.get("mode", PullMode.APPLY))
    try:
        if mode is PullMode.APPLY:
            _pull_at_once(run, app)
        elif run.position == 0:
            _plan(run, app, review=mode is PullMode.REVIEW)
        else:
            _apply_approved(run, app)
    except PlatformError as error:
        pull_job_fail(run, error)


def _pull_at_once(run: ShardRun, app: WeComApp) -> None:
    from tagging.strategy.pull_apply import pull_and_apply

    changes_by = run.job.params.get("changes_by")
    plan, result = pull_and_apply(
        app=app,
        actor=Actor.from_params(changes_by)
        if changes_by
        else Actor.system(source=AuditSource.PLATFORM, detail=f"job {run.job.pk}"),
        before_call=run.ensure_lease,
    )
    state = {"plan": plan.preview(with_fingerprint=False).as_json(), "result": asdict(result)}
    with run.checkpoint(advance=1, done=1, state=state):
        pass


def _plan(run: ShardRun, app: WeComApp, *, review: bool) -> None:
    plan = pull_plan(app, before_call=run.ensure_lease)
    if review and not plan.empty:
        _wait_for_review(run, plan, message=PLAN_READY)
        return
    # Nothing to review (or a dry run): the plan is all there is.
    state = {"plan": plan.preview(with_fingerprint=review).as_json()}
    with run.checkpoint(advance=run.remaining, done=run.remaining, state=state):
        pass


def _wait_for_review(run: ShardRun, plan: Plan, *, message: Any, changed: bool = False) -> None:
    state = {"plan": plan.preview().as_json(), "changed": changed}
    advance = 1 - run.position  # the plan step, unless this is the apply step planning again
    with run.checkpoint(advance=advance, done=advance, state=state):
        pass
    run.pause_job(until=None, message=message)


def _apply_approved(run: ShardRun, app: WeComApp) -> None:
    from tagging.strategy.pull_apply import pull_apply

    approved = run.job.params.get("approved")
    if not approved:
        # Resumed by hand, not from the plan page: there is nothing approved to apply yet.
        _wait_for_review(run, pull_plan(app, before_call=run.ensure_lease), message=PLAN_READY)
        return
    try:
        result = pull_apply(
            app=app,
            fingerprint=approved["fingerprint"],
            actor=Actor.from_params(approved["actor"]),
            choices={key: Choice(value) for key, value in approved["choices"].items()},
            before_call=run.ensure_lease,
        )
    except PlanChanged as changed:
        _wait_for_review(run, changed.plan, message=PLAN_CHANGED, changed=True)
        return
    state = {**run.shard.state, "changed": False, "result": asdict(result)}
    with run.checkpoint(advance=1, done=1, state=state):
        pass


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
