"""Fixtures for strategy tags: a WeCom app credential pointed at the demo sandbox, imported."""

from __future__ import annotations

import pytest
from django.urls import reverse

from console.audit import Actor, AuditSource
from tagging.strategy.models import CORPORATE_WECOM_ID, Tag, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from wecom.models import WeComApp
from wecom.sandbox import DEMO


@pytest.fixture
def app(db, sandbox) -> WeComApp:
    app = WeComApp.objects.create(
        name="演示企业（沙盒）",
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        agent_id=DEMO.wecom_agent_id,
        rate_limit=1000,
    )
    app.refresh_from_db()
    return app


@pytest.fixture
def actor(editor) -> Actor:
    return Actor(user=editor, source=AuditSource.CONSOLE, ip="127.0.0.1")


@pytest.fixture
def imported(app, actor) -> WeComApp:
    """The demo corp's strategies, groups and tags, pulled into the console."""
    pull_and_apply(app=app, actor=actor)
    return app


@pytest.fixture
def fast_timeouts(settings):
    """A read timeout short enough for a test to meet one in well under a second."""
    settings.PLATFORM_READ_TIMEOUT = 0.3
    settings.PLATFORM_CONNECT_TIMEOUT = 1.0


def wecom_tree(sandbox, strategy_id: int | None = None) -> dict[str, list]:
    """What the sandbox holds: {group name: [(tag name, order), ...]} in WeCom's order; every
    group (strategy and corporate), a strategy's, or with ``strategy_id`` 0 the corporate ones."""
    corp = sandbox.state.wecom._corps[DEMO.wecom_corp_id]
    tree = {}
    if strategy_id == CORPORATE_WECOM_ID:
        chosen = list(corp["corp_groups"].values())
    elif strategy_id is None:
        chosen = [*corp["groups"].values(), *corp["corp_groups"].values()]
    else:
        chosen = [g for g in corp["groups"].values() if g["strategy_id"] == strategy_id]
    groups = sorted(chosen, key=lambda g: -g["order"])
    for group in groups:
        tags = sorted(group["tags"].values(), key=lambda t: -t["order"])
        tree[group["group_name"]] = [(t["name"], t["order"]) for t in tags]
    return tree


def console_tree(app, strategy_wecom_id: int | None = None) -> dict[str, list]:
    """The same, as the console knows it (WeCom's values, not pending ones)."""
    groups = TagGroup.objects.filter(app=app)
    if strategy_wecom_id is not None:
        groups = groups.filter(strategy__wecom_id=strategy_wecom_id)
    return {
        group.name: [(t.name, t.order) for t in Tag.objects.filter(group=group)] for group in groups
    }


def calls(sandbox, endpoint: str) -> int:
    return sandbox.calls("wecom", "/cgi-bin/externalcontact/" + endpoint)


def run_jobs() -> None:
    """What a background worker does: one slice of every open shard of every running job."""
    from console.jobs.services import job_run_shard
    from console.models import ACTIVE_JOB_STATUSES, JobShard, ShardStatus

    for shard_id in JobShard.objects.filter(
        job__status__in=ACTIVE_JOB_STATUSES,
        status__in=(ShardStatus.PENDING, ShardStatus.RUNNING),
    ).values_list("pk", flat=True):
        job_run_shard(shard_id=shard_id, worker="test")


@pytest.fixture
def pull_worker(monkeypatch):
    """``wecom_pull`` with the test as the worker: each pause of its wait runs the open jobs."""
    from console.jobs.follow import JobFollower

    monkeypatch.setattr(JobFollower, "pause", lambda self, seconds: run_jobs())


def plan_page(client, app):
    """The pull page as a person sees it: it starts a pull job, the worker plans, the page
    (reloaded by its progress bar) shows the plan."""
    started = client.get(reverse("admin:tagging_strategy_pull", args=[app.pk]))
    assert started.status_code == 302, started
    run_jobs()
    return client.get(started.url)


def apply_plan(client, app, page, **data):
    """“Apply this plan” on ``page``: the job goes on, the worker applies, the page (reloaded
    by its progress bar) says what applying did."""
    form = {"job": page.context["job"].pk, "fingerprint": page.context["plan"].fingerprint}
    following = client.post(reverse("admin:tagging_strategy_pull", args=[app.pk]), {**form, **data})
    assert following.status_code == 302, following
    run_jobs()
    return client.get(following.url)
