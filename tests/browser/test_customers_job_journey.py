"""A marketing editor picks a tag by its name, uploads a CSV of WeCom customers, reads the
preview (counts, members, the tag's name), starts the job and watches the bar move as the
worker goes; the refused pair is in the failures. In zh-hans, against the sandbox over real
HTTP; the test plays the worker."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from playwright.sync_api import Page, expect

from console.audit import Actor, AuditSource
from console.jobs.services import job_run_shard
from console.models import Job, ShardStatus
from tagging.customers.audience import READ_KIND
from tagging.customers.jobs import KIND
from tagging.strategy.pull_apply import pull_and_apply
from tests.browser.conftest import login
from wecom.connections import client_for
from wecom.models import WeComApp
from wecom.sandbox import DEMO
from wecom.sandbox.demo import demo_external_userid

# JOURNEY_SHOTS=DIR keeps screenshots of the steps there.
SHOTS = os.environ.get("JOURNEY_SHOTS", "")
SHOT = Path(SHOTS or ".") / "customers_job.png"


@pytest.fixture
def app(sandbox, settings, editor) -> WeComApp:
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
    app = WeComApp.objects.get(pk=created.pk)
    # The console knows the app's tags (a pull): the picker offers them by name.
    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    return app


def one_shard(job: Job) -> None:
    shard = job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)).first()
    if shard is not None:
        job_run_shard(shard_id=shard.pk, worker="browser-test")


def test_upload_customers_preview_start_and_watch_the_bar(page: Page, editor, app, sandbox):
    first = client_for(app).strategy_tag_list(strategy_id=1)[0]
    tag, tag_name = first.tags[0].id, first.tags[0].name
    assert (first.group_name, tag_name) == ("客户等级", "重要客户")
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
    # The tag by its name, through the picker: no id typed.
    picker = page.locator(".field-add [data-tag-picker]")
    page.get_by_label("要添加的标签").fill("重要")
    results = picker.locator("[data-picker-results]")
    expect(results.locator("h3").first).to_have_text("华东区销售规则组 / 客户等级")
    results.get_by_role("option", name=tag_name, exact=True).click()
    chips = picker.locator("[data-picker-chips] li")
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text(tag_name)
    expect(chips.first).to_contain_text("华东区销售规则组 / 客户等级")
    # A corporate tag picked by mistake, then taken out by its chip.
    page.get_by_label("要添加的标签").fill("官网")
    expect(results.locator("h3").first).to_have_text("企业标签 / 客户来源")
    results.get_by_role("option", name="官网咨询", exact=True).click()
    expect(chips).to_have_count(2)
    if SHOTS:
        page.screenshot(path=SHOT.with_name("customers_tag_picker.png"), full_page=True)
    chips.nth(1).get_by_role("button", name="移除 官网咨询").click()
    expect(chips).to_have_count(1)
    expect(page.locator("#id_add")).to_have_value(tag)
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
    # A worker reads the list (and asks WeCom who follows the line without a member).
    expect(page.locator("[data-bulk-read-progress] progress")).to_be_visible()
    one_shard(Job.objects.get(kind=READ_KIND))
    expect(page.locator("[data-count=accepted]")).to_have_text("54")
    expect(page.locator("[data-count=duplicates]")).to_have_text("1")
    expect(page.locator("[data-count=refused]")).to_have_text("1")
    expect(page.locator("[data-count=expanded]")).to_have_text("1")
    expect(page.locator("[data-customers-members]")).to_contain_text("sunqi")
    expect(page.locator("[data-customers-refusals]")).to_contain_text("不是客户")
    expect(page.locator("[data-customers-target]")).to_contain_text("54")
    expect(page.locator("[data-customers-tags]")).to_contain_text(tag_name)
    page.locator("[data-customers-start]").click()

    expect(page).to_have_url(re.compile(r"/admin/console/job/\d+/change/$"))
    job = Job.objects.get(kind=KIND)
    expect(page.locator("[data-job-field=percent]")).to_have_text("0%")
    one_shard(job)
    expect(page.locator("[data-job-field=done]")).to_have_text("20")
    one_shard(job)
    one_shard(job)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    expect(page.locator("[data-job-field=failed]")).to_have_text("1")
    expect(page.locator(".tagging-customers-detail")).to_contain_text(tag)
    expect(page.locator(".tagging-customers-detail [data-customers-add]")).to_contain_text(tag_name)
    if SHOTS:
        page.screenshot(path=SHOT, full_page=True)

    with page.expect_download() as download_info:
        page.locator("[data-job-control=failures]").click()
    content = download_info.value.path().read_text(encoding="utf-8-sig")
    assert f"sunqi/{outside}" in content and "60011" in content
    assert all(tag in customers.tags_of(DEMO.wecom_corp_id, "lisi", e) for e in lisis)


def test_pasted_ids_become_named_chips(page: Page, editor, app):
    """A power user pastes ids: the known one shows as its name, the unknown one as its id."""
    corporate = client_for(app).corp_tag_list()[0].tags[0]
    login(page, editor)
    page.goto("/admin/tagging/customeraudience/add/")
    page.locator("#id_app").select_option(str(app.pk))
    page.locator("#id_remove").fill(f"{corporate.id}, etNOSUCHTAG")
    chips = page.locator(".field-remove [data-picker-chips] li")
    expect(chips).to_have_count(2)
    expect(chips.first).to_contain_text(corporate.name)
    expect(chips.first).to_contain_text("企业标签 / 客户来源")
    expect(chips.nth(1)).to_have_class(re.compile("unknown"))
    expect(chips.nth(1)).to_have_text(re.compile("etNOSUCHTAG"))
    chips.nth(1).get_by_role("button").click()
    expect(page.locator("#id_remove")).to_have_value(corporate.id)
    # Sent without a file, the form comes back refused: the picked tag is still a named chip.
    page.locator("[data-bulk-preview]").click()
    expect(page.locator(".errornote").first).to_be_visible()
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text(corporate.name)
