"""``tag_users`` sends a list's first parts while it reads the rest (issue 18).

Each part is committed with its shards, so a worker sends it while the file is still read. The
list must come out exactly as a list read whole (first appearances, numbered in order), the
job must make exactly ceil(N / batch) calls, and a reading that stops halfway (a bad line, a
cancel, a dead process) must end the job with a sentence, never leave it waiting.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone, translation
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

import tagging.bulk.audience as audience_module
from console.jobs.selectors import job_reason
from console.jobs.services import (
    READER_GONE,
    job_cancel,
    job_pause,
    job_resume,
    job_run_shard,
    jobs_watchdog,
)
from console.models import Job, JobShard, JobStatus, ShardStatus
from tagging.bulk.audience import (
    MAX_LINE_CHARS,
    audience_from_file,
    audience_openids,
    audience_read_in_parts,
)
from tagging.bulk.models import AudienceStatus, BulkAudience
from tests.tagging.bulk.test_bulk_admin import logged_in
from tests.tagging.bulk.test_bulk_jobs import BATCH_TAGGING, drain, oid
from wecom.sandbox import DEMO

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 50


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of a few hundred lines, so that a small file is read in several."""
    monkeypatch.setattr(audience_module, "FIRST_PART", 300)
    monkeypatch.setattr(audience_module, "SECOND_PART", 300)
    monkeypatch.setattr(audience_module, "CHUNK", 100)


class ProcessKilled(BaseException):
    """Stands for SIGKILL: nothing of the process runs after it."""


def run_open_shards(job: Job) -> None:
    """What the workers do with the job's shards now: the reading's, held, is not taken."""
    for shard in job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)):
        job_run_shard(shard_id=shard.pk, worker="test")


def after_each_part(monkeypatch, then: Callable[[Any, bool], None]) -> None:
    """``then(writer, final)`` right after each part of the list is committed."""
    part = audience_module._PartsWriter._part

    def part_then(self, *, final: bool) -> None:
        part(self, final=final)
        then(self, final)

    monkeypatch.setattr(audience_module._PartsWriter, "_part", part_then)


def killed(_writer: Any, _final: bool) -> None:
    raise ProcessKilled


def interrupted(_writer: Any, _final: bool) -> None:
    raise KeyboardInterrupt


def list_file(tmp_path, count: int):
    path = tmp_path / "list.csv"
    path.write_text("\n".join(oid(n) for n in range(count)))
    return path


def lines_with_duplicates(count: int) -> list[str]:
    # Every seventh line repeats one of 60 lines earlier: duplicates cross the parts' bounds.
    return [oid(n - 60 if n % 7 == 0 and n >= 60 else n) for n in range(count)]


def tag_users(path, tag, *extra: str) -> str:
    out = io.StringIO()
    call_command(
        "tag_users",
        "--oa",
        tag.account.name,
        "--tagid",
        str(tag.tag_id),
        "--file",
        str(path),
        "--batch-size",
        str(BATCH),
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_the_list_comes_out_as_if_read_whole_and_each_openid_is_sent_once(
    tmp_path, tag, sandbox, small_parts, editor
):
    values = lines_with_duplicates(2_000)
    values[500:500] = ["", "not-an-openid"]
    path = tmp_path / "list.csv"
    path.write_text("\n".join(values))

    tag_users(path, tag)

    job = Job.objects.get()
    audience = BulkAudience.objects.get(pk=job.params["audience_id"])
    with path.open("rb") as stream:
        whole = audience_from_file(stream=stream, name="list.csv", size=1, user=editor)
    assert audience.status == AudienceStatus.READY
    assert (audience.accepted, audience.duplicates, audience.blanks, audience.refused) == (
        whole.accepted,
        whole.duplicates,
        whole.blanks,
        whole.refused,
    )
    assert audience_openids(audience_id=audience.pk, start=0, end=10**6) == audience_openids(
        audience_id=whole.pk, start=0, end=10**6
    )
    # A part at 300 lines staged, one at 900, the last: whole batches but the last, 0..n-1.
    shards = list(job.shards.order_by("index").values_list("start", "end"))
    assert len(shards) == 3
    assert [start for start, _end in shards] == [0, *[end for _start, end in shards[:-1]]]
    assert shards[-1][1] == audience.accepted == job.total
    assert all((end - start) % BATCH == 0 for start, end in shards[:-1])
    assert job.title.startswith(f"Tag {audience.accepted:,} followers")

    drain(job)

    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert job.progress().done == audience.accepted
    assert sandbox.calls("wechat", BATCH_TAGGING) == math.ceil(audience.accepted / BATCH)
    fans = sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)
    assert set(audience_openids(audience_id=audience.pk, start=0, end=10**6)) <= set(fans)
    notes = [entry.change_message for entry in LogEntry.objects.filter(object_id=str(job.pk))]
    assert any(
        "List read" in note and str(audience.accepted) in note and str(len(shards)) in note
        for note in notes
    ), notes


