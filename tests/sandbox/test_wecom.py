"""WeCom strategies and strategy tags (seed 003, PLATFORM.md section 2)."""

from __future__ import annotations

import re

import pytest

from wecom.sandbox import DEMO

STRATEGY = "/cgi-bin/externalcontact/customer_strategy"
ET_ID = re.compile(r"et[A-Za-z0-9_-]{22}")


def all_groups(api, **body):
    answer = api.tags("get_strategy_tag_list", body)
    assert answer["errcode"] == 0, answer
    return answer["tag_group"]


def group_named(api, name):
    (group,) = [g for g in all_groups(api) if g["group_name"] == name]
    return group


# ---- strategies ---------------------------------------------------------------------------


def test_strategy_list_and_get(api):
    answer = api.wecom(f"{STRATEGY}/list", {"cursor": "", "limit": 1000})
    assert answer["errcode"] == 0
    assert answer["strategy"] == [{"strategy_id": 1}, {"strategy_id": 2}, {"strategy_id": 3}]
    assert "next_cursor" not in answer
    got = api.wecom(f"{STRATEGY}/get", {"strategy_id": 3})
    assert got["errcode"] == 0
    strategy = got["strategy"]
    assert strategy["strategy_id"] == 3
    assert strategy["parent_id"] == 1
    assert strategy["strategy_name"]
    assert isinstance(strategy["create_time"], int)
    assert isinstance(strategy["admin_list"], list)
    assert strategy["privilege"]["manage_customer_tag"] is True


def test_strategy_list_pages_by_cursor(api, sandbox):
    for strategy_id in range(10, 35):
        sandbox.state.wecom.add_strategy(DEMO.wecom_corp_id, strategy_id, f"规则组{strategy_id}")
    seen, cursor, pages = [], "", 0
    while True:
        answer = api.wecom(f"{STRATEGY}/list", {"cursor": cursor, "limit": 10})
        assert answer["errcode"] == 0
        assert len(answer["strategy"]) <= 10
        seen += [s["strategy_id"] for s in answer["strategy"]]
        pages += 1
        if "next_cursor" not in answer:
            break
        cursor = answer["next_cursor"]
        assert cursor
    assert pages == 3
    assert seen == [1, 2, 3, *range(10, 35)]


@pytest.mark.parametrize("limit", [0, 1001, "10", None])
def test_strategy_list_limit_out_of_range(api, limit):
    assert api.wecom(f"{STRATEGY}/list", {"limit": limit})["errcode"] == 40058


def test_strategy_list_bad_cursor(api):
    assert api.wecom(f"{STRATEGY}/list", {"cursor": "garbage!"})["errcode"] == 40058


def test_strategy_get_unknown(api):
    assert api.wecom(f"{STRATEGY}/get", {"strategy_id": 99})["errcode"] == 40058


# ---- listing tags ---------------------------------------------------------------------------


def test_list_all_sorted_by_order_descending(api):
    groups = all_groups(api)
    assert len(groups) == 5
    orders = [g["order"] for g in groups]
    assert orders == sorted(orders, reverse=True)
    for group in groups:
        assert ET_ID.fullmatch(group["group_id"])
        assert group["strategy_id"] in (1, 2)
        assert isinstance(group["create_time"], int)
        tag_orders = [t["order"] for t in group["tag"]]
        assert tag_orders == sorted(tag_orders, reverse=True)
        for tag in group["tag"]:
            assert ET_ID.fullmatch(tag["id"])
            assert set(tag) == {"id", "name", "create_time", "order"}


def test_list_filters(api):
    groups = all_groups(api)
    first, second = groups[0], groups[1]
    by_strategy = all_groups(api, strategy_id=1)
    assert {g["strategy_id"] for g in by_strategy} == {1}
    assert len(by_strategy) == 3
    only = all_groups(api, group_id=[first["group_id"]])
    assert only == [first]
    tag = second["tag"][0]
    by_tag = all_groups(api, tag_id=[tag["id"]])
    assert [g["group_id"] for g in by_tag] == [second["group_id"]]
    assert by_tag[0]["tag"] == [tag]
    # both given: tag_id is ignored
    both = all_groups(api, tag_id=[tag["id"]], group_id=[first["group_id"]])
    assert both == [first]
    assert all_groups(api, strategy_id=3) == []


