"""Import and export of a bot's replies, as JSON and as CSV.

JSON is a list of ``{"skillname", "title", "questions", "content", "managerid"}`` with
``content`` exactly as seed 002 writes it (``skills export`` / ``skills import``).

CSV has one row per reply, for spreadsheet users: questions one per line in their cell, and the
answer in columns by type (``answer_type`` says which): ``text`` for a text answer (links as the
platform writes them), one line per article in each ``news_*`` column, ``image_*``, ``mp_*``
(mini-program). A combined answer, or an answer the columns cannot hold (a description over
several lines), goes in ``content_json`` as the platform's JSON; when ``content_json`` is filled it
is what is read.

An import is first a plan (:func:`import_plan`: every row created, changed, unchanged or
refused with the reason, in a constant number of queries), then applied in one transaction
(:func:`replies_import`).
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _

from chatbot.answers import (
    ImageAnswer,
    MiniProgramAnswer,
    MultiAnswer,
    NewsAnswer,
    TextAnswer,
    answer_from_content,
    validate_questions,
)
from chatbot.models import AutoReply, ReplySyncState, Skill
from chatbot.services import reply_value_in_words, validate_skill_name
from console.audit import Actor, AuditAction, audit_record_many
from console.bounded_json import JsonRefused, JsonSyntaxRefused, json_loads_bounded
from console.spreadsheets import cell_restore, csv_text
from wecom.models import ChatbotBot
from wecom.validators import validate_manager_id

CREATED, CHANGED, UNCHANGED, REFUSED = "created", "changed", "unchanged", "refused"
STATUS_LABELS = {
    CREATED: _("new"),
    CHANGED: _("changed"),
    UNCHANGED: _("unchanged"),
    REFUSED: _("refused"),
}
# What one request can read, plan, keep as a draft and show within ~100 MB (bench/hostile_files.py).
MAX_IMPORT_BYTES = 10 * 1024 * 1024
# Far more replies than a bot has; the draft of a file is kept whole until it is confirmed.
MAX_IMPORT_ROWS = 10_000
# A file: its list, a reply, the answer, a combined answer's parts, an article list, an article.
IMPORT_JSON_DEPTH = 8

CSV_COLUMNS = [
    "skillname",
    "title",
    "questions",
    "managerid",
    "answer_type",
    "text",
    "news_title",
    "news_description",
    "news_url",
    "news_picurl",
    "news_type",
    "image_media_id",
    "image_url",
    "mp_title",
    "mp_appid",
    "mp_pagepath",
    "mp_thumb_media_id",
    "mp_thumb_url",
    "content_json",
]
_NEWS_COLUMNS = {
    "title": "news_title",
    "description": "news_description",
    "url": "news_url",
    "picurl": "news_picurl",
    "type": "news_type",
}
_MP_COLUMNS = {
    "title": "mp_title",
    "appid": "mp_appid",
    "pagepath": "mp_pagepath",
    "thumb_media_id": "mp_thumb_media_id",
    "thumb_url": "mp_thumb_url",
}


class ImportFileError(ValidationError):
    """The file as a whole cannot be read (not JSON, not a list, not CSV with our columns)."""


@dataclass
class ImportRow:
    number: int
    skillname: str = ""
    title: str = ""
    status: str = REFUSED
    reasons: list[str] = field(default_factory=list)
    changed_fields: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    content: Any = None
    managerid: str = ""

    @property
    def status_label(self) -> str:
        return str(STATUS_LABELS[self.status])

    @property
    def changed_labels(self) -> list[str]:
        """The changed fields as the user knows them ("similar questions"), not code names."""
        return [str(AutoReply._meta.get_field(name).verbose_name) for name in self.changed_fields]


@dataclass
class ImportPlan:
    bot: ChatbotBot
    rows: list[ImportRow]
    new_skills: list[str]

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def counts(self) -> dict[str, int]:
        return {status: self.count(status) for status in STATUS_LABELS}

    def summary(self) -> str:
        return (
            gettext(
                "%(created)d new, %(changed)d changed, %(unchanged)d unchanged, "
                "%(refused)d refused."
            )
            % self.counts
        )


# ---- reading files -----------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFileError(
            gettext("The file is larger than %(size)d MB.") % {"size": MAX_IMPORT_BYTES >> 20},
            code="size",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # What spreadsheet programs in Chinese save CSV as.
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ImportFileError(
            gettext("The file is neither UTF-8 nor GB18030 text."), code="encoding"
        ) from None


def read_json(data: bytes) -> list[Any]:
    try:
        records = json_loads_bounded(_decode(data), max_depth=IMPORT_JSON_DEPTH)
    except JsonSyntaxRefused as error:
        raise ImportFileError(
            gettext("The file is not valid JSON (line %(line)s).") % {"line": error.lineno},
            code="json",
        ) from None
    except JsonRefused as refusal:
        raise ImportFileError(str(refusal), code="json") from None
    if not isinstance(records, list):
        raise ImportFileError(gettext("The JSON file must hold a list of replies."), code="json")
    if len(records) > MAX_IMPORT_ROWS:
        raise _too_many_rows()
    return records


def _too_many_rows() -> ImportFileError:
    return ImportFileError(
        gettext("The file has more than %(rows)s replies; import it in parts.")
        % {"rows": f"{MAX_IMPORT_ROWS:,}"},
        code="rows",
    )


def read_csv(data: bytes) -> list[Any]:
    text = _decode(data)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = set(reader.fieldnames or [])
    except csv.Error as error:
        raise _csv_refusal(error) from None
    missing = [name for name in ("skillname", "title") if name not in columns]
    if missing:
        raise ImportFileError(
            gettext(
                "The CSV file lacks the column(s) %(columns)s; export a file to see the format."
            )
            % {"columns": ", ".join(missing)},
            code="csv",
        )
    records: list[Any] = []
    try:
        for row in reader:
            if len(records) >= MAX_IMPORT_ROWS:
                raise _too_many_rows()
            records.append(csv_record(row))
    except csv.Error as error:
        raise _csv_refusal(error) from None
    return records


def _csv_refusal(error: csv.Error) -> ImportFileError:
    if "field larger than field limit" in str(error):
        # Python's words, in English: say it in the user's language.
        return ImportFileError(
            gettext("The CSV file cannot be read: a cell holds more than %(chars)s characters.")
            % {"chars": f"{csv.field_size_limit():,}"},
            code="csv",
        )
    return ImportFileError(
        gettext("The CSV file cannot be read: %(error)s") % {"error": error}, code="csv"
    )


def read_file(name: str, data: bytes) -> list[Any]:
    if name.lower().endswith(".csv"):
        return read_csv(data)
    if name.lower().endswith(".json"):
        return read_json(data)
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    return read_json(data) if stripped[:1] in (b"[", b"{") else read_csv(data)


def _lines(value: str | None) -> list[str]:
    return (value or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")


def csv_record(row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row as an import record (the JSON format); what cannot be read is left for the
    row's validation to explain."""

    def cell(name: str) -> str:
        value = row.get(name)
        # A cell the export neutralised ('=…) reads back as it was written.
        return cell_restore(value.replace("\r\n", "\n")) if isinstance(value, str) else ""

    record: dict[str, Any] = {
        "skillname": cell("skillname").strip(),
        "title": cell("title").strip(),
        "questions": [line.strip() for line in _lines(cell("questions")) if line.strip()],
        "managerid": cell("managerid").strip(),
    }
    kind = cell("answer_type").strip() or "text"
    if cell("content_json").strip():
        try:
            # The answer alone: a list of parts holding articles, no deeper.
            record["content"] = json_loads_bounded(cell("content_json"), max_depth=6)
        except JsonSyntaxRefused:
            record["content_error"] = gettext("The column content_json is not valid JSON.")
        except JsonRefused as refusal:
            record["content_error"] = str(refusal)
        return record
    if kind == "text":
        record["content"] = cell("text")
    elif kind == "news":
        columns = {key: _lines(cell(column)) for key, column in _NEWS_COLUMNS.items()}
        count = max(len(lines) for key, lines in columns.items() if key in ("title", "url"))
        record["content"] = {
            "news": {
                "articles": [
                    {
                        key: (lines[index].strip() if index < len(lines) else "")
                        for key, lines in columns.items()
                    }
                    for index in range(count)
                ]
            }
        }
    elif kind == "image":
        record["content"] = {
            "image": {"media_id": cell("image_media_id").strip(), "url": cell("image_url").strip()}
        }
    elif kind == "miniprogrampage":
        record["content"] = {
            "miniprogrampage": {key: cell(column).strip() for key, column in _MP_COLUMNS.items()}
        }
    else:
        record["content_error"] = gettext(
            "Unknown answer_type “%(kind)s”: use text, news, image, miniprogrampage or multimsg "
            "(a combined answer goes in content_json)."
        ) % {"kind": kind[:40]}
    return record


