"""Official Account user tags (seed 001, PLATFORM.md section 3)."""

from __future__ import annotations

import time

import pytest

from wecom.sandbox import DEMO
from wecom.sandbox.demo import demo_openid

PREFIX = DEMO.oa_openid_prefix


def openid(n: int, prefix: str = PREFIX) -> str:
    return demo_openid(prefix, n)


def tags_by_name(api):
    return {t["name"]: t for t in api.oa("/cgi-bin/tags/get")["tags"]}


def create(api, name):
    return api.oa("/cgi-bin/tags/create", {"tag": {"name": name}})


# ---- tag management -------------------------------------------------------------------------


def test_tags_get_lists_star_group_and_demo_tags(api):
    tags = api.oa("/cgi-bin/tags/get")["tags"]
    assert tags[0] == {"id": 2, "name": "星标组", "count": 0}
    custom = [t for t in tags if t["id"] >= 100]
    assert len(custom) == 4
    assert all(t["count"] > 0 for t in custom)
    assert all(set(t) == {"id", "name", "count"} for t in tags)


def test_create_ids_increase_from_100(api):
    first = create(api, "广州")
    second = create(api, "深圳")
    assert first == {"tag": {"id": 104, "name": "广州"}}
    assert second["tag"]["id"] == 105
    assert tags_by_name(api)["深圳"] == {"id": 105, "name": "深圳", "count": 0}


def test_deleted_ids_are_not_reused(api):
    tag_id = create(api, "临时")["tag"]["id"]
    assert api.oa("/cgi-bin/tags/delete", {"tag": {"id": tag_id}})["errcode"] == 0
    assert create(api, "临时")["tag"]["id"] == tag_id + 1


@pytest.mark.parametrize(
    ("name", "errcode"),
    [("长" * 31, 45158), ("", 45158), ("   ", 45158), ("广东", 45157), ("星标组", 45157)],
)
def test_create_refusals(api, name, errcode):
    answer = create(api, name)
    assert answer["errcode"] == errcode
    assert "tag" not in answer


def test_create_30_characters_is_fine(api):
    assert create(api, "长" * 30)["tag"]["name"] == "长" * 30


def test_at_most_100_tags(api, sandbox):
    for n in range(96):
        sandbox.state.official_account.add_tag(DEMO.oa_appid, f"标签{n}")
    answer = create(api, "第一百零一个")
    assert answer["errcode"] == 45056
    assert len(api.oa("/cgi-bin/tags/get")["tags"]) == 101  # 100 + 星标组


def test_update(api):
    tag = tags_by_name(api)["广东"]
    assert api.oa("/cgi-bin/tags/update", {"tag": {"id": tag["id"], "name": "广东人"}}) == {
        "errcode": 0,
        "errmsg": "ok",
    }
    assert tags_by_name(api)["广东人"]["id"] == tag["id"]


@pytest.mark.parametrize(
    ("tag", "errcode"),
    [
        ({"id": 0, "name": "x"}, 45058),
        ({"id": 1, "name": "x"}, 45058),
        ({"id": 2, "name": "x"}, 45058),
        ({"id": 999, "name": "x"}, 45159),
        ({"id": 100, "name": "活动报名"}, 45157),
        ({"id": 100, "name": "x" * 31}, 45158),
        ({"id": 100, "name": ""}, 45158),
    ],
)
def test_update_refusals(api, tag, errcode):
    assert api.oa("/cgi-bin/tags/update", {"tag": tag})["errcode"] == errcode


def test_delete(api):
    tag_id = tags_by_name(api)["广东"]["id"]
    assert api.oa("/cgi-bin/tags/delete", {"tag": {"id": tag_id}})["errcode"] == 0
    assert "广东" not in tags_by_name(api)
    assert api.oa("/cgi-bin/tags/delete", {"tag": {"id": tag_id}})["errcode"] == 45159


@pytest.mark.parametrize(("tag_id", "errcode"), [(0, 45058), (2, 45058), (4242, 45159)])
def test_delete_refusals(api, tag_id, errcode):
    assert api.oa("/cgi-bin/tags/delete", {"tag": {"id": tag_id}})["errcode"] == errcode


