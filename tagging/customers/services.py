"""Starting WeCom customer-tagging jobs: from an audience of (member, customer) pairs to a job
of the shared machinery, and "retry failed only"."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import formats
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from console.audit import Actor
from console.jobs.selectors import job_retryable_failures
from console.jobs.services import job_create, shard_ranges
from console.jobs.undo import job_processed_ranges, job_undo_refusal
from console.models import Job, JobItemFailure
from tagging.bulk.retention import audience_check_startable
from tagging.customers.audience import customer_audience_from_pairs, pair_item
from tagging.customers.jobs import KIND, CustomerSpec
from tagging.customers.models import (
    CustomerAudience,
    CustomerAudiencePair,
    CustomerAudienceSource,
)
from wecom.rules import validate_wecom_tag_ids


def _clean_tag_ids(add: Sequence[str], remove: Sequence[str]) -> tuple[list[str], list[str]]:
    add = list(dict.fromkeys(t.strip() for t in add if t.strip()))
    remove = list(dict.fromkeys(t.strip() for t in remove if t.strip()))
    if not add and not remove:
        raise ValidationError(_("Choose at least one tag to add or to remove."), code="no_tags")
    validate_wecom_tag_ids([*add, *remove])
    both = sorted(set(add) & set(remove))
    if both:
        raise ValidationError(
            _("A tag cannot be both added and removed: %(tags)s."),
            code="add_and_remove",
            params={"tags": ", ".join(both)},
        )
    return add, remove


def customers_job_start(
    *,
    audience: CustomerAudience,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    actor: Actor,
    parent: Job | None = None,
    undoes: Job | None = None,
) -> Job:
    """Add and/or remove tags on every (member, customer) pair of ``audience``, one call each,
    in the background."""
    add, remove = _clean_tag_ids(add, remove)
    # The daily purge deletes customer lists as it does bulk lists.
    audience_check_startable(audience=audience)
    spec = CustomerSpec(
        audience_id=audience.pk,
        app_id=audience.app_id,
        add=add,
        remove=remove,
        undoes=undoes.pk if undoes else None,
    )
    count = formats.number_format(audience.accepted, force_grouping=True)
    title = ngettext(
        "Tag %(count)s WeCom customer pair (+%(add)s −%(remove)s tags, %(app)s)",
        "Tag %(count)s WeCom customer pairs (+%(add)s −%(remove)s tags, %(app)s)",
        audience.accepted,
    ) % {"count": count, "add": len(add), "remove": len(remove), "app": audience.app.name}
    shard_size = max(1, settings.BULK_SHARD_SIZE)
    with transaction.atomic():
        return job_create(
            kind=KIND,
            title=title,
            total=audience.accepted,
            shards=shard_ranges(total=audience.accepted, shard_size=shard_size),
            actor=actor,
            params=spec.to_params(),
            target=audience.app,
            parent=parent,
        )


def customers_job_retry_failed(*, job: Job, actor: Actor) -> Job:
    """A new job of the failed pairs of ``job`` that another attempt may pass."""
    failed = job_retryable_failures(
        job=job,
        kind=KIND,
        not_final=_(
            "Only a customer-tagging job that has ended can have its failed pairs retried."
        ),
        nothing_to_retry=_(
            "No failed pair of this job can be retried: WeCom refused them for good."
        ),
    )
    spec = CustomerSpec.from_params(job.params)
    from wecom.models import WeComApp

    app = WeComApp.objects.filter(pk=spec.app_id).first()
    if app is None:
        raise ValidationError(_("The WeCom app of this job was deleted."), code="target_gone")
    audience = customer_audience_from_pairs(
        app=app,
        items=failed.values_list("item", flat=True).iterator(chunk_size=5000),
        label=gettext("job #%(id)s") % {"id": job.pk},
        user=actor.user,
    )
    return customers_job_start(
        audience=audience, add=spec.add, remove=spec.remove, actor=actor, parent=job
    )


def customers_job_undo_refusal(*, job: Job) -> str | None:
    """Why ``job`` cannot be undone now, as a sentence; None when it can."""
    if job.kind != KIND:
        return gettext("Only a job that has ended can be undone.")
    spec = CustomerSpec.from_params(job.params)
    return job_undo_refusal(
        job=job, list_kept=CustomerAudience.objects.filter(pk=spec.audience_id).exists()
    )


def _changed_pairs(job: Job, audience_id: int) -> Iterator[str]:
    """The pairs ``job`` passed, in order: in a shard's processed range, not failed."""
    failed = set(JobItemFailure.objects.filter(job=job).values_list("item", flat=True))
    for start, end in job_processed_ranges(job=job):
        pairs = (
            CustomerAudiencePair.objects.filter(
                audience_id=audience_id, position__gte=start, position__lt=end
            )
            .order_by("position")
            .values_list("userid", "external_userid")
        )
        for userid, external_userid in pairs.iterator(chunk_size=5000):
            item = pair_item(userid, external_userid)
            if item not in failed:
                yield item


def customers_job_undo(*, job: Job, actor: Actor) -> Job:
    """A new job doing the reverse of ``job`` for exactly the pairs it changed: remove the tags
    it added and add back those it removed. Failed pairs and those it never reached (a
    cancelled job) are left alone."""
    from wecom.models import WeComApp

    with transaction.atomic():
        # The row lock makes two clicks on "undo" start one job, not two.
        job = Job.objects.select_for_update().get(pk=job.pk)
        refusal = customers_job_undo_refusal(job=job)
        if refusal is not None:
            raise ValidationError(refusal, code="cannot_undo")
        spec = CustomerSpec.from_params(job.params)
        app = WeComApp.objects.filter(pk=spec.app_id).first()
        if app is None:
            raise ValidationError(_("The WeCom app of this job was deleted."), code="target_gone")
        audience = customer_audience_from_pairs(
            app=app,
            items=_changed_pairs(job, spec.audience_id),
            label=gettext("undo of job #%(id)s") % {"id": job.pk},
            user=actor.user,
            source=CustomerAudienceSource.UNDO,
        )
        return customers_job_start(
            audience=audience,
            add=spec.remove,
            remove=spec.add,
            actor=actor,
            parent=job,
            undoes=job,
        )
