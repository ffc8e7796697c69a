"""A marketing editor uploads a CSV of WeCom customers, reads the preview (counts, members),
starts the job and watches the bar move as the worker goes; the refused pair is in the
failures. In zh-hans, against the sandbox over real HTTP; the test plays the worker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from playwright.sync_api import Page, expect

from console.jobs.services import job_run_shard
from console.models import Job, ShardStatus
from tests.browser.conftest import login
from wecom.connections import client_for
from wecom.models import WeComApp
from wecom.sandbox import DEMO
from wecom.sandbox.demo import demo_external_userid

SHOT = Path("/work/brief/shots/customers_job.png")


@pytest.fixture
def app(sandbox, settings) -> WeComApp:
    if isinstance(caches["shared"], DatabaseCache):
        settings.CACHES = {
            **settings.CACHES,
            "shared": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "customers-browser",
            },
        }
    settings.BULK_SHARD_SIZE = 20  # several shards: the bar moves shard by shard
    created = WeComApp.objects.create(
        name="演示企业",
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        agent_id=DEMO.wecom_agent_id,
        rate_limit=10_000,
    )
    return WeComApp.objects.get(pk=created.pk)


def one_shard(job: Job) -> None:
    shard = job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)).first()
    if shard is not None:
        job_run_shard(shard_id=shard.pk, worker="browser-test")


def test_upload_customers_preview_start_and_watch_the_bar(page: Page, editor, app, sandbox):
    tag = client_for(app).strategy_tag_list(strategy_id=1)[0].tags[0].id
    customers = sandbox.state.customers
    lisis = [demo_external_userid(n) for n in range(1, 300, 5)][:50]  # n % 5 == 1: lisi's
    outside = customers.customers_of(DEMO.wecom_corp_id, "sunqi")[0]
    lines = [
        "userid,external_userid",
        *[f"lisi,{e}" for e in lisis],
        f"lisi,{lisis[0]}",
        "lisi,不是客户",
        f"sunqi,{outside}",
        f",{demo_external_userid(0)}",  # zhangsan, lisi and wangwu
    ]

    login(page, editor)
    page.goto("/admin/tagging/customeraudience/add/")
    page.locator("#id_app").select_option(str(app.pk))
    page.locator("#id_add").fill(tag)
    page.locator("#id_file").set_input_files(
        {
            "name": "客户名单.csv",
            "mimeType": "text/csv",
            "buffer": "\r\n".join(lines).encode("utf-8-sig"),
        }
    )
    expect(page.locator("#id_members")).to_be_hidden()  # only the chosen source's fields
    page.locator("[data-bulk-preview]").click()

    expect(page).to_have_url(re.compile(r"/admin/tagging/customeraudience/\d+/start/\?"))
    expect(page.locator("[data-count=accepted]")).to_have_text("54")
    expect(page.locator("[data-count=duplicates]")).to_have_text("1")
    expect(page.locator("[data-count=refused]")).to_have_text("1")
    expect(page.locator("[data-count=expanded]")).to_have_text("1")
    expect(page.locator("[data-customers-members]")).to_contain_text("sunqi")
    expect(page.locator("[data-customers-refusals]")).to_contain_text("不是客户")
    expect(page.locator("[data-customers-target]")).to_contain_text("54")
    page.locator("[data-customers-start]").click()

    expect(page).to_have_url(re.compile(r"/admin/console/job/\d+/change/$"))
    job = Job.objects.get()
    expect(page.locator("[data-job-field=percent]")).to_have_text("0%")
    one_shard(job)
    expect(page.locator("[data-job-field=done]")).to_have_text("20")
    one_shard(job)
    one_shard(job)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    expect(page.locator("[data-job-field=failed]")).to_have_text("1")
    expect(page.locator(".tagging-customers-detail")).to_contain_text(tag)
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOT, full_page=True)

    with page.expect_download() as download_info:
        page.locator("[data-job-control=failures]").click()
    content = download_info.value.path().read_text(encoding="utf-8-sig")
    assert f"sunqi/{outside}" in content and "60011" in content
    assert all(tag in customers.tags_of(DEMO.wecom_corp_id, "lisi", e) for e in lisis)