def test_list_unknown_strategy(api):
    assert api.tags("get_strategy_tag_list", {"strategy_id": 77})["errcode"] == 40058


# ---- adding ---------------------------------------------------------------------------------


def test_add_new_group(api):
    answer = api.tags(
        "add_strategy_tag",
        {
            "strategy_id": 1,
            "group_name": "来源渠道",
            "order": 7,
            "tag": [{"name": "线下活动", "order": 1}, {"name": "官网"}],
        },
    )
    assert answer["errcode"] == 0
    group = answer["tag_group"]
    assert ET_ID.fullmatch(group["group_id"])
    assert group["group_name"] == "来源渠道"
    assert group["order"] == 7
    assert [(t["name"], t["order"]) for t in group["tag"]] == [("线下活动", 1), ("官网", 0)]
    assert all(ET_ID.fullmatch(t["id"]) for t in group["tag"])
    listed = group_named(api, "来源渠道")
    assert {t["id"] for t in listed["tag"]} == {t["id"] for t in group["tag"]}
    assert listed["strategy_id"] == 1


def test_add_same_group_name_joins_existing_group(api):
    existing = group_named(api, "客户等级")
    answer = api.tags(
        "add_strategy_tag",
        {"strategy_id": 1, "group_name": "客户等级", "order": 999, "tag": [{"name": "流失客户"}]},
    )
    assert answer["errcode"] == 0
    assert answer["tag_group"]["group_id"] == existing["group_id"]
    assert answer["tag_group"]["order"] == existing["order"]
    assert [t["name"] for t in answer["tag_group"]["tag"]] == ["流失客户"]
    merged = group_named(api, "客户等级")
    assert len(merged["tag"]) == len(existing["tag"]) + 1


def test_same_group_name_in_other_strategy_is_another_group(api):
    answer = api.tags(
        "add_strategy_tag", {"strategy_id": 2, "group_name": "客户等级", "tag": [{"name": "A"}]}
    )
    assert answer["errcode"] == 0
    assert len([g for g in all_groups(api) if g["group_name"] == "客户等级"]) == 2


def test_add_duplicate_names_in_one_call_make_one_tag(api):
    answer = api.tags(
        "add_strategy_tag",
        {
            "strategy_id": 2,
            "group_name": "城市",
            "tag": [{"name": "北京", "order": 5}, {"name": "上海"}, {"name": "北京", "order": 9}],
        },
    )
    assert answer["errcode"] == 0
    assert [(t["name"], t["order"]) for t in answer["tag_group"]["tag"]] == [
        ("北京", 5),
        ("上海", 0),
    ]
    assert len(group_named(api, "城市")["tag"]) == 2


def test_add_with_group_id_ignores_name_and_order(api):
    target = group_named(api, "兴趣偏好")
    answer = api.tags(
        "add_strategy_tag",
        {
            "strategy_id": 2,
            "group_id": target["group_id"],
            "group_name": "别的名字",
            "order": 12345,
            "tag": [{"name": "美食"}],
        },
    )
    assert answer["errcode"] == 0
    assert answer["tag_group"]["group_id"] == target["group_id"]
    assert answer["tag_group"]["group_name"] == "兴趣偏好"
    assert group_named(api, "兴趣偏好")["order"] == target["order"]


def test_add_group_id_of_another_strategy_or_unknown(api):
    other = group_named(api, "兴趣偏好")  # strategy 2
    body = {"strategy_id": 1, "group_id": other["group_id"], "tag": [{"name": "x"}]}
    assert api.tags("add_strategy_tag", body)["errcode"] == 40068
    body["group_id"] = "et" + "x" * 22
    assert api.tags("add_strategy_tag", body)["errcode"] == 40068


