"""Re-spacing a list's orders: a job with its bar, never a web request; a move right after a
pull is still one call where a gap exists."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from console.audit import Actor, AuditSource
from console.jobs.selectors import job_reason
from console.jobs.services import job_resume
from console.models import Job, JobStatus
from tagging.strategy.models import Strategy, SyncState, Tag, TagGroup
from tagging.strategy.pull_apply import pull_and_apply
from tagging.strategy.respacing import RESPACE_KIND
from tagging.strategy.services import spaced_orders
from tests.tagging.bulk.test_bulk_jobs import drain
from tests.tagging.strategy.conftest import calls, console_tree, wecom_tree
from wecom.sandbox import DEMO, FaultRule

GROUPS = 12
TAGS = 6


@pytest.fixture
def pulled(app, actor, sandbox) -> Strategy:
    """A strategy as WeCom lists it and a pull leaves it: orders 0, 1, 2…, no room anywhere."""
    sandbox.state.wecom.add_strategy(DEMO.wecom_corp_id, 4, "大规则组")
    for n in range(GROUPS):
        sandbox.state.wecom.add_strategy_group(
            DEMO.wecom_corp_id,
            4,
            f"组{n:02d}",
            order=n,
            tags=[(f"标签{n:02d}-{m}", m) for m in range(TAGS)],
        )
    pull_and_apply(app=app, actor=actor)
    return Strategy.objects.get(app=app, wecom_id=4)


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    client.cookies["django_language"] = "en"
    return client


def groups_of(strategy: Strategy) -> list[TagGroup]:
    return list(TagGroup.objects.filter(strategy=strategy).order_by("-order", "pk"))


def move(client, app, *, kind: str, parent, items: list, ids: list[int]) -> dict:
    """What the tree's script sends: the new order of the list, and the orders it showed."""
    return client.post(
        reverse("admin:tagging_strategy_move", args=[app.pk]),
        {
            "kind": kind,
            "parent": parent.pk,
            "ids": ",".join(map(str, ids)),
            "shown": ",".join(f"{item.pk}:{item.order}" for item in items),
        },
    ).json()


def up(items: list, index: int) -> list[int]:
    """The ids after ▲ on the item at ``index``."""
    ids = [item.pk for item in items]
    ids[index - 1], ids[index] = ids[index], ids[index - 1]
    return ids


def edits(sandbox) -> int:
    return calls(sandbox, "edit_strategy_tag")


def test_a_move_right_after_a_pull_is_one_call_where_a_gap_exists(
    editor_client, app, pulled, sandbox
):
    groups = groups_of(pulled)
    sandbox.reset_stats()
    # ▲ on the second group: it goes to the top, where there is room.
    answer = move(editor_client, app, kind="group", parent=pulled, items=groups, ids=up(groups, 1))
    assert answer["ok"] and "job" not in answer, answer
    assert answer["message"] == "Order saved in WeCom (1 call)."
    assert edits(sandbox) == 1
    assert answer["order"] == up(groups, 1)
    # The same in a group's tags.
    group = groups[5]
    tags = list(group.tags.all())
    answer = move(editor_client, app, kind="tag", parent=group, items=tags, ids=up(tags, 1))
    assert answer["ok"] and edits(sandbox) == 2
    assert not Job.objects.filter(kind=RESPACE_KIND).exists()
    assert console_tree(app) == wecom_tree(sandbox)


def test_where_no_gap_exists_the_list_is_respaced_by_a_job_with_its_bar(
    editor_client, app, pulled, sandbox
):
    groups = groups_of(pulled)
    wanted = up(groups, GROUPS - 1)  # ▲ on the last group: between two orders that touch
    sandbox.reset_stats()
    answer = move(editor_client, app, kind="group", parent=pulled, items=groups, ids=wanted)
    assert answer["ok"], answer
    assert "gets new orders in WeCom, 12 calls, as a background job" in answer["message"]
    assert sandbox.total_calls() == 0, "nothing is sent inside the web request"
    job = Job.objects.get(pk=answer["job"])
    assert (job.kind, job.total, job.status) == (RESPACE_KIND, GROUPS, JobStatus.QUEUED)
    # The console still shows what WeCom has, the new orders waiting.
    assert answer["order"] == [group.pk for group in groups]
    pending = dict(TagGroup.objects.filter(strategy=pulled).values_list("pk", "pending_order"))
    assert [pending[pk] for pk in wanted] == spaced_orders(GROUPS)
    page = editor_client.get(
        reverse("admin:tagging_strategy_tree", args=[app.pk]), {"strategy": pulled.pk}
    ).content.decode()
    assert reverse("admin:console_job_progress", args=[job.pk]) in page
    assert f"→ #{spaced_orders(GROUPS)[0]}" in page

    job = drain(job)

    assert job.status == JobStatus.DONE and job.progress().done == GROUPS
    assert edits(sandbox) == GROUPS
    assert [group.pk for group in groups_of(pulled)] == wanted
    assert not TagGroup.objects.filter(strategy=pulled).exclude(sync_state=SyncState.IN_SYNC)
    assert console_tree(app) == wecom_tree(sandbox)
    # Every order has room around it now: the next move is one call.
    groups = groups_of(pulled)
    answer = move(editor_client, app, kind="group", parent=pulled, items=groups, ids=up(groups, 7))
    assert answer["ok"] and "job" not in answer and edits(sandbox) == GROUPS + 1


