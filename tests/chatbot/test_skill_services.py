"""Renaming or deleting a skill whose replies were pushed: the services say what stays behind."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from chatbot.models import AutoReply, Skill
from chatbot.services import (
    LeftoverNotConfirmed,
    reply_push,
    skill_delete,
    skill_rename,
)

from .conftest import EVERY_TYPE, saved_reply

pytestmark = pytest.mark.usefixtures("fast_platform")


@pytest.fixture
def pushed(sandbox, skill, actor) -> AutoReply:
    reply = saved_reply(
        skill, actor, title="怎么退货？", questions=["退货流程"], content=EVERY_TYPE["text_menu"]
    )
    assert reply_push(reply=reply, actor=actor).ok
    reply.refresh_from_db()
    assert reply.pushed_title
    return reply


def test_renaming_a_skill_with_pushed_replies_needs_the_user_to_know(pushed, skill, actor):
    with pytest.raises(LeftoverNotConfirmed) as refused:
        skill_rename(skill=skill, name="售后", actor=actor)
    assert skill.name in refused.value.messages[0]
    assert Skill.objects.get(pk=skill.pk).name == skill.name, "nothing renamed"
    skill_rename(skill=skill, name="售后", actor=actor, leftover_confirmed=True)
    assert Skill.objects.get(pk=skill.pk).name == "售后"


def test_deleting_a_skill_records_each_reply_and_the_skill(pushed, skill, actor):
    skill_pk, reply_pk = skill.pk, pushed.pk
    skill_delete(skill=skill, actor=actor, leftover_confirmed=True)
    assert not Skill.objects.filter(pk=skill_pk).exists()
    deletions = LogEntry.objects.filter(action_flag=3, user=actor.user)
    assert {entry.object_id for entry in deletions} == {str(skill_pk), str(reply_pk)}