# ---- the plan ----------------------------------------------------------------------------------


def _messages(error: ValidationError) -> list[str]:
    return [str(message) for message in error.messages]


def _check_record(record: Any, row: ImportRow) -> None:
    """Fill ``row`` from ``record`` or add the reasons it is refused."""
    if not isinstance(record, dict):
        row.reasons.append(gettext("A row must be an object with skillname, title and content."))
        return
    unknown = sorted(
        str(key)
        for key in set(record)
        - {"skillname", "title", "questions", "content", "managerid", "content_error"}
    )
    if unknown:
        row.reasons.append(
            gettext("Unknown field(s): %(fields)s.") % {"fields": ", ".join(unknown)}
        )
    skillname, title = record.get("skillname"), record.get("title")
    row.skillname = skillname.strip() if isinstance(skillname, str) else ""
    row.title = title.strip() if isinstance(title, str) else ""
    try:
        validate_skill_name(row.skillname)
    except ValidationError as error:
        row.reasons.extend(_messages(error))
    questions = record.get("questions", [])
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        row.reasons.append(gettext("“questions” must be a list of texts."))
        questions = []
    try:
        row.questions = validate_questions(row.title, questions)
    except ValidationError as error:
        row.reasons.extend(_messages(error))
    managerid = record.get("managerid") or ""
    if not isinstance(managerid, str):
        row.reasons.append(gettext("“managerid” must be text."))
        managerid = ""
    row.managerid = managerid.strip()
    try:
        validate_manager_id(row.managerid)
    except ValidationError as error:
        row.reasons.extend(_messages(error))
    if "content_error" in record:
        row.reasons.append(str(record["content_error"]))
    elif "content" not in record:
        row.reasons.append(gettext("The answer (“content”) is missing."))
    else:
        try:
            row.content = answer_from_content(record["content"]).content()
        except ValidationError as error:
            row.reasons.extend(_messages(error))


