"""The audience of a WeCom customer-tagging job: (member, customer) pairs, stored row by row.

WeCom tags a customer per member (``mark_tag`` takes both), so a job's items are pairs. A
file's rows, the customers of chosen members or the failed pairs of a job become
:class:`CustomerAudiencePair` rows numbered 0..accepted-1; a job's shards read the positions
they own. What was refused is kept in :class:`CustomerAudienceRefusal` for the preview.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from tagging.bulk.models import AudienceRefusal, UploadChunk, UploadedAudience


class CustomerAudienceSource(models.TextChoices):
    FILE = "file", _("uploaded file")
    MEMBERS = "members", _("customers of members")
    RETRY = "retry", _("failed pairs of a job")
    UNDO = "undo", _("pairs a job changed")


class CustomerAudience(UploadedAudience):
    app = models.ForeignKey(
        "wecom.WeComApp",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("WeCom app"),
    )
    source = models.CharField(_("source"), max_length=8, choices=CustomerAudienceSource.choices)
    # (member, customer) pairs: one mark_tag call each.
    accepted = models.PositiveIntegerField(_("pairs (calls)"), default=0)
    customers = models.PositiveIntegerField(_("customers"), default=0)
    # Lines without a member, given every member that follows the customer.
    expanded = models.PositiveIntegerField(_("lines without a member"), default=0)
    # userid -> pairs of that member, for the preview ("which members"): counted by the
    # database once the pairs are written, never gathered while the list is read.
    members = models.JSONField(_("members"), default=dict)

    class Meta(UploadedAudience.Meta):
        verbose_name = _("WeCom customer audience")
        verbose_name_plural = _("WeCom customer audiences")


class CustomerAudiencePair(models.Model):
    # No foreign key in the database, as BulkAudienceMember: written in the audience's own
    # transaction and deleted with it.
    audience = models.ForeignKey(
        CustomerAudience,
        on_delete=models.CASCADE,
        related_name="pairs",
        db_index=False,
        db_constraint=False,
    )
    position = models.BigIntegerField()
    userid = models.CharField(max_length=64)
    external_userid = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["audience", "position"], name="tagging_customer_position")]

    def __str__(self) -> str:
        return f"{self.userid}/{self.external_userid}"


class CustomerAudienceRefusal(AudienceRefusal):
    audience = models.ForeignKey(
        CustomerAudience, on_delete=models.CASCADE, related_name="refusals"
    )

    class Meta(AudienceRefusal.Meta):
        pass


class CustomerUploadChunk(UploadChunk):
    """A part of an uploaded customer list, until a worker has read it (tagging/bulk/reading.py)."""

    # No index of its own: the unique (audience, index) below starts with it.
    audience = models.ForeignKey(
        CustomerAudience, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["audience", "index"], name="tagging_customer_chunk_index"
            )
        ]
