"""Fault injection: errcode, HTTP status, latency, dropped connections, times, rate."""

from __future__ import annotations

import time

import pytest
import requests

from wecom.sandbox import DEMO, FaultRule, SandboxServer, SandboxState, seed_demo

TAGS_GET = "/cgi-bin/tags/get"
BATCH = "/cgi-bin/tags/members/batchtagging"


def tags_get(api):
    return api.http.get(
        api.server.wechat_base + TAGS_GET, params={"access_token": api.oa_token()}, timeout=5
    )


def test_errcode_fault(api, sandbox):
    token = api.oa_token()
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=TAGS_GET, errcode=45009))
    answer = tags_get(api)
    assert answer.status_code == 200
    assert answer.json()["errcode"] == 45009
    assert answer.json()["errmsg"].startswith("reach max api daily quota limit")
    record = sandbox.requests[-1]
    assert (record.endpoint, record.errcode, record.fault) == (TAGS_GET, 45009, "errcode")
    assert sandbox.calls("wechat", TAGS_GET) == 1
    # other endpoints untouched
    create = api.oa("/cgi-bin/tags/create", {"tag": {"name": "不受影响"}}, token=token)
    assert create["tag"]["name"] == "不受影响"


def test_http_status_fault(api, sandbox):
    api.oa_token()
    sandbox.faults.add(FaultRule(endpoint="/cgi-bin/tags/*", http_status=502))
    answer = tags_get(api)
    assert answer.status_code == 502
    assert answer.headers["Content-Length"] == str(len(answer.content))
    assert b"502" in answer.content
    record = sandbox.requests[-1]
    assert (record.status, record.errcode, record.fault) == (502, None, "http_status")
    # the keep-alive connection still works
    sandbox.faults.clear()
    assert "tags" in tags_get(api).json()


def test_latency_fault_delays_the_normal_answer(api, sandbox):
    api.oa_token()
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=TAGS_GET, latency_ms=150, times=1))
    started = time.perf_counter()
    answer = tags_get(api)
    elapsed = time.perf_counter() - started
    assert "tags" in answer.json()  # the normal answer, late
    assert sandbox.requests[-1].fault == "latency"
    assert sandbox.requests[-1].errcode == 0
    assert elapsed >= 0.15
    tags_get(api)
    assert sandbox.requests[-1].fault is None


def test_latency_combines_with_errcode(api, sandbox):
    api.oa_token()
    sandbox.faults.add(FaultRule(endpoint=TAGS_GET, latency_ms=50, errcode=-1))
    started = time.perf_counter()
    assert tags_get(api).json()["errcode"] == -1
    assert time.perf_counter() - started >= 0.05


def test_drop_fault_closes_the_connection(api, sandbox):
    api.oa_token()
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=TAGS_GET, drop=True, times=1))
    with pytest.raises(requests.ConnectionError):
        tags_get(api)
    record = sandbox.requests[-1]
    assert (record.endpoint, record.status, record.fault) == (TAGS_GET, 0, "drop")
    assert sandbox.calls("wechat", TAGS_GET) == 1
    assert "tags" in tags_get(api).json()  # a new connection is served normally


def test_times_is_spent(api, sandbox):
    api.oa_token()
    sandbox.faults.add(FaultRule(endpoint=TAGS_GET, errcode=-1, times=2))
    codes = [tags_get(api).json().get("errcode", 0) for _ in range(4)]
    assert codes == [-1, -1, 0, 0]
    (rule,) = sandbox.faults.describe()
    assert (rule["fired"], rule["remaining"]) == (2, 0)


def test_first_firing_rule_wins_in_order(api, sandbox):
    api.oa_token()
    sandbox.faults.add(FaultRule(endpoint=TAGS_GET, errcode=45011, times=1))
    sandbox.faults.add(FaultRule(platform="wechat", errcode=-1, times=1))
    sandbox.faults.add(FaultRule(platform="wechat", errcode=45033))
    codes = [tags_get(api).json()["errcode"] for _ in range(3)]
    assert codes == [45011, -1, 45033]


