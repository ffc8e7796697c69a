"""Replies pushed to the sandbox over real HTTP: what it decrypts is what was edited; failures
are sentences and leave the reply not in sync; the platform's leftovers are said before."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.utils import translation

from chatbot.answers import answer_from_content, answer_from_editor, answer_to_editor
from chatbot.models import AutoReply, ReplySyncState, Skill
from chatbot.services import (
    LeftoverNotConfirmed,
    reply_create,
    reply_delete,
    reply_push,
    reply_update,
)
from wecom.sandbox import DEMO, FaultRule

from .conftest import EVERY_TYPE, saved_reply

pytestmark = pytest.mark.usefixtures("fast_platform")


def sandbox_entry(sandbox, skill: str, title: str) -> dict:
    return sandbox.state.chatbot.skills(DEMO.bot_appid)[(skill, title)]


@pytest.mark.parametrize("name", sorted(EVERY_TYPE))
def test_what_the_sandbox_decrypts_equals_what_was_edited(sandbox, skill, actor, name):
    edited = EVERY_TYPE[name]
    reply = saved_reply(
        skill,
        actor,
        title=f"问题 {name} ]]> 🎉",
        questions=["相似问法一", "相似问法二 <script>"],
        content=edited,
    )
    outcome = reply_push(reply=reply, actor=actor)
    assert outcome.ok, outcome.message
    entry = sandbox_entry(sandbox, "售后服务", f"问题 {name} ]]> 🎉")
    content = entry["content"]
    parsed = json.loads(content) if content.startswith("{") else content
    assert answer_to_editor(answer_from_content(parsed)) == edited
    assert entry["questions"] == ["相似问法一", "相似问法二 <script>"]
    assert entry["managerid"] == DEMO.bot_manager_id
    recorded = [r for r in sandbox.requests if r.endpoint == "/openapi/setautoreply"][-1]
    assert recorded.xml["skillname"] == "售后服务"
    assert "\\u" not in content  # UTF-8 JSON, not escaped
    reply.refresh_from_db()
    assert reply.sync_state == ReplySyncState.IN_SYNC
    assert reply.last_pushed_at is not None
    assert (reply.pushed_skillname, reply.pushed_title) == ("售后服务", f"问题 {name} ]]> 🎉")


def test_one_call_per_push(sandbox, skill, actor):
    reply = saved_reply(skill, actor)
    sandbox.reset_stats()
    reply_push(reply=reply, actor=actor)
    assert sandbox.stats() == {"chatbot /openapi/setautoreply": 1}


def test_a_rich_answer_is_accepted_with_the_advice_to_check_the_test_window(sandbox, skill, actor):
    reply = saved_reply(skill, actor, content=EVERY_TYPE["news"])
    with translation.override("en"):
        outcome = reply_push(reply=reply, actor=actor)
    assert outcome.ok and "test window" in outcome.message


@pytest.mark.parametrize("errcode", [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008])
def test_platform_errors_are_sentences_and_leave_the_reply_not_in_sync(
    sandbox, skill, actor, errcode
):
    reply = saved_reply(skill, actor)
    sandbox.faults.add(
        FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", errcode=errcode)
    )
    with translation.override("en"):
        outcome = reply_push(reply=reply, actor=actor)
    assert not outcome.ok
    assert f"(Error code {errcode}.)" in outcome.message
    assert "errcode" not in outcome.message and "{" not in outcome.message
    reply.refresh_from_db()
    assert reply.sync_state == ReplySyncState.FAILED
    assert reply.sync_message == outcome.message
    assert reply.last_pushed_at is None
    entry = LogEntry.objects.filter(object_id=str(reply.pk)).latest("pk")
    assert "Push failed" in entry.change_message


def test_a_wrong_token_is_explained(sandbox, skill, actor):
    bot = skill.bot
    bot.token = "WrongToken0123456789"
    bot.save()
    reply = saved_reply(skill, actor)
    with translation.override("en"):
        outcome = reply_push(reply=reply, actor=actor)
    assert outcome.message.startswith("The bot's TOKEN is not valid")
    assert outcome.reason_code == "1001"


def test_a_transport_failure_is_a_sentence(sandbox, skill, actor):
    reply = saved_reply(skill, actor)
    sandbox.faults.add(FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", drop=True))
    outcome = reply_push(reply=reply, actor=actor)
    assert not outcome.ok and outcome.reason_code == "transport"
    assert outcome.message and "Traceback" not in outcome.message
    reply.refresh_from_db()
    assert reply.sync_state == ReplySyncState.FAILED


def test_the_same_similar_question_in_two_replies_is_not_pushed(sandbox, skill, actor):
    first = saved_reply(skill, actor, title="怎么退货", questions=["退货流程"])
    other_skill = Skill.objects.create(bot=skill.bot, name="物流")
    saved_reply(other_skill, actor, title="退货运费", questions=["退货流程"])
    sandbox.reset_stats()
    with translation.override("en"):
        outcome = reply_push(reply=first, actor=actor)
    assert not outcome.ok and "“退货流程” is also in the reply “退货运费”" in outcome.message
    assert sandbox.total_calls() == 0


def test_editing_marks_changed_and_an_unchanged_save_does_not(sandbox, skill, actor):
    reply = saved_reply(skill, actor, questions=["a"])
    reply_push(reply=reply, actor=actor)
    reply.refresh_from_db()
    entries = LogEntry.objects.count()
    reply_update(reply=reply, title="q", questions=["a"], answer=reply.answer, actor=actor)
    reply.refresh_from_db()
    assert reply.sync_state == ReplySyncState.IN_SYNC and LogEntry.objects.count() == entries
    reply_update(reply=reply, title="q", questions=["a", "b"], answer=reply.answer, actor=actor)
    reply.refresh_from_db()
    assert reply.sync_state == ReplySyncState.CHANGED
    assert "similar questions" in LogEntry.objects.latest("pk").change_message


def test_changing_the_question_of_a_pushed_reply_needs_the_leftover_confirmed(
    sandbox, skill, actor
):
    reply = saved_reply(skill, actor, title="旧问题")
    reply_push(reply=reply, actor=actor)
    with translation.override("en"), pytest.raises(LeftoverNotConfirmed) as caught:
        reply_update(reply=reply, title="新问题", questions=[], answer=reply.answer, actor=actor)
    assert "is on the dialogue platform as “旧问题”" in caught.value.messages[0]
    assert AutoReply.objects.get(pk=reply.pk).title == "旧问题"
    reply_update(
        reply=reply,
        title="新问题",
        questions=[],
        answer=reply.answer,
        actor=actor,
        leftover_confirmed=True,
    )
    reply_push(reply=reply, actor=actor)
    skills = sandbox.state.chatbot.skills(DEMO.bot_appid)
    # Both: the platform has no delete call.
    assert {("售后服务", "旧问题"), ("售后服务", "新问题")} <= set(skills)


def test_deleting_a_pushed_reply_needs_the_leftover_confirmed(sandbox, skill, actor):
    reply = saved_reply(skill, actor)
    unpushed = saved_reply(skill, actor, title="q2")
    reply_delete(reply=unpushed, actor=actor)  # never pushed: nothing to warn about
    reply_push(reply=reply, actor=actor)
    reply.refresh_from_db()
    with pytest.raises(LeftoverNotConfirmed):
        reply_delete(reply=reply, actor=actor)
    reply_delete(reply=reply, actor=actor, leftover_confirmed=True)
    assert not AutoReply.objects.exists()


def test_a_duplicate_standard_question_in_a_skill_is_refused(skill, actor):
    answer = answer_from_editor(EVERY_TYPE["text"])
    reply_create(skill=skill, title="q", questions=[], answer=answer, actor=actor)
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        reply_create(skill=skill, title="q", questions=[], answer=answer, actor=actor)
    assert "has a reply to “q” already" in " ".join(caught.value.messages)


def test_rich_answers_are_sent_with_the_seeds_key_order_whatever_the_database_keeps(
    sandbox, skill, actor
):
    reply = saved_reply(skill, actor, content=EVERY_TYPE["multimsg"])
    # What PostgreSQL's jsonb does to an object's keys (shorter first).
    mini = reply.content["multimsg"][2]["miniprogrampage"]
    shuffled = dict(sorted(mini.items(), key=lambda item: (len(item[0]), item[0])))
    reply.content["multimsg"][2]["miniprogrampage"] = shuffled
    AutoReply.objects.filter(pk=reply.pk).update(content=reply.content)
    reply_push(reply=reply, actor=actor)
    sent = sandbox_entry(sandbox, "售后服务", "q")["content"]
    assert '"miniprogrampage":{"title":"对话插件","appid":"wx8c631f7e9f2465e1","pagepath"' in sent
    reply.refresh_from_db()
    assert list(reply.export_row()["content"]["multimsg"][2]["miniprogrampage"]) == [
        "title",
        "appid",
        "pagepath",
        "thumb_media_id",
        "thumb_url",
    ]
