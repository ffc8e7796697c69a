"""Audiences of WeCom customer-tagging jobs: (member, customer) pairs from a file, from the
customers of chosen members, or from the pairs of a job (retry failed only, undo).

An uploaded file is read by a job (``tagging.customers.read``), with the bulk lists' reading
machinery (tagging/bulk/reading.py: the file kept in parts, a bar, checkpoints) and their
readers (``tagging.bulk.audience.file_rows``: CSV, TXT, XLSX, bounded in size, line length,
cells and time); ``tag_users`` reads a file in process with the same reader. A line names a
customer (``external_userid``) and, optionally, the member (``userid``) whose tags to change.

Nothing here holds the list: pairs flow, as read, into a temporary table of the connection
(``tagging.bulk.audience.Staging``), and one statement keeps each pair's first appearance and
numbers them 0..n-1 in that order. The members WeCom lists with customer contact
(``follow_users``, a small set) are fetched once before the read, with no transaction open; a
pair of any other member is refused on its line as it is read. A line without a member stands
for every member following that customer, which only WeCom knows: its customer is staged in a
second table, WeCom's (member, customer) follows of those members (``batch/get_by_user``, page
by page, no transaction open during a call) in a third; one statement joins them into pairs and
another refuses, line by line, the customers nobody follows. The counts (per member, distinct
customers) are the database's ``GROUP BY`` of the pairs written.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count
from django.utils.translation import gettext, gettext_lazy as _

from console.audit import Actor
from tagging.bulk.audience import (
    CHUNK,
    AudienceError,
    ReadRecorder,
    Row,
    Staging,
    _text_rows,
    check_upload_size,
    file_rows,
    read_seconds,
)
from tagging.bulk.models import AudienceStatus
from tagging.bulk.reading import ListReading, reading_register, reading_start, upload_store
from tagging.customers.models import (
    CustomerAudience,
    CustomerAudiencePair,
    CustomerAudienceRefusal,
    CustomerAudienceSource,
    CustomerUploadChunk,
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
READ_KIND = "tagging.customers.read"
MEMBERS_READ_KIND = "tagging.customers.members"

_NOT_FOLLOWED = _("No member of this app follows this customer in WeCom.")
_NOT_A_CONTACT = _(
    "WeCom lists no member “%(userid)s” with customer contact (a typo, someone who left, or "
    "customer contact not enabled for them)."
)
_NO_SUCH_MEMBERS = _(
    "WeCom lists no member with customer contact under these userids: %(userids)s. Check them "
    "in WeCom's admin."
)
_NO_PAIR = _(
    "No (member, customer) pair was found (%(refused)s value(s) refused). Check the "
    "file: a column “external_userid”, and optionally “userid”."
)
_FOLLOWERS_TOO_SLOW = _(
    "WeCom's customers of the members could not be read within %(seconds)s seconds. Give "
    "each line of the file its member (a column “userid”)."
)


def pair_item(userid: str, external_userid: str) -> str:
    return f"{userid}{SEPARATOR}{external_userid}"


def pair_from_item(item: str) -> tuple[str, str]:
    userid, _sep, external_userid = item.partition(SEPARATOR)
    return userid, external_userid


def _names(cells: list[str]) -> list[str]:
    return [cell.strip().lower().replace(" ", "").replace("-", "_") for cell in cells]


_CUSTOMER_HEADERS = {"external_userid", "externaluserid", "客户id", "外部联系人id"}
_MEMBER_HEADERS = {"userid", "user_id", "member", "成员", "成员id", "员工"}


class RowSink:
    """What :func:`read_rows` tells, line by line: counted here, kept by a subclass."""

    def __init__(self) -> None:
        self.lines = self.blanks = self.refused = self.expanded = 0

    def line(self) -> None:
        self.lines += 1

    def blank(self) -> None:
        self.blanks += 1

    def refuse(self, line: int, value: str, reason: Any) -> None:
        self.refused += 1

    def pair(self, line: int, userid: str, external_userid: str) -> None:
        """A (member, customer) pair of line ``line``."""

    def unassigned(self, line: int, external_userid: str) -> None:
        """A customer without a member: every member following them."""
        self.expanded += 1


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


def read_rows(rows: Iterable[Row], sink: RowSink) -> None:
    """Lines into pairs. The first non-blank line is a header naming an ``external_userid``
    column (and optionally ``userid``), or, in a file of one column, already a customer."""
    columns: tuple[int, int | None] | None = None
    for line, cells in rows:
        sink.line()
        if columns is None:
            if not any(cell.strip() for cell in cells):
                sink.blank()
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
            sink.blank()
            continue
        if not is_external_userid(external_userid):
            sink.refuse(line, external_userid, _sentence(validate_external_userid, external_userid))
            continue
        if not userid:
            sink.unassigned(line, external_userid)
            continue
        if not is_member_userid(userid):
            sink.refuse(line, userid, _sentence(validate_member_userid, userid))
            continue
        sink.pair(line, userid, external_userid)


# ---- writing the audience -----------------------------------------------------------------------

_PAIRS = "tagging_customer_pairs_staging"
_UNASSIGNED = "tagging_customer_unassigned_staging"
_FOLLOWS = "tagging_customer_follows_staging"
_TICK = 4096  # lines between two questions to the recorder


def _quoted() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "pairs_table": quote(CustomerAudiencePair._meta.db_table),
        "refusals_table": quote(CustomerAudienceRefusal._meta.db_table),
        "audience": quote("audience_id"),
        "position": quote("position"),
        "userid": quote("userid"),
        "external_userid": quote("external_userid"),
        "line": quote("line"),
        "value": quote("value"),
        "reason": quote("reason"),
        "staged": _PAIRS,
        "unassigned": _UNASSIGNED,
        "follows": _FOLLOWS,
        "not_followed": _NOT_FOLLOWED_WHERE.format(follows=_FOLLOWS),
    }


# The customers of lines without a member, each with every member WeCom says follows them.
_EXPANDED = (
    "SELECT u.seq, f.userid, u.external_userid FROM {unassigned} u JOIN "
    "(SELECT DISTINCT userid, external_userid FROM {follows}) f "
    "ON f.external_userid = u.external_userid"
)
# Every pair's first appearance (its line; the members of one line in userid order), numbered
# 0..n-1 in that order: one statement, whatever the size of the list.
_PAIRS_INSERT = (
    "INSERT INTO {pairs_table} ({audience}, {position}, {userid}, {external_userid}) "
    "SELECT %s, ROW_NUMBER() OVER (ORDER BY first_seq, userid) - 1, userid, external_userid "
    "FROM (SELECT userid, external_userid, MIN(seq) AS first_seq FROM ({every}) AS every "
    "GROUP BY userid, external_userid) AS firsts"
)
_STAGED_PAIRS = "SELECT seq, userid, external_userid FROM {staged}"
_NOT_FOLLOWED_WHERE = "WHERE u.external_userid NOT IN (SELECT external_userid FROM {follows})"
_COUNT_NOT_FOLLOWED = "SELECT COUNT(*) FROM {unassigned} u {not_followed}"
_COUNT_EXPANDED = "SELECT COUNT(*) FROM ({expanded}) AS expanded"
_REFUSALS_NOT_FOLLOWED = (
    "INSERT INTO {refusals_table} ({audience}, {line}, {value}, {reason}) "
    "SELECT %s, u.seq, u.external_userid, %s FROM {unassigned} u {not_followed} "
    "ORDER BY u.seq LIMIT %s"
)


class _PairWriter(RowSink):
    """Stages what a list holds as it is read, then writes the audience set-based.

    ``contacts``: the members WeCom lists with customer contact; a pair of another member is
    refused on its line (None: the pairs come from WeCom or the console, and are taken)."""

    def __init__(
        self, audience: CustomerAudience, recorder: ReadRecorder, contacts: set[str] | None
    ) -> None:
        super().__init__()
        self.audience = audience
        self.recorder = recorder
        self.contacts = contacts
        self.seq = 0
        self.pairs: list[tuple[str, str]] = []
        self.pair_seqs: list[int] = []
        self.customers: list[tuple[str]] = []
        self.customer_seqs: list[int] = []
        self.refusals: list[CustomerAudienceRefusal] = []
        self.kept = 0
        self.staged_pairs = Staging(_PAIRS, ("userid", "external_userid"))
        self.staged_customers: Staging | None = None
        self.staged_follows: Staging | None = None

    # --- as it is read

    def line(self) -> None:
        super().line()
        if not self.lines % _TICK and self.recorder.due():
            self._flush_staged()
            self.recorder.record(self._flush_refusals)

    def refuse(self, line: int, value: str, reason: Any) -> None:
        super().refuse(line, value, reason)
        if self.kept >= REFUSALS_KEPT:
            return
        self.kept += 1
        self.refusals.append(
            CustomerAudienceRefusal(
                audience=self.audience, line=line, value=value[:200], reason=str(reason)[:300]
            )
        )
        if len(self.refusals) >= CHUNK:
            self.recorder.record(self._flush_refusals)

    def pair(self, line: int, userid: str, external_userid: str) -> None:
        if self.contacts is not None and userid not in self.contacts:
            self.refuse(line, userid, _NOT_A_CONTACT % {"userid": userid})
            return
        self.add(userid, external_userid, seq=line)

    def add(self, userid: str, external_userid: str, *, seq: int | None = None) -> None:
        """A pair, in order (``seq``: its line; by default, after the last one)."""
        self.seq = self.seq + 1 if seq is None else seq
        self.pairs.append((userid, external_userid))
        self.pair_seqs.append(self.seq)
        if len(self.pairs) >= CHUNK:
            self._flush_staged()

    def unassigned(self, line: int, external_userid: str) -> None:
        super().unassigned(line, external_userid)
        self.customers.append((external_userid,))
        self.customer_seqs.append(line)
        if len(self.customers) >= CHUNK:
            self._flush_staged()

    def _flush_staged(self) -> None:
        self.staged_pairs.append(self.pairs, seqs=self.pair_seqs)
        self.pairs, self.pair_seqs = [], []
        if self.customers:
            if self.staged_customers is None:
                self.staged_customers = Staging(_UNASSIGNED, ("external_userid",))
            self.staged_customers.append(self.customers, seqs=self.customer_seqs)
            self.customers, self.customer_seqs = [], []

    def _flush_refusals(self) -> None:
        if self.refusals:
            CustomerAudienceRefusal.objects.bulk_create(self.refusals)
        self.refusals = []

    # --- WeCom's followers of the customers without a member

    def expand(self, app: WeComApp, contacts: Sequence[str]) -> None:
        """Stage WeCom's (member, customer) follows of ``contacts``, page by page, with no
        transaction open during a call; only when some line had no member."""
        self._flush_staged()
        if self.staged_customers is None:
            return
        self.staged_follows = Staging(_FOLLOWS, ("userid", "external_userid"))
        pages = client_for(app).customers_by_members(contacts)
        for page in _paged(pages, self.recorder, _FOLLOWERS_TOO_SLOW):
            self.staged_follows.append(
                [
                    (follow.userid, follow.external_userid)
                    for follow in page.follows
                    # What WeCom sends is checked as a file's values are: COPY takes them as is.
                    if is_member_userid(follow.userid)
                    and is_external_userid(follow.external_userid)
                ]
            )

    # --- the last step

    def finish(self) -> CustomerAudience:
        self._flush_staged()
        self.recorder.finish(self._finish)
        return self.audience

    def _finish(self) -> None:
        self._flush_refusals()
        names = _quoted()
        every = _STAGED_PAIRS.format(**names)
        staged = self.staged_pairs.staged
        audience = self.audience
        with connection.cursor() as cursor:
            if self.staged_customers is not None:
                if self.staged_follows is None:  # a read without WeCom: nobody follows them
                    self.staged_follows = Staging(_FOLLOWS, ("userid", "external_userid"))
                expanded = _EXPANDED.format(**names)
                every += f" UNION ALL {expanded}"
                cursor.execute(_COUNT_EXPANDED.format(expanded=expanded))
                staged += cursor.fetchone()[0]
                cursor.execute(_COUNT_NOT_FOLLOWED.format(**names))
                unfollowed = cursor.fetchone()[0]
                self.refused += unfollowed
                room = min(unfollowed, max(REFUSALS_KEPT - self.kept, 0))
                if room:
                    cursor.execute(
                        _REFUSALS_NOT_FOLLOWED.format(**names),
                        [audience.pk, str(_NOT_FOLLOWED)[:300], room],
                    )
            cursor.execute(_PAIRS_INSERT.format(every=every, **names), [audience.pk])
            accepted = cursor.rowcount
        if not accepted:
            # Raised inside the last step's transaction: nothing of the list is kept.
            raise AudienceError(_NO_PAIR, {"refused": self.refused})
        pairs = CustomerAudiencePair.objects.filter(audience_id=audience.pk)
        members = pairs.values("userid").annotate(count=Count("pk")).order_by("-count", "userid")
        audience.members = {row["userid"]: row["count"] for row in members}
        audience.customers = pairs.aggregate(n=Count("external_userid", distinct=True))["n"]
        audience.lines = self.lines
        audience.accepted = accepted
        audience.duplicates = staged - accepted
        audience.blanks = self.blanks
        audience.refused = self.refused
        audience.expanded = self.expanded
        audience.status = AudienceStatus.READY
        audience.save(
            update_fields=[
                "lines",
                "accepted",
                "customers",
                "duplicates",
                "blanks",
                "refused",
                "expanded",
                "members",
                "encoding",
                "status",
            ]
        )
        self._drop()

    def _drop(self) -> None:
        for staging in (self.staged_pairs, self.staged_customers, self.staged_follows):
            if staging is not None:
                staging.drop()

    def discard(self) -> None:
        """A read given up: its staging tables go (the connection may serve other reads)."""
        for staging in (self.staged_pairs, self.staged_customers, self.staged_follows):
            if staging is not None:
                staging.discard()


def wecom_read_seconds() -> float:
    """How long a read may page WeCom (``batch/get_by_user``): past the job's slice if need be
    (those pages cannot be taken up again by another worker), within the time the task queue
    gives a task (``Q_CLUSTER["timeout"]``), less the file's own bound."""
    return max(float(settings.Q_CLUSTER["timeout"]) * 0.8 - read_seconds(), read_seconds())


