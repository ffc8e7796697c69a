"""The admin's pull from WeCom: a job plans, the page shows the plan, the person applies it.

``/pull/<app>/`` starts a pull job in review mode (tagging/strategy/jobs.py) and follows it on
``?job=<id>`` with the shared job progress bar (static/console/jobs.js), which reloads the page
when the job's status changes: to the plan, once the job waits for its review; to the tree with
what applying did, once it is done. Applying posts the fingerprint of the plan shown and the
choice for each conflict; the job applies exactly that plan, or plans again if WeCom or the
console moved on meanwhile.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.views import View

from console.audit import Actor, AuditSource
from console.ids import object_pk, object_pk_or_404
from console.jobs.selectors import job_status_sentence
from console.jobs.services import JobStateError
from console.models import Job, JobStatus
from tagging.strategy.jobs import (
    PLAN_CHANGED,
    PULL_KIND,
    pull_job_outcome,
    pull_waits_for_review,
    strategy_pull_plan_approve,
    strategy_pull_review_start,
)
from tagging.strategy.models import Strategy, SyncState
from tagging.strategy.services import Choice
from wecom.models import WeComApp


class PullView(View):
    model_admin: Any = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.has_perm("tagging.change_tag") and user.has_perm("tagging.change_taggroup")):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        app = get_object_or_404(WeComApp, pk=object_pk_or_404(app_id))
        job = _pull_job(app, request.GET.get("job"))
        if job is None:
            job = strategy_pull_review_start(
                app=app, actor=Actor.from_request(request, source=AuditSource.ADMIN)
            )
            return HttpResponseRedirect(_job_url(app, job))
        outcome = pull_job_outcome(job)
        if job.status == JobStatus.DONE and outcome.result is not None:
            _say_what_applying_did(request, app, outcome.result)
            return HttpResponseRedirect(reverse("admin:tagging_strategy_tree", args=[app.pk]))
        can_apply = pull_waits_for_review(job)
        shown = can_apply or job.status == JobStatus.DONE
        if shown and outcome.plan_changed:
            messages.warning(request, str(PLAN_CHANGED))
        progress = job.progress()
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": Strategy._meta,
            "title": gettext("Pull from WeCom: %(app)s") % {"app": app.name},
            "app": app,
            "job": job,
            "progress": progress,
            "sentence": job_status_sentence(job, progress),
            "plan": outcome.plan if shown else None,
            "can_apply": can_apply,
            "choices": [
                (Choice.WECOM.value, gettext("take WeCom's")),
                (Choice.OURS.value, gettext("push ours")),
                (Choice.LATER.value, gettext("decide later")),
            ],
            "tree_url": reverse("admin:tagging_strategy_tree", args=[app.pk]),
        }
        return TemplateResponse(request, "admin/tagging/strategy/pull.html", context)

    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        app = get_object_or_404(WeComApp, pk=object_pk_or_404(app_id))
        job = _pull_job(app, request.POST.get("job"))
        if job is None:
            return HttpResponseRedirect(reverse("admin:tagging_strategy_pull", args=[app.pk]))
        choices = {}
        for key, value in request.POST.items():
            if key.startswith("choice-"):
                try:
                    choices[key.removeprefix("choice-")] = Choice(value)
                except ValueError:
                    continue
        try:
            strategy_pull_plan_approve(
                job=job,
                fingerprint=request.POST.get("fingerprint", ""),
                choices=choices,
                actor=Actor.from_request(request, source=AuditSource.ADMIN),
            )
        except JobStateError as refusal:
            messages.warning(request, str(refusal))
        return HttpResponseRedirect(_job_url(app, job))


def _pull_job(app: WeComApp, raw_id: str | None) -> Job | None:
    """The app's pull job a page names (``?job=``), if it names one."""
    job_id = object_pk(raw_id or "")
    if job_id is None:
        return None
    return Job.objects.filter(pk=job_id, kind=PULL_KIND, target_id=str(app.pk)).first()


def _job_url(app: WeComApp, job: Job) -> str:
    return reverse("admin:tagging_strategy_pull", args=[app.pk]) + f"?job={job.pk}"


def _say_what_applying_did(request: HttpRequest, app: WeComApp, result: dict[str, Any]) -> None:
    messages.success(request, applied_message(result))
    if result["conflicts_left"]:
        messages.warning(request, conflicts_waiting_message(app, result["conflicts_left"]))
    for message in result["messages"]:
        messages.error(request, message)


def applied_message(result: dict[str, Any]) -> str:
    """What applying did (``ApplyResult``'s fields), naming only what happened."""
    parts = [
        ngettext(
            "Plan applied: %(count)d change followed.",
            "Plan applied: %(count)d changes followed.",
            result["applied"],
        )
        % {"count": result["applied"]}
    ]
    if result["resolved_wecom"]:
        parts.append(
            ngettext(
                "%(count)d conflict settled with WeCom's values.",
                "%(count)d conflicts settled with WeCom's values.",
                result["resolved_wecom"],
            )
            % {"count": result["resolved_wecom"]}
        )
    if result["resolved_ours"]:
        parts.append(
            ngettext(
                "%(count)d conflict settled by pushing the console's values.",
                "%(count)d conflicts settled by pushing the console's values.",
                result["resolved_ours"],
            )
            % {"count": result["resolved_ours"]}
        )
    return " ".join(parts)


def conflicts_waiting_message(app: WeComApp, count: int) -> str:
    """The conflicts left for later, with the lists where they are settled."""
    query = f"?app__id__exact={app.pk}&sync_state__exact={SyncState.CONFLICT}"
    return format_html(
        '{} <a href="{}">{}</a> · <a href="{}">{}</a>',
        ngettext(
            "%(count)d conflict waits for a decision:",
            "%(count)d conflicts wait for a decision:",
            count,
        )
        % {"count": count},
        reverse("admin:tagging_tag_changelist") + query,
        gettext("tags in conflict"),
        reverse("admin:tagging_taggroup_changelist") + query,
        gettext("tag groups in conflict"),
    )
