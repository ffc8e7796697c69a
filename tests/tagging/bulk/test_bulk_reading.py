"""Uploaded lists read by a job: the request stores the file, a worker reads it, the page follows.

Each read is compared with the same file read in process (``audience_from_file``, what
``tag_users`` does): the same members in the same order, the same counts and refused lines.
"""

from __future__ import annotations

import io
import math
import random
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from console.jobs.runner import StopReason
from console.jobs.selectors import job_reason
from console.jobs.services import job_resume, job_run_shard
from console.models import Job, JobShard, JobStatus, ShardStatus
from tagging.bulk import reading
from tagging.bulk.audience import audience_from_file, audience_openids, audience_refusal_rows
from tagging.bulk.models import (
    AudienceStatus,
    BulkAudience,
    BulkAudienceMember,
    BulkAudienceRefusal,
    BulkUploadChunk,
)
from tagging.bulk.reading import READ_KIND, audience_read_job, audience_upload
from tagging.bulk.services import bulk_job_start
from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import oa_tags_pull
from tests.conftest import PASSWORD
from tests.hostile_files import good_xlsx
from tests.tagging.bulk.test_bulk_jobs import drain, oid

pytestmark = pytest.mark.django_db


@pytest.fixture
def oa_tag(sandbox, account, actor) -> OfficialAccountTag:
    oa_tags_pull(account=account, actor=actor)
    return OfficialAccountTag.objects.get(name="新关注")


def a_list(lines: int, *, seed: int = 7) -> bytes:
    """A header, then OpenIDs with duplicates, blanks and malformed values, CRLF."""
    rng = random.Random(seed)
    rows = ["openid"]
    for number in range(lines):
        draw = rng.random()
        if draw < 0.02:
            rows.append("")
        elif draw < 0.05:
            rows.append(f"bad-{number}")
        elif draw < 0.10 and number:
            rows.append(oid(rng.randrange(number)))
        else:
            rows.append(oid(number))
    return "\r\n".join(rows).encode()


def upload(actor, data: bytes, name: str = "名单.csv", column: str = "") -> BulkAudience:
    return audience_upload(
        stream=io.BytesIO(data), name=name, size=len(data), column=column, actor=actor
    )


def read(audience: BulkAudience) -> Job:
    job = drain(audience_read_job(audience))
    audience.refresh_from_db()
    return job


def what_was_read(audience: BulkAudience) -> tuple:
    return (
        audience_openids(audience_id=audience.pk, start=0, end=audience.accepted),
        (audience.lines, audience.accepted, audience.duplicates, audience.blanks),
        (audience.refused, audience.encoding),
        list(audience_refusal_rows(audience=audience)),
    )


def in_process(editor, data: bytes, name: str = "名单.csv", column: str = "") -> tuple:
    audience = audience_from_file(
        stream=io.BytesIO(data), name=name, size=len(data), column=column, user=editor
    )
    return what_was_read(audience)


def test_the_upload_stores_the_file_in_parts_and_reads_not_one_row(client, editor, oa_tag):
    data = a_list(90_000)  # 2.9 MB: three parts
    parts = math.ceil(len(data) / reading.UPLOAD_CHUNK_BYTES)
    assert parts == 3
    client.login(username=editor.username, password=PASSWORD)
    form = {
        "target_kind": "oa",
        "oa_tag": oa_tag.pk,
        "operation": "tag",
        "source": "file",
        "file": SimpleUploadedFile("名单.csv", data, content_type="text/csv"),
    }
    with CaptureQueriesContext(connection) as queries:
        response = client.post(reverse("admin:tagging_bulkaudience_add"), form)

    assert response.status_code == 302
    audience = BulkAudience.objects.get()
    assert response["Location"].startswith(reverse("admin:tagging_bulk_start", args=[audience.pk]))
    assert (audience.status, audience.file_size, audience.accepted) == (
        AudienceStatus.READING,
        len(data),
        0,
    )
    assert not BulkAudienceMember.objects.exists() and not BulkAudienceRefusal.objects.exists()
    assert list(BulkUploadChunk.objects.order_by("index").values_list("index", flat=True)) == [
        0,
        1,
        2,
    ]
    # Every statement on the lists' tables: the audience and one per part, nothing read.
    on_lists = [
        q["sql"].split(" (")[0]
        for q in queries.captured_queries
        if '"tagging_bulk' in q["sql"].split(" (")[0]
    ]
    assert on_lists == [
        'INSERT INTO "tagging_bulkaudience"',
        *['INSERT INTO "tagging_bulkuploadchunk"'] * parts,
    ]
    job = audience_read_job(audience)
    assert (job.kind, job.total, job.status) == (READ_KIND, len(data) + 1, JobStatus.QUEUED)
    assert job.created_by == editor


