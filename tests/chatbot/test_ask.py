"""“试一试”: asking the real bot (the sandbox, over HTTP) in debug or online, with the answer
compared to the console's replies; the signature; bad answers from the platform."""

from __future__ import annotations

import itertools
import json

import pytest
import requests
from django.urls import reverse
from django.utils import translation

from chatbot.answers import answer_from_editor
from chatbot.asking import bot_ask
from chatbot.publishing import bot_publish
from chatbot.services import reply_push, reply_update
from chatbot.signature import SignatureError, signature_make, signature_read
from console.jobs import StopReason
from console.jobs.services import job_run_shard
from tests.conftest import PASSWORD
from wecom.connections import client_for
from wecom.models import ChatbotBot
from wecom.sandbox import DEMO, FaultRule

from .conftest import saved_reply

pytestmark = pytest.mark.usefixtures("fast_platform")

OLD = {"type": "text", "segments": [{"kind": "text", "text": "旧的答案"}]}
NEW = {"type": "text", "segments": [{"kind": "text", "text": "新的答案"}]}
KEY = DEMO.bot_encoding_aes_key


@pytest.fixture(autouse=True)
def english(settings):
    settings.CHATBOT_PUBLISH_POLL_SECONDS = 0
    with translation.override("en"):
        yield


@pytest.fixture
def ticking(sandbox):
    ticks = itertools.count(0, 1.0)
    sandbox.state.clock = lambda: next(ticks)
    return sandbox


def fresh(bot) -> ChatbotBot:
    return ChatbotBot.objects.get(pk=bot.pk)


def publish(bot, actor) -> None:
    job = bot_publish(bot=bot, actor=actor)
    for shard in job.shards.all():
        while job_run_shard(shard_id=shard.pk, worker="test").stop_reason is StopReason.SLICE_OVER:
            pass


def make_reply(skill, actor, title="怎么退货", questions=("如何退货",), content=OLD):
    return saved_reply(skill, actor, title=title, questions=questions, content=content)


# ---- the signature ---------------------------------------------------------------------------


def test_signature_round_trip_and_refusals():
    token = signature_make(key=KEY, userid="u1", username="小明", now=1000)
    assert signature_read(token, key=KEY, now=1001)["userid"] == "u1"
    with pytest.raises(SignatureError):
        signature_read(token, key=KEY[::-1], now=1001)  # another key
    with pytest.raises(SignatureError):
        signature_read(token, key=KEY, now=1000 + 7200)  # expired
    header, claims, mac = token.split(".")
    with pytest.raises(SignatureError):
        signature_read(f"{header}.{claims}x.{mac}", key=KEY, now=1001)  # tampered
    for junk in ("", "a.b", "a.b.c", "...", 5):
        with pytest.raises(SignatureError):
            signature_read(junk, key=KEY)  # type: ignore[arg-type]


def test_the_sandbox_refuses_a_signature_made_with_another_key(sandbox):
    url = f"{sandbox.chatbot_base}/openapi/aibot/{DEMO.bot_token}"
    bad = signature_make(key="x" * 43, userid="u1")
    answer = requests.post(url, json={"signature": bad, "query": "你好"}, timeout=5).json()
    assert answer["errcode"] == 1006
    good = signature_make(key=KEY, userid="u1")
    answer = requests.post(url, json={"signature": good, "query": "你好"}, timeout=5).json()
    assert answer["status"] == "NOMATCH"


# ---- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("envelope", ["top", "data"])
def test_both_answer_envelopes_give_the_same_outcome(sandbox, skill, actor, envelope):
    reply = make_reply(skill, actor)
    assert reply_push(reply=reply, actor=actor).ok
    sandbox.state.chatbot.set_publish_behaviour(DEMO.bot_appid, envelope=envelope)
    outcome = bot_ask(bot=fresh(skill.bot), query="如何退货", env="debug", userid="u1")
    assert outcome.ok and outcome.status == "FAQ" and outcome.status_label == "Matched"
    assert (outcome.skill_name, outcome.standard_question) == ("售后服务", "怎么退货")
    assert outcome.reply_id == reply.pk and outcome.warnings == []
    assert outcome.preview == {"type": "text", "segments": [{"kind": "text", "text": "旧的答案"}]}


