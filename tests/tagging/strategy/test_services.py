"""Strategy tag services against the sandbox: every rule of PLATFORM.md section 2, failures
part-way through multi-call changes, and timeouts on add and delete."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.utils import translation

from console.jobs.selectors import job_reason
from console.models import JobStatus
from tagging.strategy.models import Strategy, SyncState, Tag, TagGroup
from tagging.strategy.respacing import respacing_start
from tagging.strategy.services import (
    ORDER_GAP,
    StaleEdit,
    items_delete,
    items_repush_failed,
    names_swap,
    spaced_orders,
    tag_create,
    tag_group_create,
    tag_group_delete,
    tag_group_update,
    tag_move,
    tag_update,
    tags_reorder,
)
from tests.tagging.bulk.test_bulk_jobs import drain
from tests.tagging.strategy.conftest import calls, console_tree, wecom_tree
from wecom.sandbox import DEMO, FaultRule

EXT = "/cgi-bin/externalcontact/"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def first_level(app) -> Strategy:
    return Strategy.objects.get(app=app, wecom_id=1)


def group_named(app, name: str) -> TagGroup:
    return TagGroup.objects.get(app=app, name=name)


def tag_named(app, name: str) -> Tag:
    return Tag.objects.get(app=app, name=name)


def fault(sandbox, endpoint: str, **kwargs) -> None:
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=EXT + endpoint, **kwargs))


# --- the import the other tests start from ---------------------------------------------------


def test_import_mirrors_wecom_exactly(imported, sandbox):
    assert console_tree(imported) == wecom_tree(sandbox)
    child = Strategy.objects.get(app=imported, wecom_id=3)
    assert child.parent.wecom_id == 1 and not child.is_first_level
    assert not TagGroup.objects.exclude(sync_state=SyncState.IN_SYNC).exists()


# --- creating ----------------------------------------------------------------------------------


def test_a_group_is_created_with_its_tags_in_one_call(imported, sandbox, actor):
    sandbox.reset_stats()
    group = tag_group_create(
        strategy=first_level(imported),
        name="渠道来源",
        tags=[("线上广告", None), ("朋友推荐", None), ("展会", None)],
        actor=actor,
    )
    assert calls(sandbox, "add_strategy_tag") == 1
    assert [t.name for t in group.tags.all()] == ["线上广告", "朋友推荐", "展会"]
    assert [t.order for t in group.tags.all()] == spaced_orders(3)
    assert group.wecom_id.startswith("et") and all(t.wecom_id for t in group.tags.all())
    assert console_tree(imported) == wecom_tree(sandbox)
    entry = LogEntry.objects.filter(object_id=str(group.pk), content_type__model="taggroup").get()
    assert entry.is_addition() and entry.user == actor.user


@pytest.mark.parametrize(
    ("name", "tags", "field", "text"),
    [
        ("", [("a", None)], "name", "cannot be empty"),
        (" 前后空格", [("a", None)], "name", "begin or end with a space"),
        ("x" * 31, [("a", None)], "name", "at most 30 characters"),
        ("控制\x07字符", [("a", None)], "name", "control"),
        ("客户等级", [("a", None)], "name", "exists already"),
        ("空组", [], "tags", "cannot be empty"),
        ("重名", [("同名", None), ("同名", None)], "tags", "given twice"),
        ("太长", [("y" * 31, None)], "tags", "at most 30"),
        ("越界", [("标签", 2**32)], "tags", "between 0 and 4294967295"),
        ("负数", [("标签", -1)], "tags", "between 0"),
    ],
)
def test_group_rules_are_checked_before_any_call(imported, sandbox, actor, name, tags, field, text):
    sandbox.reset_stats()
    with pytest.raises(ValidationError) as caught:
        tag_group_create(strategy=first_level(imported), name=name, tags=tags, actor=actor)
    assert text in " ".join(caught.value.message_dict[field])
    assert sandbox.total_calls() == 0


def test_the_clashing_group_is_named_with_a_link(imported, actor):
    existing = group_named(imported, "客户等级")
    with pytest.raises(ValidationError) as caught:
        tag_group_create(
            strategy=first_level(imported), name="客户等级", tags=[("新", None)], actor=actor
        )
    message = caught.value.message_dict["name"][0]
    assert f"/admin/tagging/taggroup/{existing.pk}/change/" in message


def test_tags_only_under_first_level_strategies(imported, sandbox, actor):
    child = Strategy.objects.get(app=imported, wecom_id=3)
    with pytest.raises(ValidationError) as caught:
        tag_group_create(strategy=child, name="子规则组标签", tags=[("a", None)], actor=actor)
    assert "first-level" in caught.value.message_dict["strategy"][0]
    assert calls(sandbox, "add_strategy_tag") == 0


def test_the_corp_tag_limit_is_checked_against_what_the_console_knows(imported, sandbox, actor):
    # The console knows of 9,999 tags of the corp: adding two is refused before any call.
    group = group_named(imported, "客户等级")
    known = Tag.objects.filter(app=imported).count()
    Tag.objects.bulk_create(
        Tag(app=imported, group=group, wecom_id=f"etfill{n}", name=f"填充{n}", order=0)
        for n in range(10_000 - 1 - known)
    )
    known = Tag.objects.filter(app=imported).count()
    assert known == 10_000 - 1
    with pytest.raises(ValidationError) as caught:
        tag_group_create(
            strategy=first_level(imported),
            name="超额",
            tags=[("a", None), ("b", None)],
            actor=actor,
        )
    assert "at most 10000 tags" in caught.value.message_dict["tags"][0]
    assert Tag.objects.filter(app=imported).count() == known
    assert calls(sandbox, "add_strategy_tag") == 0


def test_the_platform_limit_refusal_saves_nothing_and_says_why(imported, sandbox, actor):
    # WeCom counts corp tags the console cannot see: its refusal is shown as a sentence.
    sandbox.state.wecom.set_corp_tag_count(DEMO.wecom_corp_id, 10_000 - 14)
    before = Tag.objects.count()
    with pytest.raises(ValidationError) as caught:
        tag_create(group=group_named(imported, "客户等级"), name="一个太多", actor=actor)
    assert "40058" in " ".join(caught.value.messages)
    assert Tag.objects.count() == before


def test_a_tag_added_to_a_group_in_one_call(imported, sandbox, actor):
    group = group_named(imported, "客户等级")
    sandbox.reset_stats()
    tag = tag_create(group=group, name="沉睡客户", actor=actor)
    assert calls(sandbox, "add_strategy_tag") == 1
    assert tag.order == 20 + ORDER_GAP  # on top
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_sibling_tag_name_is_refused(imported, sandbox, actor):
    with pytest.raises(ValidationError) as caught:
        tag_create(group=group_named(imported, "客户等级"), name="重要客户", actor=actor)
    assert "exists already" in caught.value.message_dict["name"][0]
    assert calls(sandbox, "add_strategy_tag") == 0


def test_wecom_refusal_saves_nothing(imported, sandbox, actor):
    fault(sandbox, "add_strategy_tag", errcode=60011)
    with pytest.raises(ValidationError) as caught:
        tag_create(group=group_named(imported, "客户等级"), name="新标签", actor=actor)
    assert "no permission" in caught.value.message_dict["name"][0]
    assert not Tag.objects.filter(name="新标签").exists()
    assert console_tree(imported) == wecom_tree(sandbox)


# --- timeouts on add and delete, settled by reading back --------------------------------------


def test_add_whose_answer_was_lost_but_done_is_kept(imported, sandbox, actor, fast_timeouts):
    fault(sandbox, "add_strategy_tag", latency_ms=800, after=True, times=1)
    group = tag_group_create(
        strategy=first_level(imported), name="超时但成功", tags=[("甲", 5), ("乙", 3)], actor=actor
    )
    assert calls(sandbox, "add_strategy_tag") == 1  # not resent
    assert [t.name for t in group.tags.all()] == ["甲", "乙"]
    assert console_tree(imported) == wecom_tree(sandbox)
    entry = LogEntry.objects.filter(object_id=str(group.pk), content_type__model="taggroup").get()
    assert "reading WeCom back" in entry.change_message


def test_add_that_never_happened_saves_nothing(imported, sandbox, actor):
    fault(sandbox, "add_strategy_tag", drop=True, times=1)
    with pytest.raises(ValidationError) as caught:
        tag_create(group=group_named(imported, "客户等级"), name="掉线", actor=actor)
    assert "was not created" in " ".join(caught.value.messages)
    assert not Tag.objects.filter(name="掉线").exists()
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_tag_add_whose_connection_dropped_after_it_was_done(imported, sandbox, actor):
    fault(sandbox, "add_strategy_tag", drop=True, after=True, times=1)
    tag = tag_create(group=group_named(imported, "客户等级"), name="掉线但成功", actor=actor)
    assert tag.wecom_id
    assert console_tree(imported) == wecom_tree(sandbox)


def test_delete_whose_answer_was_lost_but_done(imported, sandbox, actor, fast_timeouts):
    fault(sandbox, "del_strategy_tag", latency_ms=800, after=True, times=1)
    items_delete(items=[tag_named(imported, "潜在客户")], actor=actor)
    assert calls(sandbox, "del_strategy_tag") == 1
    assert not Tag.objects.filter(name="潜在客户").exists()
    assert console_tree(imported) == wecom_tree(sandbox)


def test_delete_that_never_happened_is_sent_again(imported, sandbox, actor):
    fault(sandbox, "del_strategy_tag", drop=True, times=1)
    items_delete(items=[tag_named(imported, "潜在客户")], actor=actor)
    assert calls(sandbox, "del_strategy_tag") == 2
    assert console_tree(imported) == wecom_tree(sandbox)


def test_delete_of_a_tag_already_gone_in_wecom(imported, sandbox, actor):
    gone, kept = tag_named(imported, "潜在客户"), tag_named(imported, "普通客户")
    sandbox.state.wecom.del_strategy_tag(DEMO.wecom_corp_id, {"tag_id": [gone.wecom_id]})
    items_delete(items=[gone, kept], actor=actor)  # 40068, read back, delete the rest
    assert console_tree(imported) == wecom_tree(sandbox)


def test_deleting_the_last_tags_deletes_the_group_too(imported, sandbox, actor):
    group = group_named(imported, "跟进阶段")
    items_delete(items=list(group.tags.all()), actor=actor)
    assert not TagGroup.objects.filter(pk=group.pk).exists()
    assert console_tree(imported) == wecom_tree(sandbox)
    assert LogEntry.objects.filter(
        object_id=str(group.pk), action_flag=3, content_type__model="taggroup"
    ).exists()


def test_group_delete_takes_its_tags_and_keeps_their_history(imported, sandbox, actor):
    group = group_named(imported, "意向产品")
    tag_pks = [str(pk) for pk in group.tags.values_list("pk", flat=True)]
    tag_group_delete(group=group, actor=actor)
    assert "意向产品" not in wecom_tree(sandbox)
    assert console_tree(imported) == wecom_tree(sandbox)
    assert (
        LogEntry.objects.filter(
            object_id__in=tag_pks, action_flag=3, content_type__model="tag"
        ).count()
        == 4
    )


# --- editing -------------------------------------------------------------------------------------


def test_rename_and_reorder_are_one_call_each(imported, sandbox, actor):
    tag = tag_named(imported, "普通客户")
    sandbox.reset_stats()
    tag = tag_update(tag=tag, name="一般客户", expected_version=tag.version, actor=actor)
    tag = tag_update(tag=tag, order=7, expected_version=tag.version, actor=actor)
    assert calls(sandbox, "edit_strategy_tag") == 2
    assert console_tree(imported) == wecom_tree(sandbox)
    entry = (
        LogEntry.objects.filter(object_id=str(tag.pk), action_flag=2, content_type__model="tag")
        .order_by("pk")
        .first()
    )
    assert "普通客户" in entry.change_message and "一般客户" in entry.change_message


def test_a_group_rename_may_not_clash(imported, sandbox, actor):
    group = group_named(imported, "意向产品")
    with pytest.raises(ValidationError) as caught:
        tag_group_update(group=group, name="客户等级", actor=actor)
    assert "exists already" in caught.value.message_dict["name"][0]
    tag_group_update(group=group, name="意向版本", order=25, actor=actor)
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_stale_form_cannot_overwrite_a_newer_change(imported, actor, make_user):
    tag = tag_named(imported, "普通客户")
    opened = tag.version
    from console.audit import Actor, AuditSource

    other = Actor(user=make_user("colleague"), source=AuditSource.ADMIN)
    tag_update(tag=tag, name="其他人改的", expected_version=opened, actor=other)
    with pytest.raises(StaleEdit) as caught:
        tag_update(tag=tag, name="我改的", expected_version=opened, actor=actor)
    message = caught.value.messages[0]
    assert "colleague" in message and "其他人改的" in message and "我改的" in message
    assert Tag.objects.get(pk=tag.pk).name == "其他人改的"


def test_wecom_refusing_a_rename_saves_nothing(imported, sandbox, actor):
    tag = tag_named(imported, "普通客户")
    fault(sandbox, "edit_strategy_tag", errcode=40071, times=1)
    with pytest.raises(ValidationError) as caught:
        tag_update(tag=tag, name="改名", actor=actor)
    assert "exists already" in caught.value.message_dict["name"][0]
    assert Tag.objects.get(pk=tag.pk).name == "普通客户"


# --- ordering ---------------------------------------------------------------------------------


def big_group(imported, actor, size: int) -> TagGroup:
    return tag_group_create(
        strategy=first_level(imported),
        name="大组",
        tags=[(f"标签{n:03d}", None) for n in range(size)],
        actor=actor,
    )


def test_moving_one_tag_in_a_group_of_200_is_one_call(imported, sandbox, actor):
    group = big_group(imported, actor, 200)
    tags = list(group.tags.all())
    sandbox.reset_stats()
    tag_move(tag=tags[150], to_index=3, actor=actor)
    assert sandbox.total_calls() == 1  # token cached: one edit call, nothing else
    assert calls(sandbox, "edit_strategy_tag") == 1
    names = [t.name for t in group.tags.all()]
    assert names[3] == tags[150].name
    assert console_tree(imported) == wecom_tree(sandbox)


def test_dragging_one_tag_through_reorder_is_one_call(imported, sandbox, actor):
    group = big_group(imported, actor, 200)
    pks = list(group.tags.values_list("pk", flat=True))
    pks.insert(0, pks.pop(199))
    sandbox.reset_stats()
    tags_reorder(group=group, tag_ids=pks, actor=actor)
    assert sandbox.total_calls() == 1
    assert list(group.tags.values_list("pk", flat=True)) == pks


def test_a_used_up_gap_respaces_the_group(imported, sandbox, actor):
    group = group_named(imported, "意向产品")  # orders 3, 2, 1, 0: no gaps
    tags = list(group.tags.all())
    sandbox.reset_stats()
    outcome = tag_move(tag=tags[3], to_index=1, actor=actor)
    assert sandbox.total_calls() == 0, "re-spaced by a job, not by the caller"
    drain(outcome.job)
    assert [t.name for t in group.tags.all()] == [
        tags[0].name,
        tags[3].name,
        *[t.name for t in tags[1:3]],
    ]
    assert [t.order for t in group.tags.all()] == spaced_orders(4)
    assert calls(sandbox, "edit_strategy_tag") == 4
    assert console_tree(imported) == wecom_tree(sandbox)


def test_moving_to_the_top_over_an_order_of_zero_is_one_call(imported, sandbox, actor):
    group = group_named(imported, "兴趣偏好")  # two tags, both with order 0
    tags = list(group.tags.all())
    sandbox.reset_stats()
    tag_move(tag=tags[1], to_index=0, actor=actor)
    assert [t.name for t in group.tags.all()] == [tags[1].name, tags[0].name]
    assert calls(sandbox, "edit_strategy_tag") == 1
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_reorder_failing_part_way_keeps_the_rest_pending_and_resumes(imported, sandbox, actor):
    group = group_named(imported, "意向产品")  # orders 3, 2, 1, 0
    pks = list(group.tags.values_list("pk", flat=True))
    wanted = list(reversed(pks))
    # The first edit goes through (a harmless 1 ms rule spends it), the second is refused.
    fault(sandbox, "edit_strategy_tag", latency_ms=1, times=1)
    fault(sandbox, "edit_strategy_tag", errcode=60011, times=1)
    job = drain(tags_reorder(group=group, tag_ids=wanted, actor=actor).job)
    assert job.status == JobStatus.FAILED and job.progress().done == 1
    assert "resume the job" in job_reason(job)
    # The console shows exactly what WeCom has, with the rest of the change kept.
    assert console_tree(imported) == wecom_tree(sandbox)
    states = dict(Tag.objects.filter(group=group).values_list("pk", "sync_state"))
    assert list(states.values()).count(SyncState.FAILED) == 1
    assert list(states.values()).count(SyncState.PENDING) == 2
    outcome = items_repush_failed(items=Tag.objects.filter(group=group), actor=actor)
    assert outcome.ok
    assert list(group.tags.values_list("pk", flat=True)) == wanted
    assert console_tree(imported) == wecom_tree(sandbox)
    assert not Tag.objects.filter(group=group).exclude(sync_state=SyncState.IN_SYNC).exists()


def test_swapping_two_names_takes_three_calls(imported, sandbox, actor):
    a, b = tag_named(imported, "重要客户"), tag_named(imported, "普通客户")
    sandbox.reset_stats()
    names_swap(first=a, second=b, actor=actor)
    assert calls(sandbox, "edit_strategy_tag") == 3
    assert Tag.objects.get(pk=a.pk).name == "普通客户"
    assert Tag.objects.get(pk=b.pk).name == "重要客户"
    assert console_tree(imported) == wecom_tree(sandbox)


@pytest.mark.parametrize("failing_step", [1, 2, 3])
def test_a_swap_failing_part_way_is_undone(imported, sandbox, actor, failing_step):
    a, b = tag_named(imported, "重要客户"), tag_named(imported, "普通客户")
    before = wecom_tree(sandbox)
    for _ in range(failing_step - 1):
        fault(sandbox, "edit_strategy_tag", latency_ms=1, times=1)
    fault(sandbox, "edit_strategy_tag", errcode=60011, times=1)
    with pytest.raises(ValidationError) as caught:
        names_swap(first=a, second=b, actor=actor)
    assert "undone" in caught.value.messages[0]
    assert wecom_tree(sandbox) == before
    assert console_tree(imported) == wecom_tree(sandbox)


def test_respacing_on_a_failure_at_the_first_call(imported, sandbox, actor):
    group = group_named(imported, "客户等级")
    tags = list(group.tags.all())
    fault(sandbox, "edit_strategy_tag", errcode=60011, times=1)
    job = drain(respacing_start(items=tags, actor=actor).job)
    assert job.status == JobStatus.FAILED and job.progress().done == 0
    assert console_tree(imported) == wecom_tree(sandbox)


def test_dragging_one_group_is_one_call(imported, sandbox, actor):
    from tagging.strategy.services import tag_groups_reorder

    strategy = first_level(imported)
    pks = list(TagGroup.objects.filter(strategy=strategy).values_list("pk", flat=True))
    pks.insert(0, pks.pop())
    sandbox.reset_stats()
    tag_groups_reorder(strategy=strategy, group_ids=pks, actor=actor)
    assert calls(sandbox, "edit_strategy_tag") == 1
    assert list(TagGroup.objects.filter(strategy=strategy).values_list("pk", flat=True)) == pks
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_reorder_with_a_stale_list_is_refused(imported, actor):
    group = group_named(imported, "意向产品")
    pks = list(group.tags.values_list("pk", flat=True))[:-1]
    with pytest.raises(ValidationError, match="changed meanwhile"):
        tags_reorder(group=group, tag_ids=pks, actor=actor)


def test_saving_a_field_replaces_its_pending_change(imported, sandbox, actor):
    tag = tag_named(imported, "普通客户")
    Tag.objects.filter(pk=tag.pk).update(
        pending_name="等待中", pending_order=77, sync_state=SyncState.FAILED, sync_message="x"
    )
    tag = tag_update(tag=tag, name="新名字", actor=actor)
    assert (tag.name, tag.pending_name, tag.pending_order) == ("新名字", "", 77)
    assert tag.sync_state == SyncState.FAILED  # the order still waits
    tag = tag_update(tag=tag, order=tag.order, actor=actor)
    assert tag.sync_state == SyncState.IN_SYNC and not tag.has_pending
    assert console_tree(imported) == wecom_tree(sandbox)


def test_repush_failing_part_way_goes_on_with_the_others(imported, sandbox, actor):
    tags = list(group_named(imported, "意向产品").tags.all())
    for number, tag in enumerate(tags):
        Tag.objects.filter(pk=tag.pk).update(
            pending_name=f"重推{number}", sync_state=SyncState.FAILED, sync_message="x"
        )
    fault(sandbox, "edit_strategy_tag", latency_ms=1, times=1)
    fault(sandbox, "edit_strategy_tag", errcode=60011, times=1)
    outcome = items_repush_failed(
        items=Tag.objects.filter(pk__in=[t.pk for t in tags]), actor=actor
    )
    assert (outcome.done, outcome.failed) == (3, 1)
    states = sorted(Tag.objects.filter(group__name="意向产品").values_list("sync_state", flat=True))
    assert states == sorted([SyncState.FAILED] + [SyncState.IN_SYNC] * 3)
    assert console_tree(imported) == wecom_tree(sandbox)
