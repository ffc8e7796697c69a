"""Pull and reconcile: plan, apply exactly the plan shown, conflicts, the command, the job."""

from __future__ import annotations

import io

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from tagging.strategy.models import Strategy, StrategyPull, SyncState, Tag, TagGroup
from tagging.strategy.pull_apply import pull_and_apply, pull_apply
from tagging.strategy.pull_plan import PlanChanged, pull_plan
from tagging.strategy.respacing import respacing_start
from tagging.strategy.services import Choice
from tests.tagging.bulk.test_bulk_jobs import drain
from tests.tagging.strategy.conftest import console_tree, wecom_tree
from wecom.sandbox import DEMO, FaultRule

CORP = DEMO.wecom_corp_id


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def outside(sandbox, method: str, body: dict) -> dict:
    """A change made in WeCom, not through the console."""
    return getattr(sandbox.state.wecom, method)(CORP, body)


def remote_id(sandbox, name: str) -> str:
    corp = sandbox.state.wecom._corps[CORP]
    for group in corp["groups"].values():
        if group["group_name"] == name:
            return group["group_id"]
        for tag in group["tags"].values():
            if tag["name"] == name:
                return tag["id"]
    raise KeyError(name)


def test_first_pull_imports_everything(app, actor, sandbox):
    plan = pull_plan(app)
    assert plan.first_import
    # 3 strategies, 5 + 14 strategy groups and tags, 3 + 10 corporate groups and tags.
    assert plan.counts()["add"] == 3 + 5 + 14 + 3 + 10
    pull_apply(app=app, fingerprint=plan.fingerprint, actor=actor)
    assert console_tree(app) == wecom_tree(sandbox)
    # The strategies, and the corporate root the console made for the corporate tags.
    assert Strategy.objects.filter(app=app).count() == 3 + 1
    assert StrategyPull.objects.get(app=app).ok
    assert LogEntry.objects.filter(content_type__model="tag", action_flag=1).count() == 14 + 10


def test_a_second_pull_follows_rename_delete_add_and_reorder(imported, actor, sandbox):
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    outside(sandbox, "del_strategy_tag", {"tag_id": [remote_id(sandbox, "潜在客户")]})
    outside(
        sandbox,
        "add_strategy_tag",
        {
            "strategy_id": 1,
            "group_id": remote_id(sandbox, "客户等级"),
            "tag": [{"name": "流失客户", "order": 1}],
        },
    )
    outside(sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "跟进阶段"), "order": 99})
    outside(sandbox, "del_strategy_tag", {"group_id": [remote_id(sandbox, "兴趣偏好")]})
    plan = pull_plan(imported)
    counts = plan.counts()
    assert (counts["rename"], counts["delete"], counts["add"], counts["reorder"]) == (1, 2, 1, 1)
    assert not plan.conflicts
    pull_apply(app=imported, fingerprint=plan.fingerprint, actor=actor)
    assert console_tree(imported) == wecom_tree(sandbox)
    renamed = Tag.objects.get(app=imported, name="核心客户")
    entry = (
        LogEntry.objects.filter(object_id=str(renamed.pk), content_type__model="tag")
        .order_by("pk")
        .last()
    )
    assert "重要客户" in entry.change_message and "核心客户" in entry.change_message
    assert pull_plan(imported).empty


def test_apply_refuses_a_plan_that_wecom_changed_since(imported, actor, sandbox):
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    shown = pull_plan(imported)
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "普通客户"), "name": "一般客户"}
    )
    with pytest.raises(PlanChanged) as caught:
        pull_apply(app=imported, fingerprint=shown.fingerprint, actor=actor)
    assert Tag.objects.filter(name="重要客户").exists()  # nothing applied
    assert caught.value.plan.counts()["rename"] == 2
    pull_apply(app=imported, fingerprint=caught.value.plan.fingerprint, actor=actor)
    assert console_tree(imported) == wecom_tree(sandbox)


def pending_rename(tag: Tag, name: str) -> Tag:
    Tag.objects.filter(pk=tag.pk).update(
        pending_name=name, sync_state=SyncState.FAILED, sync_message="WeCom was busy."
    )
    return Tag.objects.get(pk=tag.pk)


@pytest.mark.parametrize("choice", [Choice.WECOM, Choice.OURS])
def test_a_conflict_never_overwrites_a_pending_edit_silently(imported, actor, sandbox, choice):
    tag = pending_rename(Tag.objects.get(app=imported, name="普通客户"), "我们的名字")
    outside(sandbox, "edit_strategy_tag", {"id": tag.wecom_id, "name": "他们的名字"})
    plan = pull_plan(imported)
    assert [c.key for c in plan.conflicts] == [f"tag:{tag.wecom_id}"]
    result = pull_apply(
        app=imported,
        fingerprint=plan.fingerprint,
        actor=actor,
        choices={f"tag:{tag.wecom_id}": choice},
    )
    tag.refresh_from_db()
    assert tag.sync_state == SyncState.IN_SYNC and not tag.has_pending
    expected = "他们的名字" if choice is Choice.WECOM else "我们的名字"
    assert tag.name == expected
    assert console_tree(imported) == wecom_tree(sandbox)
    assert result.conflicts_left == 0


