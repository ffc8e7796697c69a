"""The scheduled pull of WeCom strategy tags, as a job of the shared job machinery.

The schedule (django-q2, every ``STRATEGY_PULL_MINUTES`` per app) starts a one-item job per app;
the job page shows its progress and outcome. The job applies what has no conflict and leaves
conflicts for a person (counted on the dashboard).
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import Actor, AuditSource
from console.jobs import JobKind, ShardRun, register_job_kind
from console.models import Job
from wecom.clients.errors import PlatformError
from wecom.models import WeComApp

PULL_KIND = "tagging.strategy_pull"
SCHEDULE_TASK = "tagging.strategy_jobs.strategy_pull_scheduled"
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
    from tagging.strategy_pull import pull_and_apply

    if not run.keep_going():
        return
    app = WeComApp.objects.filter(pk=run.job.params.get("app_id")).first()
    if app is None:
        job_fail(job=run.job, message=gettext("The WeCom app no longer exists."))
        return
    try:
        _plan, result = pull_and_apply(
            app=app, actor=Actor.system(source=AuditSource.PLATFORM, detail=f"job {run.job.pk}")
        )
    except PlatformError as error:
        with run.checkpoint(advance=1, failed=1):
            pass
        job_fail(job=run.job, message=error.explanation)
        return
    with run.checkpoint(advance=1, done=1):
        Job.objects.filter(pk=run.job.pk).update(
            status_message=gettext(
                "%(applied)d changes followed, %(conflicts)d conflicts wait for a person."
            )
            % {"applied": result.applied, "conflicts": result.conflicts_left}
        )


def strategy_pull_scheduled(app_id: int) -> None:
    """The schedule's task: a pull job for the app."""
    app = WeComApp.objects.filter(pk=app_id).first()
    if app is not None:
        strategy_pull_job_create(
            app=app, actor=Actor.system(source=AuditSource.PLATFORM, detail="schedule")
        )


def strategy_pull_schedules_ensure() -> None:
    """One schedule per WeCom app, every STRATEGY_PULL_MINUTES (0: none); run by bootstrap
    and when an app is saved."""
    from django_q.models import Schedule

    minutes = settings.STRATEGY_PULL_MINUTES
    wanted = {}
    if minutes > 0:
        wanted = {
            f"{SCHEDULE_PREFIX}{pk}": pk for pk in WeComApp.objects.values_list("pk", flat=True)
        }
    Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).exclude(name__in=wanted).delete()
    for name, pk in wanted.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": SCHEDULE_TASK,
                "args": repr((pk,)),
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )


register_job_kind(JobKind(name=PULL_KIND, label=_("Strategy tag pull"), run_shard=run_pull_shard))
