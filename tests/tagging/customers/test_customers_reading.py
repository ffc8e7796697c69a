"""Uploaded customer lists read by a job (issue 21, "the customer list read"): the request stores
the file, a worker reads it through temporary tables, the page follows; a killed worker, a
cancel, the set-based expansion of lines without a member.

Each read by the job is compared with the same file read in process (``tag_users``'s
``customer_audience_from_file``): the same pairs in the same order, the same counts and refusals.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from console.jobs.services import job_cancel, job_run_shard
from console.models import Job, JobShard, JobStatus, ShardStatus
from tagging.bulk import reading
from tagging.bulk.models import AudienceStatus, BulkAudience, BulkUploadChunk
from tagging.bulk.reading import audience_read_job, audience_upload
from tagging.customers import audience as customers_audience
from tagging.customers.audience import (
    READ_KIND,
    customer_audience_from_file,
    customer_audience_from_members,
    customer_audience_from_pairs,
    customer_audience_upload,
    customer_read_job,
    customer_refusal_rows,
)
from tagging.customers.models import CustomerAudience, CustomerUploadChunk
from tagging.strategy.models import Tag
from tagging.strategy.pull_apply import pull_and_apply
from tests.conftest import PASSWORD
from tests.tagging.customers.conftest import CORP, drain, read_uploaded
from wecom.sandbox.demo import demo_external_userid

pytestmark = pytest.mark.django_db


def fake_customer(n: int) -> str:
    return f"wmreading{n:020d}"


def what_was_read(audience: CustomerAudience) -> tuple:
    audience.refresh_from_db()
    return (
        list(
            audience.pairs.order_by("position").values_list("position", "userid", "external_userid")
        ),
        (audience.lines, audience.accepted, audience.customers, audience.duplicates),
        (audience.blanks, audience.refused, audience.expanded, audience.members),
        list(customer_refusal_rows(audience=audience)),
    )


def in_process(app, editor, data: bytes, name: str = "客户.csv") -> tuple:
    audience = customer_audience_from_file(
        app=app, stream=io.BytesIO(data), name=name, size=len(data), user=editor
    )
    return what_was_read(audience)


def upload(app, actor, data: bytes, name: str = "客户.csv") -> CustomerAudience:
    return customer_audience_upload(
        app=app, stream=io.BytesIO(data), name=name, size=len(data), actor=actor
    )


@pytest.fixture
def mixed(sandbox) -> tuple[bytes, dict]:
    """A list with every case: pairs, a duplicate, blanks, malformed values, members WeCom does
    not list, lines without a member (followed by three members, by nobody, and one that
    repeats a pair given with its member)."""
    customers = sandbox.state.customers
    sandbox.state.customers.add_member(CORP, "nocontact", customer_contact=False)
    mine = [demo_external_userid(n) for n in (1, 6, 11)]  # lisi's
    shared = demo_external_userid(0)  # followed by zhangsan, lisi and wangwu
    assert sorted(customers.followers(CORP, shared)) == ["lisi", "wangwu", "zhangsan"]
    lonely = customers.add_customer(CORP)  # followed by nobody
    lines = [
        "userid,external_userid,备注",  # 1
        *[f"lisi,{e},x" for e in mine],  # 2-4
        f"lisi,{mine[0]},dup",  # 5: a duplicate
        ",,",  # 6: blank
        "lisi,bad-id,x",  # 7: refused (customer)
        f"li si,{mine[1]},x",  # 8: refused (member)
        f"ghost,{mine[1]},x",  # 9: refused (no such member)
        f"nocontact,{mine[1]},x",  # 10: refused (no customer contact)
        f",{shared},every member",  # 11: three pairs
        f",{lonely},nobody",  # 12: refused, followed by nobody
        f",{shared},again",  # 13: three duplicates
        f"zhangsan,{shared},y",  # 14: a duplicate of line 11's
        "",  # 15: blank
        f"wangwu,{shared},z",  # 16: a duplicate of line 11's
    ]
    expected = {
        "pairs": [
            ("lisi", mine[0]),
            ("lisi", mine[1]),
            ("lisi", mine[2]),
            ("lisi", shared),
            ("wangwu", shared),
            ("zhangsan", shared),
        ],
        "refused": {7: "bad-id", 8: "li si", 9: "ghost", 10: "nocontact", 12: lonely},
        "lonely": lonely,
    }
    return "\r\n".join(lines).encode("utf-8-sig"), expected


def test_a_file_is_read_by_a_job_to_the_exact_pairs_and_counts(app, editor, actor, mixed):
    data, expected = mixed
    audience = upload(app, actor, data)
    job = read_uploaded(audience)

    assert (job.kind, job.status, audience.status) == (READ_KIND, JobStatus.DONE, "ready")
    assert job.progress().percent == 100
    pairs, counts, more, refusals = what_was_read(audience)
    assert [(u, e) for _p, u, e in pairs] == expected["pairs"]
    assert [p for p, _u, _e in pairs] == list(range(6))
    # lines, pairs, customers, duplicates (line 5, line 13's three, lines 14 and 16)
    assert counts == (16, 6, 4, 6)
    # blanks (6, 15), refused, lines without a member, pairs per member
    assert more == (2, 5, 3, {"lisi": 4, "wangwu": 1, "zhangsan": 1})
    assert {line: value for line, value, _reason in refusals} == expected["refused"]
    with translation.override("zh-hans"):
        assert dict((line, reason) for line, _v, reason in refusals)[12] == str(
            customers_audience._NOT_FOLLOWED
        )
    assert not CustomerUploadChunk.objects.exists()  # the file goes once it is read
    # tag_users reads the same file to the same audience.
    assert in_process(app, editor, data) == what_was_read(audience)


def test_the_upload_stores_the_file_and_reads_nothing(client, editor, app, sandbox):
    rows = ["userid,external_userid", *(f"lisi,{fake_customer(n)}" for n in range(60_000))]
    data = "\n".join(rows).encode()  # 2.5 MB: three parts
    client.login(username=editor.username, password=PASSWORD)
    sandbox.reset_stats()
    form = {
        "app": app.pk,
        "add": "etA1",
        "remove": "",
        "source": "file",
        "file": SimpleUploadedFile("客户.csv", data, content_type="text/csv"),
        "members": "",
    }
    with CaptureQueriesContext(connection) as queries:
        response = client.post(reverse("admin:tagging_customeraudience_add"), form)

    assert response.status_code == 302
    audience = CustomerAudience.objects.get()
    assert (audience.status, audience.file_size, audience.accepted) == ("reading", len(data), 0)
    assert not audience.pairs.exists() and not audience.refusals.exists()
    assert list(audience.chunks.order_by("index").values_list("index", flat=True)) == [0, 1, 2]
    # Every statement on the customer lists' tables: the audience and one per part.
    on_lists = [
        q["sql"].split(" (")[0]
        for q in queries.captured_queries
        if '"tagging_customer' in q["sql"].split(" (")[0]
    ]
    assert on_lists == [
        'INSERT INTO "tagging_customeraudience"',
        *['INSERT INTO "tagging_customeruploadchunk"'] * 3,
    ]
    assert not list(sandbox.requests), "no WeCom call in the request"
    job = customer_read_job(audience)
    assert (job.total, job.status) == (len(data) + 1, JobStatus.QUEUED)

    read_uploaded(audience)
    assert (audience.status, audience.accepted, audience.members) == (
        "ready",
        60_000,
        {"lisi": 60_000},
    )


class Killed(BaseException):
    """The worker's process ends here: nothing after it runs, not even an ``except``."""


