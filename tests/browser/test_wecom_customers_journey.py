"""Issue 21 end to end, in zh-hans, against the sandbox over real HTTP: an editor creates a
corporate tag in the tree, puts it on 1,000 WeCom customers from a CSV (picked by name), watches
the bar, retries the pairs WeCom refused for a while, then undoes the first job. The test plays
the background worker between its looks at the page."""

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
from console.models import Job, JobStatus, ShardStatus
from tagging.customers.audience import READ_KIND
from tagging.customers.jobs import KIND
from tagging.strategy.models import StrategyKind, Tag
from tagging.strategy.pull_apply import pull_and_apply
from tests.browser.conftest import login
from wecom.models import WeComApp
from wecom.sandbox import DEMO, FaultRule
from wecom.sandbox.demo import demo_external_userid

CORP = DEMO.wecom_corp_id
MARK_TAG = "/cgi-bin/externalcontact/mark_tag"
PAIRS = 1000
# JOURNEY_SHOTS=DIR keeps a screenshot of each step there (docs/screenshots/ holds the last ones).
SHOTS = os.environ.get("JOURNEY_SHOTS", "")


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=Path(SHOTS) / f"issue21-{name}.png", full_page=True)


@pytest.fixture
def app(sandbox, transactional_db, editor, settings) -> WeComApp:
    if isinstance(caches["shared"], DatabaseCache):
        settings.CACHES = {
            **settings.CACHES,
            "shared": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "issue21-browser",
            },
        }
    settings.BULK_SHARD_SIZE = 250  # four shards: the bar moves shard by shard
    app = WeComApp.objects.create(
        name="演示企业（沙盒）", corp_id=CORP, secret=DEMO.wecom_secret, rate_limit=100_000
    )
    app.refresh_from_db()
    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    return app


def work(job: Job, *, shards: int = 1) -> None:
    for _ in range(shards):
        shard = job.shards.filter(status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)).first()
        if shard is not None:
            job_run_shard(shard_id=shard.pk, worker="browser-test")


def first_follower_pairs(sandbox) -> list[tuple[str, str]]:
    customers = sandbox.state.customers
    pairs = []
    for n in range(1, PAIRS + 1):
        external_userid = demo_external_userid(n)
        pairs.append((customers.followers(CORP, external_userid)[0], external_userid))
    return pairs


def test_corporate_tag_on_1000_customers_bar_retry_and_undo(page: Page, editor, app, sandbox):
    customers = sandbox.state.customers
    login(page, editor)

    # 1. A corporate tag, created in the tree.
    page.goto(f"/admin/tagging/strategy/tree/{app.pk}/")
    page.locator(".strategy-nav .strategy-corporate a").click()
    expect(page.locator("h2.strategy-title")).to_contain_text("企业标签")
    page.get_by_role("link", name="添加标签组").click()
    page.locator("#id_name").fill("双十二活动")
    page.locator("#id_tags").fill("双十二已购")
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("成功")
    tag = Tag.objects.get(name="双十二已购", group__strategy__kind=StrategyKind.CORPORATE)
    assert sandbox.state.wecom.tag_exists(CORP, tag.wecom_id)
    shot(page, "1-corporate-tag")

    # 2. 1,000 customers from a CSV, the tag picked by its name.
    pairs = first_follower_pairs(sandbox)
    lines = ["userid,external_userid", *[f"{u},{e}" for u, e in pairs]]
    page.goto("/admin/tagging/customeraudience/add/")
    page.locator("#id_app").select_option(str(app.pk))
    page.get_by_label("要添加的标签").fill("双十二")
    results = page.locator(".field-add [data-tag-picker] [data-picker-results]")
    results.get_by_role("option", name="双十二已购", exact=True).click()
    expect(page.locator("#id_add")).to_have_value(tag.wecom_id)
    page.locator("#id_file").set_input_files(
        {"name": "双十二客户.csv", "mimeType": "text/csv", "buffer": "\n".join(lines).encode()}
    )
    page.locator("[data-bulk-preview]").click()
    # A worker reads the list: the page follows its bar, then shows the preview by itself.
    expect(page.locator("[data-bulk-read-progress] progress")).to_be_visible()
    expect(page.locator("[data-customers-start]")).to_have_count(0)
    shot(page, "2a-reading")
    work(Job.objects.get(kind=READ_KIND))
    expect(page.locator("[data-count=accepted]")).to_have_text(re.compile(r"^1,?000$"))
    shot(page, "2b-preview")
    page.locator("[data-customers-start]").click()

    # 3. The bar, as the worker goes; WeCom refuses 30 pairs for a while (the 3,000-tag cap).
    expect(page).to_have_url(re.compile(r"/admin/console/job/\d+/change/$"))
    job = Job.objects.get(kind=KIND)
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=MARK_TAG, errcode=45035, times=30))
    expect(page.locator("[data-job-field=percent]")).to_have_text("0%")
    work(job)
    expect(page.locator("[data-job-field=percent]")).to_have_text("25%")
    shot(page, "3-bar")
    work(job, shards=3)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    expect(page.locator("[data-job-field=failed]")).to_have_text("30")
    shot(page, "4-done")
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    tagged = {p for p in pairs if tag.wecom_id in customers.tags_of(CORP, *p)}
    assert len(tagged) == PAIRS - 30

    # 4. Retry the failed only: the 30, and nothing else.
    page.get_by_role("link", name="仅重试失败项").click()
    page.locator("[data-customers-retry]").click()
    retry = Job.objects.filter(kind=KIND).exclude(pk=job.pk).get()
    expect(page).to_have_url(re.compile(rf"/admin/console/job/{retry.pk}/change/$"))
    work(retry)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    expect(page.locator("[data-job-field=done]")).to_have_text("30")
    assert all(tag.wecom_id in customers.tags_of(CORP, *p) for p in pairs)

    # 5. Undo the first job: the tag comes off exactly the 970 pairs it tagged.
    page.goto(f"/admin/console/job/{job.pk}/change/")
    page.get_by_role("link", name="撤销").click()
    expect(page.locator("#content-main")).to_contain_text("970")
    shot(page, "5-undo-confirm")
    page.locator("[data-customers-undo]").click()
    undo = Job.objects.filter(kind=KIND).exclude(pk__in=[job.pk, retry.pk]).get()
    expect(page).to_have_url(re.compile(rf"/admin/console/job/{undo.pk}/change/$"))
    work(undo, shards=4)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    expect(page.locator("[data-job-field=done]")).to_have_text("970")
    shot(page, "6-undone")
    still = {p for p in pairs if tag.wecom_id in customers.tags_of(CORP, *p)}
    assert still == set(pairs) - tagged  # what the retry tagged stays; the undo took the rest