def _paged(pages: Iterator[Any], recorder: ReadRecorder, too_slow: Any) -> Iterator[Any]:
    """WeCom's pages, each asked with no transaction open, the recorder asked before each (a
    cancelled job stops here), refused in words past :func:`wecom_read_seconds`."""
    seconds = wecom_read_seconds()
    deadline = time.monotonic() + seconds
    while True:
        recorder.before_call()
        if time.monotonic() > deadline:
            raise AudienceError(too_slow, {"seconds": f"{seconds:.0f}"})
        page = next(pages, None)
        if page is None:
            return
        yield page


def _written(writer: _PairWriter, fill: Any) -> CustomerAudience:
    try:
        fill()
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


# ---- from a file --------------------------------------------------------------------------------


def customer_audience_read(
    *, audience: CustomerAudience, stream: IO[bytes], recorder: ReadRecorder
) -> CustomerAudience:
    """Read an uploaded file (CSV, TXT or XLSX; seekable ``stream``) into ``audience``.

    The one reader of customer files: the reading job and ``tag_users``
    (:func:`customer_audience_from_file`) differ only by their ``recorder``. Asks WeCom for its
    members with customer contact first, with no transaction open. Raises
    :class:`AudienceError` with the sentence to show (or a platform error)."""
    app = WeComApp.objects.get(pk=audience.app_id)
    contacts = client_for(app).follow_users()
    known = set(contacts)
    seconds = read_seconds()
    name = audience.source_label
    fmt, rows = file_rows(stream, name=name, seconds=seconds)
    attempts = [fmt] if fmt != "utf-8" else ["utf-8", "gb18030"]
    for number, encoding in enumerate(attempts):
        if number:
            stream.seek(0)
            rows = _text_rows(stream, encoding, seconds)
        audience.encoding = encoding

        def read(rows: Iterable[Row] = rows) -> CustomerAudience:
            writer = _PairWriter(audience, recorder, known)

            def fill() -> None:
                read_rows(rows, writer)
                writer.expand(app, contacts)

            return _written(writer, fill)

        try:
            return recorder.attempt(read)
        except UnicodeDecodeError:
            continue  # not UTF-8: Chinese Excel saves CSV as GB18030
    raise AudienceError(
        _("The file's text encoding cannot be read. Save it as UTF-8 (or GB18030) CSV.")
    )


