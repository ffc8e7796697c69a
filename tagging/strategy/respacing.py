"""Re-spacing a list's orders in WeCom: a job of the shared machinery, never a web request.

Orders are spaced ORDER_GAP apart, so that moving one item lands between its new neighbours with
one edit call (``services.order_between``). Where two neighbours touch, as they do in a list
just pulled from WeCom (0, 1, 2…), there is no room: the whole list gets fresh orders, one edit
call per item whose order changes: 500 calls for 500 groups, 25 s at the default 20 calls a
second. :func:`respacing_start` writes the wanted orders as pending (the tree shows them waiting)
and starts a job; the job sends them one call each, checkpointing each, with its bar on the tree
page and on the job's page. A refusal stops the job with WeCom's reason: the console shows what
WeCom has, the rest of the new order stays pending, and resuming the job goes on from the item
refused ("re-push failed" in the lists resumes it too). An outage puts the job on hold; it goes
on by itself. While a list is being re-spaced, moves in it are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from console.audit import Actor, AuditSource
from console.jobs import JobKind, PlatformUnavailable, ShardRun
from console.models import OPEN_JOB_STATUSES, Job
from tagging.strategy.models import Strategy, SyncState, Tag, TagGroup
from tagging.strategy.services import Item, Outcome, items_push, spaced_orders
from wecom.clients.errors import PlatformError, PlatformTransportError

RESPACE_KIND = "tagging.strategy.respace"
_MODELS: dict[str, type[TagGroup] | type[Tag]] = {"group": TagGroup, "tag": Tag}


@dataclass
class RespacingStarted(Outcome):
    """A move that needs the list re-spaced: nothing was sent yet, the job sends it."""

    job: Job | None = None


def _parent(item: TagGroup | Tag) -> Strategy | TagGroup:
    return item.strategy if isinstance(item, TagGroup) else item.group


def _open_job(model: str, parent_pk: int) -> Job | None:
    return Job.objects.filter(
        kind=RESPACE_KIND,
        status__in=OPEN_JOB_STATUSES,
        params__model=model,
        params__parent=parent_pk,
    ).first()


def _model_name(item: TagGroup | Tag) -> str:
    return "group" if isinstance(item, TagGroup) else "tag"


def respacing_refuse_if_running(*, parent: Strategy | TagGroup) -> None:
    """Refuse a move in a list whose re-spacing job is not over: the orders it would move
    between are still changing."""
    job = _open_job("group" if isinstance(parent, Strategy) else "tag", parent.pk)
    if job is not None:
        raise ValidationError(
            gettext(
                "This list is being given new orders in WeCom (job “%(title)s”). Nothing was "
                "sent; move it again when the job is done."
            )
            % {"title": job.title},
            code="respacing",
        )


def respacing_start(*, items: Sequence[Item], actor: Actor) -> Outcome:
    """Give the list ``items`` (all of one group's tags, or of one strategy's groups, top
    first) orders ORDER_GAP apart, as a job: the wanted orders are committed as pending with
    the job, which sends one edit call per item whose order changes."""
    if not items:
        return Outcome()
    parent = _parent(items[0])
    journal = [
        (item, order)
        for item, order in zip(items, spaced_orders(len(items)), strict=True)
        if item.order != order
    ]
    if not journal:
        return Outcome()
    from console.jobs.services import job_create

    with transaction.atomic():
        # One re-spacing per list at a time: the second waits here, then finds the first.
        type(parent).objects.select_for_update().filter(pk=parent.pk).first()
        respacing_refuse_if_running(parent=parent)
        _journal(type(items[0]), journal)
        job = job_create(
            kind=RESPACE_KIND,
            title=gettext("New orders in WeCom for “%(list)s”") % {"list": parent.name},
            total=len(journal),
            shards=[(0, len(journal))],
            params={
                "app": parent.app_id,
                "strategy": parent.pk if isinstance(parent, Strategy) else parent.strategy_id,
                "model": _model_name(items[0]),
                "parent": parent.pk,
                "ids": [item.pk for item, _order in journal],
            },
            actor=actor,
            target=parent,
        )
    message = ngettext(
        "There was no room between the neighbours: the list gets new orders in WeCom, "
        "%(count)d call, as a background job. The list shows its new order when it is done.",
        "There was no room between the neighbours: the list gets new orders in WeCom, "
        "%(count)d calls, as a background job. The list shows its new order when it is done.",
        len(journal),
    ) % {"count": len(journal)}
    return RespacingStarted(messages=[message], job=job)


def _journal(model: type[TagGroup] | type[Tag], journal: Sequence[tuple[Any, int]]) -> None:
    """The wanted orders as pending, each item a new version: one statement sent with all the
    rows (the ORM's update per row, or its bulk_update, took most of a second for 500)."""
    quote = connection.ops.quote_name
    table, version = quote(model._meta.db_table), quote("version")
    sql = (
        f"UPDATE {table} SET {quote('pending_order')} = %s, {quote('sync_state')} = %s, "  # noqa: S608
        f"{quote('sync_message')} = '', {version} = {version} + 1 WHERE {quote('id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(order, SyncState.PENDING, item.pk) for item, order in journal])


def run_respace_shard(run: ShardRun) -> None:
    job = run.job
    model = _MODELS[job.params["model"]]
    ids: list[int] = job.params["ids"]
    actor = Actor(
        user=job.created_by,  # type: ignore[arg-type]
        source=AuditSource.JOB,
        detail=gettext("job #%(id)s") % {"id": job.pk},
    )
    while run.keep_going():
        item = model.objects.filter(pk=ids[run.position]).first()
        # Deleted, or given an order by hand since: nothing is left to send for it.
        if item is not None and item.pending_order is not None:
            outcome = items_push(items=[item], actor=actor)
            if outcome.failed:
                _stop(run, item, outcome.error)
                return
        run.advance(advance=1, done=1)


def _stop(run: ShardRun, item: TagGroup | Tag, error: Exception | None) -> None:
    """After a failed call: wait out an outage, stop at a refusal. Either way the position
    stays on the item, so that going on starts with it."""
    if isinstance(error, PlatformError) and (
        error.retryable or isinstance(error, PlatformTransportError)
    ):
        raise PlatformUnavailable(error.explanation, error.note())
    if isinstance(error, PlatformError):
        reason: Any = error.note()
    elif isinstance(error, ValidationError):
        reason = " ".join(error.messages)
    else:
        reason = str(error)
    run.fail_job(
        message=_(
            "WeCom refused the new order of “%(name)s”: %(reason)s The rest of the new order "
            "waits as pending: resume the job to go on."
        ),
        params={"name": item.name, "reason": reason},
    )


def respacing_job_actions(job: Job, user: Any) -> list[tuple[str, str]]:
    params = job.params or {}
    if not user.has_perm("tagging.view_tag") or "app" not in params:
        return []
    url = reverse("admin:tagging_strategy_tree", args=[params["app"]])
    query = f"?strategy={params['strategy']}"
    if params.get("model") == "tag":
        query += f"&open={params['parent']}"
    return [(url + query, gettext("Open the tag tree"))]


RESPACE_JOB = JobKind(
    name=RESPACE_KIND,
    label=_("New orders for a strategy tag list"),
    run_shard=run_respace_shard,
    actions=respacing_job_actions,
)
