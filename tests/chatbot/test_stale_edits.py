"""Issue 15, chatbot: a reply or skill form opened before someone else's save is refused with
who, when and both values, losing nothing; a reply's History shows its answer as text."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import translation

from chatbot.answers import TextAnswer, text_segments
from chatbot.models import AutoReply, Skill
from chatbot.services import reply_create, reply_update
from console.audit import audit_context
from tests.conftest import PASSWORD


def text(value: str) -> dict:
    return {"type": "text", "segments": [{"kind": "text", "text": value}]}


def reply_form(reply: AutoReply, *, questions: list[str], answer: str, version: int) -> dict:
    return {
        "skill": reply.skill_id,
        "title": reply.title,
        "questions": "\n".join(questions),
        "managerid": "",
        "answer": json.dumps(text(answer), ensure_ascii=False),
        "expected_version": version,
    }


@pytest.fixture
def reply(skill, actor) -> AutoReply:
    return reply_create(
        skill=skill,
        title="怎么退货？",
        questions=["如何退货"],
        answer=TextAnswer(segments=text_segments("七天内可退。")),
        actor=actor,
    )


def logged_in(client, user):
    client.login(username=user.username, password=PASSWORD)
    client.cookies["django_language"] = "en"
    return client


def test_a_stale_reply_form_is_refused_and_the_first_editors_question_stays(
    client, editor, make_user, reply
):
    from django.test import Client

    first = logged_in(Client(), make_user("first", role=None, superuser=True))
    second = logged_in(client, editor)
    url = reverse("admin:chatbot_autoreply_change", args=[reply.pk])
    opened = reply.version  # both pages were loaded now
    assert f'name="expected_version" value="{opened}"' in second.get(url).content.decode()
    saved = first.post(
        url,
        reply_form(
            reply, questions=["如何退货", "退货流程"], answer="七天内可退。", version=opened
        ),
    )
    assert saved.status_code == 302
    page = second.post(
        url, reply_form(reply, questions=["如何退货"], answer="十五天内可退。", version=opened)
    ).content.decode()
    assert "Changed by first" in page
    assert "退货流程" in page and "十五天内可退。" in page and "七天内可退。" in page
    reply.refresh_from_db()
    assert reply.questions == ["如何退货", "退货流程"]
    assert reply.content == "七天内可退。"
    # The refused form now carries the version it was shown: saving it again overwrites.
    assert f'name="expected_version" value="{reply.version}"' in page


def test_a_stale_skill_rename_is_refused(client, editor, make_user, skill, actor):
    from chatbot.services import skill_rename

    opened = skill.version
    skill_rename(skill=skill, name="售后", actor=actor)
    page = (
        logged_in(client, editor)
        .post(
            reverse("admin:chatbot_skill_change", args=[skill.pk]),
            {"name": "退换货", "expected_version": opened},
        )
        .content.decode()
    )
    assert "Changed by editor" in page and "售后" in page and "退换货" in page
    assert Skill.objects.get(pk=skill.pk).name == "售后"


def test_a_replys_history_shows_the_answer_as_text_never_a_dict(reply, actor):
    from chatbot.answers import answer_from_editor

    news = {
        "type": "news",
        "articles": [{"title": "退货指南", "url": "https://example.com/a", "description": ""}],
    }
    with translation.override("zh-hans"):  # values are written in the editor's language
        reply_update(
            reply=reply,
            title=reply.title,
            questions=reply.questions,
            answer=answer_from_editor(news),
            actor=actor,
        )
    entry = LogEntry.objects.filter(object_id=str(reply.pk)).latest("pk")
    change = next(c for c in audit_context(entry).changes if c.field == "content")
    assert (change.old, change.new) == ("七天内可退。", "图文：退货指南")
    assert "{" not in entry.change_message.split('"values"')[1]