class _InProcess(ReadRecorder):
    """``tag_users``: the file read here and now. Not in one transaction (the followers of lines
    without a member are WeCom's pages, never asked inside one): each attempt starts from no
    refused value, the last step is one transaction, and a read that fails deletes its
    audience (:func:`customer_audience_from_file`)."""

    def __init__(self, audience: CustomerAudience) -> None:
        self.audience = audience

    def attempt(self, read: Any) -> Any:
        self.audience.refusals.all().delete()
        return read()

    def finish(self, write: Any) -> None:
        with transaction.atomic():
            write()


def customer_audience_from_file(
    *, app: WeComApp, stream: IO[bytes], name: str, size: int, user: AbstractBaseUser
) -> CustomerAudience:
    """An audience from a file read here and now (``tag_users``: no web request to outlast),
    by the reading job's own reader; whole or not at all."""
    check_upload_size(size)
    audience = CustomerAudience.objects.create(
        app=app,
        source=CustomerAudienceSource.FILE,
        source_label=name[:255],
        status=AudienceStatus.READING,
        file_size=size,
        created_by=user,
    )
    try:
        return customer_audience_read(
            audience=audience, stream=stream, recorder=_InProcess(audience)
        )
    except BaseException:
        audience.delete()
        raise


def customer_audience_upload(
    *, app: WeComApp, stream: IO[bytes], name: str, size: int, actor: Actor
) -> CustomerAudience:
    """Keep an uploaded customer list for a worker to read, and start the job that reads it;
    the web request answers at once."""
    audience = CustomerAudience(
        app=app, source=CustomerAudienceSource.FILE, source_label=name[:255]
    )
    return upload_store(
        reading=CUSTOMER_READING,
        audience=audience,
        stream=stream,
        name=name,
        size=size,
        actor=actor,
    )