@pytest.mark.parametrize(
    ("name", "make", "column"),
    [
        ("名单.csv", lambda: a_list(3_000), ""),
        ("名单.xlsx", lambda: good_xlsx(250), ""),
        ("名单.txt", lambda: "\n".join(oid(n) for n in range(40)).encode("utf-16"), ""),
        (
            "名单.csv",
            lambda: (
                "姓名,用户标识\r\n" + "".join(f"张{n},{oid(n)}\r\n" for n in range(30))
            ).encode("gb18030"),
            "用户标识",
        ),
    ],
    ids=["csv", "xlsx", "utf-16 txt", "gb18030 with a column"],
)
def test_the_job_reads_a_file_to_the_same_audience_as_in_process(editor, actor, name, make, column):
    data = make()
    expected = in_process(editor, data, name, column)
    audience = upload(actor, data, name, column)
    job = read(audience)
    assert (job.status, audience.status) == (JobStatus.DONE, AudienceStatus.READY)
    assert what_was_read(audience) == expected
    assert not BulkUploadChunk.objects.exists()  # the file goes once it is read
    assert job.progress().percent == 100


def test_gb18030_found_late_reads_again_without_the_first_attempts_refusals(editor, actor):
    # 6,000 refused lines (more than one write of them) before the first byte that is not
    # UTF-8: the first attempt has written refusals when it finds out.
    rows = ["openid", *(f"bad{n}" for n in range(6_000)), oid(1), "张三", oid(2)]
    data = "\n".join(rows).encode("gb18030")
    expected = in_process(editor, data)
    audience = upload(actor, data)
    read(audience)
    assert what_was_read(audience) == expected
    assert audience.encoding == "gb18030"
    assert BulkAudienceRefusal.objects.filter(audience=audience).count() == 6_001


class Killed(BaseException):
    """The worker's process ends here: nothing after it runs, not even an ``except``."""


