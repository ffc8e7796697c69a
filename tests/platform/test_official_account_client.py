"""The Official Account client against the sandbox: tokens, tags, members and their errcodes."""

from __future__ import annotations

import pytest
from django.utils import translation

from wecom.clients import OfficialAccountClient, PlatformAPIError, PlatformInputError
from wecom.sandbox import DEMO, FaultRule
from wecom.sandbox.demo import demo_openid

BATCH = "/cgi-bin/tags/members/batchtagging"


def openids(count: int, start: int = 1000) -> list[str]:
    return [demo_openid(DEMO.oa_openid_prefix, n) for n in range(start, start + count)]


def tag_named(client, name):
    return next(tag for tag in client.tags() if tag.name == name)


def test_the_stable_token_is_fetched_once(oa, sandbox):
    oa.tags()
    oa.tags()
    assert sandbox.calls("wechat", "/cgi-bin/stable_token") == 1
    body = next(r.body for r in sandbox.requests if r.endpoint == "/cgi-bin/stable_token")
    assert body["force_refresh"] is False


def test_a_wrong_secret_is_explained(sandbox, clock):
    client = OfficialAccountClient(appid=DEMO.oa_appid, secret="0" * 32, clock=clock)
    with pytest.raises(PlatformAPIError) as caught:
        client.check_connection()
    assert caught.value.errcode == 40125
    with translation.override("zh-hans"):
        assert "AppSecret 不正确" in str(caught.value)


def test_an_unknown_appid_is_explained(sandbox, clock):
    client = OfficialAccountClient(appid="wx00000000000000ff", secret=DEMO.oa_secret, clock=clock)
    with pytest.raises(PlatformAPIError) as caught:
        client.check_connection()
    assert caught.value.errcode == 40013


def test_tags_are_created_renamed_and_deleted(oa):
    created = oa.tag_create(name="双十一")
    assert created.id >= 100
    oa.tag_update(tag_id=created.id, name="双十二")
    assert tag_named(oa, "双十二").id == created.id
    oa.tag_delete(tag_id=created.id)
    assert "双十二" not in {tag.name for tag in oa.tags()}


def test_tags_report_their_follower_counts(oa):
    assert tag_named(oa, "高价值客户").count == 5


def test_followers_are_tagged_untagged_and_read_back(oa):
    tag = oa.tag_create(name="批量测试")
    batch = openids(50)
    oa.batch_tag(tag_id=tag.id, openids=batch)
    assert tag.id in oa.user_tag_ids(openid=batch[0])
    assert tag_named(oa, "批量测试").count == 50
    oa.batch_untag(tag_id=tag.id, openids=batch[:10])
    assert tag.id not in oa.user_tag_ids(openid=batch[0])
    assert tag_named(oa, "批量测试").count == 40


def test_followers_of_a_tag_come_in_pages(oa, sandbox):
    tag = oa.tag_create(name="大标签")
    sandbox.state.official_account.tag_users(DEMO.oa_appid, tag.id, openids(10_500))
    first = oa.tag_followers(tag_id=tag.id)
    assert first.count == 10_000 and len(first.openids) == 10_000
    second = oa.tag_followers(tag_id=tag.id, next_openid=first.next_openid)
    assert len(second.openids) == 500
    assert not set(first.openids) & set(second.openids)


@pytest.mark.parametrize(
    ("call", "errcode", "english"),
    [
        (lambda c: c.tag_create(name="高价值客户"), 45157, "exists already"),
        (lambda c: c.tag_update(tag_id=99_999, name="x"), 45159, "does not exist"),
        (lambda c: c.batch_tag(tag_id=99_999, openids=openids(1)), 45159, "does not exist"),
        (
            lambda c: c.batch_tag(tag_id=c.tags()[-1].id, openids=["oZZZZZ" + "a" * 22]),
            49003,
            "another Official Account",
        ),
    ],
)
def test_platform_refusals_are_explained(oa, call, errcode, english):
    with pytest.raises(PlatformAPIError) as caught:
        call(oa)
    assert caught.value.errcode == errcode
    with translation.override("en"):
        assert english in str(caught.value)


