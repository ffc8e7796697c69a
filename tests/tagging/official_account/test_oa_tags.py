"""Official Account tags: pulled with follower counts, changed through the services, audited."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError

from console.audit import audit_context
from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import (
    oa_tag_create,
    oa_tag_delete,
    oa_tag_rename,
    oa_tags_pull,
)
from wecom.clients import PlatformError
from wecom.sandbox import DEMO

pytestmark = pytest.mark.django_db


def history(tag: OfficialAccountTag) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(object_id=str(tag.pk), content_type__model="officialaccounttag")
    )


def test_pull_brings_tags_and_follower_counts(sandbox, account, actor):
    result = oa_tags_pull(account=account, actor=actor)

    tags = {tag.name: tag for tag in OfficialAccountTag.objects.filter(account=account)}
    assert set(tags) == {"星标组", "高价值客户", "活动报名", "广东", "新关注"}
    assert (tags["高价值客户"].follower_count, tags["活动报名"].follower_count) == (5, 6)
    assert result.added == 5
    assert len(history(tags["广东"])) == 1


def test_pull_again_records_renames_and_removals_only(sandbox, account, actor):
    oa_tags_pull(account=account, actor=actor)
    state = sandbox.state
    guangdong = OfficialAccountTag.objects.get(name="广东")
    gone = OfficialAccountTag.objects.get(name="新关注")
    state.official_account.tags_update(
        DEMO.oa_appid, {"tag": {"id": guangdong.tag_id, "name": "广东省"}}
    )
    state.official_account.tags_delete(DEMO.oa_appid, {"tag": {"id": gone.tag_id}})

    result = oa_tags_pull(account=account, actor=actor)

    assert (result.added, result.changed, result.removed) == (0, 1, 1)
    guangdong.refresh_from_db()
    assert guangdong.name == "广东省"
    assert not OfficialAccountTag.objects.filter(pk=gone.pk).exists()
    changes = audit_context(history(guangdong)[0]).changes
    assert [(c.field, c.old, c.new) for c in changes] == [("name", "广东", "广东省")]


def test_create_rename_delete_on_the_platform_with_history(sandbox, account, actor):
    tag = oa_tag_create(account=account, name="双十一", actor=actor)
    assert sandbox.state.official_account.tags_get(DEMO.oa_appid)["tags"][-1] == {
        "id": tag.tag_id,
        "name": "双十一",
        "count": 0,
    }
    oa_tag_rename(tag=tag, name="双十二", actor=actor)
    names = {
        t["id"]: t["name"] for t in sandbox.state.official_account.tags_get(DEMO.oa_appid)["tags"]
    }
    assert names[tag.tag_id] == "双十二"

    tag_pk = tag.pk
    oa_tag_delete(tag=tag, actor=actor)

    assert tag.tag_id not in {
        t["id"] for t in sandbox.state.official_account.tags_get(DEMO.oa_appid)["tags"]
    }
    entries = LogEntry.objects.filter(object_id=str(tag_pk)).order_by("pk")
    assert [entry.action_flag for entry in entries] == [1, 2, 3]
    assert all(entry.user == actor.user for entry in entries)


def test_reserved_tags_are_refused_before_any_call(sandbox, account, actor):
    oa_tags_pull(account=account, actor=actor)
    star = OfficialAccountTag.objects.get(tag_id=2)
    sandbox.reset_stats()

    with pytest.raises(ValidationError) as renaming:
        oa_tag_rename(tag=star, name="星标", actor=actor)
    with pytest.raises(ValidationError) as deleting:
        oa_tag_delete(tag=star, actor=actor)

    assert renaming.value.code == deleting.value.code == "reserved_tag"
    assert sandbox.total_calls() == 0
    assert OfficialAccountTag.objects.filter(tag_id=2, name="星标组").exists()


def test_a_tag_with_more_than_100k_followers_is_not_deleted_and_says_so(sandbox, account, actor):
    oa_tags_pull(account=account, actor=actor)
    tag = OfficialAccountTag.objects.get(name="广东")
    sandbox.state.official_account.set_tag_fan_count_override(DEMO.oa_appid, tag.tag_id, 100_001)
    oa_tags_pull(account=account, actor=actor)
    tag.refresh_from_db()
    sandbox.reset_stats()

    with pytest.raises(ValidationError) as refused:
        oa_tag_delete(tag=tag, actor=actor)

    assert "100,001" in refused.value.messages[0]
    assert sandbox.total_calls() == 0
    assert OfficialAccountTag.objects.filter(pk=tag.pk).exists()


def test_at_exactly_100k_the_platform_is_asked(sandbox, account, actor):
    oa_tags_pull(account=account, actor=actor)
    tag = OfficialAccountTag.objects.get(name="广东")
    tag.follower_count = 100_000
    tag.save()
    oa_tag_delete(tag=tag, actor=actor)
    assert not OfficialAccountTag.objects.filter(pk=tag.pk).exists()


def test_stale_count_the_platform_refusal_is_explained_and_nothing_changes(sandbox, account, actor):
    oa_tags_pull(account=account, actor=actor)
    tag = OfficialAccountTag.objects.get(name="广东")
    sandbox.state.official_account.set_tag_fan_count_override(DEMO.oa_appid, tag.tag_id, 200_000)

    with pytest.raises(PlatformError) as refused:
        oa_tag_delete(tag=tag, actor=actor)

    assert refused.value.errcode == 45057
    assert "45057" in str(refused.value)
    assert OfficialAccountTag.objects.filter(pk=tag.pk).exists()
    assert history(tag)[-1].action_flag == 1


def test_names_are_checked_before_calling(sandbox, account, actor):
    oa_tags_pull(account=account, actor=actor)
    sandbox.reset_stats()
    with pytest.raises(ValidationError) as too_long:
        oa_tag_create(account=account, name="x" * 31, actor=actor)
    with pytest.raises(ValidationError) as taken:
        oa_tag_create(account=account, name="广东", actor=actor)
    assert (too_long.value.code, taken.value.code) == ("name_too_long", "name_taken")
    assert sandbox.total_calls() == 0