def test_the_first_part_is_sent_while_the_rest_is_still_being_read(
    tmp_path, tag, sandbox, small_parts, monkeypatch
):
    path = tmp_path / "list.csv"
    path.write_text("\n".join(lines_with_duplicates(3_000)))
    seen: list[tuple[str, int]] = []

    def a_worker_sends(writer: Any, _final: bool) -> None:
        if not seen:
            # A worker takes the first shard up and sends it, the reading not over.
            run_open_shards(Job.objects.get())
        audience = BulkAudience.objects.get(pk=writer.audience.pk)
        seen.append((audience.status, sandbox.calls("wechat", BATCH_TAGGING)))

    after_each_part(monkeypatch, a_worker_sends)

    tag_users(path, tag)

    first_status, first_calls = seen[0]
    assert first_status == AudienceStatus.READING
    # The first part: 300 lines, 34 of them repeats; its whole batches (250 OpenIDs) were sent.
    assert first_calls == 250 // BATCH
    assert Job.objects.get().status == JobStatus.RUNNING  # the rest is queued, not yet sent


def test_a_file_shorter_than_the_first_part_is_read_in_one_part(tmp_path, tag, monkeypatch):
    monkeypatch.setattr(audience_module, "FIRST_PART", 2_001)
    monkeypatch.setattr(audience_module, "CHUNK", 100)
    parts: list[bool] = []
    after_each_part(monkeypatch, lambda _writer, final: parts.append(final))

    tag_users(list_file(tmp_path, 2_000), tag)

    assert parts == [True]
    assert list(Job.objects.get().shards.values_list("start", "end")) == [(0, 2_000)]


def test_the_first_part_is_small_and_the_next_ones_grow(tmp_path, tag, monkeypatch):
    # A small first part gets the first calls out at once; growing parts keep the grouping of
    # every row staged so far (one statement per part) within a small multiple of one pass.
    monkeypatch.setattr(audience_module, "FIRST_PART", 100)
    monkeypatch.setattr(audience_module, "SECOND_PART", 500)
    monkeypatch.setattr(audience_module, "CHUNK", 100)
    staged: list[tuple[int, bool]] = []
    after_each_part(monkeypatch, lambda w, final: staged.append((w.staging.staged, final)))

    tag_users(list_file(tmp_path, 3_000), tag)

    assert staged == [(100, False), (500, False), (1_500, False), (3_000, True)]


def test_a_file_with_no_openid_leaves_no_job_and_no_list(tmp_path, tag):
    path = tmp_path / "list.csv"
    path.write_text("nothing\nhere\n")

    with pytest.raises(CommandError, match="No OpenID was found"):
        tag_users(path, tag)

    assert not Job.objects.exists()
    assert not BulkAudience.objects.exists()


