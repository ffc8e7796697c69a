"""The strategy tag admin as the marketing editor and the auditor use it (test client)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tagging.strategy.models import Strategy, SyncState, Tag, TagGroup
from tests.tagging.strategy.conftest import (
    apply_plan,
    calls,
    console_tree,
    plan_page,
    wecom_tree,
)
from wecom.sandbox import FaultRule


@pytest.fixture
def editor_client(client, editor, imported):
    client.force_login(editor)
    return client


@pytest.fixture
def auditor_client(client, auditor, imported):
    client.force_login(auditor)
    return client


def en(client):
    client.cookies["django_language"] = "en"
    return client


def test_the_tree_shows_strategies_groups_and_tags_in_wecom_order(editor_client, imported):
    url = reverse("admin:tagging_strategy_tree", args=[imported.pk])
    page = editor_client.get(url).content.decode()
    positions = [page.index(name) for name in ("客户等级", "意向产品", "跟进阶段")]
    assert positions == sorted(positions)
    tags = [page.index(name) for name in ("重要客户", "普通客户", "潜在客户")]
    assert tags == sorted(tags)
    assert 'data-sortable="1"' in page
    assert "<script>" not in page and "<script type" not in page  # no inline script (CSP)
    assert "Sortable.min.js" in page


def test_the_auditor_sees_the_tree_without_anything_to_change(auditor_client, imported):
    url = reverse("admin:tagging_strategy_tree", args=[imported.pk])
    page = auditor_client.get(url).content.decode()
    assert "重要客户" in page
    assert "data-sortable" not in page and "/add/" not in page and "/delete/" not in page
    tag = Tag.objects.get(name="重要客户")
    change = auditor_client.get(reverse("admin:tagging_tag_change", args=[tag.pk]))
    assert change.status_code == 200
    assert b'name="name"' not in change.content
    assert (
        auditor_client.post(
            reverse("admin:tagging_tag_change", args=[tag.pk]), {"name": "x"}
        ).status_code
        == 403
    )
    move = auditor_client.post(
        reverse("admin:tagging_strategy_move", args=[imported.pk]),
        {"kind": "tag", "parent": tag.group_id, "ids": str(tag.pk)},
    )
    assert move.status_code == 403
    assert (
        auditor_client.get(reverse("admin:tagging_strategy_pull", args=[imported.pk])).status_code
        == 403
    )


def tree_queries(client, app, strategy) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(
            reverse("admin:tagging_strategy_tree", args=[app.pk]), {"strategy": strategy.pk}
        )
    assert response.status_code == 200
    return len(queries)


def changelist_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:tagging_tag_changelist"))
    assert response.status_code == 200
    return len(queries)


def add_tags(group: TagGroup, n: int) -> None:
    Tag.objects.bulk_create(
        Tag(app=group.app, group=group, wecom_id=f"etx{group.pk}-{i}", name=f"批量{i}", order=i)
        for i in range(n)
    )


def test_tree_and_changelist_query_counts_do_not_grow_with_rows(editor_client, imported):
    strategy = Strategy.objects.get(wecom_id=1)
    group = TagGroup.objects.filter(strategy=strategy).first()
    tree_before, list_before = (
        tree_queries(editor_client, imported, strategy),
        changelist_queries(editor_client),
    )
    add_tags(group, 80)
    Tag.objects.filter(name="批量3").update(sync_state=SyncState.FAILED, sync_message="x")
    assert tree_queries(editor_client, imported, strategy) == tree_before
    assert changelist_queries(editor_client) == list_before


def test_adding_a_group_with_tags_on_one_page(editor_client, imported, sandbox):
    strategy = Strategy.objects.get(wecom_id=1)
    response = editor_client.post(
        reverse("admin:tagging_taggroup_add"),
        {"strategy": strategy.pk, "name": "渠道", "order": "", "tags": "线上\n线下\n"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    group = TagGroup.objects.get(name="渠道")
    assert [t.name for t in group.tags.all()] == ["线上", "线下"]
    assert console_tree(imported) == wecom_tree(sandbox)


def test_validation_errors_show_beside_the_field_in_chinese(editor_client, imported, sandbox):
    strategy = Strategy.objects.get(wecom_id=1)
    response = editor_client.post(
        reverse("admin:tagging_taggroup_add"),
        {"strategy": strategy.pk, "name": "客户等级", "tags": ""},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "这里已有标签组“客户等级”" in page and "不能为空" in page
    assert calls(sandbox, "add_strategy_tag") == 0


def test_wecom_refusal_shows_on_the_form_and_saves_nothing(editor_client, imported, sandbox):
    tag = Tag.objects.get(name="普通客户")
    sandbox.faults.add(FaultRule(platform="wecom", endpoint="*/edit_strategy_tag", errcode=60011))
    response = en(editor_client).post(
        reverse("admin:tagging_tag_change", args=[tag.pk]),
        {"name": "改了", "order": "10", "expected_version": tag.version},
    )
    assert response.status_code == 200
    assert "no permission for this strategy" in response.content.decode()
    assert Tag.objects.get(pk=tag.pk).name == "普通客户"


def test_a_stale_form_warns_and_a_second_save_overwrites(editor_client, imported, make_user):
    from console.audit import Actor, AuditSource
    from tagging.strategy.services import tag_update

    tag = Tag.objects.get(name="普通客户")
    opened = tag.version
    tag_update(
        tag=tag, name="别人改的", actor=Actor(user=make_user("other"), source=AuditSource.ADMIN)
    )
    url = reverse("admin:tagging_tag_change", args=[tag.pk])
    response = en(editor_client).post(
        url, {"name": "我改的", "order": "10", "expected_version": opened}
    )
    page = response.content.decode()
    assert "Changed by other" in page and "别人改的" in page and "我改的" in page
    assert Tag.objects.get(pk=tag.pk).name == "别人改的"
    current = Tag.objects.get(pk=tag.pk).version
    assert f'value="{current}"' in page
    response = editor_client.post(
        url, {"name": "我改的", "order": "10", "expected_version": current}
    )
    assert response.status_code == 302
    assert Tag.objects.get(pk=tag.pk).name == "我改的"


def test_drag_and_drop_endpoint_moves_one_tag_with_one_call(editor_client, imported, sandbox):
    group = TagGroup.objects.get(name="意向产品")
    ids = list(group.tags.values_list("pk", flat=True))
    ids.insert(0, ids.pop(2))
    sandbox.reset_stats()
    answer = editor_client.post(
        reverse("admin:tagging_strategy_move", args=[imported.pk]),
        {"kind": "tag", "parent": group.pk, "ids": ",".join(map(str, ids))},
    ).json()
    assert answer["ok"], answer
    assert answer["order"] == ids
    assert calls(sandbox, "edit_strategy_tag") == 1
    assert console_tree(imported) == wecom_tree(sandbox)


def test_delete_confirmation_warns_about_customers(editor_client, imported, sandbox):
    tag = Tag.objects.get(name="潜在客户")
    page = editor_client.get(reverse("admin:tagging_tag_delete", args=[tag.pk])).content.decode()
    assert "每一位带有该标签的客户" in page
    response = editor_client.post(
        reverse("admin:tagging_tag_delete", args=[tag.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Tag.objects.filter(pk=tag.pk).exists()
    assert console_tree(imported) == wecom_tree(sandbox)
    history = editor_client.get(reverse("admin:tagging_tag_history", args=[tag.pk]))
    assert history.status_code == 200 and "潜在客户" in history.content.decode()


def test_bulk_repush_failed_asks_first(editor_client, imported, sandbox):
    tag = Tag.objects.get(name="普通客户")
    Tag.objects.filter(pk=tag.pk).update(
        pending_name="再试一次", sync_state=SyncState.FAILED, sync_message="busy"
    )
    url = reverse("admin:tagging_tag_changelist")
    page = editor_client.post(url, {"action": "repush_failed", "_selected_action": [tag.pk]})
    assert page.status_code == 200 and "再试一次" in page.content.decode()
    assert Tag.objects.get(pk=tag.pk).name == "普通客户"
    editor_client.post(
        url, {"action": "repush_failed", "_selected_action": [tag.pk], "confirm": "yes"}
    )
    assert Tag.objects.get(pk=tag.pk).name == "再试一次"
    assert console_tree(imported) == wecom_tree(sandbox)


def test_pull_page_shows_the_plan_and_applies_it(editor_client, imported, sandbox):
    from tests.tagging.strategy.test_pull import outside, remote_id

    outside(
        sandbox, "edit_strategy_tag", {"id": remote_id(sandbox, "重要客户"), "name": "核心客户"}
    )
    page = plan_page(editor_client, imported)
    assert "核心客户" in page.content.decode()
    response = apply_plan(editor_client, imported, page)
    assert response.status_code == 302
    assert Tag.objects.filter(name="核心客户").exists()


def test_dashboard_panel_counts_per_app(editor_client, imported):
    Tag.objects.filter(name="普通客户").update(sync_state=SyncState.CONFLICT)
    page = editor_client.get(reverse("admin:index")).content.decode()
    assert "企业微信规则组标签" in page or "WeCom strategy tags" in page
    assert "sync_state__exact=conflict" in page


def test_search_across_levels(editor_client, imported):
    page = editor_client.get(
        reverse("admin:tagging_strategy_tree", args=[imported.pk]), {"q": "客户"}
    ).content.decode()
    assert "重要客户" in page and "客户等级" in page


def test_swapping_two_names_from_the_list_asks_first(editor_client, imported, sandbox):
    a, b = Tag.objects.get(name="重要客户"), Tag.objects.get(name="普通客户")
    url = reverse("admin:tagging_tag_changelist")
    data = {"action": "swap_names", "_selected_action": [a.pk, b.pk]}
    page = editor_client.post(url, data)
    assert page.status_code == 200 and "普通客户" in page.content.decode()
    assert Tag.objects.get(pk=a.pk).name == "重要客户"
    editor_client.post(url, {**data, "confirm": "yes"})
    assert Tag.objects.get(pk=a.pk).name == "普通客户"
    assert Tag.objects.get(pk=b.pk).name == "重要客户"
    assert console_tree(imported) == wecom_tree(sandbox)


def test_the_tree_escapes_names_and_messages(editor_client, imported):
    Tag.objects.filter(name="重要客户").update(
        name="<b>粗</b>", pending_name="<i>斜</i>", sync_state=SyncState.FAILED, sync_message="<x>"
    )
    strategy = Strategy.objects.get(wecom_id=1)
    page = editor_client.get(
        reverse("admin:tagging_strategy_tree", args=[imported.pk]), {"strategy": strategy.pk}
    ).content.decode()
    assert "&lt;b&gt;粗&lt;/b&gt;" in page and "<b>粗" not in page
    assert "&lt;i&gt;斜&lt;/i&gt;" in page and "&lt;x&gt;" in page and "<x>" not in page
