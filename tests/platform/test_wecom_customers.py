"""The WeCom client's customer calls against the sandbox: members, their customers, mark_tag
and its refusals as sentences."""

from __future__ import annotations

import pytest
from django.utils import translation

from tests.tagging.customers.conftest import TOKEN_REFUSALS, calls
from wecom.clients import PlatformAPIError, PlatformInputError
from wecom.sandbox import DEMO, FaultRule
from wecom.sandbox.demo import DEMO_MEMBERS, demo_external_userid

CONTACT = "/cgi-bin/externalcontact"
CORP = DEMO.wecom_corp_id


@pytest.fixture
def strategy_tags(wecom) -> dict[int, list[str]]:
    return {
        strategy_id: [
            t.id for g in wecom.strategy_tag_list(strategy_id=strategy_id) for t in g.tags
        ]
        for strategy_id in (1, 2)
    }


def test_follow_users_and_member_customers(wecom, sandbox):
    assert wecom.follow_users() == [m[0] for m in DEMO_MEMBERS]
    assert wecom.member_customers("lisi") == sandbox.state.customers.customers_of(CORP, "lisi")
    sandbox.state.customers.add_member(CORP, "newcomer")
    assert wecom.member_customers("newcomer") == [], "WeCom's 84061 for 'none' is an empty list"
    with pytest.raises(PlatformAPIError) as caught:
        wecom.member_customers("ghost")
    assert caught.value.errcode == 60111


def test_customers_by_members_follows_every_page(wecom, sandbox):
    members = ["zhangsan", "lisi", "wangwu"]
    pages = list(wecom.customers_by_members(members))
    pairs = [(f.external_userid, f.userid) for page in pages for f in page.follows]
    customers = sandbox.state.customers
    assert pairs == [(e, u) for u in members for e in customers.customers_of(CORP, u)]
    assert all(len(page.follows) <= 100 for page in pages)
    assert len(pages) == calls(sandbox, f"{CONTACT}/batch/get_by_user") == -(-len(pairs) // 100)


def test_customers_by_members_sends_at_most_100_members_a_call(wecom, sandbox):
    for n in range(150):
        sandbox.state.customers.add_member(CORP, f"m{n:03d}")
    sandbox.state.customers.add_customer(CORP, followers=["m149"])
    pages = list(wecom.customers_by_members([f"m{n:03d}" for n in range(150)]))
    assert [f.userid for page in pages for f in page.follows] == ["m149"]
    assert calls(sandbox, f"{CONTACT}/batch/get_by_user") == 2
    bodies = [
        r.body
        for r in sandbox.requests
        if r.endpoint.endswith("batch/get_by_user") and r.errcode not in TOKEN_REFUSALS
    ]
    assert [len(b["userid_list"]) for b in bodies] == [100, 50]


def test_mark_tag_adds_and_removes(wecom, sandbox, strategy_tags):
    ext = demo_external_userid(0)
    first, second = strategy_tags[1][:2]
    wecom.customer_tag_mark("zhangsan", ext, add=[first, second])
    wecom.customer_tag_mark("zhangsan", ext, remove=[first])
    assert sandbox.state.customers.tags_of(CORP, "zhangsan", ext) == [second]
    follows = [f for page in wecom.customers_by_members(["zhangsan"]) for f in page.follows]
    assert next(f for f in follows if f.external_userid == ext).tag_ids == [second]


def _refusal(call) -> PlatformAPIError:
    with pytest.raises(PlatformAPIError) as caught:
        call()
    return caught.value


def test_mark_tag_refusals_are_sentences_about_the_pair(wecom, sandbox, strategy_tags, clock):
    customers = sandbox.state.customers
    mine = customers.customers_of(CORP, "lisi")[0]
    not_mine = next(
        e
        for e in customers.customers_of(CORP, "zhaoliu")
        if "lisi" not in customers.followers(CORP, e)
    )
    cases = {
        84061: (
            lambda: wecom.customer_tag_mark("lisi", not_mine, add=strategy_tags[1][:1]),
            "不是此成员的客户",
        ),
        60011: (
            lambda: wecom.customer_tag_mark("lisi", mine, add=strategy_tags[2][:1]),
            "不在标签所属规则组",
        ),
        40068: (
            lambda: wecom.customer_tag_mark("lisi", mine, add=["etGone000000000000000000"]),
            "已在企业微信中被删除",
        ),
        40096: (
            lambda: wecom.customer_tag_mark("lisi", "wm" + "x" * 30, add=strategy_tags[1][:1]),
            "企业微信中没有这个客户",
        ),
    }
    for errcode, (call, words) in cases.items():
        error = _refusal(call)
        assert error.errcode == errcode
        assert error.item is not None, "a refusal about the one pair"
        with translation.override("zh-hans"):
            assert words in str(error.item.reason)
            assert f"错误码 {errcode}" in str(error)
        with translation.override("en"):
            assert "%(" not in str(error) and str(error.item.reason)
    assert clock.pauses == [], "none of them is retried"


def test_the_3000_tag_cap_is_a_sentence_and_may_be_retried_later(wecom, sandbox, strategy_tags):
    ext = sandbox.state.customers.customers_of(CORP, "zhangsan")[0]
    sandbox.state.customers.put_tags(CORP, "zhangsan", ext, [f"etF{n:020d}" for n in range(3000)])
    error = _refusal(lambda: wecom.customer_tag_mark("zhangsan", ext, add=strategy_tags[1][:1]))
    assert error.errcode == 45035
    assert error.item is not None and error.item.retryable
    with translation.override("en"):
        assert "3,000 tags" in str(error)


def test_busy_is_retried_and_the_pair_tagged_once(wecom, sandbox, strategy_tags, clock):
    ext = demo_external_userid(0)
    sandbox.faults.add(
        FaultRule(platform="wecom", endpoint=f"{CONTACT}/mark_tag", errcode=-1, times=2)
    )
    wecom.customer_tag_mark("zhangsan", ext, add=strategy_tags[1][:1])
    assert calls(sandbox, f"{CONTACT}/mark_tag") == 3
    assert len(clock.pauses) == 2
    assert sandbox.state.customers.tags_of(CORP, "zhangsan", ext) == strategy_tags[1][:1]


@pytest.mark.parametrize(
    ("userid", "ext", "add", "remove", "words"),
    [
        ("bad id!", "wm" + "a" * 30, ["etA"], [], "userid"),
        ("lisi", "xx", ["etA"], [], "external_userid"),
        ("lisi", "wm" + "a" * 30, ["nope"], [], "tag id"),
        ("lisi", "wm" + "a" * 30, [], [], "at least one tag"),
        ("lisi", "wm" + "a" * 30, ["etA"], ["etA"], "both added and removed"),
    ],
)
def test_what_wecom_would_refuse_is_never_sent(wecom, sandbox, userid, ext, add, remove, words):
    with translation.override("en"):
        with pytest.raises(PlatformInputError) as caught:
            wecom.customer_tag_mark(userid, ext, add=add, remove=remove)
        assert words in str(caught.value)
    assert calls(sandbox, f"{CONTACT}/mark_tag") == 0


def test_more_than_100_members_a_page_is_refused_before_sending(wecom, sandbox):
    with pytest.raises(PlatformInputError) as caught:
        wecom.customers_page([f"m{n}" for n in range(101)])
    with translation.override("en"):
        assert "At most 100 members" in str(caught.value)
