"""With the tree open, a tag is renamed "in WeCom's admin" (the sandbox's control API, which
POSTs the signed event to the console): the page says so within seconds, a refresh shows the new
name, and the tag's History says "WeCom callback"."""

from __future__ import annotations

import pytest
import requests
from django.urls import reverse
from playwright.sync_api import expect

from console.audit import Actor, AuditSource
from console.jobs.services import job_run_shard
from console.models import Job
from tagging.strategy.callbacks import CALLBACK_PULL_KIND
from tagging.strategy.models import Tag
from tagging.strategy.pull_apply import pull_and_apply
from tests.browser.conftest import login
from tests.wecom_callbacks.conftest import CALLBACK_KEY, CALLBACK_TOKEN
from wecom.models import WeComApp
from wecom.sandbox import DEMO

CORP = DEMO.wecom_corp_id


@pytest.fixture
def app(sandbox, transactional_db, editor, live_server, settings):
    settings.WECOM_CALLBACK_COALESCE_SECONDS = 0
    settings.STRATEGY_TREE_POLL_SECONDS = 0.3
    app = WeComApp.objects.create(
        name="演示企业（沙盒）",
        corp_id=CORP,
        secret=DEMO.wecom_secret,
        rate_limit=1000,
        callback_token=CALLBACK_TOKEN,
        callback_encoding_aes_key=CALLBACK_KEY,
    )
    app.refresh_from_db()
    pull_and_apply(app=app, actor=Actor(user=editor, source=AuditSource.CLI))
    answer = requests.post(
        f"{sandbox.url}/__sandbox__/wecom/callback",
        json={
            "corp_id": CORP,
            "url": live_server.url + reverse("wecom_callback", args=[app.pk]),
            "token": CALLBACK_TOKEN,
            "encoding_aes_key": CALLBACK_KEY,
        },
        timeout=10,
    )
    assert answer.json()["verified"] is True
    return app


def test_a_rename_in_wecom_shows_on_the_open_tree(page, editor, app, sandbox):
    login(page, editor)
    page.goto(f"/admin/tagging/strategy/tree/{app.pk}/")
    expect(page.get_by_role("link", name="重要客户", exact=True)).to_be_visible()
    notice = page.locator("#wecom-changed")
    expect(notice).to_be_hidden()

    tag = Tag.objects.get(app=app, name="重要客户")
    answer = requests.post(
        f"{sandbox.url}/__sandbox__/wecom/admin_change",
        json={
            "corp_id": CORP,
            "change": "edit_strategy_tag",
            "body": {"id": tag.wecom_id, "name": "核心客户"},
        },
        timeout=10,
    ).json()
    assert answer["deliveries"] == [[200]]
    # The worker's part: the targeted pull the event queued.
    for job in Job.objects.filter(kind=CALLBACK_PULL_KIND):
        for shard in job.shards.all():
            job_run_shard(shard_id=shard.pk, worker="test")

    expect(notice).to_be_visible()
    expect(notice).to_contain_text("企业微信")
    page.locator("#wecom-changed-refresh").click()
    expect(page.get_by_role("link", name="核心客户", exact=True)).to_be_visible()

    page.goto(f"/admin/tagging/tag/{tag.pk}/history/")
    expect(page.locator("#content")).to_contain_text("企业微信回调")
