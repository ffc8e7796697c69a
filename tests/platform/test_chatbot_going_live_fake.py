"""The client's publish, publish_progress and aibot against a held-out fake: a few lines of
http.server that answer as the platform's pages document (not the sandbox), and record what
the client sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chatbot.crypto import WXBizMsgCrypt
from chatbot.signature import signature_read
from wecom.clients.chatbot import PUBLISH_SUCCEEDED, ChatbotClient

APPID = "wx1234567890abcdef"
TOKEN = "FAKETOKEN123"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


class Fake:
    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.received: list[tuple[str, Any]] = []


@pytest.fixture
def fake(settings) -> Iterator[Fake]:
    state = Fake()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            endpoint = self.path.rsplit("/", 1)[0]
            state.received.append((self.path, body))
            payload = json.dumps(state.answers[endpoint], ensure_ascii=False).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.CHATBOT_API_BASE = f"http://127.0.0.1:{server.server_address[1]}"
    settings.PLATFORM_MAX_ATTEMPTS = 1
    yield state
    server.shutdown()
    server.server_close()


def client() -> ChatbotClient:
    return ChatbotClient(appid=APPID, token=TOKEN, encoding_aes_key=KEY, rate_limit=1000)


def test_publish_and_progress_as_documented(fake):
    fake.answers["/openapi/publish"] = {"code": 0, "errcode": 0, "msg": "success"}
    fake.answers["/openapi/publish_progress"] = {
        "code": 0,
        "data": {"progress": 100, "status": 1},
        "msg": "success",
    }
    client().publish(managerid="m1")
    progress = client().publish_progress(managerid="m1")
    assert (progress.progress, progress.status, progress.finished) == (100, PUBLISH_SUCCEEDED, True)
    (publish_path, publish_body), _ = fake.received
    assert publish_path == f"/openapi/publish/{TOKEN}"
    document = WXBizMsgCrypt(TOKEN, KEY, APPID).decrypt(publish_body["encrypt"])
    assert document == "<xml><managerid><![CDATA[m1]]></managerid></xml>"


def test_aibot_with_fields_inside_data_and_a_signature_the_key_verifies(fake):
    fake.answers["/openapi/aibot"] = {
        "code": 0,
        "data": {
            "answer": '{"image":{"media_id":"m","url":"https://x/y.jpg"}}',
            "answer_type": "image",
            "skill_name": "售后",
            "intent_name": "怎么退货",
            "msg_id": 12345,
            "status": "FAQ",
            "options": [],
        },
    }
    answer = client().ask(query="如何退货", env="debug", userid="console-7")
    assert (answer.status, answer.skill_name, answer.standard_question) == (
        "FAQ",
        "售后",
        "怎么退货",
    )
    assert answer.msg_id == "12345" and answer.matched
    ((path, body),) = fake.received
    assert path == f"/openapi/aibot/{TOKEN}"
    assert (body["query"], body["env"]) == ("如何退货", "debug")
    assert signature_read(body["signature"], key=KEY)["userid"] == "console-7"
    assert KEY not in json.dumps(body)


def test_aibot_recommendations_at_the_top_level(fake):
    fake.answers["/openapi/aibot"] = {
        "answer": "",
        "status": "FAQ_RECOMMEND",
        "options": [
            {"ans_node_name": "售后", "title": "怎么退货", "answer": "a", "confidence": 0.62},
            {"ans_node_name": "售后", "title": "怎么换货", "answer": "b", "confidence": 0.31},
        ],
    }
    answer = client().ask(query="退", env="online", userid="u")
    assert not answer.matched
    assert [(o.title, o.confidence) for o in answer.options] == [
        ("怎么退货", 0.62),
        ("怎么换货", 0.31),
    ]
