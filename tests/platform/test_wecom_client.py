"""The WeCom client against the sandbox: every endpoint, its answers and its errcodes."""

from __future__ import annotations

import pytest
from django.utils import translation

from wecom.clients import PlatformAPIError, PlatformInputError, WeComClient
from wecom.clients.wecom import NewTag
from wecom.sandbox import DEMO, FaultRule

TAGS = "/cgi-bin/externalcontact"


def group_named(groups, name):
    return next(group for group in groups if group.group_name == name)


def test_a_token_is_fetched_once_and_reused(wecom, sandbox):
    wecom.strategy_tag_list(strategy_id=1)
    wecom.strategy_tag_list(strategy_id=2)
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 1
    assert sandbox.calls("wecom", f"{TAGS}/get_strategy_tag_list") == 2


def test_a_wrong_secret_is_explained(sandbox, clock):
    client = WeComClient(corp_id=DEMO.wecom_corp_id, secret="wrong-secret-0123456789", clock=clock)
    with pytest.raises(PlatformAPIError) as caught:
        client.check_connection()
    assert caught.value.errcode == 40001
    with translation.override("zh-hans"):
        assert "应用 Secret 不正确" in str(caught.value)
        assert "错误码 40001" in str(caught.value)
    with translation.override("en"):
        assert "The app secret is wrong" in str(caught.value)
    assert clock.pauses == [], "a wrong secret is not retried"


def test_an_unknown_corp_is_explained(sandbox, clock):
    client = WeComClient(corp_id="ww00000000000000ff", secret=DEMO.wecom_secret, clock=clock)
    with pytest.raises(PlatformAPIError) as caught:
        client.check_connection()
    assert caught.value.errcode == 40013
    with translation.override("en"):
        assert "corp ID is not valid" in caught.value.explanation


def test_strategies_are_listed_across_pages(wecom, sandbox):
    for strategy_id in range(10, 2510):
        sandbox.state.wecom.add_strategy(DEMO.wecom_corp_id, strategy_id, f"规则组{strategy_id}")
    ids = list(wecom.strategy_ids())
    assert len(ids) == len(set(ids)) == 2503
    assert {1, 2, 3, 10, 2509} <= set(ids)
    assert sandbox.calls("wecom", f"{TAGS}/customer_strategy/list") == 3


def test_a_strategy_is_read_with_its_level(wecom):
    first = wecom.strategy_get(1)
    assert first.name == "华东区销售规则组"
    assert first.is_first_level
    child = wecom.strategy_get(3)
    assert child.parent_id == 1 and not child.is_first_level


def test_tag_groups_come_back_typed_and_filtered(wecom):
    groups = wecom.strategy_tag_list(strategy_id=1)
    levels = group_named(groups, "客户等级")
    assert levels.strategy_id == 1
    assert [tag.name for tag in levels.tags] == ["重要客户", "普通客户", "潜在客户"]
    only = wecom.strategy_tag_list(group_ids=[levels.group_id])
    assert [group.group_id for group in only] == [levels.group_id]
    by_tag = wecom.strategy_tag_list(tag_ids=[levels.tags[0].id])
    assert [tag.id for group in by_tag for tag in group.tags] == [levels.tags[0].id]


def test_adding_creates_a_group_or_joins_the_one_of_the_same_name(wecom):
    created = wecom.strategy_tag_add(
        strategy_id=2,
        group_name="购买渠道",
        group_order=5,
        tags=[NewTag("线上商城", 2), NewTag("线下门店", 1), NewTag("线上商城")],
    )
    assert created.group_name == "购买渠道"
    assert [tag.name for tag in created.tags] == ["线上商城", "线下门店"], "one tag per name"
    joined = wecom.strategy_tag_add(strategy_id=2, group_name="购买渠道", tags=[NewTag("直播间")])
    assert joined.group_id == created.group_id
    by_id = wecom.strategy_tag_add(strategy_id=2, group_id=created.group_id, tags=[NewTag("社群")])
    assert by_id.group_id == created.group_id
    names = {tag.name for tag in wecom.strategy_tag_list(group_ids=[created.group_id])[0].tags}
    assert names == {"线上商城", "线下门店", "直播间", "社群"}


