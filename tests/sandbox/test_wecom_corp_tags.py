"""WeCom corporate tags (企业客户标签, PLATFORM.md section 2): the strategy tags' rules without
strategies, who may change what (301002), and the 10,000 tags counted across both kinds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from wecom.sandbox import DEMO, PlatformError, SandboxState, seed_demo

ET_ID = re.compile(r"et[A-Za-z0-9_-]{22}")
OTHER_SECRET = "other-app-secret-0123456789abcdefghijklmnop"


def corp_groups(api, **body):
    answer = api.tags("get_corp_tag_list", body)
    assert answer["errcode"] == 0, answer
    return answer["tag_group"]


def corp_group(api, name):
    (group,) = [g for g in corp_groups(api) if g["group_name"] == name]
    return group


@pytest.fixture
def other_token(api, sandbox):
    """A second app of the demo corp: it did not create the demo's corporate tags."""
    sandbox.state.wecom.add_app(DEMO.wecom_corp_id, OTHER_SECRET, agent_id=1000003)
    answer = api.wecom_gettoken(secret=OTHER_SECRET)
    assert answer["errcode"] == 0
    return answer["access_token"]


def test_the_demo_library_is_listed_larger_order_first_without_strategies(api):
    groups = corp_groups(api)
    assert [g["group_name"] for g in groups] == ["客户来源", "客户行业", "服务阶段"]
    first = groups[0]
    assert ET_ID.fullmatch(first["group_id"])
    assert "strategy_id" not in first
    assert first["deleted"] is False
    assert [t["name"] for t in first["tag"]] == ["官网咨询", "展会", "老客户介绍"]
    assert all(ET_ID.fullmatch(t["id"]) and t["deleted"] is False for t in first["tag"])
    assert all("creator" not in t for g in groups for t in g["tag"])
    # Corporate and strategy libraries are apart.
    strategy_names = {g["group_name"] for g in api.tags("get_strategy_tag_list", {})["tag_group"]}
    assert "客户来源" not in strategy_names


def test_filters_group_wins_over_tag(api):
    source, industry = corp_group(api, "客户来源"), corp_group(api, "客户行业")
    tag_id = industry["tag"][0]["id"]
    by_tag = corp_groups(api, tag_id=[tag_id])
    assert [(g["group_id"], [t["id"] for t in g["tag"]]) for g in by_tag] == [
        (industry["group_id"], [tag_id])
    ]
    by_group = corp_groups(api, group_id=[source["group_id"]], tag_id=[tag_id])
    assert [g["group_id"] for g in by_group] == [source["group_id"]]
    assert len(by_group[0]["tag"]) == 3


def test_add_a_group_join_by_name_and_by_id(api):
    answer = api.tags(
        "add_corp_tag", {"group_name": "渠道", "order": 7, "tag": [{"name": "抖音", "order": 2}]}
    )
    assert answer["errcode"] == 0, answer
    group = answer["tag_group"]
    assert group["group_name"] == "渠道" and group["order"] == 7
    assert [t["name"] for t in group["tag"]] == ["抖音"]
    joined = api.tags("add_corp_tag", {"group_name": "渠道", "tag": [{"name": "小红书"}]})
    assert joined["tag_group"]["group_id"] == group["group_id"]
    by_id = api.tags("add_corp_tag", {"group_id": group["group_id"], "tag": [{"name": "微博"}]})
    assert by_id["tag_group"]["group_id"] == group["group_id"]
    assert {t["name"] for t in corp_group(api, "渠道")["tag"]} == {"抖音", "小红书", "微博"}
    # A strategy group's id is not a corporate group.
    strategy_group = api.tags("get_strategy_tag_list", {})["tag_group"][0]
    wrong = api.tags(
        "add_corp_tag", {"group_id": strategy_group["group_id"], "tag": [{"name": "x"}]}
    )
    assert wrong["errcode"] == 40068


def test_a_corporate_group_may_share_a_strategy_groups_name(api):
    answer = api.tags("add_corp_tag", {"group_name": "客户等级", "tag": [{"name": "A"}]})
    assert answer["errcode"] == 0
    assert corp_group(api, "客户等级")["tag"][0]["name"] == "A"