def test_a_move_in_a_list_being_respaced_is_refused_with_the_true_order(
    editor_client, app, pulled, sandbox
):
    group = groups_of(pulled)[0]
    tags = list(group.tags.all())
    assert "job" in move(editor_client, app, kind="tag", parent=group, items=tags, ids=up(tags, 4))
    sandbox.reset_stats()
    answer = move(editor_client, app, kind="tag", parent=group, items=tags, ids=up(tags, 1))
    assert not answer["ok"]
    assert "being given new orders in WeCom" in answer["message"]
    assert answer["order"] == [tag.pk for tag in tags]
    assert sandbox.total_calls() == 0
    # Other lists are not held up.
    other = groups_of(pulled)[1]
    others = list(other.tags.all())
    assert move(editor_client, app, kind="tag", parent=other, items=others, ids=up(others, 1))["ok"]


def test_a_refusal_stops_the_job_and_resuming_goes_on_from_the_item_refused(
    app, pulled, actor, sandbox
):
    from tagging.strategy.services import tag_groups_reorder

    groups = groups_of(pulled)
    wanted = list(reversed([group.pk for group in groups]))
    # Three edits go through (a harmless 1 ms rule spends each), the fourth is refused.
    for _ in range(3):
        sandbox.faults.add(
            FaultRule(platform="wecom", endpoint="*/edit_strategy_tag", latency_ms=1, times=1)
        )
    sandbox.faults.add(
        FaultRule(platform="wecom", endpoint="*/edit_strategy_tag", errcode=60011, times=1)
    )
    job = drain(tag_groups_reorder(strategy=pulled, group_ids=wanted, actor=actor).job)
    assert job.status == JobStatus.FAILED and job.progress().done == 3
    with translation.override("zh-hans"):
        assert "其余新排序值仍待推送：继续该作业即可接着进行" in job_reason(job)
    assert console_tree(app) == wecom_tree(sandbox)
    states = list(TagGroup.objects.filter(strategy=pulled).values_list("sync_state", flat=True))
    assert states.count(SyncState.FAILED) == 1 and states.count(SyncState.PENDING) == GROUPS - 4

    job = drain(job_resume(job=job, actor=actor))

    assert job.status == JobStatus.DONE and job.progress().done == GROUPS
    assert [group.pk for group in groups_of(pulled)] == wanted
    assert not TagGroup.objects.filter(strategy=pulled).exclude(sync_state=SyncState.IN_SYNC)
    assert console_tree(app) == wecom_tree(sandbox)


def test_an_outage_puts_the_job_on_hold_and_it_goes_on_after(app, pulled, actor, sandbox):
    from tagging.strategy.services import tags_reorder

    group = groups_of(pulled)[0]
    wanted = list(reversed(list(group.tags.values_list("pk", flat=True))))
    sandbox.faults.add(
        FaultRule(platform="wecom", endpoint="*/edit_strategy_tag", latency_ms=1, times=1)
    )
    sandbox.faults.add(
        FaultRule(platform="wecom", endpoint="*/edit_strategy_tag", http_status=503, times=50)
    )
    job = drain(tags_reorder(group=group, tag_ids=wanted, actor=actor).job)
    assert job.status == JobStatus.WAITING, job_reason(job)
    assert job.progress().done == 1
    sandbox.faults.clear()
    job = drain(job_resume(job=job, actor=actor))
    assert job.status == JobStatus.DONE
    assert list(group.tags.values_list("pk", flat=True)) == wanted
    assert console_tree(app) == wecom_tree(sandbox)


def test_an_item_deleted_meanwhile_is_passed_over(app, pulled, actor, sandbox):
    from tagging.strategy.services import tag_delete, tags_reorder

    group = groups_of(pulled)[2]
    tags = list(group.tags.all())
    job = tags_reorder(group=group, tag_ids=[t.pk for t in reversed(tags)], actor=actor).job
    tag_delete(tag=Tag.objects.get(pk=tags[0].pk), actor=actor)
    job = drain(job)
    assert job.status == JobStatus.DONE and job.progress().done == TAGS
    assert console_tree(app) == wecom_tree(sandbox)


def test_the_job_is_in_the_history_and_its_page_leads_back_to_the_tree(
    editor_client, app, pulled, sandbox
):
    groups = groups_of(pulled)
    answer = move(editor_client, app, kind="group", parent=pulled, items=groups, ids=up(groups, 3))
    job = drain(Job.objects.get(pk=answer["job"]))
    page = editor_client.get(reverse("admin:console_job_change", args=[job.pk])).content.decode()
    assert f"{reverse('admin:tagging_strategy_tree', args=[app.pk])}?strategy={pulled.pk}" in page
    assert "Open the tag tree" in page
    moved = TagGroup.objects.get(pk=groups[3].pk)
    history = editor_client.get(
        reverse("admin:tagging_taggroup_history", args=[moved.pk])
    ).content.decode()
    assert f"job #{job.pk}" in history and "editor" in history


def test_the_job_runs_as_the_editor_who_moved(app, pulled, editor, sandbox):
    from tagging.strategy.services import tag_groups_reorder

    actor = Actor(user=editor, source=AuditSource.TREE)
    groups = groups_of(pulled)
    job = tag_groups_reorder(strategy=pulled, group_ids=up(groups, 2), actor=actor).job
    assert job.created_by == editor and job.target_id == str(pulled.pk)
