"""Corporate tags (企业客户标签) through the strategy tags' services and pulls: the corporate
root, the corporate endpoints (and never the strategy ones), WeCom's refusal of tags another app
made (301002) as a sentence, the 10,000 tags counted across both kinds before any call, and
pull plan / apply with conflicts."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.utils import translation

from tagging.strategy.models import (
    CORPORATE_WECOM_ID,
    Strategy,
    StrategyKind,
    SyncState,
    Tag,
    TagGroup,
)
from tagging.strategy.pull_apply import pull_and_apply, pull_apply
from tagging.strategy.pull_plan import pull_plan
from tagging.strategy.services import (
    Choice,
    StaleEdit,
    corp_tag_count,
    corporate_root,
    items_delete,
    tag_create,
    tag_group_create,
    tag_group_update,
    tag_move,
    tag_update,
    tags_reorder,
)
from tests.tagging.strategy.conftest import calls, console_tree, wecom_tree
from wecom.sandbox import DEMO, FaultRule

CORP = DEMO.wecom_corp_id
STRATEGY_ENDPOINTS = ("add_strategy_tag", "edit_strategy_tag", "del_strategy_tag")


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def root(app) -> Strategy:
    return Strategy.objects.get(app=app, kind=StrategyKind.CORPORATE)


def corp_group(app, name: str) -> TagGroup:
    return TagGroup.objects.get(app=app, strategy__kind=StrategyKind.CORPORATE, name=name)


def corp_tag(app, name: str) -> Tag:
    return Tag.objects.get(app=app, group__strategy__kind=StrategyKind.CORPORATE, name=name)


def no_strategy_calls(sandbox) -> bool:
    return all(calls(sandbox, endpoint) == 0 for endpoint in STRATEGY_ENDPOINTS)


def outside(sandbox, method: str, body: dict) -> dict:
    """A change made in WeCom's admin, not through the console."""
    return getattr(sandbox.state.wecom, method)(CORP, body)


# --- the import ---------------------------------------------------------------------------------


def test_the_pull_mirrors_the_corporate_library_under_one_root(imported, sandbox):
    corporate = root(imported)
    assert corporate.wecom_id == CORPORATE_WECOM_ID and corporate.is_first_level
    assert str(corporate) == "Corporate tags"
    with translation.override("zh-hans"):
        assert corporate.display_name == "企业标签"
    assert console_tree(imported, CORPORATE_WECOM_ID) == wecom_tree(sandbox, CORPORATE_WECOM_ID)
    assert list(corporate.groups.values_list("name", flat=True)) == [
        "客户来源",
        "客户行业",
        "服务阶段",
    ]
    assert console_tree(imported) == wecom_tree(sandbox)
    # The root is the console's: one per app, made once, whatever the pulls.
    pull_and_apply(app=imported, actor=None)
    assert Strategy.objects.filter(app=imported, kind=StrategyKind.CORPORATE).count() == 1
    assert corporate_root(imported).pk == corporate.pk


def test_the_root_exists_before_any_pull(app):
    corporate = corporate_root(app)
    assert corporate.is_corporate and corporate.groups.count() == 0
    plan = pull_plan(app)
    assert plan.first_import
    assert not [c for c in plan.changes if c.kind == "strategy" and c.wecom_id == "0"]


# --- creating, editing, moving, deleting: the corporate endpoints ----------------------------


def test_a_corporate_group_is_created_with_one_add_corp_tag_call(imported, sandbox, actor):
    sandbox.reset_stats()
    group = tag_group_create(
        strategy=root(imported),
        name="获客渠道",
        tags=[("抖音", None), ("展会推荐", None)],
        actor=actor,
    )
    assert calls(sandbox, "add_corp_tag") == 1 and no_strategy_calls(sandbox)
    assert [t.name for t in group.tags.all()] == ["抖音", "展会推荐"]
    assert console_tree(imported, CORPORATE_WECOM_ID) == wecom_tree(sandbox, CORPORATE_WECOM_ID)
    entry = LogEntry.objects.filter(object_id=str(group.pk), content_type__model="taggroup").get()
    assert entry.is_addition() and entry.user == actor.user


def test_corporate_group_names_are_checked_among_corporate_groups(imported, sandbox, actor):
    sandbox.reset_stats()
    with pytest.raises(ValidationError) as caught:
        tag_group_create(strategy=root(imported), name="客户来源", tags=[("a", None)], actor=actor)
    assert "exists already" in caught.value.message_dict["name"][0]
    assert sandbox.total_calls() == 0
    # A strategy group's name is free in the corporate library.
    tag_group_create(strategy=root(imported), name="客户等级", tags=[("a", None)], actor=actor)
    assert calls(sandbox, "add_corp_tag") == 1