@pytest.mark.parametrize(
    "body",
    [
        {"strategy_id": 3, "group_name": "子规则组", "tag": [{"name": "x"}]},  # second level
        {"strategy_id": 99, "group_name": "g", "tag": [{"name": "x"}]},  # unknown
        {"group_name": "g", "tag": [{"name": "x"}]},  # no strategy
        {"strategy_id": 1, "group_name": "g", "tag": []},  # no empty groups
        {"strategy_id": 1, "group_name": "g"},
        {"strategy_id": 1, "tag": [{"name": "x"}]},  # neither group_id nor group_name
        {"strategy_id": 1, "group_name": "g", "tag": [{"name": ""}]},
        {"strategy_id": 1, "group_name": "g", "tag": [{"name": "长" * 31}]},
        {"strategy_id": 1, "group_name": "组" * 31, "tag": [{"name": "x"}]},
        {"strategy_id": 1, "group_name": "g", "tag": [{"name": "x", "order": 2**32}]},
        {"strategy_id": 1, "group_name": "g", "tag": [{"name": "x", "order": -1}]},
        {"strategy_id": 1, "group_name": "g", "tag": [{"name": "x", "order": "1"}]},
        {"strategy_id": 1, "group_name": "g", "tag": [{"name": "x", "order": True}]},
        {"strategy_id": 1, "group_name": "g", "order": 2**32, "tag": [{"name": "x"}]},
    ],
)
def test_add_refusals_40058(api, body):
    before = all_groups(api)
    answer = api.tags("add_strategy_tag", body)
    assert answer["errcode"] == 40058, answer
    assert all_groups(api) == before


def test_names_count_characters_not_bytes(api):
    answer = api.tags(
        "add_strategy_tag",
        {
            "strategy_id": 1,
            "group_name": "组" * 30,
            "tag": [{"name": "长" * 30, "order": 2**32 - 1}],
        },
    )
    assert answer["errcode"] == 0


def test_add_name_existing_in_group_40071(api):
    before = group_named(api, "客户等级")
    answer = api.tags(
        "add_strategy_tag",
        {"strategy_id": 1, "group_name": "客户等级", "tag": [{"name": "新"}, {"name": "重要客户"}]},
    )
    assert answer["errcode"] == 40071
    assert group_named(api, "客户等级") == before  # nothing of the call applied


def test_corp_and_strategy_tags_limited_to_10000(api, sandbox):
    state = sandbox.state
    strategy_tags = state.wecom.strategy_tag_count(DEMO.wecom_corp_id)
    state.wecom.set_corp_tag_count(DEMO.wecom_corp_id, 10_000 - strategy_tags - 2)
    body = {"strategy_id": 1, "group_name": "满额", "tag": [{"name": "a"}, {"name": "b"}]}
    too_many = {**body, "tag": [*body["tag"], {"name": "c"}]}
    answer = api.tags("add_strategy_tag", too_many)
    assert answer["errcode"] == 40058
    assert "10000" in answer["errmsg"]
    assert api.tags("add_strategy_tag", body)["errcode"] == 0
    again = api.tags("add_strategy_tag", {**body, "group_name": "再来", "tag": [{"name": "z"}]})
    assert again["errcode"] == 40058


# ---- editing --------------------------------------------------------------------------------


def test_edit_tag_and_group(api):
    group = group_named(api, "客户等级")
    tag = group["tag"][0]
    assert api.tags("edit_strategy_tag", {"id": tag["id"], "name": "VIP", "order": 77}) == {
        "errcode": 0,
        "errmsg": "ok",
    }
    assert (
        api.tags("edit_strategy_tag", {"id": group["group_id"], "name": "客户分级"})["errcode"] == 0
    )
    renamed = group_named(api, "客户分级")
    assert renamed["group_id"] == group["group_id"]
    assert renamed["tag"][0] == {**tag, "name": "VIP", "order": 77}
    # keeping one's own name is no clash
    assert api.tags("edit_strategy_tag", {"id": tag["id"], "name": "VIP"})["errcode"] == 0


def test_edit_refusals(api):
    group = group_named(api, "客户等级")
    tag, sibling = group["tag"][0], group["tag"][1]
    edit = lambda body: api.tags("edit_strategy_tag", body)["errcode"]  # noqa: E731
    assert edit({"id": "et" + "0" * 22, "name": "x"}) == 40068
    assert edit({"id": tag["id"], "name": sibling["name"]}) == 40071
    assert edit({"id": group["group_id"], "name": "意向产品"}) == 40071  # same strategy
    assert edit({"id": group["group_id"], "name": "会员等级"}) == 0  # other strategy: fine
    assert edit({"id": tag["id"], "name": "x" * 31}) == 40058
    assert edit({"id": tag["id"], "name": ""}) == 40058
    assert edit({"id": tag["id"], "order": 2**32}) == 40058
    assert edit({"name": "x"}) == 40058
    (after,) = [g for g in all_groups(api) if g["group_id"] == group["group_id"]]
    assert after["group_name"] == "会员等级"  # the one valid edit happened
    assert after["tag"] == group["tag"]  # the refused ones did not


