"""The sandbox's debug and online copies of a bot: publish, publish_progress (with its faults)
and aibot, on the wire."""

from __future__ import annotations

import pytest

from chatbot.signature import signature_make
from wecom.sandbox import DEMO

MANAGER = [("managerid", DEMO.bot_manager_id)]


def push(api, title: str, content: str, questions=()) -> None:
    fields = [("managerid", DEMO.bot_manager_id), ("skillname", "售后"), ("title", title)]
    fields += [("content", content), ("list", [("question", q) for q in questions])]
    assert api.chatbot("/openapi/setautoreply", fields)["code"] == 0


def ask(api, sandbox, query: str, env: str | None = None) -> dict:
    body = {"signature": signature_make(key=DEMO.bot_encoding_aes_key, userid="u"), "query": query}
    if env:
        body["env"] = env
    answer = api.http.post(
        f"{sandbox.chatbot_base}/openapi/aibot/{DEMO.bot_token}", json=body, timeout=5
    )
    return answer.json()


def progress(api) -> dict:
    return api.chatbot("/openapi/publish_progress", MANAGER)["data"]


def test_publish_copies_debug_to_online_over_time(api, sandbox, clock):
    push(api, "怎么退货", "退货答案", ["如何退货"])
    assert ask(api, sandbox, "如何退货", "debug")["status"] == "FAQ"
    assert ask(api, sandbox, "如何退货")["status"] == "NOMATCH"  # online by default
    assert api.chatbot("/openapi/publish", MANAGER) == {"code": 0, "errcode": 0, "msg": "success"}
    assert progress(api) == {"progress": 0, "status": 0}
    clock.advance(2)
    assert progress(api) == {"progress": 50, "status": 0}
    # Publishing again while one runs does not start another.
    api.chatbot("/openapi/publish", MANAGER)
    assert sandbox.state.chatbot.publish_count(DEMO.bot_appid) == 1
    clock.advance(2)
    assert progress(api) == {"progress": 100, "status": 1}
    online = ask(api, sandbox, "如何退货", "online")
    assert (online["status"], online["skill_name"], online["intent_name"]) == (
        "FAQ",
        "售后",
        "怎么退货",
    )
    assert online["answer"] == "退货答案"


def test_publish_faults_status_2_and_stuck(api, sandbox, clock):
    sandbox.state.chatbot.set_publish_behaviour(DEMO.bot_appid, fail_at=30)
    api.chatbot("/openapi/publish", MANAGER)
    clock.advance(10)
    assert progress(api) == {"progress": 30, "status": 2}
    sandbox.state.chatbot.set_publish_behaviour(DEMO.bot_appid, stuck_at=70)
    api.chatbot("/openapi/publish", MANAGER)
    clock.advance(100)
    assert progress(api) == {"progress": 70, "status": 0}


def test_publish_needs_a_manager_id(api):
    assert api.chatbot("/openapi/publish", [("managerid", "")])["errcode"] == 1015


def test_publish_behaviour_through_the_control_api(sandbox, http):
    url = f"{sandbox.url}/__sandbox__/chatbot/publish_behaviour"
    ok = http.post(url, json={"appid": DEMO.bot_appid, "envelope": "data"}, timeout=5)
    assert ok.status_code == 200
    assert http.post(url, json={"appid": "nobody"}, timeout=5).status_code == 404
    bad = http.post(url, json={"appid": DEMO.bot_appid, "fail_at": 101}, timeout=5)
    assert bad.status_code == 400
    assert http.post(url, json={"seconds": 1}, timeout=5).status_code == 400


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"query": "你好"}, 1003),
        ({"signature": "x.y.z", "query": "你好"}, 1006),
        ({"signature": "GOOD", "query": ""}, 1008),
        ({"signature": "GOOD", "query": "你好", "env": "prod"}, 1008),
    ],
)
def test_aibot_refusals(sandbox, http, body, errcode):
    if body.get("signature") == "GOOD":
        body["signature"] = signature_make(key=DEMO.bot_encoding_aes_key, userid="u")
    answer = http.post(
        f"{sandbox.chatbot_base}/openapi/aibot/{DEMO.bot_token}", json=body, timeout=5
    ).json()
    assert answer["errcode"] == errcode