def a_long_list() -> bytes:
    """Pairs of two members, with duplicates and refused lines, and lines without a member."""
    rows = ["external_userid,userid"]
    for n in range(30_000):
        if n % 50 == 7:
            rows.append(f"bad-{n},lisi")
        elif n % 40 == 3:
            rows.append(f"{fake_customer(n // 2)},lisi")  # a duplicate, or a first appearance
        elif n % 1000 == 11:
            rows.append(f"{demo_external_userid(0)},")  # every member following them
        else:
            rows.append(f"{fake_customer(n)},{'lisi' if n % 3 else 'zhangsan'}")
    return "\r\n".join(rows).encode()


def test_a_worker_killed_mid_read_leaves_no_pair_and_the_next_reads_it_whole(
    app, editor, actor, monkeypatch
):
    data = a_long_list()
    expected = in_process(app, editor, data)
    audience = upload(app, actor, data)
    job = customer_read_job(audience)
    monkeypatch.setattr(reading, "READ_CHECKPOINT_SECONDS", 0.0)
    marks: list[int] = []
    original = reading._JobRecorder.record

    def dies_after_some_steps(self, write):
        original(self, write)
        marks.append(JobShard.objects.get(job=job).position)
        if len(marks) == 4:
            raise Killed

    monkeypatch.setattr(reading._JobRecorder, "record", dies_after_some_steps)
    shard = JobShard.objects.get(job=job)
    with pytest.raises(Killed):
        job_run_shard(shard_id=shard.pk, worker="doomed")

    shard.refresh_from_db()
    audience.refresh_from_db()
    assert 0 < shard.position < shard.end - 1 and shard.status == ShardStatus.RUNNING
    assert audience.status == AudienceStatus.READING
    assert not audience.pairs.exists()
    assert audience.refusals.exists()  # written as it went

    # Its lease runs out; the next worker reads the file again from the first byte.
    monkeypatch.setattr(reading._JobRecorder, "record", original)
    JobShard.objects.filter(pk=shard.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    job = read_uploaded(audience)
    assert (job.status, audience.status) == (JobStatus.DONE, AudienceStatus.READY)
    assert what_was_read(audience) == expected  # no pair or refused line twice, none lost
    assert not CustomerUploadChunk.objects.exists()


def test_a_cancelled_read_leaves_no_list_being_read_and_no_file(app, actor, monkeypatch, settings):
    settings.JOBS_STATUS_CHECK_SECONDS = 0.0
    monkeypatch.setattr(reading, "READ_CHECKPOINT_SECONDS", 0.0)
    # Cancelled before any worker took it.
    waiting = upload(app, actor, a_long_list())
    job_cancel(job=customer_read_job(waiting), actor=actor)
    waiting.refresh_from_db()
    assert waiting.status == AudienceStatus.FAILED and not waiting.chunks.exists()

    # Cancelled while a worker reads it: the worker stops at its next step, writing nothing more.
    reading_now = upload(app, actor, a_long_list())
    job = customer_read_job(reading_now)
    original = reading._JobRecorder.record
    steps = []

    def cancelled(self, write):
        steps.append(1)
        if len(steps) == 2:
            job_cancel(job=Job.objects.get(pk=job.pk), actor=actor)
        original(self, write)

    monkeypatch.setattr(reading._JobRecorder, "record", cancelled)
    job_run_shard(shard_id=JobShard.objects.get(job=job).pk, worker="w")
    assert len(steps) == 2
    reading_now.refresh_from_db()
    assert reading_now.status == AudienceStatus.FAILED
    assert not reading_now.chunks.exists() and not reading_now.pairs.exists()
    assert not CustomerAudience.objects.filter(status=AudienceStatus.READING).exists()
    assert not CustomerUploadChunk.objects.exists()
    # Its page says so in a sentence, and offers no start.
    page = reverse("admin:tagging_customers_start", args=[reading_now.pk])
    assert drain(Job.objects.get(pk=job.pk)).status == JobStatus.CANCELLED
    from django.test import Client

    client = Client()
    assert client.login(username=actor.user.username, password=PASSWORD)
    html = client.get(page, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "data-bulk-read-refusal" in html and "Cancelled at" in html


def test_a_cancelled_bulk_read_too(actor):
    data = ("openid\n" + "\n".join(f"o{n:027d}" for n in range(100))).encode()
    audience = audience_upload(
        stream=io.BytesIO(data), name="名单.csv", size=len(data), actor=actor
    )
    assert BulkUploadChunk.objects.exists()
    job_cancel(job=audience_read_job(audience), actor=actor)
    audience.refresh_from_db()
    assert audience.status == AudienceStatus.FAILED
    assert not BulkUploadChunk.objects.exists()
    assert not BulkAudience.objects.filter(status=AudienceStatus.READING).exists()


def test_a_read_done_before_the_cancel_is_kept(app, actor, sandbox):
    audience = upload(app, actor, f"userid,external_userid\nlisi,{fake_customer(1)}\n".encode())
    job = read_uploaded(audience)
    assert job.status == JobStatus.DONE
    # A cancel that comes too late (the job has ended) is refused; the list stays ready.
    from console.jobs.services import JobStateError

    with pytest.raises(JobStateError):
        job_cancel(job=job, actor=actor)
    audience.refresh_from_db()
    assert (audience.status, audience.accepted) == (AudienceStatus.READY, 1)


def test_the_other_sources_write_through_the_same_staging(sandbox, app, editor):
    customers = sandbox.state.customers.customers_of(CORP, "zhaoliu")
    from_members = customer_audience_from_members(app=app, userids=["zhaoliu"], user=editor)
    assert from_members.status == AudienceStatus.READY
    assert (
        list(from_members.pairs.order_by("position").values_list("external_userid", flat=True))[:3]
        == customers[:3]
    )
    assert (from_members.accepted, from_members.customers) == (len(customers), len(customers))

    items = ["lisi/" + fake_customer(2), "lisi/" + fake_customer(1), "lisi/" + fake_customer(2)]
    retry = customer_audience_from_pairs(app=app, items=items, label="job #1", user=editor)
    assert list(retry.pairs.order_by("position").values_list("external_userid", flat=True)) == [
        fake_customer(2),
        fake_customer(1),
    ]
    assert (retry.lines, retry.accepted, retry.duplicates, retry.members) == (
        3,
        2,
        1,
        {"lisi": 2},
    )


def test_the_label_of_having_and_lacking_names_the_tags(sandbox, app, editor, actor):
    from console.audit import Actor, AuditSource

    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    vip, churned = Tag.objects.filter(app=app).order_by("pk")[:2]
    sandbox.state.customers.put_tags(CORP, "lisi", demo_external_userid(1), [vip.wecom_id])
    audience = customer_audience_from_members(
        app=app, userids=[], user=editor, having=[vip.wecom_id], lacking=[churned.wecom_id, "etX9"]
    )
    assert audience.accepted == 1
    assert vip.name in audience.source_label and churned.name in audience.source_label
    assert vip.wecom_id not in audience.source_label
    assert "etX9" in audience.source_label  # unknown to the console: its id


def test_wecom_unreachable_puts_the_read_on_hold_and_it_reads_whole_later(
    app, editor, actor, sandbox, mixed
):
    from wecom.sandbox import FaultRule

    data, expected = mixed
    sandbox.faults.add(
        FaultRule(
            platform="wecom",
            endpoint="/cgi-bin/externalcontact/get_follow_user_list",
            errcode=-1,
            times=100,
        )
    )
    audience = upload(app, actor, data)
    job = read_uploaded(audience)
    assert (job.status, audience.status) == (JobStatus.WAITING, AudienceStatus.READING)
    assert audience.chunks.exists() and not audience.pairs.exists()

    sandbox.faults.clear()
    from console.jobs.services import jobs_watchdog

    jobs_watchdog(now=job.resume_at + timedelta(seconds=1))
    job = read_uploaded(audience)
    assert (job.status, audience.status) == (JobStatus.DONE, AudienceStatus.READY)
    assert [(u, e) for _p, u, e in what_was_read(audience)[0]] == expected["pairs"]


def test_a_cancelled_read_of_members_leaves_nothing_being_read(app, actor, sandbox):
    from tagging.customers.audience import MEMBERS_READ_KIND, customer_audience_members_start

    audience = customer_audience_members_start(app=app, userids=["zhaoliu"], actor=actor)
    job = Job.objects.get(kind=MEMBERS_READ_KIND)
    assert audience.status == AudienceStatus.READING
    job_cancel(job=job, actor=actor)
    audience.refresh_from_db()
    assert audience.status == AudienceStatus.FAILED and not audience.pairs.exists()
    assert drain(Job.objects.get(pk=job.pk)).status == JobStatus.CANCELLED