@pytest.mark.parametrize(
    "body",
    [
        {"group_name": "空", "tag": []},
        {"tag": [{"name": "a"}]},
        {"group_name": "x" * 31, "tag": [{"name": "a"}]},
        {"group_name": "g", "tag": [{"name": "a", "order": 2**32}]},
        {"group_name": "g", "order": -1, "tag": [{"name": "a"}]},
    ],
)
def test_add_refusals_40058(api, body):
    assert api.tags("add_corp_tag", body)["errcode"] == 40058


def test_names_exist_40071(api):
    source = corp_group(api, "客户来源")
    clash = api.tags("add_corp_tag", {"group_name": "客户来源", "tag": [{"name": "展会"}]})
    assert clash["errcode"] == 40071
    renamed = api.tags("edit_corp_tag", {"id": source["tag"][0]["id"], "name": "展会"})
    assert renamed["errcode"] == 40071
    group_clash = api.tags("edit_corp_tag", {"id": source["group_id"], "name": "客户行业"})
    assert group_clash["errcode"] == 40071
    assert corp_group(api, "客户来源") == source


def test_edit_and_delete_what_the_app_created(api):
    source = corp_group(api, "客户来源")
    tag_id = source["tag"][0]["id"]
    assert api.tags("edit_corp_tag", {"id": tag_id, "name": "官网", "order": 99})["errcode"] == 0
    assert api.tags("edit_corp_tag", {"id": source["group_id"], "order": 1})["errcode"] == 0
    after = corp_group(api, "客户来源")
    assert after["order"] == 1
    assert after["tag"][0] == {**source["tag"][0], "name": "官网", "order": 99}
    assert api.tags("del_corp_tag", {"tag_id": [t["id"] for t in after["tag"]]})["errcode"] == 0
    assert [g["group_name"] for g in corp_groups(api)] == ["客户行业", "服务阶段"], "no empty group"
    industry = corp_group(api, "客户行业")
    assert api.tags("del_corp_tag", {"group_id": [industry["group_id"]]})["errcode"] == 0
    assert [g["group_name"] for g in corp_groups(api)] == ["服务阶段"]


def test_what_another_app_or_the_admin_created_is_refused_301002(api, other_token):
    admin_made = corp_group(api, "服务阶段")
    for endpoint, body in (
        ("edit_corp_tag", {"id": admin_made["tag"][0]["id"], "name": "改"}),
        ("edit_corp_tag", {"id": admin_made["group_id"], "order": 5}),
        ("del_corp_tag", {"tag_id": [admin_made["tag"][0]["id"]]}),
        ("del_corp_tag", {"group_id": [admin_made["group_id"]]}),
    ):
        assert api.tags(endpoint, body)["errcode"] == 301002, (endpoint, body)
    mine = corp_group(api, "客户来源")
    as_other = api.tags(
        "edit_corp_tag", {"id": mine["tag"][0]["id"], "name": "改"}, token=other_token
    )
    assert as_other["errcode"] == 301002
    # The other app's own tags are its to change, and not ours.
    made = api.tags(
        "add_corp_tag", {"group_name": "他的", "tag": [{"name": "t"}]}, token=other_token
    )
    theirs = made["tag_group"]["tag"][0]["id"]
    assert api.tags("edit_corp_tag", {"id": theirs, "name": "u"})["errcode"] == 301002
    assert api.tags("edit_corp_tag", {"id": theirs, "name": "u"}, token=other_token)["errcode"] == 0
    # A mixed delete changes nothing.
    mixed = {"tag_id": [mine["tag"][0]["id"], admin_made["tag"][0]["id"]]}
    assert api.tags("del_corp_tag", mixed)["errcode"] == 301002
    assert corp_group(api, "客户来源") == mine


