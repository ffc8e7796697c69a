"""The tree page with the corporate tag library (企业标签) beside the strategies: drawn apart,
drag order one call per move, add / rename / delete through the same admin pages, and the
10,000 meter counting both kinds."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tagging.strategy.models import StrategyKind, Tag, TagGroup
from tests.tagging.strategy.conftest import calls, console_tree, wecom_tree


@pytest.fixture
def editor_client(client, editor, imported):
    client.force_login(editor)
    return client


def root(app):
    return app.strategy_set.get(kind=StrategyKind.CORPORATE)


def tree_page(client, app, **params) -> str:
    url = reverse("admin:tagging_strategy_tree", args=[app.pk])
    return client.get(url, params).content.decode()


def test_the_root_is_drawn_beside_the_strategies_with_the_meter(editor_client, imported):
    page = tree_page(editor_client, imported)
    start = page.index('class="module strategy-nav"')
    nav = page[start : page.index("</nav>", start)]
    # The strategies first, then the corporate library under its own heading.
    assert nav.index("华东区销售规则组") < nav.index(
        '<h2 class="strategy-corporate-heading">企业标签</h2>'
    )
    assert f"?strategy={root(imported).pk}" in nav
    # The page opens on a strategy, as before.
    assert "重要客户" in page and "官网咨询" not in page
    # 14 strategy tags and 10 corporate tags, against WeCom's 10,000.
    assert "已用 24 / 10,000" in page
    assert 'value="24"' in page and 'max="10000"' in page


def test_the_root_shows_the_corporate_groups_and_an_add_button(editor_client, imported):
    corporate = root(imported)
    page = tree_page(editor_client, imported, strategy=corporate.pk)
    assert [name for name in ("客户来源", "客户行业", "服务阶段") if name in page] == [
        "客户来源",
        "客户行业",
        "服务阶段",
    ]
    assert page.index("客户来源") < page.index("客户行业") < page.index("服务阶段")
    assert "企业自己的客户标签，不属于任何规则组" in page
    assert f"{reverse('admin:tagging_taggroup_add')}?strategy={corporate.pk}" in page
    assert "官网咨询" in page and "重要客户" not in page


def test_the_meter_counts_corporate_tags_added_in_the_tree(editor_client, imported, sandbox):
    corporate = root(imported)
    response = editor_client.post(
        reverse("admin:tagging_taggroup_add"),
        {"strategy": corporate.pk, "name": "获客渠道", "order": "", "tags": "抖音\n小红书\n"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert calls(sandbox, "add_corp_tag") == 1 and calls(sandbox, "add_strategy_tag") == 0
    group = TagGroup.objects.get(name="获客渠道")
    assert group.strategy_id == corporate.pk
    assert console_tree(imported) == wecom_tree(sandbox)
    assert "已用 26 / 10,000" in tree_page(editor_client, imported, strategy=corporate.pk)


def test_dragging_a_corporate_group_or_tag_is_one_call(editor_client, imported, sandbox):
    corporate = root(imported)
    move = reverse("admin:tagging_strategy_move", args=[imported.pk])
    ids = list(corporate.groups.values_list("pk", flat=True))  # 客户来源, 客户行业, 服务阶段
    ids.insert(0, ids.pop(1))
    sandbox.reset_stats()
    answer = editor_client.post(
        move, {"kind": "group", "parent": corporate.pk, "ids": ",".join(map(str, ids))}
    ).json()
    assert answer["ok"], answer
    assert answer["order"] == ids
    assert calls(sandbox, "edit_corp_tag") == 1 and sandbox.total_calls() == 1
    group = TagGroup.objects.get(app=imported, name="客户来源")  # orders 30, 20, 10
    tags = list(group.tags.values_list("pk", flat=True))
    tags.insert(0, tags.pop())
    sandbox.reset_stats()
    answer = editor_client.post(
        move, {"kind": "tag", "parent": group.pk, "ids": ",".join(map(str, tags))}
    ).json()
    assert answer["ok"], answer
    assert calls(sandbox, "edit_corp_tag") == 1 and sandbox.total_calls() == 1
    assert console_tree(imported) == wecom_tree(sandbox)


def test_dragging_a_group_made_in_wecoms_admin_says_why_and_keeps_the_order(
    editor_client, imported, sandbox
):
    corporate = root(imported)
    before = list(corporate.groups.values_list("pk", flat=True))
    ids = [before[2], before[0], before[1]]  # 服务阶段 (made in WeCom's admin) to the top
    answer = editor_client.post(
        reverse("admin:tagging_strategy_move", args=[imported.pk]),
        {"kind": "group", "parent": corporate.pk, "ids": ",".join(map(str, ids))},
    ).json()
    assert not answer["ok"]
    assert "301002" in answer["message"] and "只能修改自己创建的标签" in answer["message"]
    assert answer["order"] == before
    assert console_tree(imported) == wecom_tree(sandbox)


def test_rename_and_delete_through_the_admin_pages(editor_client, imported, sandbox):
    tag = Tag.objects.get(app=imported, name="展会")
    response = editor_client.post(
        reverse("admin:tagging_tag_change", args=[tag.pk]),
        {"name": "行业展会", "order": str(tag.order), "expected_version": tag.version},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert calls(sandbox, "edit_corp_tag") == 1
    response = editor_client.post(
        reverse("admin:tagging_tag_delete", args=[tag.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert calls(sandbox, "del_corp_tag") == 1
    assert not Tag.objects.filter(pk=tag.pk).exists()
    assert console_tree(imported) == wecom_tree(sandbox)


def test_a_tag_made_in_wecoms_admin_is_refused_beside_the_field(editor_client, imported, sandbox):
    tag = Tag.objects.get(app=imported, name="售前")
    response = editor_client.post(
        reverse("admin:tagging_tag_change", args=[tag.pk]),
        {"name": "售前咨询", "order": str(tag.order), "expected_version": tag.version},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "301002" in page
    assert Tag.objects.get(pk=tag.pk).name == "售前"