def test_rate_is_reproducible_with_a_seed(http):
    def run(seed: int) -> list[int]:
        state = SandboxState()
        seed_demo(state)
        with SandboxServer(state=state, seed=seed) as server:
            server.faults.add(FaultRule(platform="wecom", errcode=-1, rate=0.3))
            params = {"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret}
            return [
                http.get(server.wecom_base + "/cgi-bin/gettoken", params=params).json()["errcode"]
                for _ in range(200)
            ]

    first, second = run(7), run(7)
    assert first == second
    failures = first.count(-1)
    assert 30 < failures < 90  # about 30 % of 200
    assert set(first) == {0, -1}
    assert run(8) != first


def test_rate_zero_never_fires(api, sandbox):
    api.oa_token()
    sandbox.faults.add(FaultRule(errcode=-1, rate=0.0))
    assert all("tags" in tags_get(api).json() for _ in range(20))


def test_token_endpoints_are_matchable(api, sandbox):
    sandbox.faults.add(FaultRule(platform="wecom", endpoint="/cgi-bin/gettoken", errcode=-1))
    assert api.wecom_gettoken()["errcode"] == -1
    assert api.oa_stable_token()["access_token"]


def test_chatbot_faults_match_without_token(api, sandbox):
    sandbox.faults.add(FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", errcode=-1))
    answer = api.chatbot("/openapi/setautoreply", [("managerid", "m")])
    assert answer["errcode"] == -1
    assert sandbox.requests[-1].xml == {"managerid": "m"}  # the body is still recorded
    ok = api.chatbot("/openapi/label/batchset", [("appid", DEMO.bot_appid)])
    assert ok["errcode"] == 1007  # other endpoint: normal rules


def test_faults_given_at_start(http):
    state = SandboxState()
    seed_demo(state)
    server = SandboxServer(state=state)
    server.faults.add(FaultRule.from_spec("errcode=40001,platform=wecom"))
    with server:
        answer = http.get(server.wecom_base + "/cgi-bin/gettoken").json()
        assert answer["errcode"] == 40001


def test_spec_parsing():
    rule = FaultRule.from_spec(
        "errcode=-1,rate=0.1,platform=wechat,endpoint=/cgi-bin/tags/members/batchtagging"
    )
    assert rule == FaultRule(platform="wechat", endpoint=BATCH, errcode=-1, rate=0.1)
    assert FaultRule.from_spec("latency_ms=500").latency_ms == 500
    assert FaultRule.from_spec("drop=true, rate=0.05") == FaultRule(drop=True, rate=0.05)
    assert FaultRule.from_spec("http_status=503,times=3").times == 3


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "errcode=x",
        "colour=red",
        "errcode",
        "rate=2,errcode=1",
        "drop=maybe",
        "errcode=1,http_status=500",
        "http_status=99",
        "latency_ms=-5",
    ],
)
def test_bad_specs(spec):
    with pytest.raises(ValueError):
        FaultRule.from_spec(spec)


def test_rule_from_dict_refuses_unknown_fields():
    with pytest.raises(ValueError, match="unknown fault fields"):
        FaultRule.from_dict({"errcode": 1, "color": "red"})
    assert FaultRule.from_dict(FaultRule(errcode=5).to_dict()) == FaultRule(errcode=5)


def test_body_fault_answers_exactly_that_body(sandbox, http):
    sandbox.faults.add(FaultRule(platform="wechat", endpoint="/cgi-bin/tags/get", body="<html>"))
    answer = http.get(sandbox.wechat_base + "/cgi-bin/tags/get", timeout=5)
    assert answer.status_code == 200
    assert answer.text == "<html>"
    assert sandbox.requests[-1].fault == "body"
    assert sandbox.calls("wechat", "/cgi-bin/tags/get") == 1


def test_body_is_one_outcome_among_the_others():
    with pytest.raises(ValueError, match="choose one"):
        FaultRule(body="x", errcode=-1)
    assert FaultRule.from_spec("body=oops").body == "oops"


def test_after_faults_spoil_the_answer_of_work_done(api, sandbox):
    """``after``: the platform did the work, the answer is lost (dropped) or comes too late."""
    token = api.oa_token()
    sandbox.faults.add(
        FaultRule(platform="wechat", endpoint="/cgi-bin/tags/create", drop=True, after=True)
    )
    with pytest.raises(requests.ConnectionError):
        api.http.post(
            api.server.wechat_base + "/cgi-bin/tags/create",
            params={"access_token": token},
            json={"tag": {"name": "丢了回答"}},
            timeout=5,
        )
    names = [tag["name"] for tag in tags_get(api).json()["tags"]]
    assert "丢了回答" in names
    assert FaultRule.from_spec("drop=true,after=true").after is True
    assert FaultRule.from_spec("drop=true").after is False