# ---- deleting -------------------------------------------------------------------------------


def test_delete_tags_and_group_auto_delete(api):
    group = group_named(api, "跟进阶段")  # two tags
    first, second = group["tag"]
    assert api.tags("del_strategy_tag", {"tag_id": [first["id"]]})["errcode"] == 0
    assert [t["id"] for t in group_named(api, "跟进阶段")["tag"]] == [second["id"]]
    assert api.tags("del_strategy_tag", {"tag_id": [second["id"]]})["errcode"] == 0
    assert "跟进阶段" not in {g["group_name"] for g in all_groups(api)}
    assert api.tags("get_strategy_tag_list", {"group_id": [group["group_id"]]})["tag_group"] == []
    assert api.tags("edit_strategy_tag", {"id": group["group_id"], "name": "x"})["errcode"] == 40068


def test_delete_whole_group(api, sandbox):
    group = group_named(api, "意向产品")
    count = sandbox.state.wecom.strategy_tag_count(DEMO.wecom_corp_id)
    answer = api.tags("del_strategy_tag", {"group_id": [group["group_id"]]})
    assert answer["errcode"] == 0
    assert sandbox.state.wecom.strategy_tag_count(DEMO.wecom_corp_id) == count - len(group["tag"])
    assert "意向产品" not in {g["group_name"] for g in all_groups(api)}


def test_delete_refusals(api):
    before = all_groups(api)
    tag_id = before[0]["tag"][0]["id"]
    assert api.tags("del_strategy_tag", {})["errcode"] == 40058
    assert api.tags("del_strategy_tag", {"tag_id": [], "group_id": []})["errcode"] == 40058
    unknown = {"tag_id": [tag_id, "et" + "9" * 22]}
    assert api.tags("del_strategy_tag", unknown)["errcode"] == 40068
    assert api.tags("del_strategy_tag", {"group_id": ["et" + "9" * 22]})["errcode"] == 40068
    assert all_groups(api) == before  # nothing deleted


# ---- permissions and format -----------------------------------------------------------------


def test_app_without_customer_contact_gets_48002(api, sandbox):
    sandbox.state.wecom.add_app(DEMO.wecom_corp_id, "N" * 43, customer_contact=False)
    token = api.wecom_gettoken(secret="N" * 43)["access_token"]
    for endpoint in ("get_strategy_tag_list", "add_strategy_tag", "edit_strategy_tag"):
        assert api.tags(endpoint, {}, token=token)["errcode"] == 48002
    assert api.tags("del_strategy_tag", {}, token=token)["errcode"] == 48002
    assert api.wecom(f"{STRATEGY}/list", {}, token=token)["errcode"] == 48002
    assert api.wecom(f"{STRATEGY}/get", {"strategy_id": 1}, token=token)["errcode"] == 48002


def test_bad_json_is_47001(api, http, sandbox):
    url = sandbox.wecom_base + "/cgi-bin/externalcontact/add_strategy_tag"
    answer = http.post(url, params={"access_token": api.wecom_token()}, data=b"{'no': json}")
    assert answer.json()["errcode"] == 47001
    answer = http.post(url, params={"access_token": api.wecom_token()}, json=[1, 2])
    assert answer.json()["errcode"] == 47001


def test_wrong_method_and_unknown_endpoint(api, http, sandbox):
    url = sandbox.wecom_base + "/cgi-bin/externalcontact/get_strategy_tag_list"
    answer = http.get(url, params={"access_token": api.wecom_token()})
    assert answer.json()["errcode"] == 43002
    missing = http.post(sandbox.wecom_base + "/cgi-bin/nothing/here", json={})
    assert missing.status_code == 404
    assert sandbox.calls("wecom", "/cgi-bin/nothing/here") == 1


def test_errmsg_carries_a_hint_as_wecom_does(api):
    answer = api.tags("del_strategy_tag", {})
    assert answer["errmsg"].endswith(
        "more info at https://open.work.weixin.qq.com/devtool/query?e=40058"
    )
