"""What the editor reads on the pull plan, after applying it, and in the lists (zh-hans)."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tagging.strategy.jobs import strategy_pull_schedules_ensure
from tagging.strategy.models import SyncState, Tag
from tests.tagging.strategy.conftest import apply_plan, plan_page
from tests.tagging.strategy.test_pull import outside, remote_id


@pytest.fixture
def editor_client(client, editor, imported):
    client.force_login(editor)
    return client


def test_a_tag_deleted_in_wecom_says_which_group_it_was_in(editor_client, imported, sandbox):
    outside(sandbox, "del_strategy_tag", {"tag_id": [remote_id(sandbox, "试用中")]})
    page = plan_page(editor_client, imported)
    (change,) = page.context["plan"].changes
    assert change.name == "试用中" and change.where == "意向产品"
    assert "<td>意向产品</td>" in page.content.decode()


def test_applying_names_only_what_happened_and_links_the_conflicts_left(
    editor_client, imported, sandbox
):
    Tag.objects.filter(name="金卡会员").update(
        pending_name="金卡VIP", sync_state=SyncState.FAILED, sync_message="企业微信繁忙"
    )
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "金卡会员"), "name": "黄金会员"}
    )
    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    response = apply_plan(editor_client, imported, plan_page(editor_client, imported))
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert texts[0] == "计划已应用：已跟进 1 项更改。"
    assert not any("0 个" in text for text in texts)
    assert texts[1].startswith("1 个冲突等待您决定：")
    conflict_list = (
        reverse("admin:tagging_tag_changelist")
        + f"?app__id__exact={imported.pk}&amp;sync_state__exact=conflict"
    )
    assert conflict_list in texts[1]


def test_a_conflict_in_the_tag_list_shows_what_changed_and_what_waits(editor_client, imported):
    Tag.objects.filter(name="金卡会员").update(
        pending_name="金卡VIP",
        sync_state=SyncState.CONFLICT,
        sync_message="企业微信中改名：金卡会员 → 黄金会员",
    )
    page = editor_client.get(
        reverse("admin:tagging_tag_changelist"), {"sync_state__exact": "conflict"}
    ).content.decode()
    assert "企业微信中改名：金卡会员 → 黄金会员" in page
    assert "名称“金卡会员”→“金卡VIP”" in page
    # A row in step shows its badge alone.
    in_sync = editor_client.get(reverse("admin:tagging_tag_changelist")).content.decode()
    assert in_sync.count('class="strategy-message"') == 1


def test_the_interval_help_names_the_default_once(editor_client, imported, settings):
    settings.STRATEGY_PULL_MINUTES = 15
    strategy_pull_schedules_ensure()
    page = editor_client.get(
        reverse("admin:tagging_strategypull_change", args=[imported.strategy_pull.pk])
    ).content.decode()
    assert "控制台默认值（每 15 分钟）" in page
    assert page.count("控制台默认") == 1


def conflict_on(name: str) -> Tag:
    Tag.objects.filter(name=name).update(
        pending_name=f"{name}VIP", sync_state=SyncState.CONFLICT, sync_message="企业微信中改名"
    )
    return Tag.objects.get(name=name)


@pytest.mark.parametrize(
    ("action", "said", "name_after"),
    [
        ("conflict_take_wecom", "已解决 1 个冲突：控制台保留企业微信的值。", "金卡会员"),
        ("conflict_push_ours", "已解决 1 个冲突：企业微信现已采用控制台的值。", "金卡会员VIP"),
    ],
)
def test_settling_a_conflict_says_which_way_it_went(
    editor_client, imported, sandbox, action, said, name_after
):
    tag = conflict_on("金卡会员")
    url = reverse("admin:tagging_tag_changelist")
    data = {"action": action, "_selected_action": [tag.pk]}
    assert "金卡会员VIP" in editor_client.post(url, data).content.decode()  # confirmation first
    response = editor_client.post(url, {**data, "confirm": "yes"})
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert texts == [said]
    tag.refresh_from_db()
    assert (tag.name, tag.sync_state) == (name_after, SyncState.IN_SYNC)


def test_settling_items_that_are_not_in_conflict_says_so_without_a_confirmation(
    editor_client, imported
):
    tag = Tag.objects.get(name="金卡会员")
    response = editor_client.post(
        reverse("admin:tagging_tag_changelist"),
        {"action": "conflict_push_ours", "_selected_action": [tag.pk]},
    )
    assert response.status_code == 302
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert texts == ["所选项目都没有冲突：未做任何更改。"]
