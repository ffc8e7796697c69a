"""Spreadsheets in and out: the one CSV writer, and an XLSX reader with limits.

Writing. Every CSV the console writes (a job's failed items, a list's refused lines, the chatbot
export, any report) goes through :func:`csv_lines` (a download through :func:`csv_download`,
which streams it): UTF-8 with a byte-order mark (Excel reads
Chinese correctly only with it) and every text cell that a spreadsheet would run as a formula
neutralised (OWASP's rule: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return gets a leading ``'``). :func:`cell_restore` undoes it exactly, for imports of such files.

Reading. An XLSX file is a zip of XML written by programs we do not control. :func:`xlsx_rows`
reads the first sheet with defusedxml's parser (a DTD, an entity or an external reference is
refused before anything is expanded) and streams it row by row, within limits on what the zip
unpacks to, the sheet's rows, columns and row numbers, each cell's and shared string's length,
and the reading time. openpyxl's read-only mode pads every row to the sheet's declared
dimension and keeps every shared string as a Python object: a 1.5 KB sheet could cost
gigabytes. Each refusal is a :class:`SpreadsheetRefused` sentence.
"""

from __future__ import annotations

import csv
import math
import posixpath
import struct
import time
import zipfile
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any
from xml.parsers.expat import ExpatError
from xml.sax import SAXException

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as xml_fromstring
from defusedxml.expatreader import DefusedExpatParser
from django.http import StreamingHttpResponse
from django.utils.translation import gettext_lazy

# ---- writing ------------------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def cell_neutralise(value: Any) -> Any:
    """A text cell a spreadsheet will not run: ``'`` before a formula start (and before a
    ``'`` already followed by one, so that :func:`cell_restore` is exact)."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(FORMULA_STARTS) or (
        value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS)
    ):
        return "'" + value
    return value


def cell_restore(value: str) -> str:
    """The text :func:`cell_neutralise` was given."""
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS):
        return value[1:]
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The CSV text, line by line (for a streaming response): BOM, header, rows."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield BOM + writer.writerow([cell_neutralise(cell) for cell in header])
    for row in rows:
        yield writer.writerow([cell_neutralise(cell) for cell in row])


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    return "".join(csv_lines(header, rows))


def csv_download(
    header: Iterable[Any], rows: Iterable[Iterable[Any]], *, filename: str
) -> StreamingHttpResponse:
    """A CSV file the browser saves as ``filename``, streamed line by line (rows may be a
    database iterator: nothing is held in memory)."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# ---- reading XLSX -------------------------------------------------------------------------------


class SpreadsheetRefused(Exception):
    """The file cannot be read within the limits; ``str()`` is the sentence to show.

    ``message`` (a lazy sentence) and ``params`` are kept apart too, so that a worker can store
    the refusal untranslated and each reader sees it in their own language (console/notes.py).
    """

    def __init__(self, message: Any, params: dict[str, Any] | None = None) -> None:
        self.message = message
        self.params = params or {}
        # str(): the sentence in the language active where it was raised, as before.
        super().__init__(str(message) % self.params if self.params else str(message))


@dataclass(frozen=True)
class XlsxLimits:
    # Everything in the zip, once unpacked; each part of it we read.
    unpacked_bytes: int = 256 * 1024 * 1024
    part_bytes: int = 8 * 1024 * 1024  # workbook.xml, its relations
    shared_strings_bytes: int = 64 * 1024 * 1024
    shared_strings: int = 1_100_000
    entries: int = 1000
    # Excel's own: 1,048,576 rows, 32,767 characters in a cell. Columns: ours, generous for an
    # export with many columns (Excel's 16,384 would be rows of 16,384 cells each).
    rows: int = 1_048_576
    columns: int = 1000
    cell_chars: int = 32_767
    # Bytes of XML without a single element or text between them: a giant tag or attribute.
    bytes_without_event: int = 4 * 1024 * 1024
    seconds: float = 18.0


_CHUNK = 64 * 1024
_EOCD = b"PK\x05\x06"


def _refused(message: Any, **params: Any) -> SpreadsheetRefused:
    return SpreadsheetRefused(message, params)


def _unreadable() -> SpreadsheetRefused:
    return _refused(gettext_lazy("The Excel file cannot be read. Save it again as .xlsx or .csv."))


def _declarations_refused() -> SpreadsheetRefused:
    return _refused(
        gettext_lazy(
            "The Excel file holds a document type declaration or entities, which Excel never "
            "writes; it is refused. Save it again from Excel as .xlsx or .csv."
        )
    )


