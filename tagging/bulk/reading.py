"""Reading an uploaded list as a job: the web request stores the file, a worker reads it.

One machinery for every kind of list read from a file (:class:`ListReading`): the Official
Account bulk lists (``tagging.bulk.read``, :data:`BULK_READING`) and the WeCom customer lists
(``tagging.customers.read``, ``tagging.customers.audience.CUSTOMER_READING``). Each kind names
its audience model, its chunk model and its reader; the upload, the stored file, the job's
recorder, the shard runner and the clean-up of a read given up are the same.

A 1,000,000-line list took 20–44 s to read inside the web request on a busy machine, past a
WSGI server's usual 30 s worker timeout. So the upload (:func:`audience_upload`) only checks the
file's size and kind, keeps it in the database in parts of ``UPLOAD_CHUNK_BYTES``
(:class:`~tagging.bulk.models.UploadChunk` rows of the kind: every worker, on any machine, can
read them; the file is never whole in memory) and starts the kind's read job; it answers at
once.

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
the audience is then "could not be read" and its parts are deleted. So is it when the job is
cancelled or fails for any other reason (the kind's ``on_stopped``, in the transaction that
stops the job): no audience stays "being read" with its parts under a job that ended.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import Actor
from console.jobs import JobKind, PlatformUnavailable, ShardRun
from console.jobs.selectors import job_reason, job_status_sentence
from console.models import Job
from tagging.bulk.audience import (
    AudienceError,
    ReadRecorder,
    audience_read,
    check_upload_kind,
    check_upload_size,
)
from tagging.bulk.models import (
    AudienceSource,
    AudienceStatus,
    BulkAudience,
    BulkUploadChunk,
    UploadChunk,
    UploadedAudience,
)
from wecom.clients import PlatformError

T = TypeVar("T")
A = TypeVar("A", bound=UploadedAudience)
READ_KIND = "tagging.bulk.read"
UPLOAD_CHUNK_BYTES = 1024 * 1024
# How often the bar moves (and refused values are written) while a file is read.
READ_CHECKPOINT_SECONDS = 0.5
FILE_GONE = _("The uploaded file is no longer kept. Upload it again.")


@dataclass(frozen=True)
class ListReading:
    """A kind of audience read from an uploaded file by a job of its own kind."""

    job_kind: str
    label: str | Promise
    audience_model: type[UploadedAudience]
    chunk_model: type[UploadChunk]
    # The one reader of that kind's lists (``tag_users`` reads with it too): the audience, the
    # stored file (seekable; empty for a list read from a platform), the recorder and the job's
    # params. Raises AudienceError with the sentence to show.
    read: Callable[[Any, IO[bytes], ReadRecorder, dict[str, Any]], Any]
    # The audience's page ("admin:…", with its pk) and who may open it.
    page: str
    view_permission: str
    # Why a read given up is not taken up again when its job is resumed by hand.
    gone: str | Promise = FILE_GONE

    def job(self) -> JobKind:
        return JobKind(
            name=self.job_kind,
            label=self.label,
            run_shard=run_read_shard,
            actions=read_job_actions,
            on_stopped=read_stopped,
        )


_READINGS: dict[str, ListReading] = {}


def reading_register(reading: ListReading) -> JobKind:
    """Make the kind of list known to the shard runner; its JobKind, to register."""
    _READINGS[reading.job_kind] = reading
    return reading.job()


# ---- the upload ---------------------------------------------------------------------------------


def upload_store(
    *, reading: ListReading, audience: A, stream: IO[bytes], name: str, size: int, actor: Actor
) -> A:
    """Keep an uploaded file for a worker to read, and start the job that reads it.

    ``audience``: unsaved, with what its kind records of the upload (source, label, app…).
    Checks the size and the kind (the first bytes) only; the audience is "being read" until the
    job is done. ``stream``: the uploaded file, read part by part, never whole.
    """
    check_upload_size(size)
    check_upload_kind(stream, name=name)
    with transaction.atomic():
        audience.file_size = size
        _reading_audience_save(audience, actor)
        stored = index = 0
        while data := stream.read(UPLOAD_CHUNK_BYTES):
            reading.chunk_model.objects.create(audience=audience, index=index, data=data)
            stored += len(data)
            index += 1
        if stored != size:  # the size the form reported is the one the bar counts to
            audience.file_size = stored
            audience.save(update_fields=["file_size"])
        # One shard over the file's bytes (one more: the last step, writing the members).
        read_job_create(
            reading=reading, audience=audience, name=name, total=stored + 1, actor=actor
        )
    return audience


def _reading_audience_save(audience: UploadedAudience, actor: Actor) -> None:
    audience.status = AudienceStatus.READING
    audience.created_by = actor.user
    audience.save()


def read_job_create(
    *,
    reading: ListReading,
    audience: UploadedAudience,
    name: str,
    total: int,
    actor: Actor,
    params: dict[str, Any] | None = None,
) -> Job:
    """The job that reads ``audience`` (saved, "being read"), in the caller's transaction."""
    from console.jobs.services import job_create

    return job_create(
        kind=reading.job_kind,
        title=gettext("Reading the list “%(name)s”") % {"name": name},
        total=total,
        shards=[(0, total)],
        params={**(params or {}), "audience_id": audience.pk},
        actor=actor,
        target=audience,
    )


