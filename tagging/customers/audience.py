"""Audiences of WeCom customer-tagging jobs: (member, customer) pairs from a file, from the
customers of chosen members, or from the failed pairs of a job.

The file is read with the bulk jobs' readers (``tagging.bulk.audience.file_rows``: CSV, TXT,
XLSX, bounded in size, line length, cells and time). A line names a customer
(``external_userid``) and, optionally, the member (``userid``) whose tags to change; a line
without a member stands for every member following that customer, which only WeCom knows:
``batch/get_by_user`` over the members with customer contact, read with no transaction open.
The pairs are then written in one transaction, numbered 0..n-1 in the order first seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext, gettext_lazy as _

from tagging.bulk.audience import (
    CHUNK,
    AudienceError,
    Row,
    _text_rows,
    check_upload_size,
    file_rows,
)
from tagging.customers.models import (
    CustomerAudience,
    CustomerAudiencePair,
    CustomerAudienceRefusal,
    CustomerAudienceSource,
)
from wecom.connections import client_for
from wecom.models import WeComApp
from wecom.rules import (
    is_external_userid,
    is_member_userid,
    validate_external_userid,
    validate_member_userid,
)

PREVIEW_ROWS = 10
PREVIEW_REFUSALS = 100
# Refusals kept for the preview and its download; past this many they are only counted.
REFUSALS_KEPT = 100_000
# A pair is a string "userid/external_userid" (neither may hold "/"): a job's failed item.
SEPARATOR = "/"

_NOT_FOLLOWED = _("No member of this app follows this customer in WeCom.")
_NOT_A_CONTACT = _(
    "WeCom lists no member “%(userid)s” with customer contact (a typo, someone who left, or "
    "customer contact not enabled for them)."
)
_NO_SUCH_MEMBERS = _(
    "WeCom lists no member with customer contact under these userids: %(userids)s. Check them "
    "in WeCom's admin."
)


def pairs_limit() -> int:
    """Pairs one audience may hold: the list is deduplicated in memory while it is read."""
    return int(settings.CUSTOMER_AUDIENCE_MAX_PAIRS)


def pair_item(userid: str, external_userid: str) -> str:
    return f"{userid}{SEPARATOR}{external_userid}"


def pair_from_item(item: str) -> tuple[str, str]:
    userid, _sep, external_userid = item.partition(SEPARATOR)
    return userid, external_userid


def _names(cells: list[str]) -> list[str]:
    return [cell.strip().lower().replace(" ", "").replace("-", "_") for cell in cells]


_CUSTOMER_HEADERS = {"external_userid", "externaluserid", "客户id", "外部联系人id"}
_MEMBER_HEADERS = {"userid", "user_id", "member", "成员", "成员id", "员工"}


@dataclass
class _Reading:
    """What a list holds, before it is written: pairs in order, refusals, counts."""

    # pair items -> the line they were first seen on (0: not from a file), in first-seen order
    pairs: dict[str, int] = field(default_factory=dict)
    refusals: list[tuple[int, str, str]] = field(default_factory=list)
    lines: int = 0
    blanks: int = 0
    refused: int = 0
    duplicates: int = 0
    expanded: int = 0
    # customers of lines without a member: external_userid -> line numbers
    unassigned: dict[str, list[int]] = field(default_factory=dict)

    def refuse(self, line: int, value: str, reason: Any) -> None:
        self.refused += 1
        if len(self.refusals) < REFUSALS_KEPT:
            self.refusals.append((line, value[:200], str(reason)[:300]))

    def add_pair(self, userid: str, external_userid: str, line: int = 0) -> None:
        item = pair_item(userid, external_userid)
        if item in self.pairs:
            self.duplicates += 1
            return
        if len(self.pairs) >= pairs_limit():
            raise AudienceError(
                _(
                    "The list holds more than %(limit)s (member, customer) pairs, the most one "
                    "job takes. Split it into several files."
                ),
                {"limit": f"{pairs_limit():,}"},
            )
        self.pairs[item] = line


def _sentence(validator: Any, value: str) -> str:
    try:
        validator(value)
    except ValidationError as error:
        return " ".join(str(message) for message in error.messages)
    return ""


def _columns(cells: list[str]) -> tuple[int, int | None] | None:
    """(customer column, member column or None) of a header row; None if it is no header."""
    names = _names(cells)
    customer = [i for i, name in enumerate(names) if name in _CUSTOMER_HEADERS]
    if not customer:
        return None
    member = [i for i, name in enumerate(names) if name in _MEMBER_HEADERS]
    return customer[0], member[0] if member else None


def read_rows(rows: Iterable[Row], reading: _Reading) -> None:
    """Lines into pairs. The first non-blank line is a header naming an ``external_userid``
    column (and optionally ``userid``), or, in a file of one column, already a customer."""
    columns: tuple[int, int | None] | None = None
    for line, cells in rows:
        reading.lines += 1
        if columns is None:
            if not any(cell.strip() for cell in cells):
                reading.blanks += 1
                continue
            columns = _columns(cells)
            if columns is not None:
                continue  # the header
            filled = [cell.strip() for cell in cells if cell.strip()]
            if len(filled) != 1:
                raise AudienceError(
                    _(
                        "The file has several columns but no header “external_userid”: name "
                        "the column of customers external_userid (and the members' column "
                        "userid). Its first line: %(columns)s."
                    ),
                    {"columns": "、".join(filled)[:200]},
                )
            columns = (cells.index(next(c for c in cells if c.strip())), None)
        customer_at, member_at = columns
        external_userid = cells[customer_at].strip() if customer_at < len(cells) else ""
        userid = (
            cells[member_at].strip() if member_at is not None and member_at < len(cells) else ""
        )
        if not external_userid and not userid:
            reading.blanks += 1
            continue
        if not is_external_userid(external_userid):
            reading.refuse(
                line, external_userid, _sentence(validate_external_userid, external_userid)
            )
            continue
        if not userid:
            reading.expanded += 1
            reading.unassigned.setdefault(external_userid, []).append(line)
            continue
        if not is_member_userid(userid):
            reading.refuse(line, userid, _sentence(validate_member_userid, userid))
            continue
        reading.add_pair(userid, external_userid, line)


def _check_members(app: WeComApp, reading: _Reading) -> None:
    """With WeCom (platform calls, no transaction open): pairs of a member WeCom does not list
    with customer contact are refused here, not sent to fail one by one; lines without a
    member become one pair per member following the customer."""
    client = client_for(app)
    contacts = client.follow_users()
    known = set(contacts)
    for item, line in list(reading.pairs.items()):
        userid, external_userid = pair_from_item(item)
        if userid not in known:
            del reading.pairs[item]
            reading.refuse(line, userid, _NOT_A_CONTACT % {"userid": userid})
    if not reading.unassigned:
        return
    followers: dict[str, list[str]] = {}
    for page in client.customers_by_members(contacts):
        for follow in page.follows:
            if follow.external_userid in reading.unassigned:
                followers.setdefault(follow.external_userid, []).append(follow.userid)
    for external_userid, lines in reading.unassigned.items():
        members = followers.get(external_userid)
        if not members:
            for line in lines:
                reading.refuse(line, external_userid, _NOT_FOLLOWED)
            continue
        for userid in members:
            reading.add_pair(userid, external_userid, lines[0])
    reading.unassigned = {}


def _write(
    *,
    app: WeComApp,
    source: str,
    label: str,
    reading: _Reading,
    user: AbstractBaseUser,
) -> CustomerAudience:
    if not reading.pairs:
        raise AudienceError(
            _(
                "No (member, customer) pair was found (%(refused)s value(s) refused). Check the "
                "file: a column “external_userid”, and optionally “userid”."
            ),
            {"refused": reading.refused},
        )
    members: Counter[str] = Counter()
    customers: set[str] = set()
    with transaction.atomic():
        audience = CustomerAudience.objects.create(
            app=app,
            source=source,
            source_label=label[:255],
            lines=reading.lines,
            accepted=len(reading.pairs),
            duplicates=reading.duplicates,
            blanks=reading.blanks,
            refused=reading.refused,
            expanded=reading.expanded,
            created_by=user,
        )
        chunk: list[CustomerAudiencePair] = []
        for position, item in enumerate(reading.pairs):
            userid, external_userid = pair_from_item(item)
            members[userid] += 1
            customers.add(external_userid)
            chunk.append(
                CustomerAudiencePair(
                    audience=audience,
                    position=position,
                    userid=userid,
                    external_userid=external_userid,
                )
            )
            if len(chunk) >= CHUNK:
                CustomerAudiencePair.objects.bulk_create(chunk)
                chunk = []
        CustomerAudiencePair.objects.bulk_create(chunk)
        CustomerAudienceRefusal.objects.bulk_create(
            (
                CustomerAudienceRefusal(audience=audience, line=line, value=value, reason=reason)
                for line, value, reason in reading.refusals
            ),
            batch_size=CHUNK,
        )
        audience.customers = len(customers)
        audience.members = dict(members.most_common())
        audience.save(update_fields=["customers", "members"])
    return audience


def customer_audience_from_file(
    *, app: WeComApp, stream: IO[bytes], name: str, size: int, user: AbstractBaseUser
) -> CustomerAudience:
    """An audience from an uploaded CSV, TXT or XLSX file (seekable ``stream``)."""
    check_upload_size(size)
    fmt, rows = file_rows(stream, name=name)
    attempts = [fmt] if fmt != "utf-8" else ["utf-8", "gb18030"]
    for number, encoding in enumerate(attempts):
        if number:
            stream.seek(0)
            rows = _text_rows(stream, encoding)
        reading = _Reading()
        try:
            read_rows(rows, reading)
        except UnicodeDecodeError:
            continue  # not UTF-8: Chinese Excel saves CSV as GB18030
        _check_members(app, reading)
        return _write(
            app=app, source=CustomerAudienceSource.FILE, label=name, reading=reading, user=user
        )
    raise AudienceError(
        _("The file's text encoding cannot be read. Save it as UTF-8 (or GB18030) CSV.")
    )


def customer_audience_from_members(
    *,
    app: WeComApp,
    userids: list[str],
    user: AbstractBaseUser,
    having: Sequence[str] = (),
    lacking: Sequence[str] = (),
) -> CustomerAudience:
    """The customers of the chosen members (every member with customer contact when none is
    chosen), one pair per (member, customer); with ``having`` only the pairs that carry every
    one of those tags, with ``lacking`` only those that carry none of them. The tags are read
    from WeCom (``batch/get_by_user``), so they are what WeCom has now, per member."""
    reading = _Reading()
    client = client_for(app)
    follow_users = client.follow_users()
    unknown = sorted(set(userids) - set(follow_users))
    if unknown:
        # batch/get_by_user would refuse the whole call without naming them.
        raise AudienceError(_NO_SUCH_MEMBERS, {"userids": "、".join(unknown)})
    required, excluded = set(having), set(lacking)
    for page in client.customers_by_members(userids or follow_users):
        for follow in page.follows:
            reading.lines += 1
            tags = set(follow.tag_ids)
            if required <= tags and not excluded & tags:
                reading.add_pair(follow.userid, follow.external_userid)
    label = "、".join(userids) if userids else gettext("every member")
    if having:
        label += " · " + gettext("having %(tags)s") % {"tags": " ".join(having)}
    if lacking:
        label += " · " + gettext("lacking %(tags)s") % {"tags": " ".join(lacking)}
    return _write(
        app=app, source=CustomerAudienceSource.MEMBERS, label=label, reading=reading, user=user
    )


def customer_audience_from_pairs(
    *,
    app: WeComApp,
    items: Iterable[str],
    label: str,
    user: AbstractBaseUser,
    source: str = CustomerAudienceSource.RETRY,
) -> CustomerAudience:
    """An audience of pairs the console has already (the failed ones of a job, or those a job
    changed)."""
    reading = _Reading()
    for item in items:
        reading.lines += 1
        reading.add_pair(*pair_from_item(item))
    return _write(app=app, source=source, label=label, reading=reading, user=user)


# ---- reading it back ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerAudiencePreview:
    audience: CustomerAudience
    first_pairs: list[tuple[str, str]]
    refusals: list[CustomerAudienceRefusal]
    members: list[tuple[str, int]]


def customer_audience_preview(*, audience: CustomerAudience) -> CustomerAudiencePreview:
    return CustomerAudiencePreview(
        audience=audience,
        first_pairs=list(
            audience.pairs.order_by("position").values_list("userid", "external_userid")[
                :PREVIEW_ROWS
            ]
        ),
        refusals=list(audience.refusals.order_by("line", "pk")[:PREVIEW_REFUSALS]),
        members=sorted(audience.members.items(), key=lambda item: (-item[1], item[0])),
    )


def audience_pairs(*, audience_id: int, start: int, end: int) -> list[tuple[str, str]]:
    """The (userid, external_userid) pairs at positions [start, end), in order."""
    return list(
        CustomerAudiencePair.objects.filter(
            audience_id=audience_id, position__gte=start, position__lt=end
        )
        .order_by("position")
        .values_list("userid", "external_userid")
    )


def customer_refusal_rows(*, audience: CustomerAudience) -> Iterator[tuple[int, str, str]]:
    yield from (
        audience.refusals.order_by("line", "pk")
        .values_list("line", "value", "reason")
        .iterator(chunk_size=2000)
    )