def _entry_count(stream: IO[bytes]) -> int:
    """The number of files the zip's end record declares, read before zipfile builds an
    object for each (a 50 MB zip can declare a million)."""
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(max(0, size - 65_557))
    tail = stream.read()
    stream.seek(0)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 22:
        raise _unreadable()
    (entries,) = struct.unpack("<H", tail[at + 10 : at + 12])
    return entries


class _Clock:
    def __init__(self, limits: XlsxLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise _refused(
                gettext_lazy(
                    "The Excel file could not be read within %(seconds)d seconds. Save the "
                    "column of OpenIDs alone as .csv, or split the file."
                ),
                seconds=math.ceil(self.limits.seconds),
            )


def _local(name: str) -> str:
    return name.rpartition(":")[2] if ":" in name else name


class _Strings:
    """The shared strings, compact: UTF-8 bytes end to end and where each ends."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends = array("Q")

    def add(self, text: str) -> None:
        self.data += text.encode("utf-8")
        self.ends.append(len(self.data))

    def __len__(self) -> int:
        return len(self.ends)

    def get(self, index: int) -> str:
        if not 0 <= index < len(self.ends):
            return ""
        start = self.ends[index - 1] if index else 0
        return self.data[start : self.ends[index]].decode("utf-8")


def _cell_too_long(limits: XlsxLimits) -> SpreadsheetRefused:
    return _refused(
        gettext_lazy(
            "A cell of the Excel file holds more than %(chars)s characters; Excel itself allows "
            "no more."
        ),
        chars=f"{limits.cell_chars:,}",
    )


class _Handler:
    """What both parts share: the text of the current cell, bounded; a count of elements for
    the reader's limit on bytes without one.

    Its methods are expat's own callbacks (name, attributes as a dict), set on the parser that
    defusedxml configured: SAX's layer over them, and every test not on the hot path, made a
    sheet several times slower to read.
    """

    def __init__(self, limits: XlsxLimits) -> None:
        self.limits = limits
        self.text: list[str] = []
        self.text_length = 0
        self.capturing = False
        self.event = 0

    def chars(self, content: str) -> None:
        if self.capturing:
            self.text_length += len(content)
            if self.text_length > self.limits.cell_chars:
                raise _cell_too_long(self.limits)
            self.text.append(content)
        else:
            self.event += 1

    def take_text(self) -> str:
        text = "".join(self.text) if len(self.text) != 1 else self.text[0]
        self.text = []
        self.text_length = 0
        return text


class _SharedStringsHandler(_Handler):
    def __init__(self, limits: XlsxLimits, strings: _Strings) -> None:
        super().__init__(limits)
        self.strings = strings
        self.in_phonetic = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.event += 1
        if ":" in name:
            name = _local(name)
        if name == "t":
            self.capturing = not self.in_phonetic
        elif name == "si":
            self.text = []
            self.text_length = 0
        elif name == "rPh":
            self.in_phonetic = True

    def end(self, name: str) -> None:
        if ":" in name:
            name = _local(name)
        if name == "t":
            self.capturing = False
        elif name == "si":
            if len(self.strings) >= self.limits.shared_strings:
                raise _refused(
                    gettext_lazy("The Excel file holds more than %(count)s different texts."),
                    count=f"{self.limits.shared_strings:,}",
                )
            self.strings.add(self.take_text())
        elif name == "rPh":
            self.in_phonetic = False


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _column_index(reference: str) -> int:
    """0 for "A1", 25 for "Z7", 26 for "AA1"; -1 if there are no letters."""
    letters = reference.rstrip("0123456789")
    if len(letters) == 1:
        index = _LETTERS.find(letters)
        return index if index >= 0 else -1
    if not letters or len(letters) > 3:
        return -1 if not letters else 1 << 20
    index = 0
    for char in letters:
        position = _LETTERS.find(char)
        if position < 0:
            return -1
        index = index * 26 + position + 1
    return index - 1


def _row_number(reference: str) -> int | None:
    digits = reference.lstrip(_LETTERS)
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 12 else None


def _number_text(raw: str) -> str:
    text = raw.strip()
    if len(text) > 40:
        return text
    try:
        return str(int(text))
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return str(number)


class _SheetHandler(_Handler):
    def __init__(self, limits: XlsxLimits, strings: _Strings) -> None:
        super().__init__(limits)
        self.strings = strings
        self.done: list[tuple[int, list[str]]] = []
        self.row_number = 0
        self.cells: list[str] | None = None
        self.column = -1
        self.cell_type = "n"
        self.value = ""
        self.in_inline = False
        self.in_data = False
        self.max_columns = limits.columns
        self.max_rows = limits.rows

    def _too_many_rows(self, number: int) -> SpreadsheetRefused:
        return _refused(
            gettext_lazy(
                "The Excel sheet numbers a row %(row)s; a sheet has at most %(rows)s rows. "
                "Copy the data into a new sheet and save it again."
            ),
            row=f"{number:,}",
            rows=f"{self.max_rows:,}",
        )

    def _too_many_columns(self, count: int) -> SpreadsheetRefused:
        return _refused(
            gettext_lazy(
                "The Excel sheet has %(count)s columns; at most %(columns)s can be read. Keep "
                "the column of OpenIDs and save it again."
            ),
            count=f"{count:,}",
            columns=f"{self.max_columns:,}",
        )

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.event += 1
        if ":" in name:
            name = _local(name)
        if name == "c":
            if self.cells is None:
                return
            reference = attrs.get("r")
            column = _column_index(reference) if reference else -1
            self.column = column if column >= 0 else self.column + 1
            if self.column >= self.max_columns:
                raise self._too_many_columns(self.column + 1)
            self.cell_type = attrs.get("t", "n")
            self.value = ""
        elif name == "v":
            if self.cells is not None:
                self.text = []
                self.text_length = 0
                self.capturing = True
        elif name == "row":
            if self.in_data:
                self._row_start(attrs.get("r"))
        elif name == "is":
            self.in_inline = True
            self.text = []
            self.text_length = 0
        elif name == "t":
            self.capturing = self.in_inline
        elif name == "sheetData":
            self.in_data = True
        elif name == "dimension":
            self._check_dimension(attrs.get("ref", ""))

    def _row_start(self, given: str | None) -> None:
        number = self.row_number + 1
        if given is not None:
            if not (given.isascii() and given.isdigit() and len(given) < 12):
                raise _unreadable()
            number = int(given)
        if number > self.max_rows:
            raise self._too_many_rows(number)
        self.row_number = number
        self.cells = []
        self.column = -1

    def _check_dimension(self, ref: str) -> None:
        last = ref.rpartition(":")[2]
        row = _row_number(last) if last.isascii() else None
        if row is not None and row > self.max_rows:
            raise self._too_many_rows(row)
        if _column_index(last) + 1 > self.max_columns:
            raise self._too_many_columns(_column_index(last) + 1)

    def end(self, name: str) -> None:
        if ":" in name:
            name = _local(name)
        if name == "c":
            cells = self.cells
            if cells is None:
                return
            text = self._cell_text()
            if self.column == len(cells):
                cells.append(text)
            elif self.column > len(cells):
                cells.extend([""] * (self.column - len(cells)))
                cells.append(text)
            else:
                cells[self.column] = text
        elif name == "v":
            if self.capturing:
                self.capturing = False
                self.value = self.take_text()
        elif name == "row":
            if self.cells is not None:
                self.done.append((self.row_number, self.cells))
                self.cells = None
        elif name == "t":
            self.capturing = False
        elif name == "is":
            self.in_inline = False
            self.value = self.take_text()
            self.cell_type = "inlineStr"
        elif name == "sheetData":
            self.in_data = False

    def _cell_text(self) -> str:
        kind, value = self.cell_type, self.value
        if kind == "s":
            try:
                return self.strings.get(int(value))
            except ValueError:
                return ""
        if kind == "n":
            return _number_text(value) if value else ""
        if kind == "b":
            return "True" if value.strip() == "1" else "False"
        return value  # inlineStr, str (a formula's text), e (an error), d (a date as text)


class _Parser(DefusedExpatParser):
    """defusedxml's expat reader (DTDs, entities and external references refused, by the
    handlers its ``reset`` installs) calling our handler's callbacks directly."""

    def __init__(self, handler: _Handler) -> None:
        super().__init__(forbid_dtd=True, forbid_entities=True, forbid_external=True)
        self._fast = handler

    def reset(self) -> None:
        super().reset()
        parser = self._parser
        parser.StartElementHandler = self._fast.start
        parser.EndElementHandler = self._fast.end
        parser.CharacterDataHandler = self._fast.chars
        parser.buffer_text = True