def reading_start(
    *, reading: ListReading, audience: A, name: str, params: dict[str, Any], actor: Actor
) -> A:
    """Start the job that reads a list from a platform (no file) into ``audience`` (unsaved):
    the web request answers at once, the page follows the job."""
    with transaction.atomic():
        _reading_audience_save(audience, actor)
        read_job_create(
            reading=reading, audience=audience, name=name, total=1, actor=actor, params=params
        )
    return audience


def audience_upload(
    *, stream: IO[bytes], name: str, size: int, column: str = "", actor: Actor
) -> BulkAudience:
    """An Official Account bulk list from an uploaded file, read by a job."""
    audience = BulkAudience(
        source=AudienceSource.FILE, source_label=name[:255], column=column.strip()[:100]
    )
    return upload_store(
        reading=BULK_READING, audience=audience, stream=stream, name=name, size=size, actor=actor
    )


def read_job_of(*, reading: ListReading, audience: UploadedAudience) -> Job | None:
    """The job that reads (or read) an uploaded audience."""
    jobs = Job.objects.filter(kind=reading.job_kind, params__audience_id=audience.pk)
    return jobs.order_by("-pk").first()


def audience_read_job(audience: BulkAudience) -> Job | None:
    """The job that reads (or read) an uploaded bulk list."""
    return read_job_of(reading=BULK_READING, audience=audience)


def read_follow_context(*, reading: ListReading, audience: UploadedAudience) -> dict[str, Any]:
    """For an audience's page while it is not ready: the read job's bar, or why it failed
    (``admin/tagging/audience_reading.html``)."""
    if audience.status == AudienceStatus.READY:
        return {}
    job = read_job_of(reading=reading, audience=audience)
    if job is None:
        return {}
    progress = job.progress()
    return {
        "read_job": job,
        "job": job,
        "progress": progress,
        "sentence": job_status_sentence(job, progress),
        "read_refusal": job_reason(job) if job.is_final else "",
    }


# ---- the stored file ----------------------------------------------------------------------------


class UploadedFile(io.RawIOBase):
    """The parts of an uploaded file, read as one seekable file, one part in memory at a time
    (an XLSX file is read from its end first: the zip's directory)."""

    def __init__(
        self, audience: UploadedAudience, chunk_model: type[UploadChunk] = BulkUploadChunk
    ) -> None:
        super().__init__()
        self.audience_id = audience.pk
        self.chunks = chunk_model.objects
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
                self.chunks.filter(audience_id=self.audience_id, index=index)
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


# ---- the job ------------------------------------------------------------------------------------


class _Stopped(Exception):
    """The job was paused or cancelled, or the shard taken over: the read is given up."""


