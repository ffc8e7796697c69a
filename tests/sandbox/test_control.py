"""The control API under /__sandbox__/ and the Python-side stats."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from wecom.sandbox import DEMO


@pytest.fixture
def control(sandbox, http):
    def call(method, name, body=None):
        answer = http.request(method, f"{sandbox.url}/__sandbox__/{name}", json=body, timeout=5)
        return answer.status_code, answer.json()

    return call


def test_stats_count_platform_calls_only(api, sandbox, control):
    api.wecom_gettoken()
    api.wecom_gettoken()
    api.oa("/cgi-bin/tags/get")
    status, stats = control("GET", "stats")
    assert status == 200
    assert stats == {
        "calls": {
            "wechat /cgi-bin/stable_token": 1,
            "wechat /cgi-bin/tags/get": 1,
            "wecom /cgi-bin/gettoken": 2,
        },
        "total": 4,
    }
    assert sandbox.total_calls() == 4  # the control call itself is not counted
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 2
    assert sandbox.calls("wecom", "/cgi-bin/nothing") == 0


def test_reset_stats(api, sandbox):
    api.wecom_gettoken()
    assert len(sandbox.requests) == 1
    sandbox.reset_stats()
    assert sandbox.total_calls() == 0
    assert len(sandbox.requests) == 0


def test_requests_are_recorded(api, sandbox):
    api.tags("add_strategy_tag", {"strategy_id": 1, "group_name": "g", "tag": [{"name": "t"}]})
    record = sandbox.requests[-1]
    assert record.platform == "wecom"
    assert record.endpoint == "/cgi-bin/externalcontact/add_strategy_tag"
    assert record.method == "POST"
    assert record.body == {"strategy_id": 1, "group_name": "g", "tag": [{"name": "t"}]}
    assert record.xml is None
    assert record.errcode == 0
    assert record.at > 0
    assert sandbox.requests.maxlen == 1000


def test_faults_over_http(api, control, sandbox):
    rules = [{"platform": "wecom", "endpoint": "/cgi-bin/gettoken", "errcode": -1, "times": 1}]
    status, answer = control("POST", "faults", {"rules": rules})
    assert status == 200
    assert answer["rules"][0]["errcode"] == -1
    assert api.wecom_gettoken()["errcode"] == -1
    _, listed = control("GET", "faults")
    assert listed["rules"][0]["fired"] == 1
    _, replaced = control("POST", "faults", {"rules": [{"latency_ms": 1}], "replace": True})
    assert [r["latency_ms"] for r in replaced["rules"]] == [1]
    _, appended = control("POST", "faults", {"rules": [{"errcode": 5}]})
    assert len(appended["rules"]) == 2
    assert control("DELETE", "faults") == (200, {"rules": []})
    assert sandbox.faults.rules == []


def test_bad_fault_rules_are_refused(control, sandbox):
    status, answer = control("POST", "faults", {"rules": [{"errcode": 1, "colour": "red"}]})
    assert status == 400
    assert "colour" in answer["error"]
    assert control("POST", "faults", {"rules": "x"})[0] == 400
    assert sandbox.faults.rules == []


def test_invalidate_tokens_over_http(api, control):
    token = api.wecom_token()
    oa_token = api.oa_token()
    assert control("POST", "tokens/invalidate", {"platform": "wechat"}) == (
        200,
        {"invalidated": 1},
    )
    assert api.oa("/cgi-bin/tags/get", token=oa_token)["errcode"] == 42001
    assert api.tags("get_strategy_tag_list", {}, token=token)["errcode"] == 0
    assert control("POST", "tokens/invalidate", {"platform": None})[1] == {"invalidated": 1}
    assert api.tags("get_strategy_tag_list", {}, token=token)["errcode"] == 42001
    assert control("POST", "tokens/invalidate", {"platform": "qq"})[0] == 400


def test_reset_over_http(api, control, sandbox):
    api.oa("/cgi-bin/tags/create", {"tag": {"name": "新的"}})
    status, _ = control("POST", "reset", {"demo": True})
    assert status == 200
    assert sandbox.total_calls() == 0
    names = {
        t["name"]
        for t in api.oa("/cgi-bin/tags/get", token=api.oa_stable_token()["access_token"])["tags"]
    }
    assert "新的" not in names
    assert "广东" in names
    control("POST", "reset", {"demo": False})
    assert api.wecom_gettoken()["errcode"] == 40013  # the demo corp is gone
    assert control("GET", "state")[1]["wecom"] == {}


def test_state_over_http_is_the_snapshot(control, sandbox):
    status, state = control("GET", "state")
    assert status == 200
    assert state == sandbox.state.snapshot()
    assert DEMO.oa_appid in state["wechat"]


def test_unknown_control_endpoint(control):
    status, answer = control("GET", "nothing")
    assert status == 404
    assert "nothing" in answer["error"]
    assert control("POST", "stats")[0] == 404


def test_health(control, sandbox):
    status, answer = control("GET", "health")
    assert status == 200
    assert answer["wecom_base"] == sandbox.wecom_base


# ---- sandbox_ctl, in process against the in-process sandbox ---------------------------------


def test_sandbox_ctl_actions(api, sandbox, capsys):
    api.wecom_gettoken()
    call_command("sandbox_ctl", "--url", sandbox.url, "stats")
    out = capsys.readouterr().out
    assert "wecom /cgi-bin/gettoken" in out
    assert "total: 1" in out
    call_command("sandbox_ctl", "--url", sandbox.url, "add-fault", "errcode=-1,platform=wechat")
    assert sandbox.faults.rules[0].errcode == -1
    call_command("sandbox_ctl", "--url", sandbox.url, "faults")
    assert '"errcode": -1' in capsys.readouterr().out
    call_command("sandbox_ctl", "--url", sandbox.url, "clear-faults")
    assert sandbox.faults.rules == []
    token = api.wecom_token()
    call_command("sandbox_ctl", "--url", sandbox.url, "invalidate-tokens", "--platform", "wecom")
    assert api.tags("get_strategy_tag_list", {}, token=token)["errcode"] == 42001
    call_command("sandbox_ctl", "--url", sandbox.url, "reset", "--empty")
    assert sandbox.state.snapshot()["wecom"] == {}


def test_sandbox_ctl_bad_spec(sandbox):
    with pytest.raises(CommandError, match="bad fault spec"):
        call_command("sandbox_ctl", "--url", sandbox.url, "add-fault", "colour=red")


def test_sandbox_ctl_unreachable():
    with pytest.raises(CommandError, match="not reachable"):
        call_command("sandbox_ctl", "--url", "http://127.0.0.1:9", "stats")


def test_members_and_customers_added_in_bulk(sandbox, control):
    corp = DEMO.wecom_corp_id
    customers = [
        {"external_userid": f"wmbench{n:025d}", "followers": ["bench1", "bench2"]} for n in range(3)
    ]
    status, answer = control(
        "POST",
        "wecom/customers",
        {
            "corp_id": corp,
            "members": [{"userid": "bench1"}, {"userid": "bench2"}],
            "customers": customers,
        },
    )
    assert (status, answer) == (200, {"members": 2, "customers": 3})
    assert sandbox.state.customers.customers_of(corp, "bench2") == [
        f"wmbench{n:025d}" for n in range(3)
    ]
    assert sandbox.state.customers.followers(corp, "wmbench" + "0" * 25) == ["bench1", "bench2"]
    # The set-up helpers' checks: a member twice, an unknown follower, a malformed id.
    for body in (
        {"corp_id": corp, "members": [{"userid": "bench1"}]},
        {
            "corp_id": corp,
            "customers": [{"external_userid": "wm" + "x" * 30, "followers": ["nobody"]}],
        },
        {"corp_id": corp, "customers": [{"external_userid": "not-one", "followers": []}]},
        {"members": []},
    ):
        status, answer = control("POST", "wecom/customers", body)
        assert status == 400, body
        assert answer["error"]
