"""A marketing editor uploads an audience, reads the preview, starts a bulk job, watches it
finish, downloads the failures; then pauses and resumes another job. In zh-hans, against the
sandbox over real HTTP; the test plays the background worker between its looks at the page."""

from __future__ import annotations

import re

import pytest
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from playwright.sync_api import Page, Request, expect

from console.audit import Actor, AuditSource
from console.jobs.services import job_run_shard
from console.models import Job, JobStatus, ShardStatus
from tagging.bulk.jobs import KIND
from tagging.bulk.models import BulkAudience
from tagging.bulk.reading import READ_KIND
from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import oa_tags_pull
from tests.browser.conftest import login
from wecom.models import OfficialAccount
from wecom.sandbox import DEMO
from wecom.sandbox.demo import demo_openid

SHOTS = None  # set to a Path to keep screenshots of each step while developing


def oid(n: int) -> str:
    return demo_openid(DEMO.oa_openid_prefix, n)


STRANGER = demo_openid("oZZZZZ", 1)


@pytest.fixture
def tag(sandbox, editor, settings) -> OfficialAccountTag:
    if isinstance(caches["shared"], DatabaseCache):
        settings.CACHES = {
            **settings.CACHES,
            "shared": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "bulk-browser",
            },
        }
    account = OfficialAccount.objects.create(
        name="演示公众号", appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=10_000
    )
    account = OfficialAccount.objects.get(pk=account.pk)
    oa_tags_pull(account=account, actor=Actor(user=editor, source=AuditSource.CONSOLE))
    return OfficialAccountTag.objects.get(name="新关注")


def work(job: Job, *, slices: int = 1) -> None:
    """What a worker does: one slice of each open shard."""
    for _ in range(slices):
        for shard in job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)):
            job_run_shard(shard_id=shard.pk, worker="browser-test")


def shot(page: Page, name: str) -> None:
    if SHOTS is not None:
        page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def new_job_page(page: Page, tag: OfficialAccountTag) -> None:
    page.goto("/admin/tagging/bulkaudience/")
    page.locator(".object-tools").get_by_role("link", name=re.compile("增加")).click()
    expect(page).to_have_url(re.compile(r"/admin/tagging/bulkaudience/add/$"))
    page.locator("#id_oa_tag").select_option(str(tag.pk))


def test_upload_preview_start_watch_download_then_pause_and_resume(page, editor, tag, sandbox):
    login(page, editor)
    new_job_page(page, tag)
    lines = ["openid", *[oid(n) for n in range(1, 41)], oid(1), oid(2), "", "不是openid", STRANGER]
    page.locator("#id_file").set_input_files(
        {
            "name": "活动名单.csv",
            "mimeType": "text/csv",
            "buffer": "\r\n".join(lines).encode("utf-8-sig"),
        }
    )
    expect(page.locator("#id_text")).to_be_hidden()  # only the chosen source's fields show
    shot(page, "1-form")
    page.locator("[data-bulk-preview]").click()

    # The list is read by a worker: the page follows its bar, then shows the preview by itself.
    expect(page).to_have_url(re.compile(r"/admin/tagging/bulkaudience/\d+/start/\?"))
    expect(page.locator("[data-bulk-read-progress] progress")).to_be_visible()
    expect(page.locator("[data-bulk-start]")).to_have_count(0)
    shot(page, "1b-reading")
    work(Job.objects.get(kind=READ_KIND))

    # The preview: counts, first rows, what is refused.
    expect(page.locator("[data-count=accepted]")).to_have_text("41")
    expect(page.locator("[data-count=duplicates]")).to_have_text("2")
    expect(page.locator("[data-count=blanks]")).to_have_text("1")
    expect(page.locator("[data-count=refused]")).to_have_text("1")
    expect(page.locator("[data-bulk-refusals]")).to_contain_text("不是openid")
    expect(page.locator("[data-bulk-first-rows] li").first).to_have_text(oid(1))
    expect(page.locator("[data-bulk-target]")).to_contain_text("新关注")
    shot(page, "2-preview")
    page.locator("[data-bulk-start]").click()

    # The job page: the bar moves as the worker goes, without reloading by hand.
    expect(page).to_have_url(re.compile(r"/admin/console/job/\d+/change/$"))
    job = Job.objects.get(kind=KIND)
    expect(page.locator("[data-job-field=percent]")).to_have_text("0%")
    work(job)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    expect(page.locator("[data-job-field=done]")).to_have_text("40")
    expect(page.locator("[data-job-field=failed]")).to_have_text("1")
    expect(page.locator("[data-job-field=sentence]")).to_contain_text("完成")
    shot(page, "3-done")

    with page.expect_download() as download_info:
        page.locator("[data-job-control=failures]").click()
    content = download_info.value.path().read_text(encoding="utf-8-sig")
    assert STRANGER in content and "49003" in content

    # A second job, pasted, paused and resumed from its page.
    new_job_page(page, tag)
    page.get_by_label("粘贴的列表").check()
    page.locator("#id_text").fill("\n".join(oid(n) for n in range(100, 400)))
    page.locator("#id_batch_size").fill("10")
    page.locator("[data-bulk-preview]").click()
    expect(page.locator("[data-count=accepted]")).to_have_text("300")
    page.locator("[data-bulk-start]").click()
    second = Job.objects.filter(kind=KIND).exclude(pk=job.pk).get()
    page.locator("[data-job-control=pause]").click()
    expect(page.locator("[data-job-field=status_label]")).to_have_text("已暂停")
    assert Job.objects.get(pk=second.pk).status == JobStatus.PAUSED
    work(second)  # a worker finds it paused and sends nothing
    assert second.progress().processed == 0
    shot(page, "4-paused")
    page.locator("[data-job-control=resume]").click()
    expect(page.locator("[data-job-control=pause]")).to_be_visible()
    work(second, slices=2)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    assert set(oid(n) for n in range(100, 400)) <= sandbox.state.official_account.tag_fans(
        DEMO.oa_appid, tag.tag_id
    )
    shot(page, "5-resumed-done")