def import_plan(*, bot: ChatbotBot, records: Sequence[Any]) -> ImportPlan:
    """What importing ``records`` into ``bot`` would do, row by row. Two queries, whatever the
    number of rows; nothing is saved."""
    skills = {skill.name: skill for skill in Skill.objects.filter(bot=bot)}
    existing = {
        (reply.skill.name, reply.title): reply
        for reply in AutoReply.objects.filter(skill__bot=bot).select_related("skill")
    }
    rows: list[ImportRow] = []
    seen: dict[tuple[str, str], int] = {}
    new_skills: list[str] = []
    for number, record in enumerate(records, start=1):
        row = ImportRow(number=number)
        _check_record(record, row)
        key = (row.skillname, row.title)
        if not row.reasons and key in seen:
            row.reasons.append(
                gettext("Row %(row)d has the same skill and standard question.")
                % {"row": seen[key]}
            )
        if row.reasons:
            row.status = REFUSED
            rows.append(row)
            continue
        seen[key] = number
        reply = existing.get(key)
        if reply is None:
            row.status = CREATED
            if row.skillname not in skills and row.skillname not in new_skills:
                new_skills.append(row.skillname)
        else:
            row.changed_fields = [
                name
                for name, value in (
                    ("questions", row.questions),
                    ("content", row.content),
                    ("managerid", row.managerid),
                )
                if getattr(reply, name) != value
            ]
            row.status = CHANGED if row.changed_fields else UNCHANGED
        rows.append(row)
    return ImportPlan(bot=bot, rows=rows, new_skills=new_skills)


@transaction.atomic
def replies_import(
    *, bot: ChatbotBot, records: Sequence[Any], actor: Actor, dry_run: bool = False
) -> ImportPlan:
    """Plan the import and, unless ``dry_run``, apply its accepted rows in one transaction.

    Refused rows are reported and skipped; every created or changed reply is marked changed
    (not in sync) and recorded in its history.
    """
    # Rows locked for the plan: a concurrent edit cannot slip between plan and save.
    list(AutoReply.objects.select_for_update().filter(skill__bot=bot).values_list("pk"))
    plan = import_plan(bot=bot, records=records)
    if dry_run:
        return plan
    created_skills = Skill.objects.bulk_create(
        Skill(bot=bot, name=name) for name in plan.new_skills
    )
    skills = {skill.name: skill for skill in Skill.objects.filter(bot=bot)}
    existing = {
        (reply.skill.name, reply.title): reply
        for reply in AutoReply.objects.filter(skill__bot=bot).select_related("skill")
    }
    new_replies: list[AutoReply] = []
    changed: list[tuple[AutoReply, dict[str, tuple[Any, Any]]]] = []
    for row in plan.rows:
        if row.status == CREATED:
            new_replies.append(
                AutoReply(
                    skill=skills[row.skillname],
                    title=row.title,
                    questions=row.questions,
                    content=row.content,
                    managerid=row.managerid,
                    sync_state=ReplySyncState.CHANGED,
                    updated_by=actor.user,
                )
            )
        elif row.status == CHANGED:
            reply = existing[(row.skillname, row.title)]
            changes = {
                name: (
                    reply_value_in_words(name, getattr(reply, name)),
                    reply_value_in_words(name, getattr(row, name)),
                )
                for name in row.changed_fields
            }
            for name in row.changed_fields:
                setattr(reply, name, getattr(row, name))
            reply.sync_state = ReplySyncState.CHANGED
            # A form opened before the import is refused as after any other change.
            reply.version += 1
            reply.updated_by = actor.user
            changed.append((reply, changes))
    created = AutoReply.objects.bulk_create(new_replies, batch_size=500)
    if changed:
        # bulk_update does not run auto_now: the import is what changed these replies.
        now = timezone.now()
        for reply, _changes in changed:
            reply.updated_at = now
        AutoReply.objects.bulk_update(
            [reply for reply, _changes in changed],
            [
                "questions",
                "content",
                "managerid",
                "sync_state",
                "updated_at",
                "version",
                "updated_by",
            ],
            batch_size=500,
        )
    if created and created[0].pk is None:
        keys = {(reply.skill.name, reply.title) for reply in created}
        created = [
            reply
            for reply in AutoReply.objects.filter(skill__bot=bot).select_related("skill")
            if (reply.skill.name, reply.title) in keys
        ]
    entries: list[tuple[Any, AuditAction, dict[str, tuple[Any, Any]] | None]] = [
        (skill, AuditAction.ADD, None) for skill in created_skills if skill.pk
    ]
    entries += [(reply, AuditAction.ADD, None) for reply in created]
    entries += [(reply, AuditAction.CHANGE, changes) for reply, changes in changed]
    audit_record_many(actor=actor, entries=entries, note=_("Imported from a file."))
    return plan