def test_editing_renames_and_reorders_tags_and_groups(wecom):
    group = group_named(wecom.strategy_tag_list(strategy_id=2), "会员等级")
    wecom.strategy_tag_edit(id=group.group_id, name="会员级别", order=7)
    wecom.strategy_tag_edit(id=group.tags[0].id, name="黑金会员")
    after = group_named(wecom.strategy_tag_list(strategy_id=2), "会员级别")
    assert after.order == 7
    assert "黑金会员" in {tag.name for tag in after.tags}


def test_deleting_the_last_tags_deletes_the_group(wecom):
    group = group_named(wecom.strategy_tag_list(strategy_id=1), "跟进阶段")
    wecom.strategy_tag_delete(tag_ids=[tag.id for tag in group.tags])
    assert "跟进阶段" not in {g.group_name for g in wecom.strategy_tag_list(strategy_id=1)}


def test_deleting_a_whole_group(wecom):
    group = group_named(wecom.strategy_tag_list(strategy_id=2), "兴趣偏好")
    wecom.strategy_tag_delete(group_ids=[group.group_id])
    assert "兴趣偏好" not in {g.group_name for g in wecom.strategy_tag_list(strategy_id=2)}


@pytest.mark.parametrize(
    ("call", "errcode", "english"),
    [
        (
            lambda c: c.strategy_tag_add(strategy_id=3, group_name="子规则组", tags=[NewTag("x")]),
            40058,
            "refused a value",
        ),
        (
            lambda c: c.strategy_tag_add(
                strategy_id=1, group_id="etNoSuchGroup000000000000", tags=[NewTag("x")]
            ),
            40068,
            "does not exist in WeCom",
        ),
        (
            lambda c: c.strategy_tag_add(
                strategy_id=1, group_name="客户等级", tags=[NewTag("重要客户")]
            ),
            40071,
            "exists already",
        ),
        (
            lambda c: c.strategy_tag_edit(id="etNoSuchTag00000000000000", name="y"),
            40068,
            "does not exist in WeCom",
        ),
        (
            lambda c: c.strategy_tag_delete(tag_ids=["etNoSuchTag00000000000000"]),
            40068,
            "does not exist in WeCom",
        ),
    ],
)
def test_platform_refusals_are_explained(wecom, call, errcode, english):
    with pytest.raises(PlatformAPIError) as caught:
        call(wecom)
    assert caught.value.errcode == errcode
    with translation.override("en"):
        assert english in str(caught.value)


def test_renaming_a_tag_onto_a_sibling_is_refused(wecom):
    group = group_named(wecom.strategy_tag_list(strategy_id=1), "客户等级")
    with pytest.raises(PlatformAPIError) as caught:
        wecom.strategy_tag_edit(id=group.tags[1].id, name=group.tags[0].name)
    assert caught.value.errcode == 40071


def test_the_ten_thousand_tag_limit(wecom, sandbox):
    sandbox.state.wecom.set_corp_tag_count(DEMO.wecom_corp_id, 10_000 - 14)
    with pytest.raises(PlatformAPIError) as caught:
        wecom.strategy_tag_add(strategy_id=2, group_name="新组", tags=[NewTag("a"), NewTag("b")])
    assert caught.value.errcode == 40058
    assert "10000" in caught.value.errmsg or "10,000" in caught.value.errmsg


def test_an_app_outside_customer_contact_is_told_where_to_add_it(sandbox, clock):
    sandbox.state.wecom.add_app(
        DEMO.wecom_corp_id, "other-app-secret-0123456789abcd", customer_contact=False
    )
    client = WeComClient(
        corp_id=DEMO.wecom_corp_id, secret="other-app-secret-0123456789abcd", clock=clock
    )
    with pytest.raises(PlatformAPIError) as caught:
        client.strategy_tag_list()
    assert caught.value.errcode == 48002
    with translation.override("zh-hans"):
        assert "客户联系 → 可调用接口的应用" in str(caught.value)


