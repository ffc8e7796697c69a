"""The WeCom customer-tagging pages: upload, preview, start, the job page, retry, hostile files
refused in words; who may do what."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from console.models import Job, JobStatus
from tagging.bulk.models import AudienceStatus
from tagging.customers.audience import MEMBERS_READ_KIND, customer_read_job
from tagging.customers.jobs import KIND
from tagging.customers.models import CustomerAudience
from tests import hostile_files
from tests.conftest import PASSWORD
from tests.tagging.customers.conftest import CORP, drain, read_uploaded
from wecom.sandbox.demo import demo_external_userid

pytestmark = pytest.mark.django_db


def logged_in(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


def upload_form(app, data: bytes, *, add: str = "", remove: str = "", name: str = "客户.csv"):
    return {
        "app": app.pk,
        "add": add,
        "remove": remove,
        "source": "file",
        "file": SimpleUploadedFile(name, data, content_type="text/csv"),
        "members": "",
    }


def test_upload_preview_start_the_job_page_and_retry(client, editor, app, sandbox, strategy_tags):
    client = logged_in(client, editor)
    tag = strategy_tags[1][0]
    customers = sandbox.state.customers
    mine = [demo_external_userid(n) for n in (1, 6, 11)]  # lisi's (n % 5 == 1)
    outside = customers.customers_of(CORP, "sunqi")[0]
    lines = [
        "userid,external_userid,备注",
        *[f"lisi,{e},x" for e in mine],
        f"lisi,{mine[0]},dup",
        ",,",
        "lisi,bad-id,x",
        f"sunqi,{outside},y",
        f",{demo_external_userid(0)},every member",  # zhangsan, lisi, wangwu
    ]
    response = client.post(
        reverse("admin:tagging_customeraudience_add"),
        upload_form(app, "\r\n".join(lines).encode("utf-8-sig"), add=tag),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    audience = CustomerAudience.objects.get()
    # Kept for a worker: nothing read yet, and the page follows the reading job's bar.
    assert audience.status == AudienceStatus.READING and not audience.pairs.exists()
    following = client.get(response["Location"]).content.decode()
    read_job = customer_read_job(audience)
    assert "data-bulk-read-progress" in following and "data-customers-start" not in following
    assert reverse("admin:console_job_progress", args=[read_job.pk]) in following
    assert "console/jobs.js" in following
    assert client.post(response["Location"], {"add": tag, "remove": ""}).status_code == 403

    read_uploaded(audience)
    assert (audience.accepted, audience.duplicates, audience.blanks, audience.refused) == (
        7,
        1,
        1,
        1,
    )
    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200 and "data-customers-start" in html
    assert "bad-id" in html and mine[2] in html and tag in html
    assert "sunqi" in html, "which members"

    started = client.post(response["Location"], {"add": tag, "remove": ""})
    job = Job.objects.get(kind=KIND)
    assert started["Location"] == reverse("admin:console_job_change", args=[job.pk])
    assert job.total == 7
    drain(job)
    job.refresh_from_db()
    assert (job.progress().done, job.progress().failed) == (6, 1)
    job_page = client.get(started["Location"]).content.decode()
    assert "tagging-customers-detail" in job_page
    assert reverse("admin:tagging_customers_retry", args=[job.pk]) in job_page
    failures = client.get(reverse("admin:console_job_failures", args=[job.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(failures.streaming_content).decode("utf-8-sig"))))
    assert [row[:2] for row in rows[1:]] == [[f"sunqi/{outside}", "60011"]]

    customers.set_strategies(CORP, "sunqi", [1])
    retry_url = reverse("admin:tagging_customers_retry", args=[job.pk])
    assert client.get(retry_url).status_code == 200
    retried = client.post(retry_url)
    retry = Job.objects.get(parent=job)
    assert retried["Location"] == reverse("admin:console_job_change", args=[retry.pk])
    drain(retry)
    assert customers.tags_of(CORP, "sunqi", outside) == [tag]


def test_the_customers_of_chosen_members(client, editor, app, sandbox, strategy_tags):
    client = logged_in(client, editor)
    response = client.post(
        reverse("admin:tagging_customeraudience_add"),
        {
            "app": app.pk,
            "add": "",
            "remove": strategy_tags[2][0],
            "source": "members",
            "members": "zhaoliu, zhaoliu",
        },
    )
    assert response.status_code == 302
    audience = CustomerAudience.objects.get()
    # Read by a job: no WeCom call in the request.
    assert audience.status == AudienceStatus.READING and not audience.pairs.exists()
    assert customer_read_job(audience) is None
    job = Job.objects.get(kind=MEMBERS_READ_KIND)
    assert drain(job).status == JobStatus.DONE
    audience.refresh_from_db()
    assert audience.status == AudienceStatus.READY
    assert audience.members == {
        "zhaoliu": len(sandbox.state.customers.customers_of(CORP, "zhaoliu"))
    }


def test_members_wecom_does_not_list_fail_the_read_in_words(client, editor, app, sandbox):
    client = logged_in(client, editor)
    form = {"app": app.pk, "add": "etA1", "remove": "", "source": "members"}
    response = client.post(
        reverse("admin:tagging_customeraudience_add"), {**form, "members": "lisi ghost"}
    )
    assert response.status_code == 302
    job = drain(Job.objects.get(kind=MEMBERS_READ_KIND))
    audience = CustomerAudience.objects.get()
    audience.refresh_from_db()
    assert (job.status, audience.status) == (JobStatus.FAILED, AudienceStatus.FAILED)
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert (
        "data-bulk-read-refusal" in page and "ghost" in page and "data-customers-start" not in page
    )
    assert "Nothing of this list was kept." in page


def test_a_file_that_is_not_a_list_is_refused_at_the_upload(client, editor, app, sandbox):
    client = logged_in(client, editor)
    for data, name, words in (
        (b"\x00\x01\x02binary", "bad.csv", "not text"),
        (b"\xd0\xcf\x11\xe0old excel", "bad.xls", ".xls"),
    ):
        with translation.override("en"):
            response = client.post(
                reverse("admin:tagging_customeraudience_add"),
                upload_form(app, data, add="etA1", name=name),
                HTTP_ACCEPT_LANGUAGE="en",
            )
        assert response.status_code == 200
        errors = " ".join(response.context["form"].non_field_errors())
        assert errors and words in errors
    assert not CustomerAudience.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"userid,external_userid\n" + b"x" * 2_000_000 + b"\n", "longer than"),
        (hostile_files.entity_expansion(), "entit"),
        (b"a,b,c\n1,2,3\n", "external_userid"),
        (b"external_userid\nnot-an-id\n", "No (member, customer) pair"),
    ],
)
def test_hostile_and_useless_files_are_refused_in_words(client, editor, app, sandbox, data, words):
    client = logged_in(client, editor)
    response = client.post(
        reverse("admin:tagging_customeraudience_add"),
        upload_form(app, data, add="etA1", name="bad.xlsx" if data[:2] == b"PK" else "bad.csv"),
    )
    assert response.status_code == 302
    audience = CustomerAudience.objects.get()
    job = read_uploaded(audience)
    assert (job.status, audience.status) == (JobStatus.FAILED, AudienceStatus.FAILED)
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    refusal = page.content.decode().split("data-bulk-read-refusal>", 1)[1].split("</div>", 1)[0]
    assert words in refusal.replace("&#x27;", "'").replace("&quot;", '"')
    assert "data-customers-start" not in page.content.decode()
    assert not (audience.pairs.exists() or audience.refusals.exists() or audience.chunks.exists())


def test_a_file_over_the_limit_is_refused_before_it_is_stored(client, editor, app, settings):
    settings.BULK_UPLOAD_MAX_BYTES = 1024
    client = logged_in(client, editor)
    response = client.post(
        reverse("admin:tagging_customeraudience_add"),
        upload_form(app, b"external_userid\n" + b"w" * 5000, add="etA1"),
    )
    assert response.status_code == 200
    assert "MB" in " ".join(response.context["form"].non_field_errors())


def test_no_tags_or_bad_tag_ids_are_refused_beside_the_field(client, editor, app):
    client = logged_in(client, editor)
    url = reverse("admin:tagging_customeraudience_add")
    data = b"external_userid\n" + demo_external_userid(0).encode()
    response = client.post(url, upload_form(app, data))
    assert response.status_code == 200 and response.context["form"].errors
    response = client.post(url, upload_form(app, data, add="134"))
    assert "add" in response.context["form"].errors
    assert not CustomerAudience.objects.exists()


def test_an_auditor_reads_but_starts_nothing(client, auditor, editor, app, audience_from_csv):
    audience = audience_from_csv(["external_userid,userid", f"{demo_external_userid(1)},lisi"])
    client = logged_in(client, auditor)
    assert client.get(reverse("admin:tagging_customeraudience_add")).status_code == 403
    url = reverse("admin:tagging_customers_start", args=[audience.pk])
    assert client.post(url, {"add": "etA1"}).status_code == 403
    assert not Job.objects.exists()


@pytest.mark.parametrize("object_id", ["x", "-1", "99999999999999999999999", "1%00"])
def test_hostile_ids_are_a_404(client, editor, object_id):
    client = logged_in(client, editor)
    for name in ("tagging_customers_start", "tagging_customers_refused", "tagging_customers_retry"):
        assert client.get(reverse(f"admin:{name}", args=[object_id])).status_code == 404