def test_tag_with_more_than_100k_fans_cannot_be_deleted(api, sandbox):
    tag_id = tags_by_name(api)["广东"]["id"]
    sandbox.state.official_account.set_tag_fan_count_override(DEMO.oa_appid, tag_id, 100_001)
    assert tags_by_name(api)["广东"]["count"] == 100_001
    answer = api.oa("/cgi-bin/tags/delete", {"tag": {"id": tag_id}})
    assert answer["errcode"] == 45057
    sandbox.state.official_account.set_tag_fan_count_override(DEMO.oa_appid, tag_id, 100_000)
    assert api.oa("/cgi-bin/tags/delete", {"tag": {"id": tag_id}})["errcode"] == 0


def test_bad_json_is_47001(api, http, sandbox):
    url = sandbox.wechat_base + "/cgi-bin/tags/create"
    answer = http.post(url, params={"access_token": api.oa_token()}, data="{tag: 1")
    assert answer.json()["errcode"] == 47001
    assert answer.headers["Content-Type"] == "application/json; encoding=utf-8"
    assert " rid: " in answer.json()["errmsg"]


# ---- tagging users --------------------------------------------------------------------------


def test_batchtagging_untagging_and_getidlist(api, sandbox):
    tag_id = create(api, "会员")["tag"]["id"]
    users = [openid(1000 + n) for n in range(50)]
    body = {"openid_list": users, "tagid": tag_id}
    assert api.oa("/cgi-bin/tags/members/batchtagging", body) == {"errcode": 0, "errmsg": "ok"}
    assert tags_by_name(api)["会员"]["count"] == 50
    assert api.oa("/cgi-bin/tags/getidlist", {"openid": users[0]}) == {"tagid_list": [tag_id]}
    # tagging again is harmless
    assert api.oa("/cgi-bin/tags/members/batchtagging", body)["errcode"] == 0
    assert tags_by_name(api)["会员"]["count"] == 50
    untag = {"openid_list": users[:20], "tagid": tag_id}
    assert api.oa("/cgi-bin/tags/members/batchuntagging", untag)["errcode"] == 0
    assert tags_by_name(api)["会员"]["count"] == 30
    assert api.oa("/cgi-bin/tags/getidlist", {"openid": users[0]}) == {"tagid_list": []}
    assert sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag_id) == set(users[20:])


def test_any_wellformed_openid_of_the_account_is_a_follower(api):
    star = {"openid_list": [PREFIX + "A" * 22], "tagid": 2}
    assert api.oa("/cgi-bin/tags/members/batchtagging", star)["errcode"] == 0
    assert api.oa("/cgi-bin/tags/getidlist", {"openid": PREFIX + "A" * 22})["tagid_list"] == [2]


@pytest.mark.parametrize(
    ("openids", "tagid", "errcode"),
    [
        ([], 100, 40032),
        ([openid(n) for n in range(51)], 100, 40032),
        ([openid(1), "not-an-openid"], 100, 40003),
        ([openid(1), PREFIX + "x" * 21], 100, 40003),  # 27 characters
        ([openid(1), "x" + openid(2)[1:]], 100, 40003),  # does not start with "o"
        ([openid(1), PREFIX + "!" * 22], 100, 40003),
        ([openid(1), openid(2, "oOther")], 100, 49003),
        ([openid(1)], 4242, 45159),
        ([openid(1)], 0, 45159),
        ([openid(1)], "100", 45159),
    ],
)
def test_batchtagging_refusals_apply_nothing(api, sandbox, openids, tagid, errcode):
    before = api.oa("/cgi-bin/tags/get")
    body = {"openid_list": openids, "tagid": tagid}
    assert api.oa("/cgi-bin/tags/members/batchtagging", body)["errcode"] == errcode
    assert api.oa("/cgi-bin/tags/members/batchuntagging", body)["errcode"] == errcode
    assert api.oa("/cgi-bin/tags/get") == before


def test_at_most_20_tags_per_user(api, sandbox):
    state = sandbox.state
    crowded, fresh = openid(5000), openid(5001)
    tag_ids = [state.official_account.add_tag(DEMO.oa_appid, f"t{n}") for n in range(20)]
    for tag_id in tag_ids[:19]:
        state.official_account.tag_users(DEMO.oa_appid, tag_id, [crowded])
    state.official_account.tag_users(
        DEMO.oa_appid, 2, [crowded]
    )  # the star group counts too: 20 tags now
    body = {"openid_list": [fresh, crowded], "tagid": tag_ids[19]}
    answer = api.oa("/cgi-bin/tags/members/batchtagging", body)
    assert answer["errcode"] == 45059
    assert fresh not in state.official_account.tag_fans(
        DEMO.oa_appid, tag_ids[19]
    )  # nothing applied
    assert len(api.oa("/cgi-bin/tags/getidlist", {"openid": crowded})["tagid_list"]) == 20
    api.oa("/cgi-bin/tags/members/batchuntagging", {"openid_list": [crowded], "tagid": 2})
    assert api.oa("/cgi-bin/tags/members/batchtagging", body)["errcode"] == 0