def test_tag_add_rename_reorder_and_delete(imported, sandbox, actor):
    group = corp_group(imported, "客户来源")
    sandbox.reset_stats()
    tag = tag_create(group=group, name="直播间", actor=actor)
    tag = tag_update(tag=tag, name="直播", expected_version=tag.version, actor=actor)
    tag = tag_update(tag=tag, order=5, expected_version=tag.version, actor=actor)
    tag_group_update(group=group, name="客户渠道", order=99, actor=actor)
    assert calls(sandbox, "add_corp_tag") == 1
    assert calls(sandbox, "edit_corp_tag") == 3
    assert no_strategy_calls(sandbox)
    assert console_tree(imported) == wecom_tree(sandbox)
    outcome = items_delete(items=[tag], actor=actor)
    assert outcome.ok and calls(sandbox, "del_corp_tag") == 1
    assert console_tree(imported) == wecom_tree(sandbox)
    history = LogEntry.objects.filter(object_id=str(tag.pk), content_type__model="tag")
    assert history.filter(action_flag=1).exists() and history.filter(action_flag=3).exists()


def test_moving_one_corporate_tag_is_one_call(imported, sandbox, actor):
    group = corp_group(imported, "客户来源")
    tags = list(group.tags.all())
    sandbox.reset_stats()
    tag_move(tag=tags[2], to_index=0, actor=actor)
    assert sandbox.total_calls() == 1 and calls(sandbox, "edit_corp_tag") == 1
    assert group.tags.first().pk == tags[2].pk
    assert console_tree(imported) == wecom_tree(sandbox)
    pks = [t.pk for t in group.tags.all()]
    pks.append(pks.pop(0))
    sandbox.reset_stats()
    tags_reorder(group=group, tag_ids=pks, actor=actor)
    assert sandbox.total_calls() == 1
    assert list(group.tags.values_list("pk", flat=True)) == pks


def test_a_stale_form_cannot_overwrite_a_newer_change(imported, actor, make_user):
    from console.audit import Actor, AuditSource

    tag = corp_tag(imported, "展会")
    opened = tag.version
    other = Actor(user=make_user("colleague"), source=AuditSource.ADMIN)
    tag_update(tag=tag, name="其他人改的", expected_version=opened, actor=other)
    with pytest.raises(StaleEdit):
        tag_update(tag=tag, name="我改的", expected_version=opened, actor=actor)
    assert Tag.objects.get(pk=tag.pk).name == "其他人改的"


def test_a_tag_made_in_wecoms_admin_is_refused_with_a_sentence(imported, sandbox, actor):
    tag = corp_tag(imported, "售前")  # the demo's 服务阶段 was made in WeCom's admin
    with pytest.raises(ValidationError) as caught:
        tag_update(tag=tag, name="售前咨询", expected_version=tag.version, actor=actor)
    message = " ".join(caught.value.messages)
    assert "only change tags it created" in message and "301002" in message
    tag.refresh_from_db()
    assert tag.name == "售前" and not tag.has_pending and tag.sync_state == SyncState.IN_SYNC
    note = LogEntry.objects.filter(object_id=str(tag.pk), content_type__model="tag").latest("pk")
    assert "only change tags it created" in note.change_message
    outcome = items_delete(items=[corp_group(imported, "服务阶段")], actor=actor)
    assert outcome.failed == 1 and "only change tags it created" in outcome.messages[0]
    assert corp_group(imported, "服务阶段").tags.count() == 3


def test_a_delete_across_both_libraries_is_one_call_each(imported, sandbox, actor):
    strategy_tag = Tag.objects.get(app=imported, name="普通客户")
    corporate = corp_tag(imported, "展会")
    sandbox.reset_stats()
    outcome = items_delete(items=[strategy_tag, corporate], actor=actor)
    assert outcome.ok and outcome.done == 2
    assert calls(sandbox, "del_strategy_tag") == 1 and calls(sandbox, "del_corp_tag") == 1
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_corporate_tag_deleted_in_wecom_meanwhile_is_settled(imported, sandbox, actor):
    tag = corp_tag(imported, "展会")
    outside(sandbox, "del_corp_tag", {"tag_id": [tag.wecom_id]})
    outcome = items_delete(items=[tag], actor=actor)
    assert outcome.ok and not Tag.objects.filter(pk=tag.pk).exists()


# --- the 10,000 tags of a corp: both kinds, before any call ----------------------------------


def fill(app, n: int) -> None:
    group = corp_group(app, "客户行业")
    Tag.objects.bulk_create(
        Tag(app=app, group=group, wecom_id=f"etfill{i}", name=f"填充{i}", order=0) for i in range(n)
    )


@pytest.mark.parametrize("where", ["strategy", "corporate"])
def test_the_limit_counts_both_kinds_before_any_call(imported, sandbox, actor, where):
    fill(imported, 10_000 - 1 - corp_tag_count(imported))
    assert corp_tag_count(imported) == 10_000 - 1
    parent = (
        root(imported) if where == "corporate" else Strategy.objects.get(app=imported, wecom_id=1)
    )
    sandbox.reset_stats()
    with pytest.raises(ValidationError) as caught:
        tag_group_create(strategy=parent, name="超额", tags=[("a", None), ("b", None)], actor=actor)
    message = caught.value.message_dict["tags"][0]
    assert "at most 10000 tags, strategy tags and corporate tags together" in message
    assert sandbox.total_calls() == 0
    with translation.override("zh-hans"):
        assert "规则组标签与企业标签合计" in str(caught.value.message_dict["tags"][0])