class _JobRecorder(ReadRecorder):
    """Each step of the read in a checkpoint of the shard (see the module's docstring)."""

    def __init__(
        self, run: ShardRun, audience: UploadedAudience, file: IO[bytes], reading: ListReading
    ) -> None:
        self.run = run
        self.audience = audience
        self.file = file
        self.reading = reading
        self.last = time.monotonic()

    def attempt(self, read: Callable[[], T]) -> T:
        # A read starts from nothing: what an earlier attempt (a worker killed, the other
        # encoding) wrote is deleted first, under this worker's lease.
        self._checkpoint(self.audience.refusals.all().delete)  # type: ignore[attr-defined]
        return read()

    def due(self) -> bool:
        return time.monotonic() - self.last >= READ_CHECKPOINT_SECONDS

    def record(self, write: Callable[[], None]) -> None:
        self._checkpoint(write)
        if not self.run.keep_going():
            raise _Stopped

    def before_call(self) -> None:
        # Between WeCom's pages of a read: past the slice's end if need be (the read cannot be
        # cut and taken up again), but not past a pause, a cancel or the lease.
        if not self.run.keep_going(within_slice=False):
            raise _Stopped

    def finish(self, write: Callable[[], None]) -> None:
        rest = self.run.end - self.run.position
        model = self.reading.audience_model
        with self.run.checkpoint(advance=rest, done=rest):
            # Still being read: a cancel that got here first (and deleted the file) wins.
            if (
                not model.objects.select_for_update()
                .filter(pk=self.audience.pk, status=AudienceStatus.READING)
                .exists()
            ):
                raise _Stopped
            write()
            self.reading.chunk_model.objects.filter(audience_id=self.audience.pk).delete()

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


def read_given_up(*, reading: ListReading, audience_id: int) -> None:
    """A read that will not go on (failed, cancelled): the audience, if it is not ready, "could
    not be read", its file and its refused values deleted. Safe to run twice."""
    with transaction.atomic():
        audience = (
            reading.audience_model.objects.select_for_update()
            .filter(pk=audience_id)
            .only("pk", "status")
            .first()
        )
        reading.chunk_model.objects.filter(audience_id=audience_id).delete()
        if audience is None or audience.status == AudienceStatus.READY:
            return  # read whole before the job stopped: kept
        audience.refusals.all().delete()  # type: ignore[attr-defined]
        if audience.status != AudienceStatus.FAILED:
            reading.audience_model.objects.filter(pk=audience_id).update(
                status=AudienceStatus.FAILED
            )


def read_stopped(job: Job) -> None:
    """The read kinds' ``on_stopped``: in the transaction that cancels or fails the job."""
    audience_id = (job.params or {}).get("audience_id")
    reading = _READINGS.get(job.kind)
    if reading is not None and audience_id is not None:
        read_given_up(reading=reading, audience_id=audience_id)


def run_read_shard(run: ShardRun) -> None:
    from tagging.bulk.jobs import _is_outage

    reading = _READINGS[run.job.kind]
    audience_id = run.job.params.get("audience_id")
    audience = reading.audience_model.objects.filter(pk=audience_id).first()
    if audience is None or audience.status == AudienceStatus.READY:
        # Deleted meanwhile (the purge), or read already: nothing left to read.
        with run.checkpoint(advance=run.remaining, done=run.remaining):
            pass
        return
    if audience.status == AudienceStatus.FAILED:
        # Resumed by hand after the read was given up: its file went with it.
        run.fail_job(message=reading.gone)
        return
    file = io.BufferedReader(UploadedFile(audience, reading.chunk_model), buffer_size=256 * 1024)
    try:
        reading.read(audience, file, _JobRecorder(run, audience, file, reading), run.job.params)
    except _Stopped:
        return
    except AudienceError as refusal:
        run.fail_job(message=refusal.message, params=refusal.params)
        # Done by the job's on_stopped already, unless a cancel got there first.
        read_given_up(reading=reading, audience_id=audience.pk)
    except PlatformError as error:
        if error.retryable or _is_outage(error):
            # The job waits, backing off, and reads the file again.
            raise PlatformUnavailable(str(error), error.note()) from None
        run.fail_job(message="%(error)s", params={"error": error.note()})


def read_job_actions(job: Job, user: AbstractBaseUser) -> list[tuple[str, str]]:
    reading = _READINGS.get(job.kind)
    audience_id = (job.params or {}).get("audience_id")
    if reading is None or audience_id is None or not user.has_perm(reading.view_permission):
        return []
    return [(reverse(reading.page, args=[audience_id]), gettext("Open the list"))]


def _read_bulk_list(
    audience: BulkAudience, file: IO[bytes], recorder: ReadRecorder, params: dict[str, Any]
) -> Any:
    return audience_read(
        audience=audience, stream=file, name=audience.source_label, recorder=recorder
    )


BULK_READING = ListReading(
    job_kind=READ_KIND,
    label=_("Reading an uploaded list"),
    audience_model=BulkAudience,
    chunk_model=BulkUploadChunk,
    read=_read_bulk_list,
    page="admin:tagging_bulk_start",
    view_permission="tagging.view_bulkaudience",
)
READ_JOB = reading_register(BULK_READING)