def test_unknown_ids_are_40068(api):
    unknown = "et" + "0" * 22
    assert api.tags("edit_corp_tag", {"id": unknown, "name": "x"})["errcode"] == 40068
    assert api.tags("del_corp_tag", {"tag_id": [unknown]})["errcode"] == 40068
    assert api.tags("del_corp_tag", {"group_id": [unknown]})["errcode"] == 40068
    assert api.tags("del_corp_tag", {})["errcode"] == 40058
    strategy_tag = api.tags("get_strategy_tag_list", {})["tag_group"][0]["tag"][0]["id"]
    assert api.tags("del_corp_tag", {"tag_id": [strategy_tag]})["errcode"] == 40068
    corp_tag = corp_group(api, "客户来源")["tag"][0]["id"]
    assert api.tags("del_strategy_tag", {"tag_id": [corp_tag]})["errcode"] == 40068


def test_ten_thousand_tags_across_both_kinds(api, sandbox):
    wecom = sandbox.state.wecom
    strategy_tags = wecom.strategy_tag_count(DEMO.wecom_corp_id)
    wecom.set_corp_tag_count(DEMO.wecom_corp_id, 10_000 - strategy_tags - 1)
    assert wecom.corp_tag_count(DEMO.wecom_corp_id) == 10_000 - strategy_tags - 1
    two = {"group_name": "满额", "tag": [{"name": "a"}, {"name": "b"}]}
    answer = api.tags("add_corp_tag", two)
    assert answer["errcode"] == 40058 and "10000" in answer["errmsg"]
    assert api.tags("add_corp_tag", {**two, "tag": [{"name": "a"}]})["errcode"] == 0
    strategy = {"strategy_id": 1, "group_name": "再来", "tag": [{"name": "z"}]}
    assert api.tags("add_strategy_tag", strategy)["errcode"] == 40058
    # Fewer corporate tags: room again; the demo's own tags stay.
    wecom.set_corp_tag_count(DEMO.wecom_corp_id, 11)
    assert api.tags("add_strategy_tag", strategy)["errcode"] == 0
    with pytest.raises(ValueError, match="holds"):
        wecom.set_corp_tag_count(DEMO.wecom_corp_id, 3)


def test_tag_exists_for_both_kinds(api, sandbox):
    wecom = sandbox.state.wecom
    corp_tag = corp_group(api, "客户来源")["tag"][0]["id"]
    strategy_tag = api.tags("get_strategy_tag_list", {})["tag_group"][0]["tag"][0]["id"]
    assert wecom.tag_exists(DEMO.wecom_corp_id, corp_tag)
    assert wecom.tag_exists(DEMO.wecom_corp_id, strategy_tag)
    assert not wecom.tag_exists(DEMO.wecom_corp_id, corp_group(api, "客户来源")["group_id"])
    assert not wecom.tag_exists(DEMO.wecom_corp_id, "et" + "0" * 22)
    assert not wecom.tag_exists("ww_no_such_corp", corp_tag)
    api.tags("del_corp_tag", {"tag_id": [corp_tag]})
    assert not wecom.tag_exists(DEMO.wecom_corp_id, corp_tag)


def test_snapshot_keeps_the_library_and_who_made_it(api, sandbox, other_token):
    made = api.tags(
        "add_corp_tag", {"group_name": "他的", "tag": [{"name": "t"}]}, token=other_token
    )
    before = corp_groups(api)
    restored = SandboxState.from_snapshot(sandbox.state.snapshot())
    corp = DEMO.wecom_corp_id
    assert restored.wecom.corp_tag_count(corp) == sandbox.state.wecom.corp_tag_count(corp)
    answer = restored.wecom.get_corp_tag_list(corp, {})
    assert answer["tag_group"] == before
    theirs = made["tag_group"]["tag"][0]["id"]
    with pytest.raises(Exception, match="301002"):
        restored.wecom.edit_corp_tag(corp, {"id": theirs, "name": "x"}, app=DEMO.wecom_secret)
    restored.wecom.edit_corp_tag(corp, {"id": theirs, "name": "x"}, app=OTHER_SECRET)
    assert restored.wecom.tag_exists(corp, theirs)


def test_old_state_files_count_becomes_filler_tags():
    state = SandboxState()
    state.restore(
        {
            "format": 1,
            "wecom": {"ww1": {"apps": [], "corp_tag_count": 1500, "strategies": [], "groups": []}},
        }
    )
    assert state.wecom.corp_tag_count("ww1") == 1500