def _read_customer_list(
    audience: CustomerAudience, file: IO[bytes], recorder: ReadRecorder, params: dict[str, Any]
) -> Any:
    return customer_audience_read(audience=audience, stream=file, recorder=recorder)


CUSTOMER_READING = ListReading(
    job_kind=READ_KIND,
    label=_("Reading an uploaded customer list"),
    audience_model=CustomerAudience,
    chunk_model=CustomerUploadChunk,
    read=_read_customer_list,
    page="admin:tagging_customers_start",
    view_permission="tagging.view_customeraudience",
)
CUSTOMER_READ_JOB = reading_register(CUSTOMER_READING)


def customer_read_job(audience: CustomerAudience) -> Any:
    from tagging.bulk.reading import read_job_of

    return read_job_of(reading=CUSTOMER_READING, audience=audience)


# ---- from WeCom, from the console ---------------------------------------------------------------


def members_label(
    app: WeComApp, userids: Sequence[str], having: Sequence[str], lacking: Sequence[str]
) -> str:
    """ "zhangsan、lisi · having VIP · lacking 流失": tags by their names where the console knows
    them (its copy of WeCom's tags), else by their ids."""
    from tagging.strategy.selectors import tag_labels

    label = "、".join(userids) if userids else gettext("every member")
    known = tag_labels(app.pk, [*having, *lacking]) if (having or lacking) else {}

    def names(ids: Sequence[str]) -> str:
        return " ".join(known[tag_id].name if tag_id in known else tag_id for tag_id in ids)

    if having:
        label += " · " + gettext("having %(tags)s") % {"tags": names(having)}
    if lacking:
        label += " · " + gettext("lacking %(tags)s") % {"tags": names(lacking)}
    return label