def test_two_apps_of_one_corp_count_each_tag_once(imported, actor):
    from wecom.models import WeComApp

    second = WeComApp.objects.create(
        name="第二个应用", corp_id=CORP, secret=DEMO.wecom_secret, agent_id=1000009
    )
    second.refresh_from_db()
    pull_and_apply(app=second, actor=actor)
    assert corp_tag_count(imported) == corp_tag_count(second) == 14 + 10


# --- pulls: plan, apply, conflicts ---------------------------------------------------------------


def test_a_pull_follows_changes_in_wecom(imported, sandbox, actor):
    source = corp_group(imported, "客户来源")
    outside(
        sandbox, "edit_corp_tag", {"id": corp_tag(imported, "展会").wecom_id, "name": "行业展会"}
    )
    outside(sandbox, "add_corp_tag", {"group_id": source.wecom_id, "tag": [{"name": "新来源"}]})
    outside(sandbox, "del_corp_tag", {"group_id": [corp_group(imported, "客户行业").wecom_id]})
    plan = pull_plan(imported)
    where = {change.where for change in plan.changes}
    assert where == {"客户来源", "企业标签"}
    assert sorted(plan.counts()[k] for k in ("add", "rename", "delete")) == [1, 1, 1]
    pull_apply(app=imported, fingerprint=plan.fingerprint, actor=actor)
    assert console_tree(imported) == wecom_tree(sandbox)


def pending_rename(tag: Tag, name: str) -> Tag:
    Tag.objects.filter(pk=tag.pk).update(
        pending_name=name, sync_state=SyncState.FAILED, sync_message="busy"
    )
    return Tag.objects.get(pk=tag.pk)


def test_the_scheduled_pull_leaves_a_corporate_conflict_for_a_person(imported, sandbox, actor):
    tag = pending_rename(corp_tag(imported, "展会"), "我们的名字")
    outside(sandbox, "edit_corp_tag", {"id": tag.wecom_id, "name": "他们的名字"})
    _plan, result = pull_and_apply(app=imported, actor=actor)
    assert result.conflicts_left == 1
    tag.refresh_from_db()
    assert tag.sync_state == SyncState.CONFLICT
    assert (tag.name, tag.pending_name) == ("他们的名字", "我们的名字")


@pytest.mark.parametrize("choice", [Choice.WECOM, Choice.OURS])
def test_a_conflict_waits_for_a_choice(imported, sandbox, actor, choice):
    tag = pending_rename(corp_tag(imported, "展会"), "我们的名字")
    outside(sandbox, "edit_corp_tag", {"id": tag.wecom_id, "name": "他们的名字"})
    plan = pull_plan(imported)
    assert [c.key for c in plan.conflicts] == [f"tag:{tag.wecom_id}"]
    sandbox.reset_stats()
    result = pull_apply(
        app=imported,
        fingerprint=plan.fingerprint,
        actor=actor,
        choices={plan.conflicts[0].key: choice},
    )
    assert result.conflicts_left == 0
    tag.refresh_from_db()
    assert tag.name == ("他们的名字" if choice is Choice.WECOM else "我们的名字")
    assert tag.sync_state == SyncState.IN_SYNC
    assert console_tree(imported) == wecom_tree(sandbox)
    assert no_strategy_calls(sandbox)


def test_a_corporate_tag_deleted_in_wecom_with_a_local_change_is_recreated_on_ours(
    imported, sandbox, actor
):
    tag = corp_tag(imported, "展会")
    Tag.objects.filter(pk=tag.pk).update(pending_name="我们的", sync_state=SyncState.FAILED)
    outside(sandbox, "del_corp_tag", {"tag_id": [tag.wecom_id]})
    plan = pull_plan(imported)
    assert len(plan.conflicts) == 1
    pull_apply(
        app=imported,
        fingerprint=plan.fingerprint,
        actor=actor,
        choices={plan.conflicts[0].key: Choice.OURS},
    )
    tag.refresh_from_db()
    assert tag.name == "我们的" and tag.sync_state == SyncState.IN_SYNC
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_full_pull_reads_the_corporate_library_with_one_call(imported, sandbox, actor):
    sandbox.reset_stats()
    pull_and_apply(app=imported, actor=actor)
    assert calls(sandbox, "get_corp_tag_list") == 1
    assert calls(sandbox, "get_strategy_tag_list") == 1


def test_a_failed_corporate_read_fails_the_pull_and_changes_nothing(imported, sandbox, actor):
    before = console_tree(imported)
    sandbox.faults.add(FaultRule(platform="wecom", endpoint="*/get_corp_tag_list", errcode=48002))
    with pytest.raises(Exception):  # noqa: B017 - the platform's refusal, recorded below
        pull_and_apply(app=imported, actor=actor)
    assert console_tree(imported) == before