# ---- fuzz: any sequence of calls by two apps and the admin keeps WeCom's rules -------------------

NAMES = st.sampled_from(["甲", "乙", "丙", "丁", "x" * 30, "x" * 31, " ", ""])
ORDERS = st.one_of(st.integers(min_value=-1, max_value=2**32), st.none())
CALLERS = st.sampled_from([DEMO.wecom_secret, OTHER_SECRET, None])  # None: WeCom's admin


@st.composite
def corp_calls(draw):
    kind = draw(st.sampled_from(["add", "add_to", "edit", "del_tag", "del_group"]))
    pick = draw(st.integers(min_value=0, max_value=50))
    body: dict = {}
    if kind == "add":
        body = {"group_name": draw(NAMES), "tag": [{"name": draw(NAMES)} for _ in range(2)]}
        if (order := draw(ORDERS)) is not None:
            body["order"] = order
    elif kind == "add_to":
        body = {"tag": [{"name": draw(NAMES)}]}
    elif kind == "edit":
        body = {"name": draw(NAMES)} if draw(st.booleans()) else {"order": draw(ORDERS) or 0}
    return kind, pick, body, draw(CALLERS)


@settings(max_examples=60, deadline=None)
@given(calls=st.lists(corp_calls(), max_size=25))
def test_any_sequence_of_calls_keeps_the_corporate_rules(calls):
    state = SandboxState(seed=1)
    seed_demo(state)
    wecom = state.wecom
    corp_id = DEMO.wecom_corp_id
    wecom.add_app(corp_id, OTHER_SECRET)
    for kind, pick, body, caller in calls:
        groups = wecom.get_corp_tag_list(corp_id, {})["tag_group"]
        tags = [t for g in groups for t in g["tag"]]
        items = groups + tags
        if kind == "add_to":
            body = {**body, "group_id": groups[pick % len(groups)]["group_id"]} if groups else body
        elif kind == "edit" and items:
            item = items[pick % len(items)]
            body = {**body, "id": item.get("group_id") or item["id"]}
        elif kind == "del_tag" and tags:
            body = {"tag_id": [tags[pick % len(tags)]["id"]]}
        elif kind == "del_group" and groups:
            body = {"group_id": [groups[pick % len(groups)]["group_id"]]}
        method = {
            "add": wecom.add_corp_tag,
            "add_to": wecom.add_corp_tag,
            "edit": wecom.edit_corp_tag,
            "del_tag": wecom.del_corp_tag,
            "del_group": wecom.del_corp_tag,
        }[kind]
        before = wecom.get_corp_tag_list(corp_id, {})
        creators = {}
        for group in wecom._corps[corp_id]["corp_groups"].values():
            creators[group["group_id"]] = group["creator"]
            creators.update({tag_id: tag["creator"] for tag_id, tag in group["tags"].items()})
        targets = [body.get("id"), *body.get("tag_id", []), *body.get("group_id", [])]
        foreign = kind != "add" and kind != "add_to" and caller is not None
        foreign = foreign and any(t in creators and creators[t] != caller for t in targets)
        try:
            method(corp_id, body, app=caller)
            assert not foreign, "an app changed a tag it did not create"
        except PlatformError as error:
            assert error.errcode in (40058, 40068, 40071, 301002), error
            assert error.errcode != 301002 or foreign
            assert wecom.get_corp_tag_list(corp_id, {}) == before, "a refusal changes nothing"
        after = wecom.get_corp_tag_list(corp_id, {})["tag_group"]
        names = [g["group_name"] for g in after]
        assert len(names) == len(set(names)), "group names are unique"
        for group in after:
            assert group["tag"], "no empty group"
            tag_names = [t["name"] for t in group["tag"]]
            assert len(tag_names) == len(set(tag_names)), "tag names are unique in a group"
            assert all(0 < len(n) <= 30 and n.strip() for n in [group["group_name"], *tag_names])
            assert all(wecom.tag_exists(corp_id, t["id"]) for t in group["tag"])
        assert wecom.corp_tag_count(corp_id) == sum(len(g["tag"]) for g in after)