_MEMBERS_TOO_SLOW = _(
    "WeCom's customers of these members could not be read within %(seconds)s seconds. Choose "
    "fewer members, or a tag they have."
)


def _members_read(
    *,
    audience: CustomerAudience,
    recorder: ReadRecorder,
    userids: Sequence[str],
    having: Sequence[str],
    lacking: Sequence[str],
) -> CustomerAudience:
    """The pairs of WeCom's pages (``batch/get_by_user``) that carry every tag of ``having``
    and none of ``lacking``, staged as they come, each page asked with no transaction open;
    written in the recorder's last step."""
    client = client_for(WeComApp.objects.get(pk=audience.app_id))
    follow_users = client.follow_users()
    unknown = sorted(set(userids) - set(follow_users))
    if unknown:
        # batch/get_by_user would refuse the whole call without naming them.
        raise AudienceError(_NO_SUCH_MEMBERS, {"userids": "、".join(unknown)})
    required, excluded = set(having), set(lacking)

    def read() -> CustomerAudience:
        writer = _PairWriter(audience, recorder, None)

        def fill() -> None:
            pages = client.customers_by_members(list(userids) or follow_users)
            for page in _paged(pages, recorder, _MEMBERS_TOO_SLOW):
                for follow in page.follows:
                    writer.line()
                    tags = set(follow.tag_ids)
                    if (
                        required <= tags
                        and not excluded & tags
                        and is_member_userid(follow.userid)
                        and is_external_userid(follow.external_userid)
                    ):
                        writer.add(follow.userid, follow.external_userid)
                writer._flush_staged()  # between two calls: nothing of a page left in memory

        return _written(writer, fill)

    return recorder.attempt(read)


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
    from WeCom (``batch/get_by_user``), so they are what WeCom has now, per member. Read here
    and now; the admin starts a job instead (:func:`customer_audience_members_start`)."""
    audience = CustomerAudience(
        app=app,
        source=CustomerAudienceSource.MEMBERS,
        source_label=members_label(app, userids, having, lacking)[:255],
        created_by=user,
    )
    return _members_read(
        audience=audience,
        recorder=_Create(audience),
        userids=userids,
        having=having,
        lacking=lacking,
    )


def customer_audience_members_start(
    *,
    app: WeComApp,
    userids: list[str],
    having: Sequence[str] = (),
    lacking: Sequence[str] = (),
    actor: Actor,
) -> CustomerAudience:
    """The same audience, read by a job (``tagging.customers.members``): for every member of a
    large corp that is thousands of WeCom calls, too long for a web request."""
    label = members_label(app, userids, having, lacking)[:255]
    audience = CustomerAudience(app=app, source=CustomerAudienceSource.MEMBERS, source_label=label)
    return reading_start(
        reading=MEMBERS_READING,
        audience=audience,
        name=label,
        params={"userids": list(userids), "having": list(having), "lacking": list(lacking)},
        actor=actor,
    )


def _read_members_list(
    audience: CustomerAudience, file: IO[bytes], recorder: ReadRecorder, params: dict[str, Any]
) -> Any:
    return _members_read(
        audience=audience,
        recorder=recorder,
        userids=params.get("userids") or [],
        having=params.get("having") or [],
        lacking=params.get("lacking") or [],
    )


MEMBERS_READING = ListReading(
    job_kind=MEMBERS_READ_KIND,
    label=_("Reading the customers of members from WeCom"),
    audience_model=CustomerAudience,
    chunk_model=CustomerUploadChunk,
    read=_read_members_list,
    page="admin:tagging_customers_start",
    view_permission="tagging.view_customeraudience",
    gone=_("This list was given up. Make it again from the first page."),
)
MEMBERS_READ_JOB = reading_register(MEMBERS_READING)


def reading_of(audience: CustomerAudience) -> ListReading:
    """How ``audience`` is read by a job: from its uploaded file, or from WeCom."""
    return (
        MEMBERS_READING if audience.source == CustomerAudienceSource.MEMBERS else CUSTOMER_READING
    )


class _Create(ReadRecorder):
    """Pairs the console has or WeCom gave, read here and now: the audience is created in the
    last step's transaction (or the caller's), with its pairs; nothing is written before."""

    def __init__(self, audience: CustomerAudience) -> None:
        self.audience = audience

    def attempt(self, read: Any) -> Any:
        return read()  # not in a transaction: WeCom's pages may be asked

    def finish(self, write: Any) -> None:
        with transaction.atomic():
            self.audience.save()
            write()


def customer_audience_from_pairs(
    *,
    app: WeComApp,
    items: Iterable[str],
    label: str,
    user: AbstractBaseUser,
    source: str = CustomerAudienceSource.RETRY,
) -> CustomerAudience:
    """An audience of pairs the console has already (the failed ones of a job, or those a job
    changed), through the same staging."""
    audience = CustomerAudience(app=app, source=source, source_label=label[:255], created_by=user)
    writer = _PairWriter(audience, _Create(audience), None)

    def fill() -> None:
        for item in items:
            writer.line()
            writer.add(*pair_from_item(item))

    return _written(writer, fill)


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
