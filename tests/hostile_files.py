"""Hostile files, made on the spot and small on disk: what a person could upload to hurt us.

Each XLSX is a real zip with the parts Excel writes; the bombs are deflated, so that megabytes
of XML cost kilobytes here. Used by the tests (tests/test_hostile_input.py, the fuzz test) and
by bench/hostile_files.py, which measures the time and memory each takes to be refused.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable

OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz0"  # 28 characters, as the platform's
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELS}">'
    f'<Relationship Id="rId1" Type="{_OFFICE_RELS}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK = (
    f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{_MAIN}" xmlns:r="{_OFFICE_RELS}">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELS}">'
    f'<Relationship Id="rId1" Type="{_OFFICE_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_OFFICE_RELS}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)

Chunks = Iterable[str]


def xlsx(sheet: Chunks, strings: Chunks | None = None) -> bytes:
    """An XLSX file of ``sheet`` (and ``strings``), each given as pieces of XML text, deflated
    piece by piece: a gigabyte of XML never sits in memory here either."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        for name, parts in (("xl/worksheets/sheet1.xml", sheet), ("xl/sharedStrings.xml", strings)):
            if parts is None:
                continue
            with archive.open(name, "w", force_zip64=True) as part:
                for piece in parts:
                    part.write(piece.encode("utf-8"))
    return out.getvalue()


def _sheet(rows: Chunks, *, head: str = "", dimension: str = "") -> Chunks:
    yield f'<?xml version="1.0" encoding="UTF-8"?>{head}<worksheet xmlns="{_MAIN}">'
    if dimension:
        yield f'<dimension ref="{dimension}"/>'
    yield "<sheetData>"
    yield from rows
    yield "</sheetData></worksheet>"


def _inline(row: int, text: str) -> str:
    return f'<row r="{row}"><c r="A{row}" t="inlineStr"><is><t>{text}</t></is></c></row>'


def _repeat(piece: str, times: int, batch: int = 10_000) -> Chunks:
    block = piece * batch
    for _ in range(times // batch):
        yield block
    yield piece * (times % batch)


def good_xlsx(count: int = 3) -> bytes:
    rows = [_inline(1, "openid")] + [_inline(n + 2, f"{OPENID[:-4]}{n:04d}") for n in range(count)]
    return xlsx(_sheet(rows))


def entity_expansion() -> bytes:
    """Billion laughs: ten levels of ten references each."""
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    head = f"<!DOCTYPE worksheet [{''.join(levels)}]>"
    return xlsx(_sheet([_inline(1, "&lol9;")], head=head))


def external_entity() -> bytes:
    head = '<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    return xlsx(_sheet([_inline(1, "&xxe;")], head=head))


def malformed_sheet() -> bytes:
    return xlsx(["<worksheet><sheetData><row r='1'><c t='inlineStr'><is><t>oops</sheetData>"])


def shared_strings_bomb() -> bytes:
    """200 MB of shared strings once unpacked (about 200 KB here)."""
    strings = _repeat("<si><t>" + "A" * 100 + "</t></si>", 1_850_000)
    sheet = _sheet(['<row r="1"><c r="A1" t="s"><v>0</v></c></row>'])
    return xlsx(sheet, [f'<sst xmlns="{_MAIN}">', *strings, "</sst>"])


def huge_shared_string() -> bytes:
    """One 40 MB shared string: under the parts' size limit, over a cell's."""
    strings = [
        f'<sst xmlns="{_MAIN}"><si><t>',
        *_repeat("B", 40 * 1024 * 1024, 1 << 20),
        "</t></si></sst>",
    ]
    return xlsx(_sheet(['<row r="1"><c r="A1" t="s"><v>0</v></c></row>']), strings)


def huge_cell() -> bytes:
    """A 40 MB inline text in one cell."""
    rows = ['<row r="1"><c r="A1" t="inlineStr"><is><t>', *_repeat("C", 40 * 1024 * 1024, 1 << 20)]
    return xlsx(_sheet([*rows, "</t></is></c></row>"]))


def huge_dimension() -> bytes:
    """Declares 1,048,576 × 16,384 cells, holds two."""
    return xlsx(_sheet([_inline(1, "openid"), _inline(2, OPENID)], dimension="A1:XFD1048576"))


def row_fifty_million() -> bytes:
    return xlsx(_sheet([_inline(1, "openid"), _inline(50_000_000, OPENID)]))


def many_empty_rows() -> bytes:
    """Two million empty rows, unnumbered (a few kilobytes here)."""
    return xlsx(_sheet(_repeat("<row/>", 2_000_000)))


def wide_row() -> bytes:
    """One row of 20,000 cells."""
    cells = "".join('<c t="inlineStr"><is><t>x</t></is></c>' for _ in range(20_000))
    return xlsx(_sheet([f'<row r="1">{cells}</row>']))


HOSTILE_XLSX: dict[str, Callable[[], bytes]] = {
    "entity expansion": entity_expansion,
    "external entity": external_entity,
    "malformed sheet": malformed_sheet,
    "shared-strings bomb": shared_strings_bomb,
    "huge shared string": huge_shared_string,
    "huge cell": huge_cell,
    "huge declared dimension": huge_dimension,
    "row numbered 50,000,000": row_fifty_million,
    "many empty rows": many_empty_rows,
    "row of 20,000 cells": wide_row,
}


# ---- chatbot imports ---------------------------------------------------------------------------


def deep_json() -> bytes:
    return b"[" * 100_000 + b"]" * 100_000


def deep_object_json() -> bytes:
    return b'{"a":' * 100_000 + b"1" + b"}" * 100_000


def deep_multimsg_json() -> bytes:
    content = '{"multimsg":[' * 400 + '"text"' + "]}" * 400
    return ('[{"skillname":"s","title":"t","questions":[],"content":' + content + "}]").encode()


def many_tiny_rows_json() -> bytes:
    """A million empty objects (3 MB): far more rows than an import takes."""
    return b"[" + b",".join([b"{}"] * 1_000_000) + b"]"


def huge_csv_header() -> bytes:
    return b"skillname,title," + b"x" * 2_000_000 + b"\r\n"


HOSTILE_IMPORTS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "JSON nested 100,000 deep": ("deep.json", deep_json),
    "JSON objects nested 100,000 deep": ("deep-object.json", deep_object_json),
    "multimsg nested 400 deep": ("multimsg.json", deep_multimsg_json),
    "a million tiny rows": ("tiny.json", many_tiny_rows_json),
    "CSV with a 2 MB header field": ("header.csv", huge_csv_header),
}