@pytest.mark.parametrize(
    ("openid_value", "errcode"), [("bad", 40003), (None, 40003), (openid(3, "oZZZZZ"), 49003)]
)
def test_getidlist_refusals(api, openid_value, errcode):
    assert api.oa("/cgi-bin/tags/getidlist", {"openid": openid_value})["errcode"] == errcode


# ---- listing a tag's users ------------------------------------------------------------------


def test_user_tag_get_pages_of_10000_in_stable_order(api, sandbox):
    tag_id = create(api, "大标签")["tag"]["id"]
    users = [openid(n) for n in range(25_000)]
    sandbox.state.official_account.tag_users(DEMO.oa_appid, tag_id, users)
    seen, next_openid, counts = [], "", []
    while True:
        page = api.oa("/cgi-bin/user/tag/get", {"tagid": tag_id, "next_openid": next_openid})
        counts.append(page["count"])
        if page["count"] == 0:
            assert page["next_openid"] == ""
            break
        assert page["count"] == len(page["data"]["openid"])
        seen += page["data"]["openid"]
        assert page["next_openid"] == page["data"]["openid"][-1]
        next_openid = page["next_openid"]
    assert counts == [10_000, 10_000, 5_000, 0]
    assert seen == sorted(users)
    # Same request, same answer.
    again = api.oa("/cgi-bin/user/tag/get", {"tagid": tag_id, "next_openid": seen[9_999]})
    assert again["data"]["openid"] == seen[10_000:20_000]


def test_user_tag_get_small_and_unknown(api):
    tag = tags_by_name(api)["广东"]
    page = api.oa("/cgi-bin/user/tag/get", {"tagid": tag["id"], "next_openid": ""})
    assert page["count"] == tag["count"] == 4
    assert all(o.startswith(PREFIX) and len(o) == 28 for o in page["data"]["openid"])
    assert api.oa("/cgi-bin/user/tag/get", {"tagid": 4242})["errcode"] == 45159


def test_large_tags_stay_fast(api, sandbox):
    """Sets per tag: tagging into a tag of 300,000 fans costs what it costs for a small one."""
    big = create(api, "海量")["tag"]["id"]
    sandbox.state.official_account.tag_users(
        DEMO.oa_appid, big, (openid(n) for n in range(300_000))
    )
    for n in range(25):
        sandbox.state.official_account.add_tag(
            DEMO.oa_appid, f"extra{n}"
        )  # over 20 tags: the per-user check runs
    batch = {"openid_list": [openid(400_000 + n) for n in range(50)], "tagid": big}
    started = time.perf_counter()
    for _ in range(20):
        assert api.oa("/cgi-bin/tags/members/batchtagging", batch)["errcode"] == 0
        assert "tagid_list" in api.oa("/cgi-bin/tags/getidlist", {"openid": openid(7)})
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"40 calls took {elapsed:.2f}s"
    assert tags_by_name(api)["海量"]["count"] == 300_050


def test_user_tag_get_sees_changes_made_while_paging(api, sandbox):
    tag_id = create(api, "变化中")["tag"]["id"]
    sandbox.state.official_account.tag_users(
        DEMO.oa_appid, tag_id, [openid(n) for n in range(15_000)]
    )
    first = api.oa("/cgi-bin/user/tag/get", {"tagid": tag_id, "next_openid": ""})
    added = [openid(50_000 + n) for n in range(40)]
    for start in range(0, 40, 20):
        body = {"openid_list": added[start : start + 20], "tagid": tag_id}
        assert api.oa("/cgi-bin/tags/members/batchtagging", body)["errcode"] == 0
    later = sorted(sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag_id))[-30:]
    removed = later[::3]
    body = {"openid_list": removed, "tagid": tag_id}
    assert api.oa("/cgi-bin/tags/members/batchuntagging", body)["errcode"] == 0
    second = api.oa("/cgi-bin/user/tag/get", {"tagid": tag_id, "next_openid": first["next_openid"]})
    fans_now = sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag_id)
    expected = sorted(f for f in fans_now if f > first["next_openid"])
    assert second["data"]["openid"] == expected
    assert not set(removed) & set(second["data"]["openid"])