def test_a_worker_killed_mid_read_leaves_no_audience_and_the_next_reads_it_whole(
    editor, actor, monkeypatch
):
    data = a_list(120_000)  # 3.9 MB, four parts; about 3,600 refused lines
    expected = in_process(editor, data)
    audience = upload(actor, data)
    job = audience_read_job(audience)
    monkeypatch.setattr(reading, "READ_CHECKPOINT_SECONDS", 0.0)
    marks: list[int] = []
    original = reading._JobRecorder.record

    def dies_after_some_steps(self, write):
        original(self, write)
        marks.append(JobShard.objects.get(job=job).position)
        if len(marks) == 15:
            raise Killed

    monkeypatch.setattr(reading._JobRecorder, "record", dies_after_some_steps)
    shard = JobShard.objects.get(job=job)
    with pytest.raises(Killed):
        job_run_shard(shard_id=shard.pk, worker="doomed")

    shard.refresh_from_db()
    audience.refresh_from_db()
    # The bar moved; the audience cannot be used: no member, not startable.
    assert 0 < shard.position < shard.end - 1 and shard.status == ShardStatus.RUNNING
    assert marks == sorted(marks)
    assert audience.status == AudienceStatus.READING
    assert not BulkAudienceMember.objects.filter(audience=audience).exists()
    assert BulkAudienceRefusal.objects.filter(audience=audience).exists()  # written as it went
    with pytest.raises(ValidationError):
        bulk_job_start(audience=audience, target=None, actor=actor)

    # Its lease runs out; the next worker reads the file again from the first byte.
    monkeypatch.setattr(reading._JobRecorder, "record", original)
    JobShard.objects.filter(pk=shard.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    job = read(audience)
    assert (job.status, audience.status) == (JobStatus.DONE, AudienceStatus.READY)
    assert what_was_read(audience) == expected  # no member or refused line twice, none lost
    assert not BulkUploadChunk.objects.exists()


def test_a_worker_whose_shard_was_taken_over_writes_nothing_more(editor, actor, monkeypatch):
    data = a_list(60_000)
    expected = in_process(editor, data)
    audience = upload(actor, data)
    job = audience_read_job(audience)
    monkeypatch.setattr(reading, "READ_CHECKPOINT_SECONDS", 0.0)
    original = reading._JobRecorder.record
    steps = []

    def taken_over(self, write):
        steps.append(1)
        if len(steps) == 5:  # another worker holds the shard now
            JobShard.objects.filter(job=job).update(lease_owner="another/1")
        original(self, write)

    monkeypatch.setattr(reading._JobRecorder, "record", taken_over)
    shard = JobShard.objects.get(job=job)
    outcome = job_run_shard(shard_id=shard.pk, worker="first")
    assert outcome.stop_reason is StopReason.LEASE_LOST
    assert len(steps) == 5  # it stopped at its first checkpoint without the lease
    audience.refresh_from_db()
    assert audience.status == AudienceStatus.READING

    # The other worker dies too; its lease runs out and a third reads the file whole.
    monkeypatch.setattr(reading._JobRecorder, "record", original)
    JobShard.objects.filter(job=job).update(
        lease_owner="", lease_expires_at=None, status=ShardStatus.PENDING
    )
    read(audience)
    assert what_was_read(audience) == expected


def test_a_paused_read_stops_and_reads_whole_when_resumed(editor, actor, monkeypatch):
    data = a_list(30_000)
    expected = in_process(editor, data)
    audience = upload(actor, data)
    job = audience_read_job(audience)
    monkeypatch.setattr(reading, "READ_CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr("django.conf.settings.JOBS_STATUS_CHECK_SECONDS", 0.0)
    original = reading._JobRecorder.record
    steps = []

    def paused(self, write):
        steps.append(1)
        if len(steps) == 2:
            Job.objects.filter(pk=job.pk).update(status=JobStatus.PAUSED)
        original(self, write)

    monkeypatch.setattr(reading._JobRecorder, "record", paused)
    job_run_shard(shard_id=JobShard.objects.get(job=job).pk, worker="w")
    assert len(steps) == 2
    audience.refresh_from_db()
    assert audience.status == AudienceStatus.READING
    assert not BulkAudienceMember.objects.filter(audience=audience).exists()

    monkeypatch.setattr(reading._JobRecorder, "record", original)
    job_resume(job=Job.objects.get(pk=job.pk), actor=actor)
    read(audience)
    assert what_was_read(audience) == expected


def test_a_file_that_cannot_be_read_fails_the_job_in_words_and_keeps_nothing(editor, actor):
    audience = upload(actor, b"openid\r\nnot-one\r\nnor-this\r\n")
    job = read(audience)
    assert (job.status, audience.status) == (JobStatus.FAILED, AudienceStatus.FAILED)
    with translation.override("en"):
        assert job_reason(job) == (
            "No OpenID was found (2 value(s) refused). Check the file or the column."
        )
    with translation.override("zh-hans"):
        assert "OpenID" in job_reason(job) and not job_reason(job).isascii()
    assert not (
        BulkAudienceMember.objects.exists()
        or BulkAudienceRefusal.objects.exists()
        or BulkUploadChunk.objects.exists()
    )
    # Resumed by hand: the file is gone, and it says so.
    job_resume(job=job, actor=actor)
    job = read(audience)
    assert job.status == JobStatus.FAILED
    with translation.override("en"):
        assert job_reason(job) == "The uploaded file is no longer kept. Upload it again."


def test_the_page_follows_the_read_then_shows_the_preview_or_the_refusal(
    client, editor, actor, oa_tag
):
    client.login(username=editor.username, password=PASSWORD)
    good = upload(actor, a_list(500))
    url = (
        reverse("admin:tagging_bulk_start", args=[good.pk])
        + f"?target_kind=oa&oa_tag={oa_tag.pk}&operation=tag"
    )
    page = client.get(url).content.decode()
    job = audience_read_job(good)
    assert "data-bulk-read-progress" in page and "data-bulk-start" not in page
    assert reverse("admin:console_job_progress", args=[job.pk]) in page
    assert "console/jobs.js" in page and "data-reload-on-change" in page
    read(good)
    page = client.get(url).content.decode()
    assert "data-bulk-start" in page and "data-bulk-read-progress" not in page
    assert f'data-count="accepted">{good.accepted}<' in page

    bad = upload(actor, "\n".join(f"bad{n}" for n in range(5)).encode())
    read(bad)
    page = client.get(
        reverse("admin:tagging_bulk_start", args=[bad.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "No OpenID was found (5 value(s) refused)" in page
    assert "data-bulk-start" not in page and "console/jobs.js" not in page


def test_the_reader_keeps_its_time_bound_in_the_job(editor, actor, monkeypatch):
    from tagging.bulk import audience as audience_module

    monkeypatch.setattr(audience_module, "read_seconds", lambda: 0.0)
    audience = upload(actor, a_list(25_000))
    job = read(audience)
    assert (job.status, audience.status) == (JobStatus.FAILED, AudienceStatus.FAILED)
    with translation.override("en"):
        assert job_reason(job).startswith("The file could not be read within 0 seconds.")
    assert not BulkAudienceMember.objects.exists() and not BulkUploadChunk.objects.exists()