def test_a_line_that_cannot_be_read_after_the_first_part_fails_the_job_with_its_sentence(
    tmp_path, tag, sandbox, small_parts
):
    values = [oid(n) for n in range(1_000)]
    values.append("x" * (MAX_LINE_CHARS + 10))
    path = tmp_path / "list.csv"
    path.write_text("\n".join(values))

    with pytest.raises(CommandError, match="longer than"):
        tag_users(path, tag)

    job = Job.objects.get()
    assert job.status == JobStatus.FAILED
    with translation.override("en"):
        assert "longer than" in job_reason(job)
    assert job.title.startswith("Tag 900 followers")
    audience = BulkAudience.objects.get(pk=job.params["audience_id"])
    assert audience.status == AudienceStatus.FAILED
    # The parts published (at 300 and 900 lines) stay, for the job's counts and an undo.
    assert job.total == 900
    assert audience_openids(audience_id=audience.pk, start=0, end=10**6) == values[:900]
    # …and the list's page counts them, not 0.
    assert (audience.lines, audience.accepted, audience.duplicates) == (900, 900, 0)


def test_a_list_being_read_and_one_cut_short_have_pages_that_say_so(
    tmp_path, tag, sandbox, small_parts, monkeypatch, client, editor
):
    client = logged_in(client, editor)
    pages: list[tuple[int, str]] = []

    def open_its_page(writer: Any, final: bool) -> None:
        if not final:
            url = f"/admin/tagging/bulkaudience/{writer.audience.pk}/change/"
            response = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
            pages.append((response.status_code, response.content.decode()))

    after_each_part(monkeypatch, open_its_page)
    values = [oid(n) for n in range(1_000)]
    values.append("x" * (MAX_LINE_CHARS + 10))
    path = tmp_path / "list.csv"
    path.write_text("\n".join(values))
    with pytest.raises(CommandError):
        tag_users(path, tag)

    status, reading = pages[0]
    assert status == 200
    assert "data-bulk-read-by-command" in reading
    assert "300 OpenIDs read so far" in reading
    audience = BulkAudience.objects.get()
    cut_short = client.get(
        f"/admin/tagging/bulkaudience/{audience.pk}/change/", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert cut_short.status_code == 200
    text = cut_short.content.decode()
    assert "the 900 OpenIDs read before were kept" in text
    assert f"/admin/console/job/{Job.objects.get().pk}/change/" in text


def test_a_list_whose_reader_died_before_its_first_part_has_a_page(client, editor):
    # No job yet, no read job: the page says the list could not be read (no error page).
    audience = BulkAudience.objects.create(status=AudienceStatus.READING, created_by=editor)
    client = logged_in(client, editor)

    response = client.get(
        f"/admin/tagging/bulkaudience/{audience.pk}/change/", HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 200
    assert "The list could not be read." in response.content.decode()


def test_a_job_cancelled_while_its_list_is_read_stops_the_reading(
    tmp_path, tag, sandbox, small_parts, monkeypatch, settings, actor
):
    settings.JOBS_STATUS_CHECK_SECONDS = 0

    def cancel(_writer: Any, _final: bool) -> None:
        job = Job.objects.get()
        if job.status != JobStatus.CANCELLED:
            job_cancel(job=job, actor=actor)

    after_each_part(monkeypatch, cancel)

    with pytest.raises(CommandError, match="cancelled while its list was read"):
        tag_users(list_file(tmp_path, 3_000), tag)

    job = Job.objects.get()
    assert job.status == JobStatus.CANCELLED
    assert job.total == 300
    assert job.shards.count() == 2  # the first part's, and the reading's
    audience = BulkAudience.objects.get(pk=job.params["audience_id"])
    assert audience.status == AudienceStatus.FAILED


def test_a_job_paused_while_its_list_is_read_gets_every_part_and_sends_them_when_resumed(
    tmp_path, tag, sandbox, small_parts, monkeypatch, settings, actor
):
    settings.JOBS_STATUS_CHECK_SECONDS = 0

    def pause(_writer: Any, _final: bool) -> None:
        job = Job.objects.get()
        if job.status == JobStatus.QUEUED:
            job_pause(job=job, actor=actor)

    after_each_part(monkeypatch, pause)

    tag_users(list_file(tmp_path, 2_000), tag)

    job = Job.objects.get()
    assert job.status == JobStatus.PAUSED
    assert job.total == 2_000
    # Parts added while paused wait for the resume to be queued.
    assert job.shards.filter(enqueued_at__isnull=True).exists()
    job = drain(job_resume(job=job, actor=actor))
    assert job.status == JobStatus.DONE
    assert job.progress().done == 2_000


def test_a_reading_process_that_dies_fails_the_job_once_its_lease_is_taken_up(
    tmp_path, tag, sandbox, small_parts, monkeypatch
):
    after_each_part(monkeypatch, killed)
    with pytest.raises(ProcessKilled):
        tag_users(list_file(tmp_path, 3_000), tag)

    job = Job.objects.get()
    reader = job.shards.get(index=0)
    assert reader.status == ShardStatus.RUNNING and reader.lease_owner
    # Nothing finishes the job while the reading's lease holds, whatever the other parts do.
    run_open_shards(job)
    jobs_watchdog()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.progress().done == 300

    JobShard.objects.filter(pk=reader.pk).update(lease_expires_at=timezone.now())
    jobs_watchdog()
    run_open_shards(job)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    with translation.override("en"):
        assert job_reason(job) == str(READER_GONE)
    audience = BulkAudience.objects.get(pk=job.params["audience_id"])
    assert audience.status == AudienceStatus.FAILED
    assert audience.accepted == 300  # the part its reader committed before it died


def test_an_interrupted_reading_fails_the_job_at_once(
    tmp_path, tag, sandbox, small_parts, monkeypatch
):
    after_each_part(monkeypatch, interrupted)
    with pytest.raises(KeyboardInterrupt):
        tag_users(list_file(tmp_path, 1_000), tag)

    job = Job.objects.get()
    assert job.status == JobStatus.FAILED
    with translation.override("en"):
        assert job_reason(job) == str(READER_GONE)
    assert BulkAudience.objects.get().status == AudienceStatus.FAILED


def test_a_dead_reading_process_on_this_host_is_noticed_before_its_lease_runs_out(
    tmp_path, tag, sandbox, small_parts, monkeypatch, actor
):
    after_each_part(monkeypatch, killed)
    with pytest.raises(ProcessKilled):
        tag_users(list_file(tmp_path, 1_000), tag)
    job = Job.objects.get()
    reader = job.shards.get(index=0)

    report = jobs_watchdog(dead_owner=lambda owner: owner == reader.lease_owner)

    assert report.freed_shards == 1
    job_run_shard(shard_id=reader.pk, worker="test")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.progress().done == 0
    # What the sentence says: resuming sends what was read, and the job ends.
    job = drain(job_resume(job=job, actor=actor))
    assert job.status == JobStatus.DONE
    assert job.progress().done == job.total == 300


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    picks=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=300),
    first_part=st.integers(min_value=1, max_value=120),
    second_part=st.integers(min_value=1, max_value=200),
    chunk=st.integers(min_value=1, max_value=50),
)
def test_parts_number_first_appearances_as_one_pass_does(
    editor, picks, first_part, second_part, chunk
):
    values = [oid(pick) for pick in picks]
    published: list[tuple[int, bool]] = []
    original = (audience_module.FIRST_PART, audience_module.SECOND_PART, audience_module.CHUNK)
    audience_module.FIRST_PART, audience_module.SECOND_PART = first_part, second_part
    audience_module.CHUNK = chunk
    try:
        audience = BulkAudience.objects.create(status=AudienceStatus.READING, created_by=editor)
        audience = audience_read_in_parts(
            audience=audience,
            stream=io.BytesIO("\n".join(values).encode()),
            name="list.txt",
            publish=lambda accepted, final: published.append((accepted, final)),
            alive=lambda: None,
        )
    finally:
        (
            audience_module.FIRST_PART,
            audience_module.SECOND_PART,
            audience_module.CHUNK,
        ) = original
    expected = list(dict.fromkeys(values))
    assert audience_openids(audience_id=audience.pk, start=0, end=10**6) == expected
    assert audience.accepted == len(expected)
    assert audience.duplicates == len(values) - len(expected)
    assert published[-1] == (len(expected), True)
    assert [accepted for accepted, _final in published] == sorted(
        accepted for accepted, _final in published
    )