def _parse(
    source: IO[bytes], handler: _Handler, clock: _Clock, limits: XlsxLimits
) -> Iterator[None]:
    """Feed ``source`` to a DTD-refusing parser chunk by chunk; yield after each chunk."""
    parser = _Parser(handler)
    fed_at_event = 0
    fed = 0
    last_event = -1
    try:
        while chunk := source.read(_CHUNK):
            parser.feed(chunk)
            fed += len(chunk)
            if handler.event != last_event:
                last_event, fed_at_event = handler.event, fed
            elif fed - fed_at_event > limits.bytes_without_event:
                raise _refused(
                    gettext_lazy("The Excel file holds an element too large to be read.")
                )
            clock.check()
            yield
        parser.close()
    except DefusedXmlException:
        raise _declarations_refused() from None
    except (SAXException, ExpatError, zipfile.BadZipFile, zlib.error, EOFError, OSError):
        raise _unreadable() from None
    yield


def _part(archive: zipfile.ZipFile, name: str, limits: XlsxLimits) -> Any:
    info = archive.getinfo(name)
    if info.file_size > limits.part_bytes:
        raise _unreadable()
    try:
        return xml_fromstring(archive.read(info), forbid_dtd=True)
    except DefusedXmlException:
        raise _declarations_refused() from None


