"""The audience of a WeCom customer-tagging job: (member, customer) pairs, stored row by row.

WeCom tags a customer per member (``mark_tag`` takes both), so a job's items are pairs. A
file's rows, the customers of chosen members or the failed pairs of a job become
:class:`CustomerAudiencePair` rows numbered 0..accepted-1; a job's shards read the positions
they own. What was refused is kept in :class:`CustomerAudienceRefusal` for the preview.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class CustomerAudienceSource(models.TextChoices):
    FILE = "file", _("uploaded file")
    MEMBERS = "members", _("customers of members")
    RETRY = "retry", _("failed pairs of a job")


class CustomerAudience(models.Model):
    app = models.ForeignKey(
        "wecom.WeComApp",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("WeCom app"),
    )
    source = models.CharField(_("source"), max_length=8, choices=CustomerAudienceSource.choices)
    # The file's name, the members, or the job the audience comes from.
    source_label = models.CharField(_("from"), max_length=255, blank=True)
    lines = models.PositiveIntegerField(_("lines read"), default=0)
    # (member, customer) pairs: one mark_tag call each.
    accepted = models.PositiveIntegerField(_("pairs (calls)"), default=0)
    customers = models.PositiveIntegerField(_("customers"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates dropped"), default=0)
    blanks = models.PositiveIntegerField(_("blank lines dropped"), default=0)
    refused = models.PositiveIntegerField(_("refused"), default=0)
    # Lines without a member, given every member that follows the customer.
    expanded = models.PositiveIntegerField(_("lines without a member"), default=0)
    # userid -> pairs of that member, for the preview ("which members").
    members = models.JSONField(_("members"), default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("WeCom customer audience")
        verbose_name_plural = _("WeCom customer audiences")
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.source_label}".strip()


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


class CustomerAudienceRefusal(models.Model):
    audience = models.ForeignKey(
        CustomerAudience, on_delete=models.CASCADE, related_name="refusals"
    )
    line = models.PositiveIntegerField(_("line"))
    value = models.CharField(_("value"), max_length=200)
    reason = models.CharField(_("reason"), max_length=300)

    class Meta:
        ordering = ("audience", "line")

    def __str__(self) -> str:
        return f"{self.line}: {self.value}"
