"""Reading an uploaded list as a job: the web request stores the file, a worker reads it.

A 1,000,000-line list took 20–44 s to read inside the web request on a busy machine, past a
WSGI server's usual 30 s worker timeout. So the upload (:func:`audience_upload`) only checks the
file's size and kind, keeps it in the database in parts of ``UPLOAD_CHUNK_BYTES``
(:class:`~tagging.bulk.models.BulkUploadChunk`: every worker, on any machine, can read them;
the file is never whole in memory) and starts a ``tagging.bulk.read`` job; it answers at once.

A worker reads the parts as one seekable file (:class:`UploadedFile`) with the one reader of
files (``tagging.bulk.audience.audience_read``, which ``tag_users`` uses too). The job's one
shard counts bytes: each checkpoint moves the bar to where the reader is in the file and, in
the same transaction, writes the values refused since the last one, fenced by the lease. The
accepted OpenIDs go to a temporary table of the worker's connection; the members, the counts
and the status "ready" are written together in the last checkpoint, which also deletes the
parts. So an audience is either ready and whole, or has no member at all: a worker killed in
the middle leaves its temporary table to die with its connection, and the next worker reads
the file again from the first byte (deleting the refused values the first one wrote; the bar
stands still until it passes the point it had reached). A file that cannot be read fails the
job with the reader's sentence, stored untranslated (each reader sees it in their language);
the audience is then "could not be read" and its parts are deleted.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import Actor
from console.jobs import JobKind, ShardRun
from console.models import Job
from tagging.bulk.audience import (
    AudienceError,
    ReadRecorder,
    audience_read,
    check_upload_kind,
    check_upload_size,
)
from tagging.bulk.models import AudienceSource, AudienceStatus, BulkAudience, BulkUploadChunk

T = TypeVar("T")
READ_KIND = "tagging.bulk.read"
UPLOAD_CHUNK_BYTES = 1024 * 1024
# How often the bar moves (and refused values are written) while a file is read.
READ_CHECKPOINT_SECONDS = 0.5


# ---- the upload ---------------------------------------------------------------------------------


def audience_upload(
    *, stream: IO[bytes], name: str, size: int, column: str = "", actor: Actor
) -> BulkAudience:
    """Keep an uploaded file for a worker to read, and start the job that reads it.

    Checks the size and the kind (the first bytes) only; the audience is "being read" until the
    job is done. ``stream``: the uploaded file, read part by part, never whole.
    """
    check_upload_size(size)
    check_upload_kind(stream, name=name)
    from console.jobs.services import job_create

    with transaction.atomic():
        audience = BulkAudience.objects.create(
            source=AudienceSource.FILE,
            source_label=name[:255],
            column=column.strip()[:100],
            status=AudienceStatus.READING,
            file_size=size,
            created_by=actor.user,
        )
        stored = index = 0
        while data := stream.read(UPLOAD_CHUNK_BYTES):
            BulkUploadChunk.objects.create(audience=audience, index=index, data=data)
            stored += len(data)
            index += 1
        if stored != size:  # the size the form reported is the one the bar counts to
            audience.file_size = stored
            audience.save(update_fields=["file_size"])
        # One shard over the file's bytes (one more: the last step, writing the members).
        job_create(
            kind=READ_KIND,
            title=gettext("Reading the list “%(name)s”") % {"name": name},
            total=stored + 1,
            shards=[(0, stored + 1)],
            params={"audience_id": audience.pk},
            actor=actor,
            target=audience,
        )
    return audience


def audience_read_job(audience: BulkAudience) -> Job | None:
    """The job that reads (or read) an uploaded audience."""
    jobs = Job.objects.filter(kind=READ_KIND, params__audience_id=audience.pk)
    return jobs.order_by("-pk").first()


# ---- the stored file ----------------------------------------------------------------------------


class UploadedFile(io.RawIOBase):
    """The parts of an uploaded file, read as one seekable file, one part in memory at a time
    (an XLSX file is read from its end first: the zip's directory)."""

    def __init__(self, audience: BulkAudience) -> None:
        super().__init__()
        self.audience_id = audience.pk
        self.size = audience.file_size
        self.position = 0
        self._index = -1
        self._data = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(base + offset, 0)
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size:
            return 0
        index, offset = divmod(self.position, UPLOAD_CHUNK_BYTES)
        if index != self._index:
            data = (
                BulkUploadChunk.objects.filter(audience_id=self.audience_id, index=index)
                .values_list("data", flat=True)
                .first()
            )
            if data is None:
                raise AudienceError(FILE_GONE)
            self._index, self._data = index, bytes(data)
        piece = self._data[offset : offset + len(buffer)]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)


