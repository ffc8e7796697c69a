"""Snapshots: the whole state as JSON, restored exactly; the atomic state file."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from wecom.sandbox import DEMO, PlatformError, SandboxServer, SandboxState, seed_demo
from wecom.sandbox.persist import StateSaver, load_state, save_state


def test_snapshot_round_trip_over_http(api, sandbox, http, clock):
    # Put a bit of everything in the state.
    wecom_token = api.wecom_token()
    oa_token = api.oa_token()
    api.tags("add_strategy_tag", {"strategy_id": 2, "group_name": "新组", "tag": [{"name": "t"}]})
    api.oa("/cgi-bin/tags/create", {"tag": {"name": "快照"}})
    api.chatbot(
        "/openapi/label/batchset",
        [
            ("appid", DEMO.bot_appid),
            ("category", "c"),
            ("label", "l"),
            ("desc", "d"),
            ("list", [("openid", "o" * 28)]),
        ],
    )
    sandbox.state.official_account.set_tag_fan_count_override(DEMO.oa_appid, 100, 123_456)

    snapshot = json.loads(json.dumps(sandbox.state.snapshot()))  # JSON-able
    restored = SandboxState.from_snapshot(snapshot, clock=clock)
    assert restored.snapshot() == snapshot
    with SandboxServer(state=restored) as other:
        # Tokens survive: a restarted `make run` sandbox keeps the console's cached tokens valid.
        tag_list = http.post(
            other.wecom_base + "/cgi-bin/externalcontact/get_strategy_tag_list",
            params={"access_token": wecom_token},
            json={},
        ).json()
        assert tag_list == api.tags("get_strategy_tag_list", {})
        tags = http.get(other.wechat_base + "/cgi-bin/tags/get", params={"access_token": oa_token})
        assert tags.json() == api.oa("/cgi-bin/tags/get")
        assert restored.chatbot.labels(DEMO.bot_appid) == sandbox.state.chatbot.labels(
            DEMO.bot_appid
        )
        # ids keep increasing after a restore
        created = http.post(
            other.wechat_base + "/cgi-bin/tags/create",
            params={"access_token": oa_token},
            json={"tag": {"name": "之后"}},
        ).json()
        assert created["tag"]["id"] == 105


def test_restore_refuses_other_documents():
    with pytest.raises(ValueError, match="snapshot"):
        SandboxState.from_snapshot({"hello": "world"})


def test_save_and_load_state_file(tmp_path):
    state = SandboxState()
    seed_demo(state)
    path = tmp_path / "sub" / "state.json"
    assert load_state(path) is None
    save_state(state, path)
    assert load_state(path).snapshot() == state.snapshot()
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left over


def test_saver_writes_only_when_changed(tmp_path):
    state = SandboxState()
    path = tmp_path / "state.json"
    saver = StateSaver(state, path, interval=3600)
    assert saver.save_if_changed() is True
    assert saver.save_if_changed() is False
    state.official_account.add_account(DEMO.oa_appid, DEMO.oa_secret, openid_prefix="oAbCdE")
    assert saver.save_if_changed() is True
    saver.start()
    state.official_account.add_tag(DEMO.oa_appid, "退出前")
    saver.stop()  # saves at exit
    assert "退出前" in path.read_text(encoding="utf-8")


def test_helpers_follow_the_platform_rules():
    state = SandboxState()
    seed_demo(state)
    with pytest.raises(PlatformError) as caught:
        state.wecom.add_strategy_group(DEMO.wecom_corp_id, 3, "子组", tags=[("x", 0)])
    assert caught.value.errcode == 40058
    with pytest.raises(PlatformError):
        state.official_account.tag_users(DEMO.oa_appid, 100, ["oOtherXXXXXXXXXXXXXXXXXXXXXX"])
    with pytest.raises(ValueError, match="openid_prefix"):
        state.official_account.add_account("wx1111111111111111", "s", openid_prefix="xx")


def test_demo_formats():
    import base64
    import re

    assert re.fullmatch(r"ww[0-9a-f]{16}", DEMO.wecom_corp_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", DEMO.wecom_secret)
    assert DEMO.wecom_agent_id == 1000002
    assert re.fullmatch(r"wx[0-9a-f]{16}", DEMO.oa_appid)
    assert re.fullmatch(r"[0-9a-f]{32}", DEMO.oa_secret)
    assert re.fullmatch(r"o[A-Za-z0-9_-]{5}", DEMO.oa_openid_prefix)
    assert re.fullmatch(r"[A-Za-z0-9]{16}", DEMO.bot_appid)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", DEMO.bot_token)
    assert len(DEMO.bot_encoding_aes_key) == 43
    assert len(base64.b64decode(DEMO.bot_encoding_aes_key + "=", validate=True)) == 32
    assert DEMO.bot_manager_id
    with pytest.raises(AttributeError):
        DEMO.oa_appid = "x"  # frozen


def test_demo_content():
    state = SandboxState()
    seed_demo(state)
    snapshot = state.snapshot()
    strategies = snapshot["wecom"][DEMO.wecom_corp_id]["strategies"]
    assert [(s["strategy_id"], s["parent_id"]) for s in strategies] == [(1, 0), (2, 0), (3, 1)]
    groups = snapshot["wecom"][DEMO.wecom_corp_id]["groups"]
    for strategy_id in (1, 2):
        mine = [g for g in groups if g["strategy_id"] == strategy_id]
        assert 2 <= len(mine) <= 3
        assert all(2 <= len(g["tag"]) <= 4 for g in mine)
    tags = snapshot["wechat"][DEMO.oa_appid]["tags"]
    custom = [t for t in tags if t["id"] >= 100]
    assert custom[0]["id"] == 100
    assert all(t["fans"] and all(len(o) == 28 for o in t["fans"]) for t in custom)
    assert DEMO.bot_appid in snapshot["chatbot"]


# ---- invariants under any sequence of operations --------------------------------------------

_names = st.sampled_from(["甲", "乙", "丙", "丁", "x" * 30])
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(["组一", "组二"]), st.lists(_names, max_size=4)),
        st.tuples(st.just("del_tag"), st.integers(0, 20)),
        st.tuples(st.just("del_group"), st.integers(0, 5)),
        st.tuples(st.just("rename"), st.integers(0, 20), _names),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_strategy_tag_invariants(ops):
    state = SandboxState(seed=1)
    corp = "ww0123456789abcdef"
    state.wecom.add_app(corp, "s" * 43)
    state.wecom.add_strategy(corp, 1, "规则组")
    for op in ops:
        groups = state.wecom.get_strategy_tag_list(corp, {})["tag_group"]
        tag_ids = [t["id"] for g in groups for t in g["tag"]]
        try:
            if op[0] == "add":
                state.wecom.add_strategy_tag(
                    corp,
                    {"strategy_id": 1, "group_name": op[1], "tag": [{"name": n} for n in op[2]]},
                )
            elif op[0] == "del_tag" and tag_ids:
                state.wecom.del_strategy_tag(corp, {"tag_id": [tag_ids[op[1] % len(tag_ids)]]})
            elif op[0] == "del_group" and groups:
                group_id = groups[op[1] % len(groups)]["group_id"]
                state.wecom.del_strategy_tag(corp, {"group_id": [group_id]})
            elif op[0] == "rename" and tag_ids:
                state.wecom.edit_strategy_tag(
                    corp, {"id": tag_ids[op[1] % len(tag_ids)], "name": op[2]}
                )
        except PlatformError as exc:
            assert exc.errcode in (40058, 40071)
        groups = state.wecom.get_strategy_tag_list(corp, {})["tag_group"]
        names = [g["group_name"] for g in groups]
        assert len(names) == len(set(names))  # group names unique within the strategy
        for group in groups:
            assert group["tag"]  # no empty groups
            tag_names = [t["name"] for t in group["tag"]]
            assert len(tag_names) == len(set(tag_names))  # tag names unique within a group
        assert state.wecom.strategy_tag_count(corp) == sum(len(g["tag"]) for g in groups)
