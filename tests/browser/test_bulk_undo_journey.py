"""An editor undoes a finished bulk job from its page: confirm, watch the reverse job, and find
the two jobs linked (issue 21). In zh-hans, against the sandbox over real HTTP; the test plays
the background worker between its looks at the page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from console.audit import Actor, AuditSource
from console.models import Job
from tagging.bulk.audience import audience_from_text
from tagging.bulk.services import bulk_job_start
from tests.browser.conftest import login
from tests.browser.test_bulk_job_journey import STRANGER, oid, tag, work  # noqa: F401 - fixture
from wecom.sandbox import DEMO


def test_undo_a_finished_job_from_its_page(page: Page, editor, tag, sandbox):  # noqa: F811
    openids = [oid(n) for n in range(500, 530)]
    audience = audience_from_text(text="\n".join([*openids, STRANGER]), user=editor)
    job = bulk_job_start(
        audience=audience, target=tag, actor=Actor(user=editor, source=AuditSource.CONSOLE)
    )
    work(job)
    assert set(openids) <= sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)

    login(page, editor)
    page.goto(f"/admin/console/job/{job.pk}/change/")
    page.get_by_role("link", name="撤销").click()
    expect(page.locator("#content-main")).to_contain_text("30 个 OpenID 上移除该标签")
    page.locator("[data-bulk-undo]").click()

    expect(page).to_have_url(re.compile(r"/admin/console/job/\d+/change/$"))
    undo = Job.objects.exclude(pk=job.pk).get()
    assert page.url.endswith(f"/admin/console/job/{undo.pk}/change/")
    expect(page.locator("[data-bulk-undoes]")).to_contain_text(f"#{job.pk}")
    work(undo)
    expect(page.locator("[data-job-field=percent]")).to_have_text("100%")
    expect(page.locator("[data-job-field=done]")).to_have_text("30")
    assert not set(openids) & sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)

    page.goto(f"/admin/console/job/{job.pk}/change/")
    expect(page.locator("[data-bulk-undone-by]")).to_contain_text(f"#{undo.pk}")
    expect(page.get_by_role("link", name="撤销")).to_have_count(0)