def test_a_follower_with_twenty_tags_is_refused_a_twenty_first(oa, sandbox):
    follower = openids(1)
    for index in range(20):
        tag = oa.tag_create(name=f"标签{index}")
        oa.batch_tag(tag_id=tag.id, openids=follower)
    extra = oa.tag_create(name="第二十一个")
    with pytest.raises(PlatformAPIError) as caught:
        oa.batch_tag(tag_id=extra.id, openids=follower)
    assert caught.value.errcode == 45059


def test_the_hundred_tag_limit(oa):
    for index in range(100 - len([t for t in oa.tags() if t.id >= 100])):
        oa.tag_create(name=f"t{index}")
    with pytest.raises(PlatformAPIError) as caught:
        oa.tag_create(name="one too many")
    assert caught.value.errcode == 45056


def test_a_tag_with_more_than_100k_followers_cannot_be_deleted(oa, sandbox):
    tag = tag_named(oa, "广东")
    sandbox.state.official_account.set_tag_fan_count_override(DEMO.oa_appid, tag.id, 100_001)
    with pytest.raises(PlatformAPIError) as caught:
        oa.tag_delete(tag_id=tag.id)
    assert caught.value.errcode == 45057


@pytest.mark.parametrize("errcode", [-1, 45169, 45011])
def test_busy_and_concurrent_tagging_are_retried(oa, sandbox, clock, errcode):
    tag = tag_named(oa, "新关注")
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=BATCH, errcode=errcode, times=2))
    oa.batch_tag(tag_id=tag.id, openids=openids(3))
    assert sandbox.calls("wechat", BATCH) == 3
    assert len(clock.pauses) == 2
    assert tag_named(oa, "新关注").count == 3 + 3


def test_the_daily_quota_stops_at_once(oa, sandbox, clock):
    tag = tag_named(oa, "新关注")
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=BATCH, errcode=45009))
    with pytest.raises(PlatformAPIError) as caught:
        oa.batch_tag(tag_id=tag.id, openids=openids(3))
    assert caught.value.quota
    assert sandbox.calls("wechat", BATCH) == 1
    assert clock.pauses == []
    with translation.override("zh-hans"):
        assert "明天恢复" in str(caught.value)


def test_an_invalid_openid_reported_by_the_platform_is_explained(oa, sandbox):
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=BATCH, errcode=40003))
    with pytest.raises(PlatformAPIError) as caught:
        oa.batch_tag(tag_id=100, openids=openids(2))
    with translation.override("en"):
        assert "does not say which one" in str(caught.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.batch_tag(tag_id=100, openids=[]), "1 to 50 OpenIDs"),
        (lambda c: c.batch_tag(tag_id=100, openids=openids(51)), "1 to 50 OpenIDs"),
        (lambda c: c.batch_tag(tag_id=100, openids=["not-an-openid"]), "is not an OpenID"),
        (lambda c: c.batch_untag(tag_id=100, openids=["o" * 29]), "is not an OpenID"),
        (lambda c: c.user_tag_ids(openid="x"), "is not an OpenID"),
        (lambda c: c.tag_create(name="长" * 31), "at most 30 characters"),
        (lambda c: c.tag_create(name=""), "cannot be empty"),
        (lambda c: c.tag_update(tag_id=2, name="星标组"), "reserved"),
        (lambda c: c.tag_delete(tag_id=0), "reserved"),
    ],
)
def test_what_the_platform_would_refuse_is_never_sent(oa, sandbox, call, message):
    with pytest.raises(PlatformInputError) as caught, translation.override("en"):
        call(oa)
    with translation.override("en"):
        assert message in str(caught.value)
    assert sandbox.calls("wechat", BATCH) == 0
    assert sandbox.total_calls() == 0