def test_the_scheduled_pull_leaves_conflicts_for_a_person(imported, actor, sandbox):
    tag = pending_rename(Tag.objects.get(app=imported, name="普通客户"), "我们的名字")
    outside(sandbox, "edit_strategy_tag", {"id": tag.wecom_id, "name": "他们的名字"})
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    _plan, result = pull_and_apply(app=imported, actor=actor)
    assert result.conflicts_left == 1
    tag.refresh_from_db()
    assert tag.sync_state == SyncState.CONFLICT
    assert tag.pending_name == "我们的名字" and tag.name == "他们的名字"
    assert Tag.objects.filter(name="核心客户").exists()


def test_a_deletion_in_wecom_of_a_pending_item_is_a_conflict(imported, actor, sandbox):
    tag = pending_rename(Tag.objects.get(app=imported, name="普通客户"), "我们的名字")
    outside(sandbox, "del_strategy_tag", {"tag_id": [tag.wecom_id]})
    plan = pull_plan(imported)
    assert len(plan.conflicts) == 1
    pull_apply(
        app=imported,
        fingerprint=plan.fingerprint,
        actor=actor,
        choices={plan.conflicts[0].key: Choice.OURS},
    )
    tag.refresh_from_db()
    assert tag.name == "我们的名字" and tag.sync_state == SyncState.IN_SYNC
    assert console_tree(imported) == wecom_tree(sandbox)


def test_pending_local_changes_are_listed_in_the_plan(imported, actor, sandbox):
    group = TagGroup.objects.get(app=imported, name="意向产品")
    sandbox.faults.add(FaultRule(platform="wecom", endpoint="*/edit_strategy_tag", errcode=60011))
    drain(respacing_start(items=list(group.tags.all()), actor=actor).job)
    sandbox.faults.clear()
    plan = pull_plan(imported)
    assert len(plan.pending) == 4 and plan.empty


def make_corp(sandbox, *, groups: int, tags_per_group: int) -> None:
    for strategy in range(4, 6):
        sandbox.state.wecom.add_strategy(CORP, strategy, f"规则组{strategy}")
    for n in range(groups):
        sandbox.state.wecom.add_strategy_group(
            CORP,
            4 + n % 2,
            f"组{n}",
            order=n,
            tags=[(f"标签{n}-{m}", m) for m in range(tags_per_group)],
        )


def pull_queries(app, actor) -> int:
    """Queries of the pull itself; the platform layer's token and rate-limit cache (a table
    on SQLite) counts per HTTP call, which does not depend on the number of tags either."""
    with CaptureQueriesContext(connection) as queries:
        pull_and_apply(app=app, actor=actor)
    return sum(
        1
        for query in queries.captured_queries
        if "console_shared_cache" not in query["sql"] and "SAVEPOINT" not in query["sql"]
    )


@pytest.mark.parametrize("scenario", ["import", "steady", "changes"])
def test_pull_query_count_does_not_grow_with_the_number_of_tags(
    sandbox, actor, app, scenario, django_db_blocker
):
    """Same query count for 3 groups x 4 tags and 6 groups x 8 tags. (SQLite cuts bulk
    inserts in batches of 999 parameters, about 70 tags: both corps stay within one batch;
    PostgreSQL has no such cut.)"""
    counts = []
    for size, (groups, per_group) in enumerate([(3, 4), (6, 8)]):
        sandbox.reset(demo=True)
        make_corp(sandbox, groups=groups, tags_per_group=per_group)
        Strategy.objects.all().delete()
        StrategyPull.objects.all().delete()
        if scenario == "import":
            counts.append(pull_queries(app, actor))
            continue
        pull_and_apply(app=app, actor=actor)
        if scenario == "changes":
            outside(
                sandbox,
                "edit_strategy_tag",
                {"id": remote_id(sandbox, "标签0-1"), "name": f"改名{size}"},
            )
            outside(sandbox, "del_strategy_tag", {"tag_id": [remote_id(sandbox, "标签1-1")]})
            outside(
                sandbox,
                "add_strategy_tag",
                {"strategy_id": 4, "group_name": "新组", "tag": [{"name": "新"}]},
            )
        counts.append(pull_queries(app, actor))
    assert counts[0] == counts[1], counts


