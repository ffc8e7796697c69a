"""WeCom members, customers and mark_tag (PLATFORM.md section 2, "Corporate tags and tagging
customers"), over real HTTP."""

from __future__ import annotations

import json
import re

import pytest

from wecom.sandbox import DEMO, FaultRule, SandboxState, seed_demo
from wecom.sandbox.customers import TAGS_PER_CUSTOMER_MAX
from wecom.sandbox.demo import DEMO_CUSTOMER_COUNT, DEMO_MEMBERS, demo_external_userid

CONTACT = "/cgi-bin/externalcontact"
CORP = DEMO.wecom_corp_id


def get(api, endpoint: str, **params) -> dict:
    answer = api.http.get(
        api.server.wecom_base + f"{CONTACT}/{endpoint}",
        params={"access_token": api.wecom_token(), **params},
        timeout=5,
    )
    assert answer.status_code == 200
    return answer.json()


def tag_ids(api, strategy_id: int) -> list[str]:
    groups = api.tags("get_strategy_tag_list", {"strategy_id": strategy_id})["tag_group"]
    return [tag["id"] for group in groups for tag in group["tag"]]


def first_customer(sandbox, userid: str) -> str:
    return sandbox.state.customers.customers_of(CORP, userid)[0]


def test_the_demo_has_thousands_of_customers_over_a_handful_of_members(api, sandbox):
    assert get(api, "get_follow_user_list")["follow_user"] == [m[0] for m in DEMO_MEMBERS]
    customers = sandbox.state.customers
    seen = set()
    for userid, *_ in DEMO_MEMBERS:
        answer = get(api, "list", userid=userid)
        assert answer["errcode"] == 0
        assert all(re.fullmatch(r"wm[A-Za-z0-9_-]{30}", e) for e in answer["external_userid"])
        seen.update(answer["external_userid"])
    assert len(seen) == DEMO_CUSTOMER_COUNT >= 2000
    shared = demo_external_userid(0)
    assert len(customers.followers(CORP, shared)) == 3, "some customers have several members"


def test_list_of_a_member_without_customers_answers_84061_as_wecom_does(api, sandbox):
    sandbox.state.customers.add_member(CORP, "newcomer")
    assert get(api, "list", userid="newcomer")["errcode"] == 84061
    assert get(api, "list", userid="nobody")["errcode"] == 60111
    assert get(api, "list", userid="bad id!")["errcode"] == 40058


def test_get_follow_user_list_leaves_out_members_without_customer_contact(api, sandbox):
    sandbox.state.customers.add_member(CORP, "nocontact", customer_contact=False)
    assert "nocontact" not in get(api, "get_follow_user_list")["follow_user"]


