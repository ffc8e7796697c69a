"""The tree page at any size: the first groups drawn open while their tags fit, the others with
their counts and opened on demand, a search answered as a filtered tree, and the same queries
whatever the number of groups and tags."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tagging.strategy.models import Strategy, Tag, TagGroup
from tagging.strategy.selectors import OPEN_TAGS

# Session, user, the user's and the groups' permissions (4); the app, the strategies, their
# group and tag counts, the groups, the tags drawn open, the open re-spacing jobs, the corp's
# tags of both kinds for the 10,000 meter (8); then, for the whole page, the pull settings,
# the last callback applied and the apps (3).
TREE_QUERIES = 15
# The body alone (a search, another strategy, a refresh): no pull, callback or apps.
BODY_QUERIES = 12
# Opening a group: the four above, the group and its tags.
GROUP_QUERIES = 6
BIG_GROUPS, BIG_TAGS = 30, 20


@pytest.fixture
def editor_client(client, editor, imported):
    client.force_login(editor)
    return client


def add_big_groups(app) -> Strategy:
    """30 more groups of 20 tags in the first strategy, below its own three."""
    strategy = Strategy.objects.get(app=app, wecom_id=1)
    groups = TagGroup.objects.bulk_create(
        TagGroup(app=app, strategy=strategy, wecom_id=f"big{n}", name=f"大组{n:02d}", order=0)
        for n in range(BIG_GROUPS)
    )
    Tag.objects.bulk_create(
        Tag(app=app, group=group, wecom_id=f"{group.wecom_id}-{m}", name=f"{group.name}-{m:02d}")
        for group in groups
        for m in range(BIG_TAGS)
    )
    return strategy


@pytest.fixture
def big(imported) -> Strategy:
    return add_big_groups(imported)


def tree_url(app) -> str:
    return reverse("admin:tagging_strategy_tree", args=[app.pk])


def tree(client, app, **params) -> str:
    response = client.get(tree_url(app), params)
    assert response.status_code == 200
    return response.content.decode()


def group_tags(client, app, group, **params):
    return client.get(reverse("admin:tagging_strategy_group_tags", args=[app.pk, group.pk]), params)


def queries(client, url: str, **params) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return len(captured)


def chips(page: str) -> list[str]:
    """The names of the tag chips drawn, in page order."""
    return re.findall(
        r'<li class="strategy-tag"[^>]*>.*?<a class="strategy-name"[^>]*>([^<]+)', page
    )


def groups(page: str) -> list[tuple[str, bool]]:
    """The groups drawn, each with whether it is drawn open."""
    return [
        (name, expanded == "true")
        for name, expanded in re.findall(
            r'<li class="strategy-group".*?<a class="strategy-name"[^>]*>([^<]+)</a>'
            r'.*?aria-expanded="(true|false)"',
            page,
        )
    ]


def test_the_page_takes_the_same_queries_whatever_the_number_of_tags(editor_client, imported):
    url = tree_url(imported)
    strategy = Strategy.objects.get(app=imported, wecom_id=1)
    group = TagGroup.objects.get(app=imported, name="跟进阶段")  # the third
    tags_url = reverse("admin:tagging_strategy_group_tags", args=[imported.pk, group.pk])
    editor_client.get(url)  # content types: read once per process

    def counts() -> list[int]:
        opened = ",".join(map(str, TagGroup.objects.values_list("pk", flat=True)))
        return [
            queries(editor_client, url, strategy=strategy.pk),
            queries(editor_client, url, strategy=strategy.pk, partial="1", open=opened),
            queries(editor_client, url, strategy=strategy.pk, q="客户"),
            queries(editor_client, tags_url),
        ]

    assert counts() == [TREE_QUERIES, BODY_QUERIES, TREE_QUERIES, GROUP_QUERIES]
    add_big_groups(imported)
    Tag.objects.bulk_create(
        Tag(app=imported, group=group, wecom_id=f"more{n}", name=f"更多客户{n}") for n in range(300)
    )
    assert counts() == [TREE_QUERIES, BODY_QUERIES, TREE_QUERIES, GROUP_QUERIES]


def test_the_first_groups_are_drawn_open_while_their_tags_fit(editor_client, imported, big):
    page = tree(editor_client, imported, strategy=big.pk)
    drawn = groups(page)
    assert len(drawn) == 3 + BIG_GROUPS
    names = [name for name, _open in drawn]
    assert names[:4] == ["客户等级", "意向产品", "跟进阶段", "大组00"]
    # The demo's 9 tags, then groups of 20 while they fit in OPEN_TAGS; all the rest closed.
    fitting = (OPEN_TAGS - 9) // BIG_TAGS
    assert [is_open for _name, is_open in drawn] == [True] * (3 + fitting) + [False] * (
        BIG_GROUPS - fitting
    )
    shown = chips(page)
    assert len(shown) == 9 + fitting * BIG_TAGS
    assert "大组00-00" in shown and f"大组{fitting:02d}-00" not in shown
    # A closed group still says how many tags it holds, and can be moved.
    closed = page[page.index(f">大组{fitting:02d}<") :]
    assert closed.index("20 个标签") < closed.index("</li>")
    assert closed.index('aria-label="上移: ') < closed.index("</li>")


def test_a_closed_group_opens_with_its_tags_in_wecom_order(editor_client, imported, big):
    group = TagGroup.objects.get(name="大组29")
    Tag.objects.filter(group=group, name="大组29-07").update(order=5)
    answer = group_tags(editor_client, imported, group)
    assert answer.status_code == 200
    body = answer.content.decode()
    assert chips(body)[:2] == ["大组29-07", "大组29-00"] and len(chips(body)) == BIG_TAGS
    assert 'data-sortable="1"' in body and 'aria-label="上移: 大组29-07"' in body
    assert f'href="/admin/tagging/tag/add/?group={group.pk}"' in body
    # With a search, only the matches, which cannot be re-ordered as a list.
    body = group_tags(editor_client, imported, group, q="29-1").content.decode()
    assert chips(body) == [f"大组29-1{n}" for n in range(10)]
    assert "data-sortable" not in body and "strategy-handle" not in body


def test_a_page_may_ask_for_groups_to_stay_open(editor_client, imported, big):
    group = TagGroup.objects.get(name="大组25")
    page = tree(
        editor_client, imported, strategy=big.pk, open=f"x,{group.pk},-3,99999999999999999999"
    )
    assert ("大组25", True) in groups(page) and "大组25-19" in chips(page)
    # An edit from the tree comes back to it with the item's group open.
    tag = Tag.objects.get(name="普通客户")
    response = editor_client.post(
        reverse("admin:tagging_tag_change", args=[tag.pk]) + "?tree=1",
        {"name": "一般客户", "order": tag.order, "expected_version": tag.version},
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"?strategy={big.pk}&open={tag.group_id}#tag-{tag.pk}")


def test_a_search_is_the_tree_filtered(editor_client, imported, big):
    page = tree(editor_client, imported, q="大组07-1")
    # The strategy with matches, and in it only the group holding them, open on them.
    assert groups(page) == [("大组07", True)]
    assert chips(page) == [f"大组07-1{n}" for n in range(10)]
    assert "20 个标签，10 个匹配" in page
    assert "显示的标签组 1 个；匹配的标签 10 个" in page
    assert "data-sortable" not in page and "strategy-handle" not in page
    assert "搜索结果中不能调整顺序" in page
    # A group whose own name matches comes with all its tags, which can be re-ordered.
    page = tree(editor_client, imported, q="意向")
    assert groups(page) == [("意向产品", True)]
    assert chips(page) == ["企业版", "专业版", "基础版", "试用中"]
    assert page.count('data-sortable="1"') == 1
    # A strategy whose name matches comes whole.
    page = tree(editor_client, imported, q="华东区")
    assert len(groups(page)) == 3 + BIG_GROUPS and 'data-kind="group"' in page
    assert "名称匹配" in page


def test_the_strategies_say_where_a_search_found_something(editor_client, imported, big):
    member = Strategy.objects.get(app=imported, wecom_id=2)
    page = tree(editor_client, imported, q="会员", strategy=big.pk)
    assert groups(page) == [] and "未找到。" in page
    start = page.index('<nav class="module strategy-nav"')
    nav = page[start : page.index("</nav>", start)]
    # 会员等级 and its three 会员 tags.
    assert f'?strategy={member.pk}&amp;q=%E4%BC%9A%E5%91%98"' in nav and "4 个匹配" in nav


@pytest.mark.parametrize("query", ["%", "_", "' OR 1=1 --", "\\", "客" * 500])
def test_hostile_searches_find_nothing_and_break_nothing(editor_client, imported, query):
    page = tree(editor_client, imported, q=query)
    assert groups(page) == []
    assert tree(editor_client, imported, q=query, partial="1")


def test_the_body_alone_for_the_pages_script(editor_client, imported):
    body = tree(editor_client, imported, partial="1", q="客户")
    assert body.lstrip().startswith('<div id="strategy-body"')
    assert "<html" not in body and "strategy-toolbar" not in body
    assert "重要客户" in body


def test_opening_a_group_checks_what_it_is_asked(
    editor_client, client, imported, auditor, make_user
):
    group = TagGroup.objects.get(app=imported, name="客户等级")
    url = reverse("admin:tagging_strategy_group_tags", args=[imported.pk, group.pk])
    other = reverse("admin:tagging_strategy_group_tags", args=[imported.pk + 1, group.pk])
    assert editor_client.get(other).status_code == 404
    wrong = reverse("admin:tagging_strategy_group_tags", args=[imported.pk, "x"])
    assert editor_client.get(wrong).status_code == 404
    assert editor_client.post(url).status_code == 405
    client.force_login(auditor)
    body = client.get(url).content.decode()
    assert chips(body) == ["重要客户", "普通客户", "潜在客户"]
    assert "data-sortable" not in body and "/add/" not in body and "/delete/" not in body
    client.force_login(make_user("nobody"))
    assert client.get(url).status_code == 403