def test_no_match_and_recommendations(sandbox, skill, actor):
    reply = make_reply(skill, actor)
    assert reply_push(reply=reply, actor=actor).ok
    nothing = bot_ask(bot=fresh(skill.bot), query="天气怎么样", env="debug", userid="u1")
    assert nothing.status == "NOMATCH" and nothing.status_label == "No match"
    assert nothing.reply_id is None and nothing.preview is None and nothing.warnings == []
    unsure = bot_ask(bot=fresh(skill.bot), query="退货", env="debug", userid="u1")
    assert unsure.status == "FAQ_RECOMMEND"
    assert unsure.options == [{"title": "怎么退货", "confidence": "50%"}]


def test_debug_and_online_differ_until_the_bot_is_published(ticking, skill, actor):
    reply = make_reply(skill, actor)
    assert reply_push(reply=reply, actor=actor).ok
    publish(skill.bot, actor)
    reply = reply_update(
        reply=reply,
        title=reply.title,
        questions=reply.questions,
        answer=answer_from_editor(NEW),
        actor=actor,
    )
    debug = bot_ask(bot=fresh(skill.bot), query="怎么退货", env="debug", userid="u1")
    assert debug.warnings == [
        "The bot answers with other content than the console's reply, which was changed and "
        "not pushed yet."
    ]
    assert reply_push(reply=reply, actor=actor).ok
    debug = bot_ask(bot=fresh(skill.bot), query="怎么退货", env="debug", userid="u1")
    online = bot_ask(bot=fresh(skill.bot), query="怎么退货", env="online", userid="u1")
    assert debug.preview["segments"][0]["text"] == "新的答案" and debug.warnings == []
    assert online.preview["segments"][0]["text"] == "旧的答案"
    assert online.warnings == [
        "Online answers with other content than the console's reply, which is pushed but not "
        "live yet: publish the chatbot."
    ]
    publish(skill.bot, actor)
    online = bot_ask(bot=fresh(skill.bot), query="怎么退货", env="online", userid="u1")
    assert online.preview["segments"][0]["text"] == "新的答案" and online.warnings == []


def test_a_reply_the_console_does_not_know_and_a_misrouted_question_are_warned(
    sandbox, skill, actor
):
    expected = make_reply(skill, actor)  # has “如何退货”, never pushed
    other = make_reply(skill, actor, title="怎么换货", questions=())
    client = client_for(fresh(skill.bot))
    # On the platform, “如何退货” is a question of the other reply (pushed elsewhere).
    client.set_autoreply(
        managerid=DEMO.bot_manager_id,
        skillname="售后服务",
        title="怎么换货",
        content="换货请联系客服",
        questions=["如何退货"],
    )
    client.set_autoreply(
        managerid=DEMO.bot_manager_id, skillname="旧技能", title="老问题", content="老答案"
    )
    misrouted = bot_ask(bot=fresh(skill.bot), query="如何退货", env="debug", userid="u1")
    assert misrouted.reply_id == other.pk
    assert (
        f"The console expects the reply “{expected.title}” to answer this question, but the "
        f"bot answered with “{other.title}”." in misrouted.warnings
    )
    unknown = bot_ask(bot=fresh(skill.bot), query="老问题", env="debug", userid="u1")
    assert unknown.reply_id is None
    assert unknown.warnings[0].startswith(
        "The bot answered with “老问题” (skill “旧技能”), which the console does not know"
    )