def _first_sheet_and_strings(
    archive: zipfile.ZipFile, limits: XlsxLimits
) -> tuple[str | None, str | None]:
    """Paths of the first sheet and of the shared strings, from the workbook's relations."""
    workbook = _part(archive, "xl/workbook.xml", limits)
    relations = _part(archive, "xl/_rels/workbook.xml.rels", limits)
    targets: dict[str, tuple[str, str]] = {}
    for relation in relations:
        target = relation.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
        targets[relation.get("Id", "")] = (
            posixpath.normpath(path),
            relation.get("Type", "").rpartition("/")[2],
        )
    sheet_path = None
    for element in workbook.iter():
        if _local(element.tag.rpartition("}")[2]) == "sheet":
            for key, value in element.attrib.items():
                if key.rpartition("}")[2] == "id" and value in targets:
                    sheet_path = targets[value][0]
                    break
            break
    strings_path = next((path for path, kind in targets.values() if kind == "sharedStrings"), None)
    return sheet_path, strings_path


def xlsx_rows(
    stream: IO[bytes], *, limits: XlsxLimits | None = None
) -> Iterator[tuple[int, list[str]]]:
    """The first sheet's rows (row number, cells as text), streamed; rows the sheet skips are
    given as empty. Raises :class:`SpreadsheetRefused` with the sentence to show."""
    limits = limits or XlsxLimits()
    clock = _Clock(limits)
    if _entry_count(stream) > limits.entries:
        raise _unreadable()
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise _unreadable() from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.entries:
            raise _unreadable()
        unpacked = sum(info.file_size for info in infos)
        if unpacked > limits.unpacked_bytes:
            raise _refused(
                gettext_lazy(
                    "The Excel file unpacks to %(size)s MB; at most %(limit)s MB can be read. "
                    "Save the column of OpenIDs alone as .csv."
                ),
                size=f"{unpacked / 1048576:,.0f}",
                limit=f"{limits.unpacked_bytes / 1048576:,.0f}",
            )
        try:
            sheet_path, strings_path = _first_sheet_and_strings(archive, limits)
        except (KeyError, SAXException, SyntaxError, ValueError):
            raise _unreadable() from None
        if sheet_path is None or sheet_path not in archive.NameToInfo:
            return
        strings = _Strings()
        if strings_path is not None and strings_path in archive.NameToInfo:
            info = archive.getinfo(strings_path)
            if info.file_size > limits.shared_strings_bytes:
                raise _refused(
                    gettext_lazy(
                        "The texts of the Excel file take %(size)s MB; at most %(limit)s MB "
                        "can be read. Save the column of OpenIDs alone as .csv."
                    ),
                    size=f"{info.file_size / 1048576:,.0f}",
                    limit=f"{limits.shared_strings_bytes / 1048576:,.0f}",
                )
            with _open(archive, strings_path) as source:
                for _ in _parse(source, _SharedStringsHandler(limits, strings), clock, limits):
                    pass
        handler = _SheetHandler(limits, strings)
        last = 0
        with _open(archive, sheet_path) as source:
            for _ in _parse(source, handler, clock, limits):
                for number, cells in handler.done:
                    # Rows the sheet skips are blank lines (at most up to the row limit).
                    for blank in range(last + 1, number):
                        yield blank, []
                    yield number, cells
                    last = max(last, number)
                handler.done = []
                clock.check()


def _open(archive: zipfile.ZipFile, name: str) -> IO[bytes]:
    try:
        return archive.open(name)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError):
        raise _unreadable() from None
