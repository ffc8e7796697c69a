"""Audiences of bulk jobs: parse an upload, a pasted list or a tag's followers, as a stream.

Nothing here holds the whole list: values flow line by line, in chunks, into a temporary
table of the connection; one statement then keeps each OpenID's first appearance and stores
them as ``BulkAudienceMember`` rows numbered 0..n-1 in that order. Refused values are stored,
all of them, with their line and the reason. A file is read by :func:`audience_read`, for the
reading job of an upload (tagging/bulk/reading.py: each step in a checkpoint, the members in
the last one) and for ``tag_users`` (:func:`audience_from_file`, in one transaction); a pasted
list, a tag's followers and a retry are read in one transaction too. Either way an unreadable
file or one without a single OpenID leaves no member behind.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.db import DatabaseError, connection, transaction
from django.utils.translation import gettext_lazy as _

from console.spreadsheets import SpreadsheetRefused, XlsxLimits, xlsx_rows
from tagging.bulk.models import (
    AudienceSource,
    AudienceStatus,
    BulkAudience,
    BulkAudienceMember,
    BulkAudienceRefusal,
)
from wecom.rules import is_openid, validate_openid

T = TypeVar("T")
CHUNK = 5000
PREVIEW_ROWS = 10
PREVIEW_REFUSALS = 100
_HEAD = 64 * 1024
_PASTE_SEPARATORS = re.compile(r"[\s,;，；、]+")
_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # .xls and other pre-2007 Office files


class AudienceError(Exception):
    """Input that cannot become an audience; ``str()`` is the sentence to show."""

    def __init__(self, message: Any, params: dict[str, Any] | None = None) -> None:
        self.message = message
        self.params = params or {}
        super().__init__(str(message))

    def __str__(self) -> str:
        return str(self.message) % self.params if self.params else str(self.message)


def upload_limit() -> int:
    return int(getattr(settings, "BULK_UPLOAD_MAX_BYTES", 50 * 1024 * 1024))


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


TOO_LARGE = _("The file has %(size)s MB; at most %(limit)s MB can be uploaded.")


def _too_large(size: int, limit: int) -> AudienceError:
    return AudienceError(TOO_LARGE, {"size": _megabytes(size), "limit": _megabytes(limit)})


def check_upload_size(size: int) -> None:
    limit = upload_limit()
    if size > limit:
        raise _too_large(size, limit)


# What a form posts besides its file: Django refuses more than DATA_UPLOAD_MAX_MEMORY_SIZE of
# fields anyway, plus the multipart headers.
_FORM_OVERHEAD = 64 * 1024


class UploadSizeLimit(FileUploadHandler):
    """Stops receiving an uploaded file at the upload limit, while it arrives.

    Put first in ``request.upload_handlers`` (before the request's body is read): a request
    whose declared length (CONTENT_LENGTH) can only hold a file over the limit is refused
    before the file's first byte is stored; otherwise the file's bytes are counted as they
    come, and the chunk that would cross the limit is never handed to the handlers that store
    it. The file is then skipped (the rest of its part is read and dropped, the other fields
    of the form are still parsed) and :attr:`refusal` says why, in the usual sentence.
    """

    def __init__(self, request: Any = None, *, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = upload_limit() if limit is None else limit
        self.declared = 0
        self.refusal: AudienceError | None = None

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: bytes,
        encoding: str | None = None,
    ) -> None:
        self.declared = content_length
        return None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        fields_at_most = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if fields_at_most is not None and self.declared > self.limit + fields_at_most + (
            _FORM_OVERHEAD
        ):
            self._refuse(self.declared)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self._refuse(max(self.declared, start + len(raw_data)))
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

    def _refuse(self, size: int) -> None:
        self.refusal = _too_large(size, self.limit)
        raise SkipFile


def upload_size_refusal(request: Any) -> AudienceError | None:
    """Why :class:`UploadSizeLimit` refused the request's file, if it did."""
    for handler in request.upload_handlers:
        if isinstance(handler, UploadSizeLimit) and handler.refusal is not None:
            return handler.refusal
    return None


# ---- reading rows -------------------------------------------------------------------------------

Row = tuple[int, list[str]]  # (line number from 1, cells)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _sniff_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Excel's "Unicode text"
    return "utf-8"


def _text_rows(stream: IO[bytes], encoding: str, seconds: float | None = None) -> Iterator[Row]:
    """The rows of a text file; refused past ``seconds`` (default: :func:`read_seconds`)."""
    seconds = read_seconds() if seconds is None else seconds
    deadline = time.monotonic() + seconds
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    line = 0
    try:
        first = _bounded_line(text, 1)
        delimiter = "\t" if "\t" in first and "," not in first else ","
        reader = csv.reader(_chain_first(first, _bounded_lines(text)), delimiter=delimiter)
        for cells in reader:
            line = reader.line_num
            if not line % 10_000 and time.monotonic() > deadline:
                raise _too_slow(seconds)
            yield line, cells
    except csv.Error as error:
        raise AudienceError(
            _("Line %(line)s of the file cannot be read as CSV (%(error)s)."),
            {"line": line + 1, "error": str(error)},
        ) from None
    finally:
        # The caller owns the stream (it may read it again in another encoding); a generator
        # left unfinished is closed later, when the stream may be closed already.
        with contextlib.suppress(ValueError):
            text.detach()


MAX_LINE_CHARS = 1024 * 1024


def read_seconds() -> float:
    """How long the reading job may read one file: a bound against hostile files, well inside
    a job's slice, which a read never outlasts (a read cut by the slice's end would start over).
    Uploaded lists are read by a worker (tagging/bulk/reading.py), never in a web request."""
    return float(settings.JOBS_SLICE_SECONDS) * 0.8


def _too_slow(seconds: float) -> AudienceError:
    return AudienceError(
        _(
            "The file could not be read within %(seconds)s seconds. Split it into smaller files, "
            "or keep only the column of OpenIDs."
        ),
        {"seconds": f"{seconds:.0f}"},
    )


def _bounded_line(text: IO[str], number: int) -> str:
    """One line, refused past MAX_LINE_CHARS: a 50 MB line is never one string in memory."""
    line = text.readline(MAX_LINE_CHARS + 1)
    if len(line) > MAX_LINE_CHARS:
        raise AudienceError(
            _("Line %(line)s of the file is longer than %(chars)s characters."),
            {"line": number, "chars": f"{MAX_LINE_CHARS:,}"},
        )
    return line


def _bounded_lines(text: IO[str]) -> Iterator[str]:
    number = 1
    while line := _bounded_line(text, number + 1):
        number += 1
        yield line


def _chain_first(first: str, rest: IO[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def _xlsx_rows(stream: IO[bytes], seconds: float) -> Iterator[Row]:
    # Streamed with limits on what the zip unpacks to, rows, columns, cells and time; a DTD
    # or entity is refused (console/spreadsheets.py).
    try:
        yield from xlsx_rows(stream, limits=XlsxLimits(seconds=seconds))
    except SpreadsheetRefused as refusal:
        raise AudienceError(refusal.message, refusal.params) from None


def file_kind(head: bytes, *, name: str) -> str:
    """The file's kind from its first bytes: "xlsx" or a text encoding; refuses the rest.

    What the upload checks before the file is stored: a worker then reads it."""
    if head.startswith(_XLSX_MAGIC):
        return "xlsx"
    if head.startswith(_OLE_MAGIC) or name.lower().endswith(".xls"):
        raise AudienceError(
            _("Old Excel files (.xls) cannot be read. Save the sheet as .xlsx or .csv.")
        )
    encoding = _sniff_encoding(head)
    if encoding == "utf-8" and b"\x00" in head:
        raise AudienceError(
            _("The file is not text, CSV or an Excel .xlsx file. Upload one of those.")
        )
    return encoding


def check_upload_kind(stream: IO[bytes], *, name: str) -> str:
    """:func:`file_kind` of a seekable file, left at its start."""
    stream.seek(0)
    kind = file_kind(stream.read(_HEAD), name=name)
    stream.seek(0)
    return kind


def file_rows(
    stream: IO[bytes], *, name: str, seconds: float | None = None
) -> tuple[str, Iterator[Row]]:
    """The file's format or encoding, and its rows. ``stream`` must be seekable.

    Reading is refused past ``seconds`` (default: :func:`read_seconds`)."""
    seconds = read_seconds() if seconds is None else seconds
    head = stream.read(_HEAD)
    stream.seek(0)
    kind = file_kind(head, name=name)
    if kind == "xlsx":
        return kind, _xlsx_rows(stream, seconds)
    return kind, _text_rows(stream, kind, seconds)


# ---- from rows to values ------------------------------------------------------------------------


def _is_header_cell(cell: str) -> bool:
    return "openid" in cell.strip().lower().replace("_", "").replace(" ", "")


def row_values(rows: Iterable[Row], *, column: str = "") -> Iterator[tuple[int, str]]:
    """The values to consider, with their line numbers; blank values included (as "").

    With ``column``, the first non-blank row is the header and the column of that name holds the
    OpenIDs. Without, a one-column file is one OpenID per line (a first line naming "openid" is a
    header), and a file of several columns must have exactly one header naming "openid".
    """
    wanted = column.strip().lower()
    index: int | None = None
    for line, cells in rows:
        if index is None:
            if not any(cell.strip() for cell in cells):
                yield line, ""
                continue
            names = [cell.strip() for cell in cells]
            if wanted:
                matches = [i for i, name in enumerate(names) if name.lower() == wanted]
                if not matches:
                    raise AudienceError(
                        _("The file has no column “%(column)s”. Its columns: %(columns)s."),
                        {"column": column, "columns": "、".join(n for n in names if n) or "—"},
                    )
                index = matches[0]
                continue
            filled = [i for i, name in enumerate(names) if name]
            if len(filled) == 1:
                index = filled[0]
                if is_openid(names[index]) or not _is_header_cell(names[index]):
                    yield line, names[index]
                continue
            matches = [i for i, name in enumerate(names) if _is_header_cell(name)]
            if len(matches) != 1:
                raise AudienceError(
                    _(
                        "The file has several columns: choose the one holding the OpenIDs. "
                        "Its columns: %(columns)s."
                    ),
                    {"columns": "、".join(n for n in names if n) or "—"},
                )
            index = matches[0]
            continue
        yield line, cells[index].strip() if index < len(cells) else ""


def text_values(text: str) -> Iterator[tuple[int, str]]:
    """A pasted list: OpenIDs separated by new lines, spaces, commas or semicolons."""
    for line, raw in enumerate(io.StringIO(text), start=1):
        tokens = [token for token in _PASTE_SEPARATORS.split(raw.strip()) if token]
        if not tokens:
            yield line, ""
        for token in tokens:
            yield line, token


# ---- writing the audience -----------------------------------------------------------------------


class ReadRecorder:
    """Where a read writes what it has read, as it goes.

    This one is for a read inside one transaction (a pasted list, a tag's followers, a retry,
    ``tag_users``): everything is written straight away and commits, or not, with the rest.
    The reading job's recorder (tagging/bulk/reading.py) writes each step in a checkpoint of
    its shard instead, so that the bar moves and a worker that lost its lease writes nothing.
    """

    def attempt(self, read: Callable[[], T]) -> T:
        """One reading of the file (a second one in another encoding follows a decode error):
        what it wrote is undone if it fails."""
        with transaction.atomic():
            return read()

    def due(self) -> bool:
        """Whether to record the progress now (asked every few thousand values)."""
        return False

    def record(self, write: Callable[[], None]) -> None:
        """A step of the read (refused values to write) and the progress so far."""
        write()

    def before_call(self) -> None:
        """Before each platform call of a read (WeCom's pages of a customer list's followers),
        made with no transaction open: the reading job's recorder checks the job still runs."""

    def finish(self, write: Callable[[], None]) -> None:
        """The read's last step: the members and the counts, the audience ready."""
        write()


_TICK = 4096  # values between two questions to the recorder


class _AudienceWriter:
    def __init__(self, audience: BulkAudience, recorder: ReadRecorder) -> None:
        self.audience = audience
        self.recorder = recorder
        self.members: list[str] = []
        self.refusals: list[BulkAudienceRefusal] = []
        self.lines = self.valid = self.blanks = self.refused = 0
        self.staging = _MemberStaging()

    def add(self, line: int, value: str) -> None:
        self.lines += 1
        if not self.lines % _TICK and self.recorder.due():
            self._flush_members()
            self.recorder.record(self._flush_refusals)
        if not value:
            self.blanks += 1
            return
        if is_openid(value):
            self.valid += 1
            self.members.append(value)
            if len(self.members) >= CHUNK:
                self._flush_members()
            return
        self.refused += 1
        reason = ""
        try:
            validate_openid(value)
        except ValidationError as error:
            reason = " ".join(str(message) for message in error.messages)
        self.refusals.append(
            BulkAudienceRefusal(
                audience=self.audience, line=line, value=value[:200], reason=reason[:300]
            )
        )
        if len(self.refusals) >= CHUNK:
            self.recorder.record(self._flush_refusals)

    def _flush_members(self) -> None:
        if self.members:
            self.staging.append([(openid,) for openid in self.members])
        self.members = []

    def _flush_refusals(self) -> None:
        if self.refusals:
            BulkAudienceRefusal.objects.bulk_create(self.refusals)
        self.refusals = []

    def finish(self) -> BulkAudience:
        self._flush_members()
        self.recorder.finish(self._finish)
        return self.audience

    def _finish(self) -> None:
        self._flush_refusals()
        accepted = self.staging.members_insert(audience_id=self.audience.pk)
        if not accepted:
            # Raised inside the last step's transaction: nothing of the list is kept.
            raise self._no_openid()
        self._ready(accepted)

    def _no_openid(self) -> AudienceError:
        return AudienceError(
            _("No OpenID was found (%(refused)s value(s) refused). Check the file or the column."),
            {"refused": self.refused},
        )

    def _ready(self, accepted: int) -> None:
        """The counts, and the audience ready."""
        self._save_counts(accepted, AudienceStatus.READY)

    def _save_counts(self, accepted: int, status: str) -> None:
        audience = self.audience
        audience.lines = self.lines
        audience.accepted = accepted
        audience.duplicates = self.valid - accepted
        audience.blanks = self.blanks
        audience.refused = self.refused
        audience.status = status
        audience.save(
            update_fields=[
                "lines",
                "accepted",
                "duplicates",
                "blanks",
                "refused",
                "encoding",
                "status",
            ]
        )

    def discard(self) -> None:
        """A read given up: its staging table goes (the connection may serve other reads)."""
        self.staging.discard()


# What a list holds, staged while it is read: a temporary table of this connection, without any
# index to keep up while rows arrive, numbered in the order the rows were read (``seq``),
# duplicates included. One statement then keeps each value's first appearance and numbers the
# audience's rows 0..n-1 in that order. Inserting row by row into the members table instead,
# its unique index let the database drop duplicates, but random OpenIDs made each insert a
# random walk in that index (SQLite grew 19x for 10x the rows) and the rows had to be renumbered
# afterwards. Bulk lists stage OpenIDs; WeCom customer lists stage (userid, external_userid)
# pairs, the customers of lines without a member, and WeCom's followers of them
# (tagging/customers/audience.py).


class Staging:
    """Rows of text ``columns``, with a ``seq``, in a temporary table of this connection.

    Temporary tables are the connection's own: parallel reads never meet. Made in a transaction
    (a pasted list, ``tag_users``), the table goes with it if it is rolled back; made outside one
    (the reading job, which commits its checkpoints in between), it lives as long as the
    connection, so a worker killed in the middle leaves nothing behind. The DROP first only
    matters if a previous read on this connection was interrupted after its table was made.
    """

    def __init__(self, name: str, columns: tuple[str, ...]) -> None:
        self.name = name
        self.columns = columns
        self.vendor = connection.vendor
        self.staged = 0
        if self.vendor == "postgresql":
            # "C": grouping ids (ASCII) byte by byte, not by a locale's rules.
            schema = "pg_temp"
            body = ", ".join(
                [
                    "seq bigint NOT NULL",
                    *(f'{column} text COLLATE "C" NOT NULL' for column in columns),
                ]
            )
        else:
            # The rowid: numbered in the order of the inserts when no seq is given.
            schema = "temp"
            body = ", ".join(
                ["seq INTEGER PRIMARY KEY", *(f"{column} text NOT NULL" for column in columns)]
            )
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {schema}.{name}")
            cursor.execute(f"CREATE TEMPORARY TABLE {name} ({body})")

    def append(self, rows: list[tuple[str, ...]], *, seqs: list[int] | None = None) -> None:
        """Stage ``rows`` (values of the columns), numbered after those staged so far, or
        ``seqs`` when given (ascending, as read). Values must have passed their validator:
        letters, digits and a few of "-_@.", nothing to escape in COPY's text format."""
        if not rows:
            return
        first = self.staged
        self.staged += len(rows)
        # Read outside a transaction (the reading job commits its checkpoints in between), each
        # chunk is a transaction of its own: on SQLite each row would otherwise commit by
        # itself (twice the read's CPU); on PostgreSQL it need not wait for the disk, the rows
        # being a temporary table's, gone with the connection anyway (each COPY's commit
        # waiting for the WAL flush made the read three times as long).
        outermost = not connection.in_atomic_block
        columns = ", ".join(self.columns)
        with transaction.atomic(), connection.cursor() as cursor:
            if self.vendor == "postgresql":
                if outermost:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
                # COPY, one round trip per chunk: executemany cost ~5x more per row.
                numbers = seqs if seqs is not None else range(first, first + len(rows))
                text = "".join(
                    f"{number}\t{chr(9).join(row)}\n"
                    for number, row in zip(numbers, rows, strict=True)
                )
                with cursor.cursor.copy(f"COPY {self.name} (seq, {columns}) FROM STDIN") as copy:
                    copy.write(text)
            elif seqs is None:
                marks = ", ".join(["%s"] * len(self.columns))
                cursor.executemany(
                    f"INSERT INTO {self.name} ({columns}) VALUES ({marks})",  # noqa: S608
                    rows,
                )
            else:
                marks = ", ".join(["%s"] * (len(self.columns) + 1))
                cursor.executemany(
                    f"INSERT INTO {self.name} (seq, {columns}) VALUES ({marks})",  # noqa: S608
                    [(number, *row) for number, row in zip(seqs, rows, strict=True)],
                )

    def discard(self) -> None:
        # After an error the transaction around may be unusable; it is rolled back then,
        # and the table with it.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {self.name}")


_STAGING = "tagging_audience_staging"

# The OpenIDs first seen after a staged row (``after``: its seq; -1 for all), numbered on from
# ``offset`` in the order they were first seen. A list read whole runs it once; a list sent
# while it is read (tag_users) once per part, the last part grouping every row staged.
_MEMBERS_FROM_STAGING = (
    "INSERT INTO {table} ({audience}, {position}, {openid}) "
    "SELECT %s, %s + ROW_NUMBER() OVER (ORDER BY first_seq) - 1, openid "
    "FROM (SELECT openid, MIN(seq) AS first_seq FROM {staging} GROUP BY openid) AS firsts "
    "WHERE first_seq > %s"
)


class _MemberStaging(Staging):
    """Accepted OpenIDs of a bulk list, staged (see :class:`Staging`)."""

    def __init__(self) -> None:
        super().__init__(_STAGING, ("openid",))

    def members_insert(self, *, audience_id: int) -> int:
        """Insert the members (first appearances, numbered in order); drop the staging table."""
        accepted = self.members_insert_after(audience_id=audience_id, after=-1, offset=0)
        self.drop()
        return accepted

    def members_insert_after(self, *, audience_id: int, after: int, offset: int) -> int:
        """Insert the OpenIDs first staged after the row ``after`` (a seq), positions from
        ``offset``; how many."""
        quote = connection.ops.quote_name
        sql = _MEMBERS_FROM_STAGING.format(
            table=quote(BulkAudienceMember._meta.db_table),
            audience=quote("audience_id"),
            position=quote("position"),
            openid=quote("openid"),
            staging=_STAGING,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [audience_id, offset, after])
            return cursor.rowcount

    def last_seq(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX(seq) FROM {self.name}")  # noqa: S608
            last = cursor.fetchone()[0]
        return -1 if last is None else int(last)


def _fill(
    audience: BulkAudience,
    values: Iterable[tuple[int, str]],
    recorder: ReadRecorder | None = None,
) -> BulkAudience:
    writer = _AudienceWriter(audience, recorder or ReadRecorder())
    try:
        for line, value in values:
            writer.add(line, value)
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


def audience_read(
    *, audience: BulkAudience, stream: IO[bytes], name: str, recorder: ReadRecorder
) -> BulkAudience:
    """Read an uploaded file (CSV, TXT or XLSX; seekable ``stream``) into ``audience``.

    The one reader of files: the reading job (tagging/bulk/reading.py) and ``tag_users``
    (:func:`audience_from_file`) differ only by their ``recorder``. Raises
    :class:`AudienceError` with the sentence to show.
    """
    seconds = read_seconds()
    fmt, rows = file_rows(stream, name=name, seconds=seconds)
    attempts = [fmt] if fmt != "utf-8" else ["utf-8", "gb18030"]
    for number, encoding in enumerate(attempts):
        if number:
            stream.seek(0)
            rows = _text_rows(stream, encoding, seconds)
        audience.encoding = encoding
        try:
            return recorder.attempt(
                lambda rows=rows: _fill(
                    audience, row_values(rows, column=audience.column), recorder
                )
            )
        except UnicodeDecodeError:
            continue  # not UTF-8: Chinese Excel saves CSV as GB18030
    raise AudienceError(
        _("The file's text encoding cannot be read. Save it as UTF-8 (or GB18030) CSV.")
    )


def audience_from_file(
    *, stream: IO[bytes], name: str, size: int, column: str = "", user: AbstractBaseUser
) -> BulkAudience:
    """An audience from a file read here and now (``tag_users``: no web request to outlast),
    by the reading job's own reader; whole or not at all."""
    check_upload_size(size)
    with transaction.atomic():
        audience = BulkAudience.objects.create(
            source=AudienceSource.FILE,
            source_label=name[:255],
            column=column.strip()[:100],
            file_size=size,
            created_by=user,
        )
        return audience_read(audience=audience, stream=stream, name=name, recorder=ReadRecorder())


class _PartsWriter(_AudienceWriter):
    """A list written part by part as it is read, each part committed with what
    ``publish(accepted, final)`` does with it (the job's next shards): the OpenIDs first seen in
    the part, numbered on. The first part is small (``FIRST_PART`` lines staged), so the first
    calls go out at once; the next boundary is at ``SECOND_PART`` lines, then ``PART_GROWTH``
    times the last: each part groups every row staged so far, and that growth keeps the
    grouping within ~1.7 times one pass over the list."""

    def __init__(
        self,
        audience: BulkAudience,
        *,
        publish: Callable[[int, bool], None],
        alive: Callable[[], None],
    ) -> None:
        super().__init__(audience, ReadRecorder())
        self.publish = publish
        self.alive = alive
        self.next_part = FIRST_PART
        self.after = -1
        self.accepted = 0

    def _flush_members(self) -> None:
        super()._flush_members()
        self.alive()
        if self.staging.staged >= self.next_part:
            self._part(final=False)
            self.next_part = max(self.staging.staged * PART_GROWTH, SECOND_PART)

    def _part(self, *, final: bool) -> None:
        last = self.staging.last_seq()
        with transaction.atomic():
            self._flush_refusals()
            self.accepted += self.staging.members_insert_after(
                audience_id=self.audience.pk, after=self.after, offset=self.accepted
            )
            self.publish(self.accepted, final)
            if not final:
                # The counts so far: a list whose reading stops after this part (a bad line,
                # its reader killed) says what it holds. After publish, which locks the job:
                # a job stopped meanwhile locks the job, then marks the list, in that order too.
                self._save_counts(self.accepted, AudienceStatus.READING)
        self.after = last

    def finish(self) -> BulkAudience:
        super()._flush_members()
        if not self.accepted and not self.staging.staged:
            self._flush_refusals()
            raise self._no_openid()
        self._part(final=True)
        self.staging.drop()
        self._ready(self.accepted)
        return self.audience


# Lines staged before the first part (a file shorter than that is one part), the second
# boundary, and how much larger each boundary after it is than the last. Measured
# (bench/bulk_whole_path.py, 2 cores): a first part of 10,000 lines starts the job 0.03-0.05 s
# after the list's row, and at 100,000 lines the whole path beat reading the list whole first
# (0.3 s of 3 s); a first part of 50,000 lines had lost to it (0.94 against 1.00 of
# wechatpy's loop). From the second part on, sizes matter for the grouping, not the start.
FIRST_PART = 10_000
SECOND_PART = 50_000
PART_GROWTH = 3


def _text_encoding(stream: IO[bytes], kind: str) -> str:
    """The encoding to read a text file with, decided before any line is used: UTF-8 unless a
    byte says otherwise (then GB18030, as Chinese Excel saves CSV). A list sent while it is read
    cannot start over in another encoding halfway, as :func:`audience_read` does."""
    if kind != "utf-8":
        return kind
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while block := stream.read(1024 * 1024):
            decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "gb18030"
    finally:
        stream.seek(0)
    return "utf-8"


@contextlib.contextmanager
def _connection_kept() -> Iterator[None]:
    """Keep this connection open while a staging table lives in it across commits.

    Queuing a task through django-q2's database broker first closes the connections Django
    deems old (``close_old_connections``): with ``CONN_MAX_AGE`` 0 (SQLite's default) that is
    every connection, and a temporary table goes with its connection. A broken connection is
    still closed (and the read fails with the database's error)."""
    connection.ensure_connection()
    saved = connection.close_at
    connection.close_at = None
    try:
        yield
    finally:
        connection.close_at = saved


def audience_read_in_parts(
    *,
    audience: BulkAudience,
    stream: IO[bytes],
    name: str,
    publish: Callable[[int, bool], None],
    alive: Callable[[], None],
) -> BulkAudience:
    """Read a file (seekable ``stream``) into ``audience``, committing its members part by part:
    after each part, in its transaction, ``publish(accepted so far, final)``; ``alive()`` after
    every chunk of lines (it may raise to stop the read). Call it in no transaction. The
    audience is READY at the end; raises :class:`AudienceError` with the sentence to show (the
    parts committed before stay: the caller decides what becomes of them)."""
    seconds = read_seconds()
    kind = file_kind(stream.read(_HEAD), name=name)
    stream.seek(0)
    audience.encoding = kind
    if kind == "xlsx":
        rows = _xlsx_rows(stream, seconds)
    else:
        audience.encoding = _text_encoding(stream, kind)
        rows = _text_rows(stream, audience.encoding, seconds)
    with _connection_kept():
        writer = _PartsWriter(audience, publish=publish, alive=alive)
        try:
            for line, value in row_values(rows, column=audience.column):
                writer.add(line, value)
            return writer.finish()
        finally:
            writer.discard()


def audience_from_text(*, text: str, user: AbstractBaseUser) -> BulkAudience:
    check_upload_size(len(text.encode("utf-8")))
    with transaction.atomic():
        audience = BulkAudience.objects.create(
            source=AudienceSource.PASTE, source_label="", created_by=user
        )
        return _fill(audience, text_values(text))


def _follower_values(client: Any, tag_id: int) -> Iterator[tuple[int, str]]:
    next_openid = ""
    number = 0
    while True:
        page = client.tag_followers(tag_id=tag_id, next_openid=next_openid)
        if not page.count or not page.openids:
            return
        for openid in page.openids:
            number += 1
            yield number, openid
        if not page.next_openid or page.next_openid == next_openid:
            return
        next_openid = page.next_openid


def audience_from_tag(*, tag: Any, user: AbstractBaseUser) -> BulkAudience:
    """The followers of an Official Account tag, page by page (``user/tag/get``, 10,000 a page)."""
    from wecom.connections import client_for

    client = client_for(tag.account)
    # The pages are read with no transaction open (a platform call never holds one) into a
    # spooled file, memory flat; then the list is written in one transaction, whole or not at all.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for _number, openid in _follower_values(client, tag.tag_id):
            spool.write(openid + "\n")
        spool.seek(0)
        with transaction.atomic():
            audience = BulkAudience.objects.create(
                source=AudienceSource.TAG, source_label=str(tag)[:255], created_by=user
            )
            return _fill(
                audience, ((number, line.rstrip("\n")) for number, line in enumerate(spool, 1))
            )


def audience_from_openids(
    *, openids: Iterable[str], label: str, user: AbstractBaseUser
) -> BulkAudience:
    """An audience of OpenIDs the console has already (the failed ones of a job)."""
    with transaction.atomic():
        audience = BulkAudience.objects.create(
            source=AudienceSource.RETRY, source_label=label[:255], created_by=user
        )
        return _fill(audience, ((number, openid) for number, openid in enumerate(openids, 1)))


# The OpenIDs a job passed to the platform: in a shard's processed range [start, position) and
# not among the job's failed items; numbered again from 0 in their old order. One statement,
# whatever the size of the list.
_MEMBERS_OF_SUCCESSES = (
    "INSERT INTO {members} ({audience}, {position}, {openid}) "
    "SELECT %s, ROW_NUMBER() OVER (ORDER BY m.{position}) - 1, m.{openid} "
    "FROM {members} m JOIN {shards} s ON s.{job} = %s "
    "AND m.{position} >= s.{start} AND m.{position} < s.{shard_position} "
    # NOT IN an uncorrelated list: both databases build it once (a hash or a temporary
    # b-tree), where a correlated NOT EXISTS scanned the job's failures for every member.
    "WHERE m.{audience} = %s AND m.{openid} NOT IN ("
    "SELECT f.{item} FROM {failures} f WHERE f.{job} = %s)"
)


def audience_of_job_successes(
    *, job_id: int, audience_id: int, label: str, user: AbstractBaseUser
) -> BulkAudience:
    """An audience of the OpenIDs that job ``job_id`` (over ``audience_id``) changed, for
    undoing it. Its caller holds the transaction."""
    from console.models import JobItemFailure, JobShard

    audience = BulkAudience.objects.create(
        source=AudienceSource.UNDO, source_label=label[:255], created_by=user
    )
    quote = connection.ops.quote_name
    sql = _MEMBERS_OF_SUCCESSES.format(
        members=quote(BulkAudienceMember._meta.db_table),
        shards=quote(JobShard._meta.db_table),
        failures=quote(JobItemFailure._meta.db_table),
        audience=quote("audience_id"),
        position=quote("position"),
        openid=quote("openid"),
        job=quote("job_id"),
        start=quote("start"),
        shard_position=quote("position"),
        item=quote("item"),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [audience.pk, job_id, audience_id, job_id])
        audience.accepted = audience.lines = cursor.rowcount
    audience.save(update_fields=["accepted", "lines"])
    return audience


# ---- reading it back ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AudiencePreview:
    audience: BulkAudience
    first_rows: list[str]
    refusals: list[BulkAudienceRefusal]


def audience_preview(*, audience: BulkAudience) -> AudiencePreview:
    return AudiencePreview(
        audience=audience,
        first_rows=list(
            audience.members.order_by("position").values_list("openid", flat=True)[:PREVIEW_ROWS]
        ),
        refusals=list(audience.refusals.order_by("line", "pk")[:PREVIEW_REFUSALS]),
    )


def audience_openids(*, audience_id: int, start: int, end: int) -> list[str]:
    """The OpenIDs at positions [start, end), in order."""
    return list(
        BulkAudienceMember.objects.filter(
            audience_id=audience_id, position__gte=start, position__lt=end
        )
        .order_by("position")
        .values_list("openid", flat=True)
    )


def audience_refusal_rows(*, audience: BulkAudience) -> Iterator[tuple[int, str, str]]:
    """Every refused value (line, value, reason), streamed for a CSV download."""
    yield from (
        audience.refusals.order_by("line", "pk")
        .values_list("line", "value", "reason")
        .iterator(chunk_size=2000)
    )
