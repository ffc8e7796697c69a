"""The bulk-job pages of the marketing editor: upload, preview, start; auditors only read."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from console.jobs.selectors import job_reason
from console.models import OPEN_JOB_STATUSES, Job, JobStatus
from tagging.bulk.jobs import KIND
from tagging.bulk.models import AudienceStatus, BulkAudience
from tagging.bulk.reading import READ_KIND
from tagging.official_account.models import OfficialAccountTag
from tests.conftest import PASSWORD
from tests.tagging.bulk.test_bulk_jobs import drain, oid, stranger

pytestmark = pytest.mark.django_db


def read_uploads() -> None:
    """What a worker does with the lists uploaded: run each one's reading job to its end."""
    for job in Job.objects.filter(kind=READ_KIND, status__in=OPEN_JOB_STATUSES):
        drain(job)


def logged_in(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


def upload_form(tag, data: bytes, name: str = "名单.csv") -> dict:
    return {
        "target_kind": "oa",
        "oa_tag": tag.pk,
        "operation": "tag",
        "source": "file",
        "file": SimpleUploadedFile(name, data, content_type="text/csv"),
        "column": "",
    }


def test_upload_preview_start_and_the_job_page(client, editor, tag, sandbox):
    client = logged_in(client, editor)
    lines = ["openid", oid(1), oid(2), oid(1), "", "bad-one", oid(3), stranger(1)]
    response = client.post(
        reverse("admin:tagging_bulkaudience_add"),
        upload_form(tag, "\r\n".join(lines).encode("utf-8-sig")),
    )
    assert response.status_code == 302
    preview_url = response["Location"]
    audience = BulkAudience.objects.get()
    assert audience.status == AudienceStatus.READING
    reading = client.get(preview_url).content.decode()
    assert "data-bulk-read-progress" in reading and "data-bulk-start" not in reading

    read_uploads()
    audience.refresh_from_db()
    page = client.get(preview_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert (audience.accepted, audience.duplicates, audience.blanks, audience.refused) == (
        4,
        1,
        1,
        1,
    )
    assert "bad-one" in html and oid(3) in html and "新关注" in html

    started = client.post(preview_url, dict(page.context["form"].data.items()))
    job = Job.objects.get(kind=KIND)
    assert started["Location"] == reverse("admin:console_job_change", args=[job.pk])
    assert job.created_by == editor
    assert job.total == 4

    drain(job)
    job_page = client.get(started["Location"])
    assert job_page.status_code == 200
    assert "tagging-bulk-detail" in job_page.content.decode()
    failures = client.get(reverse("admin:console_job_failures", args=[job.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(failures.streaming_content).decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == [stranger(1)]


def test_refused_values_download_all_of_them(client, editor, tag):
    client = logged_in(client, editor)
    lines = [oid(1), *[f"bad-{n}" for n in range(149)], "=HYPERLINK(1)"]
    client.post(
        reverse("admin:tagging_bulkaudience_add"), upload_form(tag, "\n".join(lines).encode())
    )
    read_uploads()
    audience = BulkAudience.objects.get()
    response = client.get(reverse("admin:tagging_bulk_refused", args=[audience.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 151
    assert rows[1][:2] == ["2", "bad-0"]
    assert rows[-1][1] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet


def test_an_unreadable_file_is_explained_on_the_form_and_creates_nothing(client, editor, tag):
    client = logged_in(client, editor)
    response = client.post(
        reverse("admin:tagging_bulkaudience_add"),
        upload_form(tag, b"\xd0\xcf\x11\xe0" + b"\x00" * 64, name="old.xls"),
    )
    assert response.status_code == 200
    assert ".xls" in response.content.decode()
    assert not BulkAudience.objects.exists()


def test_the_auditor_reads_but_cannot_start(client, editor, auditor, tag):
    logged_in(client, editor).post(
        reverse("admin:tagging_bulkaudience_add"), upload_form(tag, oid(1).encode())
    )
    read_uploads()
    audience = BulkAudience.objects.get()
    client.logout()
    client = logged_in(client, auditor)
    assert client.get(reverse("admin:tagging_bulkaudience_add")).status_code == 403
    preview = client.get(reverse("admin:tagging_bulkaudience_change", args=[audience.pk]))
    assert preview.status_code == 200
    assert "data-bulk-start" not in preview.content.decode()
    start = client.post(
        reverse("admin:tagging_bulk_start", args=[audience.pk]),
        {"target_kind": "oa", "oa_tag": tag.pk, "operation": "tag"},
    )
    assert start.status_code == 403
    assert not Job.objects.filter(kind=KIND).exists()


def test_retry_failed_only_from_the_job_page(client, editor, tag, sandbox):
    from wecom.sandbox import DEMO

    full = oid(50)
    for number in range(20):
        tag_id = sandbox.state.official_account.add_tag(DEMO.oa_appid, f"满{number}")
        sandbox.state.official_account.tag_users(DEMO.oa_appid, tag_id, [full])
    client = logged_in(client, editor)
    response = client.post(
        reverse("admin:tagging_bulkaudience_add"), upload_form(tag, f"{full}\n{oid(51)}".encode())
    )
    read_uploads()
    page = client.get(response["Location"])
    client.post(response["Location"], dict(page.context["form"].data.items()))
    job = drain(Job.objects.get(kind=KIND))
    assert job.status == JobStatus.DONE
    job_page = client.get(reverse("admin:console_job_change", args=[job.pk])).content.decode()
    retry_url = reverse("admin:tagging_bulk_retry", args=[job.pk])
    assert retry_url in job_page

    created = client.post(retry_url)
    retry = Job.objects.filter(kind=KIND).exclude(pk=job.pk).get()
    assert created["Location"] == reverse("admin:console_job_change", args=[retry.pk])
    assert (retry.parent, retry.total) == (job, 1)


def test_retry_after_the_tag_was_deleted_is_explained_not_a_crash(client, editor, tag, sandbox):
    from wecom.sandbox import DEMO

    full = oid(60)
    for number in range(20):
        tag_id = sandbox.state.official_account.add_tag(DEMO.oa_appid, f"满{number}")
        sandbox.state.official_account.tag_users(DEMO.oa_appid, tag_id, [full])
    client = logged_in(client, editor)
    response = client.post(
        reverse("admin:tagging_bulkaudience_add"), upload_form(tag, f"{full}\n{oid(61)}".encode())
    )
    read_uploads()
    page = client.get(response["Location"])
    client.post(response["Location"], dict(page.context["form"].data.items()))
    job = drain(Job.objects.get(kind=KIND))
    OfficialAccountTag.objects.filter(pk=tag.pk).delete()  # gone at the next pull of tags

    answer = client.post(
        reverse("admin:tagging_bulk_retry", args=[job.pk]), follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert answer.status_code == 200
    assert "no longer exists" in answer.content.decode()
    assert Job.objects.filter(kind=KIND).count() == 1


def test_a_job_whose_account_was_deleted_stops_with_a_sentence(client, editor, tag, sandbox):
    from wecom.models import OfficialAccount

    client = logged_in(client, editor)
    response = client.post(
        reverse("admin:tagging_bulkaudience_add"), upload_form(tag, f"{oid(70)}".encode())
    )
    read_uploads()
    page = client.get(response["Location"])
    client.post(response["Location"], dict(page.context["form"].data.items()))
    job = Job.objects.get(kind=KIND)
    OfficialAccount.objects.filter(pk=tag.account_id).delete()
    job = drain(job)
    assert job.status == JobStatus.FAILED
    assert "删除" in job_reason(job)


def test_hand_edited_ids_in_bulk_urls_are_not_found(client, editor):
    client = logged_in(client, editor)
    assert client.get("/admin/tagging/bulkaudience/abc/change/").status_code == 404


@pytest.mark.parametrize(
    ("fields_limit", "stored_at_most"),
    [
        (None, 200_000),  # counted as it arrives: stopped at the limit
        (10_000, 0),  # CONTENT_LENGTH alone proves it too large: not one byte stored
    ],
)
def test_a_file_over_the_limit_is_stopped_while_it_arrives(
    client, editor, tag, settings, monkeypatch, fields_limit, stored_at_most
):
    from django.core.files import uploadhandler

    settings.BULK_UPLOAD_MAX_BYTES = 200_000
    if fields_limit is not None:
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = fields_limit
    stored: list[int] = []
    for handler in (
        uploadhandler.MemoryFileUploadHandler,
        uploadhandler.TemporaryFileUploadHandler,
    ):
        original = handler.receive_data_chunk

        def counting(self, raw_data, start, original=original):
            stored.append(len(raw_data))
            return original(self, raw_data, start)

        monkeypatch.setattr(handler, "receive_data_chunk", counting)
    lines = "\r\n".join(oid(n) for n in range(40_000)).encode()  # 1.1 MB
    assert len(lines) > 1_000_000

    response = logged_in(client, editor).post(
        reverse("admin:tagging_bulkaudience_add"), upload_form(tag, lines)
    )

    assert response.status_code == 200
    form = response.context["form"]
    assert "file" not in form.errors  # not "choose a file": the reason instead
    [message] = form.non_field_errors()
    assert "0.2" in message and "1.1" in message  # the limit and the size, in MB
    assert message in response.content.decode()
    assert sum(stored) <= stored_at_most
    assert not BulkAudience.objects.exists()


def test_the_upload_page_still_checks_the_csrf_token(editor, tag):
    from django.test import Client

    client = logged_in(Client(enforce_csrf_checks=True), editor)
    response = client.post(
        reverse("admin:tagging_bulkaudience_add"), upload_form(tag, oid(1).encode())
    )
    assert response.status_code == 403
    assert not BulkAudience.objects.exists()