def test_wecom_pull_command_dry_run_then_apply(app, sandbox, pull_worker):
    out = io.StringIO()
    call_command("wecom_pull", "--app", app.name, "--dry-run", stdout=out)
    text = out.getvalue()
    assert "First pull" in text and "重要客户" in text and "Dry run" in text
    assert not Tag.objects.exists()
    out = io.StringIO()
    call_command("wecom_pull", "--app", app.name, stdout=out)
    assert "Changes applied: 35; conflicts waiting in the admin: 0." in out.getvalue()
    assert console_tree(app) == wecom_tree(sandbox)
    entry = LogEntry.objects.filter(content_type__model="tag").first()
    assert '"source": "cli"' in entry.change_message


def test_wecom_pull_command_second_run_follows_wecom(app, sandbox, pull_worker):
    call_command("wecom_pull", stdout=io.StringIO())
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    outside(sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "普通客户"), "order": 100})
    outside(sandbox, "del_strategy_tag", {"tag_id": [remote_id(sandbox, "潜在客户")]})
    outside(
        sandbox,
        "add_strategy_tag",
        {"strategy_id": 2, "group_name": "新组", "tag": [{"name": "新标签"}]},
    )
    out = io.StringIO()
    call_command("wecom_pull", "--app", app.name, stdout=out)
    text = out.getvalue()
    assert "核心客户" in text and "潜在客户" in text and "新标签" in text
    assert console_tree(app) == wecom_tree(sandbox)


def test_wecom_pull_command_unknown_app(app):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no WeCom app named"):
        call_command("wecom_pull", "--app", "没有这个", stdout=io.StringIO())


def test_wecom_pull_command_reports_a_platform_failure(app, sandbox, pull_worker):
    from django.core.management import CommandError

    sandbox.faults.add(
        FaultRule(platform="wecom", endpoint="*/get_strategy_tag_list", errcode=48002)
    )
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("wecom_pull", stdout=io.StringIO(), stderr=err)
    assert "48002" in err.getvalue()
    assert StrategyPull.objects.get(app=app).ok is False


def test_the_scheduled_pull_runs_as_a_job(app, sandbox, django_capture_on_commit_callbacks):
    from console.jobs.services import job_run_shard
    from console.models import Job, JobStatus
    from tagging.strategy.jobs import strategy_pull_scheduled, strategy_pull_schedules_ensure

    strategy_pull_schedules_ensure()
    from django_q.models import Schedule

    assert Schedule.objects.filter(name=f"tagging-strategy-pull-{app.pk}").exists()
    with django_capture_on_commit_callbacks(execute=False):
        strategy_pull_scheduled(app.pk)
        strategy_pull_scheduled(app.pk)  # the worker is behind: no second pull piles up
    job = Job.objects.get(kind="tagging.strategy_pull")
    job_run_shard(shard_id=job.shards.get().pk, worker="test")
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert console_tree(app) == wecom_tree(sandbox)
    with django_capture_on_commit_callbacks(execute=False):
        strategy_pull_scheduled(app.pk)
    assert Job.objects.filter(kind="tagging.strategy_pull").count() == 2, "the next one, later"


def test_a_long_pull_renews_its_lease_before_each_call(app, sandbox, settings):
    """A corp with many strategies must not outlive the job's lease: before each platform call
    the pull renews the lease when what is left could be too short (here: always)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from console.audit import Actor
    from console.jobs.services import job_run_shard
    from console.models import JobStatus
    from tagging.strategy.jobs import strategy_pull_job_create

    job = strategy_pull_job_create(app=app, actor=Actor.system())
    settings.JOBS_LEASE_SECONDS = 1  # shorter than any call could take: renew before each
    sandbox.reset_stats()
    with CaptureQueriesContext(connection) as queries:
        job_run_shard(shard_id=job.shards.get().pk, worker="test")
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.status_message
    renewals = [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].startswith('UPDATE "console_jobshard" SET "lease_expires_at"')
    ]
    platform_calls = sum(
        count
        for name, count in sandbox.stats().items()
        if name.startswith("wecom /cgi-bin/externalcontact/")
    )
    assert platform_calls >= 3, sandbox.stats()
    assert len(renewals) >= platform_calls


def test_the_plan_reads_every_pending_field_whatever_the_sync_state(imported):
    """The pull reads most rows slim and those needing attention whole: a change pending on a
    row still marked in sync is read whole too, and a version bump (every change made by a
    service) changes the fingerprint."""
    before = pull_plan(imported).fingerprint
    Tag.objects.filter(app=imported, name="普通客户").update(pending_delete=True)
    Tag.objects.filter(app=imported, name="重要客户").update(pending_order=7)
    plan = pull_plan(imported)
    assert sorted(item.name for item in plan.pending) == ["普通客户", "重要客户"]
    Tag.objects.filter(app=imported).update(pending_delete=False, pending_order=None)
    assert pull_plan(imported).fingerprint == before
    Tag.objects.filter(app=imported, name="潜在客户").update(version=F("version") + 1)
    assert pull_plan(imported).fingerprint != before
