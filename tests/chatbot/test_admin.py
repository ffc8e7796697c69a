"""The reply editor in the admin: structured fields, save and push, warnings, roles, queries."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chatbot.answers import answer_from_content, answer_from_editor, answer_to_editor
from chatbot.models import AutoReply, ReplySyncState, Skill
from chatbot.services import reply_create, reply_push
from tests.conftest import PASSWORD
from wecom.sandbox import DEMO

from .conftest import EVERY_TYPE, MULTI, saved_reply

pytestmark = pytest.mark.usefixtures("fast_platform")

ADD = "/admin/chatbot/autoreply/add/"


def change_url(reply) -> str:
    return reverse("admin:chatbot_autoreply_change", args=[reply.pk])


def form_data(skill, *, title="怎么退货？", questions="如何退货\n退货流程", answer=MULTI, **extra):
    return {
        "skill": skill.pk,
        "title": title,
        "questions": questions,
        "managerid": "",
        "answer": json.dumps(answer, ensure_ascii=False),
        **extra,
    }


@pytest.fixture
def editor_client(client, editor):
    client.login(username=editor.username, password=PASSWORD)
    return client


def test_the_add_page_has_the_structured_editor_and_no_inline_script(editor_client, skill):
    page = editor_client.get(ADD, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "data-answer-editor" in page and 'data-tpl="article"' in page
    assert "chatbot/answer_editor.js" in page
    assert "插入推荐问题" in page and "保存并推送" in page
    # Every <script> has a src (or is a JSON data block): nothing inline runs.
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in tag or "application/json" in tag, tag


def test_save_stores_the_answer_in_the_seeds_format_and_marks_it_changed(
    editor_client, skill, sandbox
):
    response = editor_client.post(ADD, form_data(skill, **{"_continue": "1"}))
    assert response.status_code == 302, response.content.decode()[:3000]
    reply = AutoReply.objects.get()
    assert reply.questions == ["如何退货", "退货流程"]
    assert answer_to_editor(answer_from_content(reply.content)) == MULTI
    assert reply.sync_state == ReplySyncState.CHANGED
    assert sandbox.total_calls() == 0


@pytest.mark.parametrize("name", sorted(EVERY_TYPE))
def test_save_and_push_round_trips_every_type_through_the_sandbox(
    editor_client, skill, sandbox, name
):
    response = editor_client.post(
        ADD, form_data(skill, title=f"问题{name}", answer=EVERY_TYPE[name], _saveandpush="1")
    )
    reply = AutoReply.objects.get()
    assert response.status_code == 302 and response["Location"] == change_url(reply)
    entry = sandbox.state.chatbot.skills(DEMO.bot_appid)[("售后服务", f"问题{name}")]
    content = entry["content"]
    sent = json.loads(content) if content.startswith("{") else content
    # What the sandbox decrypted and parsed is what the form expressed.
    assert answer_to_editor(answer_from_content(sent)) == EVERY_TYPE[name]
    assert entry["questions"] == ["如何退货", "退货流程"]
    reply.refresh_from_db()
    assert reply.sync_state == ReplySyncState.IN_SYNC
    page = editor_client.get(change_url(reply)).content.decode()
    assert "平台已接受" in page


def test_refusals_are_shown_by_the_field_and_nothing_is_saved(editor_client, skill, sandbox):
    bad = {
        "type": "news",
        "articles": [{"title": "<script>alert(1)</script>", "url": "javascript:alert(1)"}],
    }
    response = editor_client.post(ADD, form_data(skill, answer=bad, _saveandpush="1"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "第 1 篇文章：链接必须是以 http:// 或 https:// 开头的网址" in page
    assert "<script>alert(1)</script>" not in page
    assert not AutoReply.objects.exists() and sandbox.total_calls() == 0


def test_a_push_failure_is_a_sentence_and_the_reply_stays_saved(editor_client, skill, sandbox):
    from wecom.sandbox import FaultRule

    sandbox.faults.add(
        FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", errcode=1002)
    )
    response = editor_client.post(ADD, form_data(skill, _saveandpush="1"), follow=True)
    page = response.content.decode()
    assert "机器人尚未通过平台审核" in page or "1002" in page
    reply = AutoReply.objects.get()
    assert reply.sync_state == ReplySyncState.FAILED


def test_changing_the_question_of_a_pushed_reply_asks_first(editor_client, skill, sandbox, actor):
    reply = saved_reply(skill, actor, title="旧问题")
    reply_push(reply=reply, actor=actor)
    data = form_data(skill, title="新问题", questions="", answer=EVERY_TYPE["text"], _continue="1")
    response = editor_client.post(change_url(reply), data)
    assert response.status_code == 200
    assert "旧条目仍留在平台上" in response.content.decode()
    assert AutoReply.objects.get().title == "旧问题"
    response = editor_client.post(change_url(reply), {**data, "leftover_confirmed": "on"})
    assert response.status_code == 302
    assert AutoReply.objects.get().title == "新问题"


def test_deleting_a_pushed_reply_says_what_stays_before_confirming(
    editor_client, skill, sandbox, actor
):
    reply = saved_reply(skill, actor)
    reply_push(reply=reply, actor=actor)
    delete = reverse("admin:chatbot_autoreply_delete", args=[reply.pk])
    page = editor_client.get(delete).content.decode()
    assert "平台没有删除接口" in page
    editor_client.post(delete, {"post": "yes"})
    assert not AutoReply.objects.exists()


def test_clashing_questions_are_flagged_with_links_to_both(editor_client, skill, actor):
    answer = answer_from_editor(EVERY_TYPE["text"])
    first = reply_create(
        skill=skill, title="a", questions=["同一个问法"], answer=answer, actor=actor
    )
    second = reply_create(
        skill=skill, title="b", questions=["同一个问法"], answer=answer, actor=actor
    )
    page = editor_client.get(change_url(first)).content.decode()
    assert change_url(second) in page and "“同一个问法”" in page
    page = editor_client.get(change_url(second)).content.decode()
    assert change_url(first) in page
    listing = editor_client.get("/admin/chatbot/autoreply/").content.decode()
    assert listing.count("chatbot-clash") >= 2


def test_the_auditor_sees_the_reply_and_can_change_nothing(client, auditor, skill, actor):
    reply = reply_create(
        skill=skill, title="q", questions=["x"], answer=answer_from_editor(MULTI), actor=actor
    )
    client.login(username=auditor.username, password=PASSWORD)
    page = client.get(change_url(reply)).content.decode()
    assert "data-answer-readonly" in page and "data-answer-editor" not in page
    form = page[
        page.index('id="autoreply_form"') : page.index("</form>", page.index('id="autoreply_form"'))
    ]
    assert 'type="submit"' not in form and "<textarea" not in form and "<select" not in form
    assert re.findall(r"<input[^>]*>", form) == re.findall(r"<input[^>]*csrfmiddleware[^>]*>", form)
    response = client.post(change_url(reply), {"title": "changed"})
    assert response.status_code == 403
    assert client.get(ADD).status_code == 403
    assert AutoReply.objects.get().title == "q"


def test_the_changelist_runs_a_constant_number_of_queries(editor_client, skill):
    def make(count: int, start: int) -> None:
        AutoReply.objects.bulk_create(
            AutoReply(skill=skill, title=f"问题 {n}", questions=[f"问法 {n}"], content=f"答 {n}")
            for n in range(start, start + count)
        )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert editor_client.get("/admin/chatbot/autoreply/").status_code == 200
        return len(captured)

    make(5, 0)
    few = queries()
    make(2000, 5)
    assert queries() == few


def test_skills_are_created_and_renamed_through_the_services_with_one_history_entry_each(
    editor_client, demo_bot, sandbox, actor
):
    from django.contrib.admin.models import LogEntry

    response = editor_client.post(
        "/admin/chatbot/skill/add/", {"bot": demo_bot.pk, "name": " 物流 "}
    )
    assert response.status_code == 302
    skill = Skill.objects.get(name="物流")
    assert (
        LogEntry.objects.filter(object_id=str(skill.pk), content_type__model="skill").count() == 1
    )
    reply = saved_reply(skill, actor)
    reply_push(reply=reply, actor=actor)
    url = f"/admin/chatbot/skill/{skill.pk}/change/"
    response = editor_client.post(url, {"name": "物流配送"})
    assert response.status_code == 200 and "平台没有删除接口" in response.content.decode()
    response = editor_client.post(url, {"name": "物流配送", "leftover_confirmed": "on"})
    assert response.status_code == 302
    reply.refresh_from_db()
    assert reply.skill.name == "物流配送" and reply.sync_state == ReplySyncState.CHANGED
    listing = editor_client.get("/admin/chatbot/skill/").content.decode()
    assert "物流配送" in listing


def test_the_history_of_a_reply_tells_who_pushed_what_and_the_result(
    editor_client, skill, sandbox, actor
):
    reply = saved_reply(skill, actor)
    reply_push(reply=reply, actor=actor)
    page = editor_client.get(
        reverse("admin:chatbot_autoreply_history", args=[reply.pk])
    ).content.decode()
    assert "已推送到对话平台：平台已接受。" in page and "editor" in page


def test_the_dashboard_says_how_many_replies_wait_for_a_push(editor_client, skill, actor):
    saved_reply(skill, actor)
    page = editor_client.get("/admin/").content.decode()
    assert "对话机器人技能" in page and "1 条已修改，尚未推送。" in page


def test_the_auditor_reads_a_skill_with_pushed_replies(client, auditor, skill, sandbox, actor):
    reply = saved_reply(skill, actor)
    reply_push(reply=reply, actor=actor)
    client.login(username=auditor.username, password=PASSWORD)
    response = client.get(f"/admin/chatbot/skill/{skill.pk}/change/")
    assert response.status_code == 200
    assert 'name="name"' not in response.content.decode()
    assert client.get("/admin/chatbot/skill/").status_code == 200
    assert client.get("/admin/chatbot/autoreply/").status_code == 200


def test_the_roles_cover_the_chatbot_models(editor, auditor, credential_admin):
    for action in ("view", "add", "change", "delete"):
        for model in ("skill", "autoreply"):
            assert editor.has_perm(f"chatbot.{action}_{model}")
            assert auditor.has_perm(f"chatbot.{action}_{model}") is (action == "view")
            assert not credential_admin.has_perm(f"chatbot.{action}_{model}")
    assert editor.has_perm("chatbot.push_autoreply")
    assert not auditor.has_perm("chatbot.push_autoreply")