# ---- export ------------------------------------------------------------------------------------


def export_records(*, bot: ChatbotBot) -> list[dict[str, Any]]:
    return [
        reply.export_row()
        for reply in AutoReply.objects.filter(skill__bot=bot)
        .select_related("skill")
        .order_by("skill__name", "title")
    ]


def export_json(*, bot: ChatbotBot) -> str:
    return json.dumps(export_records(bot=bot), ensure_ascii=False, indent=2) + "\n"


def _csv_answer_columns(content: Any) -> dict[str, str]:
    answer = answer_from_content(content)
    if isinstance(answer, TextAnswer):
        return {"answer_type": "text", "text": answer.text}
    if isinstance(answer, NewsAnswer) and not any(
        "\n" in value for article in answer.articles for value in article.content().values()
    ):
        return {
            "answer_type": "news",
            **{
                column: "\n".join(article.content()[key] for article in answer.articles)
                for key, column in _NEWS_COLUMNS.items()
            },
        }
    if isinstance(answer, ImageAnswer):
        return {"answer_type": "image", "image_media_id": answer.media_id, "image_url": answer.url}
    if isinstance(answer, MiniProgramAnswer):
        values = answer.content()["miniprogrampage"]
        return {
            "answer_type": "miniprogrampage",
            **{column: values[key] for key, column in _MP_COLUMNS.items()},
        }
    kind = "multimsg" if isinstance(answer, MultiAnswer) else answer.kind
    return {"answer_type": kind, "content_json": json.dumps(content, ensure_ascii=False)}


def export_rows(*, bot: ChatbotBot) -> list[list[str]]:
    """One row per reply under :data:`CSV_COLUMNS`, for the console's CSV writer (BOM; a cell
    that would start a formula gets a leading ', which the import takes off again)."""
    rows = []
    for record in export_records(bot=bot):
        values = {
            "skillname": record["skillname"],
            "title": record["title"],
            "questions": "\n".join(record["questions"]),
            "managerid": record["managerid"],
            **_csv_answer_columns(record["content"]),
        }
        rows.append([values.get(column, "") for column in CSV_COLUMNS])
    return rows


def export_csv(*, bot: ChatbotBot) -> str:
    return csv_text(CSV_COLUMNS, export_rows(bot=bot))


# ---- the file between preview and confirmation --------------------------------------------------

# How long a previewed import can still be confirmed.
IMPORT_DRAFT_SECONDS = 3600


def _draft_key(user_id: int, token: str) -> str:
    return f"chatbot-import:{user_id}:{token}"


def import_draft_keep(*, user_id: int, bot_id: int, records: list[Any]) -> str:
    """Keep a previewed file's records until the person confirms; the token names them.

    In the shared cache (a database table, or Redis), not in the session: a session is read on
    every request, and a few thousand replies would make each of that person's pages slower.
    """
    token = secrets.token_urlsafe(16)
    caches[settings.SHARED_CACHE_ALIAS].set(
        _draft_key(user_id, token), {"bot": bot_id, "records": records}, IMPORT_DRAFT_SECONDS
    )
    return token


def import_draft_take(*, user_id: int, token: str) -> dict[str, Any] | None:
    """The records kept under ``token`` for this person, once: None if expired or taken."""
    cache = caches[settings.SHARED_CACHE_ALIAS]
    key = _draft_key(user_id, token)
    draft = cache.get(key)
    # Whoever deletes it applies it: a second click on "confirm" finds nothing.
    if draft is None or not cache.delete(key):
        return None
    return draft