@pytest.mark.parametrize(
    "body",
    [
        "<html><body>请稍后再试</body></html>",
        "not json at all",
        '{"answer": "hi"}',
        '{"status": "FAQ", "options": "many"}',
        '{"status": "FAQ_RECOMMEND", "options": [{"title": "x", "confidence": "high"}]}',
        '{"data": {"status": 5}}',
        "[]",
    ],
)
def test_bad_answers_from_the_platform_are_a_sentence(sandbox, demo_bot, body):
    sandbox.faults.add(FaultRule(platform="chatbot", endpoint="/openapi/aibot", body=body))
    outcome = bot_ask(bot=fresh(demo_bot), query="你好", env="online", userid="u1")
    assert not outcome.ok and outcome.error
    assert "{" not in outcome.error and "<" not in outcome.error


def test_a_platform_refusal_is_its_sentence(sandbox, demo_bot):
    sandbox.faults.add(FaultRule(platform="chatbot", endpoint="/openapi/aibot", errcode=1001))
    outcome = bot_ask(bot=fresh(demo_bot), query="你好", env="online", userid="u1")
    assert outcome.error.startswith("The bot's TOKEN is not valid")


# ---- the panel's endpoint --------------------------------------------------------------------


def test_ask_endpoint_side_by_side_for_an_auditor_without_secrets(
    client, auditor, sandbox, skill, actor
):
    reply = make_reply(skill, actor)
    assert reply_push(reply=reply, actor=actor).ok
    client.login(username=auditor.username, password=PASSWORD)
    url = reverse("admin:chatbot_autoreply_ask")
    answer = client.post(url, {"bot": skill.bot_id, "query": "如何退货", "env": "both"})
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["env"] for r in results] == ["debug", "online"]
    assert results[0]["reply_url"] == reverse("admin:chatbot_autoreply_change", args=[reply.pk])
    assert results[1]["status"] == "NOMATCH"
    text = answer.content.decode()
    assert KEY not in text and DEMO.bot_token not in text
    page = client.get(reverse("admin:chatbot_autoreply_change", args=[reply.pk]))
    assert b"data-ask-bot" in page.content and b"chatbot/ask_bot.js" in page.content


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"bot": "x", "query": "你好", "env": "debug"}, 404),
        ({"bot": "1\x00", "query": "你好", "env": "debug"}, 404),
        ({"bot": "99999", "query": "你好", "env": "debug"}, 404),
        ({"query": "", "env": "debug"}, 400),
        ({"query": "a\x01b", "env": "debug"}, 400),
        ({"query": "x" * 201, "env": "debug"}, 400),
        ({"query": "你好", "env": "prod"}, 400),
    ],
)
def test_hostile_asks_get_a_4xx_with_a_sentence(client, editor, demo_bot, data, status):
    client.login(username=editor.username, password=PASSWORD)
    data = {"bot": demo_bot.pk, **data}
    answer = client.post(reverse("admin:chatbot_autoreply_ask"), data)
    assert answer.status_code == status
    if status == 400:
        assert answer.json()["error"][-1] in ".。"


def test_ask_is_post_only(client, editor):
    client.login(username=editor.username, password=PASSWORD)
    assert client.get(reverse("admin:chatbot_autoreply_ask")).status_code == 405


def test_the_preview_shows_a_rich_answer_as_the_editor_would(sandbox, skill, actor):
    rich = {
        "type": "image",
        "media_id": "KegpipQG9t-klMo25My4e4BCZFcmKvgMcpMFAkC-VFE",
        "url": "http://mmbiz.qpic.cn/mmbiz_jpg/W3gQtpV3j8Bax22/0?wx_fmt=jpeg",
    }
    reply = make_reply(skill, actor, content=rich)
    assert reply_push(reply=reply, actor=actor).ok
    outcome = bot_ask(bot=fresh(skill.bot), query="怎么退货", env="debug", userid="u1")
    assert outcome.preview == rich and outcome.warnings == []
    assert json.dumps(outcome.as_json(), ensure_ascii=False)
