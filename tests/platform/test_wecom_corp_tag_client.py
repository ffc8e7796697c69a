"""The WeCom client's corporate tag calls against the sandbox: the strategy tags' parsing and
checks, the corporate endpoints, and 301002 / 40068 / 40071 as sentences."""

from __future__ import annotations

import pytest
from django.utils import translation

from wecom.clients import PlatformAPIError, PlatformInputError
from wecom.clients.wecom import NewTag
from wecom.sandbox import DEMO

TAGS = "/cgi-bin/externalcontact"


def group_named(groups, name):
    return next(group for group in groups if group.group_name == name)


def test_the_library_comes_back_typed_without_a_strategy(wecom, sandbox):
    groups = wecom.corp_tag_list()
    assert [g.group_name for g in groups] == ["客户来源", "客户行业", "服务阶段"]
    assert all(g.strategy_id is None for g in groups)
    source = groups[0]
    assert [(t.name, t.order) for t in source.tags] == [
        ("官网咨询", 30),
        ("展会", 20),
        ("老客户介绍", 10),
    ]
    assert sandbox.calls("wecom", f"{TAGS}/get_corp_tag_list") == 1
    assert sandbox.calls("wecom", f"{TAGS}/get_strategy_tag_list") == 0
    only = wecom.corp_tag_list(tag_ids=[source.tags[1].id])
    assert [(g.group_id, [t.id for t in g.tags]) for g in only] == [
        (source.group_id, [source.tags[1].id])
    ]
    assert [g.group_id for g in wecom.corp_tag_list(group_ids=[source.group_id])] == [
        source.group_id
    ]


def test_add_edit_delete(wecom, sandbox):
    group = wecom.corp_tag_add(
        group_name="渠道", group_order=5, tags=[NewTag("抖音", 3), NewTag("微博")]
    )
    assert group.strategy_id is None and group.order == 5
    assert [t.name for t in group.tags] == ["抖音", "微博"]
    joined = wecom.corp_tag_add(group_id=group.group_id, tags=[NewTag("小红书")])
    assert joined.group_id == group.group_id
    wecom.corp_tag_edit(id=group.tags[0].id, name="抖音号", order=9)
    wecom.corp_tag_edit(id=group.group_id, name="获客渠道")
    after = group_named(wecom.corp_tag_list(), "获客渠道")
    assert (after.tags[0].name, after.tags[0].order) == ("抖音号", 9)
    wecom.corp_tag_delete(tag_ids=[after.tags[0].id])
    wecom.corp_tag_delete(group_ids=[after.group_id])
    assert "获客渠道" not in {g.group_name for g in wecom.corp_tag_list()}
    for endpoint in ("add_corp_tag", "edit_corp_tag", "del_corp_tag"):
        assert sandbox.calls("wecom", f"{TAGS}/{endpoint}") >= 1
    for endpoint in ("add_strategy_tag", "edit_strategy_tag", "del_strategy_tag"):
        assert sandbox.calls("wecom", f"{TAGS}/{endpoint}") == 0


@pytest.mark.parametrize(
    ("call", "errcode", "english"),
    [
        (
            lambda c, admin: c.corp_tag_edit(id=admin.tags[0].id, name="改"),
            301002,
            "only change tags it created",
        ),
        (
            lambda c, admin: c.corp_tag_delete(group_ids=[admin.group_id]),
            301002,
            "only change tags it created",
        ),
        (
            lambda c, admin: c.corp_tag_delete(tag_ids=["etNoSuchTag00000000000000"]),
            40068,
            "does not exist in WeCom",
        ),
        (
            lambda c, admin: c.corp_tag_edit(id="etNoSuchTag00000000000000", name="y"),
            40068,
            "does not exist in WeCom",
        ),
        (
            lambda c, admin: c.corp_tag_add(group_name="客户来源", tags=[NewTag("展会")]),
            40071,
            "exists already",
        ),
    ],
)
def test_platform_refusals_are_explained(wecom, call, errcode, english):
    admin_made = group_named(wecom.corp_tag_list(), "服务阶段")
    with pytest.raises(PlatformAPIError) as caught:
        call(wecom, admin_made)
    assert caught.value.errcode == errcode
    with translation.override("en"):
        assert english in str(caught.value)


def test_the_ten_thousand_tags_count_both_kinds(wecom, sandbox):
    sandbox.state.wecom.set_corp_tag_count(DEMO.wecom_corp_id, 10_000 - 14)
    with pytest.raises(PlatformAPIError) as caught:
        wecom.corp_tag_add(group_name="新组", tags=[NewTag("a")])
    assert caught.value.errcode == 40058
    with pytest.raises(PlatformAPIError):
        wecom.strategy_tag_add(strategy_id=2, group_name="新组", tags=[NewTag("a")])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.corp_tag_add(group_name="x" * 31, tags=[NewTag("a")]),
            "at most 30 characters",
        ),
        (lambda c: c.corp_tag_add(group_name="组", tags=[NewTag("a", 2**32)]), "between 0 and"),
        (lambda c: c.corp_tag_add(group_name="组", tags=[]), "cannot be empty"),
        (lambda c: c.corp_tag_edit(id="et1"), "Nothing to change"),
        (lambda c: c.corp_tag_delete(), "Nothing to delete"),
    ],
)
def test_what_the_platform_would_refuse_is_never_sent(wecom, sandbox, call, message):
    with pytest.raises(PlatformInputError) as caught, translation.override("en"):
        call(wecom)
    with translation.override("en"):
        assert message in str(caught.value)
    assert sandbox.total_calls() == 0
