"""“Publish” as a kind of the shared background job (console/jobs).

One shard of 100 positions: the platform's percentage is the job's bar. The first slice asks
``publish_progress`` before anything else, so a publish still running (started by another
slice, or in the platform's own pages) is followed, not started twice; otherwise it records
the intent, calls ``publish`` and follows. Status 2 ends the job as failed with a sentence, and
so does a percentage that stays the same for ``CHATBOT_PUBLISH_STUCK_SECONDS``.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy as _

from chatbot.jobs import job_actor, job_bot_client
from chatbot.models import BotPublish
from chatbot.publishing import (
    PUBLISH_KIND,
    PUBLISH_TOTAL,
    publish_begin,
    publish_finish,
    publish_progress_record,
)
from console.audit import Actor
from console.jobs import JobKind, ShardRun
from console.models import Job
from wecom.clients import PlatformError
from wecom.clients.chatbot import PUBLISH_FAILED, PUBLISH_SUCCEEDED, PUBLISH_SYNCING


def _stop(run: ShardRun, publish: BotPublish | None, message: str, actor: Actor) -> None:
    if publish is not None:
        publish_finish(publish=publish, ok=False, message=message, actor=actor)
    run.fail_job(message=message)


def run_publish_shard(run: ShardRun) -> None:
    job = run.job
    actor = job_actor(job)
    publish = BotPublish.objects.filter(job=job).order_by("-pk").first()
    found = job_bot_client(job, deleted=gettext("The chatbot was deleted; nothing was published."))
    if not isinstance(found, tuple):
        _stop(run, publish, str(found), actor)
        return
    bot, client = found
    managerid = bot.default_manager_id
    if publish is None:
        try:
            current = client.publish_progress(managerid=managerid)
        except PlatformError as error:
            _stop(run, None, _sentence_not_started(error), actor)
            return
        following = current.status == PUBLISH_SYNCING
        publish = publish_begin(bot=bot, job=job, started=not following, actor=actor)
        if not following:
            try:
                client.publish(managerid=managerid)
            except PlatformError as error:
                _stop(run, publish, _sentence_not_started(error), actor)
                return
        run.ensure_lease()
    stuck_after = float(settings.CHATBOT_PUBLISH_STUCK_SECONDS)
    state = dict(run.shard.state or {})
    last_change = float(state.get("changed_at") or time.time())
    while run.keep_going():
        try:
            progress = client.publish_progress(managerid=managerid)
        except PlatformError as error:
            message = gettext(
                "The console could not ask how the publish is going: %(problem)s The publish "
                "may still finish on the platform; publish again to be sure."
            ) % {"problem": error.explanation}
            _stop(run, publish, message, actor)
            return
        if progress.status == PUBLISH_SUCCEEDED:
            _advance_to(run, PUBLISH_TOTAL, last_change)
            publish_finish(
                publish=publish,
                ok=True,
                message=_sentence_done(publish),
                actor=actor,
            )
            return
        if progress.status == PUBLISH_FAILED:
            _advance_to(run, min(progress.progress, PUBLISH_TOTAL - 1), last_change)
            message = gettext(
                "The dialogue platform could not publish the chatbot (it stopped at "
                "%(progress)s%%). What users get has not changed; try again, or look at the "
                "bot in the platform's own pages."
            ) % {"progress": progress.progress}
            _stop(run, publish, message, actor)
            return
        # Not 100 until the platform says it succeeded: a full bar that is still syncing
        # would end the job before the publish does.
        target = min(progress.progress, PUBLISH_TOTAL - 1)
        now = time.time()
        if target > run.position:
            last_change = now
            _advance_to(run, target, last_change)
            publish_progress_record(publish=publish, progress=target)
        elif now - last_change >= stuck_after:
            message = gettext(
                "The publish has been at %(progress)s%% for %(minutes)s minutes without moving. "
                "The console stopped following it; look at the bot in the platform's own "
                "pages, and publish again when it is free."
            ) % {"progress": progress.progress, "minutes": max(1, round(stuck_after / 60))}
            _stop(run, publish, message, actor)
            return
        time.sleep(float(settings.CHATBOT_PUBLISH_POLL_SECONDS))


def _advance_to(run: ShardRun, target: int, changed_at: float) -> None:
    step = max(target - run.position, 0)
    with run.checkpoint(advance=step, done=step, state={"changed_at": changed_at}):
        pass


def _sentence_not_started(error: PlatformError) -> str:
    return gettext("The chatbot was not published: %(problem)s") % {"problem": error.explanation}


def _sentence_done(publish: BotPublish) -> str:
    if publish.started_at is None:
        return gettext(
            "A publish started outside the console finished. Replies pushed here are marked "
            "live only after a publish the console started: publish again to be sure."
        )
    return gettext("Published: users now get what was pushed before it started.")


def publish_job_actions(job: Job, user: object) -> list[tuple[str, str]]:
    params = job.params or {}
    url = reverse("admin:chatbot_autoreply_changelist")
    return [
        (
            f"{url}?skill__bot__id__exact={params.get('bot_id', '')}&live_state=pushed",
            str(_("Replies pushed, not yet live")),
        ),
        (
            reverse("admin:chatbot_botpublish_changelist")
            + f"?bot__id__exact={params.get('bot_id', '')}",
            str(_("Publish history")),
        ),
    ]


def publish_job_context(job: Job) -> dict[str, object]:
    return {"publish": BotPublish.objects.filter(job=job).order_by("-pk").first()}


PUBLISH_JOB = JobKind(
    name=PUBLISH_KIND,
    label=_("Publish a chatbot"),
    run_shard=run_publish_shard,
    detail_template="admin/chatbot/publish_job_detail.html",
    detail_context=publish_job_context,
    actions=publish_job_actions,  # type: ignore[arg-type]
)