def test_batch_get_by_user_pages_by_cursor_with_at_most_100_a_page(api, sandbox):
    members = ["zhangsan", "lisi"]
    expected = [
        (ext, userid)
        for userid in members
        for ext in sandbox.state.customers.customers_of(CORP, userid)
    ]
    pairs, cursor, pages = [], "", 0
    while True:
        answer = api.tags(
            "batch/get_by_user", {"userid_list": members, "cursor": cursor, "limit": 100}
        )
        assert answer["errcode"] == 0, answer
        assert len(answer["external_contact_list"]) <= 100
        pairs += [
            (item["external_contact"]["external_userid"], item["follow_info"]["userid"])
            for item in answer["external_contact_list"]
        ]
        pages += 1
        cursor = answer["next_cursor"]
        if not cursor:
            break
    assert pairs == expected
    assert pages == -(-len(expected) // 100)


@pytest.mark.parametrize(
    "body",
    [
        {"userid_list": []},
        {"userid_list": ["zhangsan"] * 101},
        {"userid_list": ["zhangsan"], "limit": 101},
        {"userid_list": ["zhangsan"], "limit": 0},
        {"userid_list": ["zhangsan"], "cursor": "not-a-cursor"},
        {"userid_list": ["zhangsan"], "cursor": 5},
    ],
)
def test_batch_get_by_user_refuses_bad_lists_limits_and_cursors(api, body):
    assert api.tags("batch/get_by_user", body)["errcode"] == 40058


def test_mark_tag_adds_and_removes_per_member(api, sandbox):
    customers = sandbox.state.customers
    ext = demo_external_userid(0)  # followed by zhangsan, lisi and wangwu
    first, second = tag_ids(api, 1)[:2]
    body = {"userid": "zhangsan", "external_userid": ext, "add_tag": [first, second]}
    assert api.tags("mark_tag", body)["errcode"] == 0
    assert api.tags("mark_tag", body)["errcode"] == 0, "adding again changes nothing"
    assert customers.tags_of(CORP, "zhangsan", ext) == [first, second]
    assert customers.tags_of(CORP, "lisi", ext) == [], "a customer is tagged per member"
    removed = {"userid": "zhangsan", "external_userid": ext, "remove_tag": [first]}
    assert api.tags("mark_tag", removed)["errcode"] == 0
    assert customers.tags_of(CORP, "zhangsan", ext) == [second]
    # batch/get_by_user shows the member's own tags
    answer = api.tags("batch/get_by_user", {"userid_list": ["zhangsan"], "limit": 1})
    assert answer["external_contact_list"][0]["follow_info"]["tag_id"] == [second]


def test_mark_tag_refusals_and_their_errcodes(api, sandbox):
    customers = sandbox.state.customers
    strategy_1 = tag_ids(api, 1)[0]
    strategy_2 = tag_ids(api, 2)[0]
    mine = first_customer(sandbox, "lisi")
    not_mine = next(
        e
        for e in customers.customers_of(CORP, "zhaoliu")
        if "lisi" not in customers.followers(CORP, e)
    )

    def mark(**body):
        return api.tags("mark_tag", body)["errcode"]

    assert mark(userid="lisi", external_userid=mine, add_tag=["etNoSuchTag0000000000000"]) == 40068
    assert mark(userid="lisi", external_userid=not_mine, add_tag=[strategy_1]) == 84061
    assert (
        mark(userid="lisi", external_userid="wmUnknownCustomer00000000000000", add_tag=[strategy_1])
        == 40096
    )
    assert mark(userid="ghost", external_userid=mine, add_tag=[strategy_1]) == 60111
    # lisi is in strategy 1's range only
    assert mark(userid="lisi", external_userid=mine, add_tag=[strategy_2]) == 60011
    assert mark(userid="lisi", external_userid=mine) == 40058
    assert mark(userid="lisi", external_userid=mine, add_tag="et1") == 40058
    assert customers.tags_of(CORP, "lisi", mine) == [], "a refused call changes nothing"
    # sunqi is in no strategy's range
    theirs = first_customer(sandbox, "sunqi")
    assert mark(userid="sunqi", external_userid=theirs, add_tag=[strategy_1]) == 60011
    sandbox.state.customers.set_strategies(CORP, "sunqi", [1])
    assert mark(userid="sunqi", external_userid=theirs, add_tag=[strategy_1]) == 0


def test_mark_tag_holds_at_most_3000_tags_per_member_and_customer(api, sandbox):
    customers = sandbox.state.customers
    ext = first_customer(sandbox, "zhangsan")
    filler = [f"etFiller{n:016d}" for n in range(TAGS_PER_CUSTOMER_MAX - 1)]
    customers.put_tags(CORP, "zhangsan", ext, filler)
    first, second, third = tag_ids(api, 1)[:3]
    body = {"userid": "zhangsan", "external_userid": ext}
    assert api.tags("mark_tag", {**body, "add_tag": [first, second]})["errcode"] == 45035
    assert api.tags("mark_tag", {**body, "add_tag": [first]})["errcode"] == 0
    assert len(customers.tags_of(CORP, "zhangsan", ext)) == TAGS_PER_CUSTOMER_MAX
    assert api.tags("mark_tag", {**body, "add_tag": [first]})["errcode"] == 0, "held already"
    swap = {**body, "add_tag": [third], "remove_tag": [first]}
    assert api.tags("mark_tag", swap)["errcode"] == 45035, "counted before the removal"


def test_a_deleted_tag_is_refused_with_40068(api, sandbox):
    ext = first_customer(sandbox, "zhangsan")
    tag = tag_ids(api, 1)[0]
    assert api.tags("del_strategy_tag", {"tag_id": [tag]})["errcode"] == 0
    body = {"userid": "zhangsan", "external_userid": ext, "add_tag": [tag]}
    assert api.tags("mark_tag", body)["errcode"] == 40068


def test_faults_apply_to_the_customer_endpoints(api, sandbox):
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=f"{CONTACT}/mark_tag", errcode=-1))
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=f"{CONTACT}/list", errcode=45033))
    ext = first_customer(sandbox, "zhangsan")
    body = {"userid": "zhangsan", "external_userid": ext, "add_tag": tag_ids(api, 1)[:1]}
    assert api.tags("mark_tag", body)["errcode"] == -1
    assert sandbox.state.customers.tags_of(CORP, "zhangsan", ext) == [], "never reached"
    assert get(api, "list", userid="zhangsan")["errcode"] == 45033
    assert get(api, "get_follow_user_list")["errcode"] == 0
    assert sandbox.calls("wecom", f"{CONTACT}/mark_tag") == 1


def test_a_wrong_method_or_token_is_refused(api, sandbox):
    answer = api.http.post(
        api.server.wecom_base + f"{CONTACT}/list",
        params={"access_token": api.wecom_token(), "userid": "zhangsan"},
        timeout=5,
    ).json()
    assert answer["errcode"] == 43001
    assert get(api, "get_follow_user_list", access_token="nope")["errcode"] in (40014, 40001)


def test_customers_survive_a_snapshot(api, sandbox, clock):
    ext = demo_external_userid(7)  # wangwu's, and zhaoliu's (every 7th has a second member)
    tag = tag_ids(api, 1)[0]
    body = {"userid": "wangwu", "external_userid": ext, "add_tag": [tag]}
    assert sandbox.state.customers.followers(CORP, ext) == ["wangwu", "zhaoliu"]
    assert api.tags("mark_tag", body)["errcode"] == 0
    snapshot = json.loads(json.dumps(sandbox.state.snapshot()))
    restored = SandboxState.from_snapshot(snapshot, clock=clock)
    assert restored.snapshot() == snapshot
    assert restored.customers.tags_of(CORP, "wangwu", ext) == [tag]
    assert restored.customers.customers_of(CORP, "zhangsan") == (
        sandbox.state.customers.customers_of(CORP, "zhangsan")
    )


def test_the_set_up_helpers_refuse_what_wecom_would_not_hold():
    state = SandboxState()
    seed_demo(state)
    with pytest.raises(ValueError, match="userid"):
        state.customers.add_member(CORP, "bad id!")
    with pytest.raises(ValueError, match="external_userid"):
        state.customers.add_customer(CORP, "xx123")
    with pytest.raises(ValueError, match="unknown member"):
        state.customers.add_customer(CORP, followers=["ghost"])
