"""The audience of a bulk user-tag job, stored row by row (issue 7).

An upload, a pasted list or another tag's followers is parsed once, as a stream, into
:class:`BulkAudienceMember` rows numbered 0..accepted-1: a job's shards read the positions
``[start, end)`` they own, so no process ever holds the whole list. What was refused is kept in
:class:`BulkAudienceRefusal`, all of it, for the preview and its download.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AudienceSource(models.TextChoices):
    FILE = "file", _("uploaded file")
    PASTE = "paste", _("pasted list")
    TAG = "tag", _("followers of a tag")
    RETRY = "retry", _("failed OpenIDs of a job")
    UNDO = "undo", _("OpenIDs a job changed")


class AudienceStatus(models.TextChoices):
    # An uploaded file waits in BulkUploadChunk rows until a worker has read it (reading.py);
    # a pasted list, a tag's followers and a retry are read at once and are ready when created.
    READING = "reading", _("being read")
    READY = "ready", _("ready")
    FAILED = "failed", _("could not be read")


class UploadedAudience(models.Model):
    """What every audience of pairs or OpenIDs shares (bulk lists and WeCom customer lists): the
    source, the reading's status and counts, who made it and when."""

    # The file's name, the tag, the members, or the job the audience comes from.
    source_label = models.CharField(_("from"), max_length=255, blank=True)
    encoding = models.CharField(_("encoding"), max_length=20, blank=True)
    # Members (pairs) and counts exist only once it is READY: they are written in the read's
    # last transaction, together with this status.
    status = models.CharField(
        _("status"), max_length=8, choices=AudienceStatus.choices, default=AudienceStatus.READY
    )
    file_size = models.PositiveBigIntegerField(_("file size (bytes)"), default=0)
    lines = models.PositiveIntegerField(_("lines read"), default=0)
    accepted = models.PositiveIntegerField(_("accepted"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates dropped"), default=0)
    blanks = models.PositiveIntegerField(_("blank lines dropped"), default=0)
    refused = models.PositiveIntegerField(_("refused"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.source_label}".strip()  # type: ignore[attr-defined]


class BulkAudience(UploadedAudience):
    source = models.CharField(_("source"), max_length=8, choices=AudienceSource.choices)
    column = models.CharField(_("column"), max_length=100, blank=True)

    class Meta(UploadedAudience.Meta):
        verbose_name = _("bulk audience")
        verbose_name_plural = _("bulk audiences")


class BulkAudienceMember(models.Model):
    # No index of its own: the (audience, position) index below starts with it. No foreign key
    # in the database either: PostgreSQL checks one row by row when the transaction commits,
    # ~10 s for 1,000,000 rows; the rows are only written in their audience's own transaction,
    # right after it, and deleted with it (the ORM's cascade, as any foreign key here).
    audience = models.ForeignKey(
        BulkAudience,
        on_delete=models.CASCADE,
        related_name="members",
        db_index=False,
        db_constraint=False,
    )
    # Dense 0..accepted-1, in the order of first appearance in the list.
    position = models.BigIntegerField()
    openid = models.CharField(max_length=28)

    class Meta:
        # An OpenID appears once per audience: the one statement that writes an audience's
        # rows keeps each OpenID's first appearance (tagging.bulk.audience). No unique index
        # on (audience, openid) checks it again: with random OpenIDs each row inserted or
        # deleted was a random walk in that index, the part of reading and purging a list
        # that grew faster than the list (SQLite: 40 s and 31 s for 1,000,000 rows).
        indexes = [models.Index(fields=["audience", "position"], name="tagging_audience_position")]

    def __str__(self) -> str:
        return self.openid


class AudienceRefusal(models.Model):
    """A value of a list that was refused, with its line and why."""

    line = models.PositiveIntegerField(_("line"))
    value = models.CharField(_("value"), max_length=200)
    reason = models.CharField(_("reason"), max_length=300)

    class Meta:
        abstract = True
        ordering = ("audience", "line")

    def __str__(self) -> str:
        return f"{self.line}: {self.value}"


class BulkAudienceRefusal(AudienceRefusal):
    audience = models.ForeignKey(BulkAudience, on_delete=models.CASCADE, related_name="refusals")

    class Meta(AudienceRefusal.Meta):
        pass


class UploadChunk(models.Model):
    """One part (UPLOAD_CHUNK_BYTES) of an uploaded file, kept in the database so that any
    worker, on any machine, can read it; deleted once the file is read (or the read given up).
    Each kind of audience has its own: ``audience`` is a foreign key to it."""

    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.audience_id}/{self.index}"  # type: ignore[attr-defined]


class BulkUploadChunk(UploadChunk):
    # No index of its own: the unique (audience, index) below starts with it.
    audience = models.ForeignKey(
        BulkAudience, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["audience", "index"], name="tagging_upload_chunk_index")
        ]
