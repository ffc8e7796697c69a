"""The WeCom customer-tagging job kind ("tagging.customers") on the shared job machinery.

A shard is a range of audience positions, each a (member, customer) pair: one ``mark_tag``
call per pair, adding and/or removing the job's tags. The sending, the per-pair refusals
(the errcodes with an ``item`` in ``wecom/clients/errors.py``: not this member's customer,
member outside the strategy's range, the 3,000-tag cap, a tag deleted meanwhile), the outage
hold, the 45009 hold and the checkpoints are the bulk kind's (``tagging.bulk.jobs``): a pair
is a batch of one. Sending a pair again is harmless (adding a held tag, removing a missing one
changes nothing), so checkpoints are coalesced and not durable as there; the lease keeps each
pair in flight on one worker at most.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from console.jobs import JobKind, ShardRun
from console.jobs.undo import job_undo_of
from console.models import Job
from tagging.bulk.jobs import _checkpoint, _send_batch, _Stop
from tagging.customers.audience import audience_pairs, pair_from_item, pair_item
from tagging.customers.models import CustomerAudience
from tagging.strategy.selectors import TagLabel, tag_labels
from wecom.clients.errors import WECOM
from wecom.connections import client_for

KIND = "tagging.customers"
# Pairs read from the database at once: one query per window, never more in memory.
READ_AHEAD = 200


@dataclass(frozen=True)
class CustomerSpec:
    """A job's parameters (``Job.params``), as the worker reads them."""

    audience_id: int
    app_id: int
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    # The job this one undoes (its reverse, over the pairs that job changed).
    undoes: int | None = None

    # What the bulk kind's sender asks of a spec.
    platform = WECOM

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CustomerSpec:
        known = ("audience_id", "app_id", "add", "remove", "undoes")
        return cls(**{key: value for key, value in params.items() if key in known})

    def to_params(self) -> dict[str, Any]:
        return {
            "audience_id": self.audience_id,
            "app_id": self.app_id,
            "add": list(self.add),
            "remove": list(self.remove),
            "undoes": self.undoes,
        }


def sender_for(spec: CustomerSpec) -> Callable[[Sequence[str]], None]:
    """One ``mark_tag`` for a batch of one pair item ("userid/external_userid")."""
    from wecom.models import WeComApp

    client = client_for(WeComApp.objects.get(pk=spec.app_id))

    def send(items: Sequence[str]) -> None:
        (item,) = items
        userid, external_userid = pair_from_item(item)
        client.customer_tag_mark(userid, external_userid, add=spec.add, remove=spec.remove)

    return send


def run_customers_shard(run: ShardRun) -> None:
    """One call per pair, each pair's outcome checkpointed (coalesced when calls are fast; a
    refused pair is written at once with its sentence)."""
    spec = CustomerSpec.from_params(run.job.params)
    try:
        send = run.reuse("sender", lambda: sender_for(spec))
    except ObjectDoesNotExist:
        run.fail_job(message=_("The WeCom app of this job was deleted."))
        return
    window: list[tuple[str, str]] = []
    window_start = run.position
    with translation.override(settings.LANGUAGE_CODE):
        while run.keep_going():
            position = run.position
            if not window_start <= position < window_start + len(window):
                window_start = position
                window = audience_pairs(
                    audience_id=spec.audience_id,
                    start=position,
                    end=min(position + READ_AHEAD, run.end),
                )
            userid, external_userid = window[position - window_start]
            try:
                item = pair_item(userid, external_userid)
                outcome = _send_batch(run, send, [item], spec)  # type: ignore[arg-type]
            except _Stop:
                return
            _checkpoint(run, 1, outcome)


def customers_job_actions(job: Job, user: AbstractBaseUser) -> list[tuple[str, str]]:
    from console.jobs.follow_up import follow_up_actions
    from tagging.customers.services import customers_job_undo_refusal

    return follow_up_actions(
        job,
        user,
        add_permission="tagging.add_customeraudience",
        retry_url_name="admin:tagging_customers_retry",
        undo_url_name="admin:tagging_customers_undo",
        undo_refusal=lambda job: customers_job_undo_refusal(job=job),
        audience=job_audience(job),
        audience_url_name="admin:tagging_customeraudience_change",
        view_permission="tagging.view_customeraudience",
    )


def job_audience(job: Job) -> CustomerAudience | None:
    if not hasattr(job, "_customer_audience"):
        audience_id = job.params.get("audience_id")
        job._customer_audience = (  # type: ignore[attr-defined]
            CustomerAudience.objects.filter(pk=audience_id).first() if audience_id else None
        )
    return job._customer_audience  # type: ignore[attr-defined]


def labelled_tags(
    app_id: int, *, add: Sequence[str], remove: Sequence[str]
) -> dict[str, list[tuple[str, TagLabel | None]]]:
    """Each id to add and to remove with its label where the console knows the tag (None
    where it does not: a pasted id WeCom will judge). One query."""
    known = tag_labels(app_id, [*add, *remove])
    return {
        "add": [(tag_id, known.get(tag_id)) for tag_id in add],
        "remove": [(tag_id, known.get(tag_id)) for tag_id in remove],
    }


def customers_job_detail_context(job: Job) -> dict[str, Any]:
    spec = CustomerSpec.from_params(job.params)
    undoes = spec.undoes
    return {
        "tags": labelled_tags(spec.app_id, add=spec.add, remove=spec.remove),
        "audience": job_audience(job),
        "undoes": Job.objects.filter(pk=undoes).first() if undoes else None,
        "undone_by": job_undo_of(job=job) if job.is_final else None,
    }


CUSTOMERS_JOB = JobKind(
    name=KIND,
    label=_("WeCom customer tagging"),
    run_shard=run_customers_shard,
    detail_template="admin/tagging/customers_job_detail.html",
    detail_context=customers_job_detail_context,
    actions=customers_job_actions,
)