FILE_GONE = _("The uploaded file is no longer kept. Upload it again.")


# ---- the job ------------------------------------------------------------------------------------


class _Stopped(Exception):
    """The job was paused or cancelled, or the shard taken over: the read is given up."""


class _JobRecorder(ReadRecorder):
    """Each step of the read in a checkpoint of the shard (see the module's docstring)."""

    def __init__(self, run: ShardRun, audience: BulkAudience, file: IO[bytes]) -> None:
        self.run = run
        self.audience = audience
        self.file = file
        self.last = time.monotonic()

    def attempt(self, read: Callable[[], T]) -> T:
        # A read starts from nothing: what an earlier attempt (a worker killed, the other
        # encoding) wrote is deleted first, under this worker's lease.
        self._checkpoint(self.audience.refusals.all().delete)
        return read()

    def due(self) -> bool:
        return time.monotonic() - self.last >= READ_CHECKPOINT_SECONDS

    def record(self, write: Callable[[], None]) -> None:
        self._checkpoint(write)
        if not self.run.keep_going():
            raise _Stopped

    def finish(self, write: Callable[[], None]) -> None:
        rest = self.run.end - self.run.position
        with self.run.checkpoint(advance=rest, done=rest):
            write()
            BulkUploadChunk.objects.filter(audience=self.audience).delete()

    def _checkpoint(self, write: Callable[[], Any]) -> None:
        # Where the reader is in the file, at most one short of the end: the last unit is the
        # last step's. Never back: a read started again moves the bar once past its mark.
        reached = min(self.file.tell(), self.run.end - 1)
        # Its batches may be written twice (a read is started again from nothing): the commit
        # need not wait for the disk.
        moved = max(reached - self.run.position, 0)
        with self.run.checkpoint(advance=moved, done=moved, durable=False):
            write()
        self.last = time.monotonic()


def run_read_shard(run: ShardRun) -> None:
    audience = BulkAudience.objects.filter(pk=run.job.params.get("audience_id")).first()
    if audience is None or audience.status == AudienceStatus.READY:
        # Deleted meanwhile (the purge), or read already: nothing left to read.
        with run.checkpoint(advance=run.remaining, done=run.remaining):
            pass
        return
    file = io.BufferedReader(UploadedFile(audience), buffer_size=256 * 1024)
    try:
        audience_read(
            audience=audience,
            stream=file,
            name=audience.source_label,
            recorder=_JobRecorder(run, audience, file),
        )
    except _Stopped:
        return
    except AudienceError as refusal:
        with run.checkpoint(advance=0):
            audience.refusals.all().delete()
            BulkUploadChunk.objects.filter(audience=audience).delete()
            BulkAudience.objects.filter(pk=audience.pk).update(status=AudienceStatus.FAILED)
        run.fail_job(message=refusal.message, params=refusal.params)


def read_job_actions(job: Job, user: AbstractBaseUser) -> list[tuple[str, str]]:
    audience_id = (job.params or {}).get("audience_id")
    if audience_id is None or not user.has_perm("tagging.view_bulkaudience"):
        return []
    return [(reverse("admin:tagging_bulk_start", args=[audience_id]), gettext("Open the list"))]


READ_JOB = JobKind(
    name=READ_KIND,
    label=_("Reading an uploaded list"),
    run_shard=run_read_shard,
    actions=read_job_actions,
)