@pytest.mark.parametrize(
    ("errcode", "english"),
    [
        (60011, "no permission for this strategy"),
        (301002, "only change tags it created"),
        (45009, "used up its WeCom API calls"),
    ],
)
def test_other_documented_errcodes_are_explained_and_not_retried(
    wecom, sandbox, clock, errcode, english
):
    wecom.check_connection()
    sandbox.faults.add(
        FaultRule(platform="wecom", endpoint=f"{TAGS}/edit_strategy_tag", errcode=errcode)
    )
    with pytest.raises(PlatformAPIError) as caught:
        wecom.strategy_tag_edit(id="etWhatever", order=1)
    assert caught.value.errcode == errcode
    with translation.override("en"):
        assert english in str(caught.value)
    assert sandbox.calls("wecom", f"{TAGS}/edit_strategy_tag") == 1
    assert clock.pauses == []


@pytest.mark.parametrize("errcode", [-1, 45033])
def test_busy_answers_are_retried_until_they_pass(wecom, sandbox, clock, errcode):
    wecom.check_connection()
    sandbox.faults.add(
        FaultRule(
            platform="wecom", endpoint=f"{TAGS}/get_strategy_tag_list", errcode=errcode, times=2
        )
    )
    groups = wecom.strategy_tag_list(strategy_id=1)
    assert groups
    assert sandbox.calls("wecom", f"{TAGS}/get_strategy_tag_list") == 3
    assert len(clock.pauses) == 2


def test_an_expired_token_is_replaced_once_and_the_call_retried(wecom, sandbox):
    wecom.strategy_tag_list(strategy_id=1)
    sandbox.invalidate_tokens("wecom")
    wecom.strategy_tag_list(strategy_id=1)
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 2
    assert sandbox.calls("wecom", f"{TAGS}/get_strategy_tag_list") == 3


def test_a_token_that_keeps_failing_is_not_retried_forever(wecom, sandbox):
    wecom.check_connection()
    sandbox.faults.add(
        FaultRule(platform="wecom", endpoint=f"{TAGS}/get_strategy_tag_list", errcode=40014)
    )
    with pytest.raises(PlatformAPIError) as caught:
        wecom.strategy_tag_list()
    assert caught.value.errcode == 40014
    assert sandbox.calls("wecom", f"{TAGS}/get_strategy_tag_list") == 2
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.strategy_tag_add(strategy_id=1, group_name="x" * 31, tags=[NewTag("a")]),
            "at most 30 characters",
        ),
        (
            lambda c: c.strategy_tag_add(strategy_id=1, group_name="组", tags=[NewTag("a" * 31)]),
            "at most 30 characters",
        ),
        (
            lambda c: c.strategy_tag_add(strategy_id=1, group_name="组", tags=[NewTag("a", 2**32)]),
            "between 0 and 4294967295",
        ),
        (
            lambda c: c.strategy_tag_add(strategy_id=1, group_name="组", tags=[NewTag("a", -1)]),
            "between 0 and 4294967295",
        ),
        (lambda c: c.strategy_tag_add(strategy_id=1, group_name="组", tags=[]), "cannot be empty"),
        (
            lambda c: c.strategy_tag_add(strategy_id=1, group_name=" 组", tags=[NewTag("a")]),
            "begin or end with a space",
        ),
        (lambda c: c.strategy_tag_edit(id="et1"), "Nothing to change"),
        (lambda c: c.strategy_tag_delete(), "Nothing to delete"),
    ],
)
def test_what_the_platform_would_refuse_is_never_sent(wecom, sandbox, call, message):
    with pytest.raises(PlatformInputError) as caught, translation.override("en"):
        call(wecom)
    with translation.override("en"):
        assert message in str(caught.value)
    assert sandbox.total_calls() == 0