def test_a_file_over_the_limit_is_refused_before_it_is_sent_and_reading_shows(
    page, editor, tag, settings
):
    settings.BULK_UPLOAD_MAX_BYTES = 300 * 1024
    login(page, editor)
    new_job_page(page, tag)
    refusal = page.locator("[data-bulk-file-refusal]")
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request) if request.method == "POST" else None)

    page.locator("#id_file").set_input_files(
        {"name": "太大了.csv", "mimeType": "text/csv", "buffer": b"x" * (600 * 1024)}
    )
    expect(refusal).to_have_text("文件大小为 0.6 MB；最多可上传 0.3 MB。")
    page.locator("[data-bulk-preview]").click()
    expect(refusal).to_be_visible()
    assert sent == []  # nothing left the browser
    assert not BulkAudience.objects.exists()

    # The same too-large file chosen, then a pasted list: the file stays behind.
    page.get_by_label("粘贴的列表").check()
    expect(refusal).to_be_hidden()
    page.locator("#id_text").fill(oid(3))
    page.locator("[data-bulk-preview]").click()
    expect(page.locator("[data-count=accepted]")).to_have_text("1")
    assert len(sent) == 1 and len(sent[0].post_data_buffer) < 10_000  # without the 600 KB
    new_job_page(page, tag)
    sent.clear()

    # A file within the limit: the page says the list is being read until the preview comes.
    # The test keeps the page (its own submit listener, after the page's, cancels the
    # navigation) to look at it, then submits the form itself.
    page.locator("#id_file").set_input_files(
        {"name": "名单.csv", "mimeType": "text/csv", "buffer": f"{oid(1)}\n{oid(2)}\n".encode()}
    )
    expect(refusal).to_be_hidden()
    page.locator("[data-bulk-job-form]").evaluate(
        "form => form.addEventListener('submit', event => event.preventDefault())"
    )
    page.locator("[data-bulk-preview]").click()
    expect(page.locator("[data-bulk-reading]")).to_be_visible()
    expect(page.locator("[data-bulk-preview]")).to_be_disabled()
    assert sent == []
    page.locator("[data-bulk-job-form]").evaluate("form => form.submit()")
    expect(page.locator("[data-bulk-read-progress]")).to_be_visible()
    work(Job.objects.get(kind=READ_KIND))
    expect(page.locator("[data-count=accepted]")).to_have_text("2")
