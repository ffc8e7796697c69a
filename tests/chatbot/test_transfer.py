"""Import and export, JSON and CSV: row-by-row plans, one transaction, constant queries, the CLI."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from chatbot.answers import answer_from_editor
from chatbot.models import AutoReply, ReplySyncState, Skill
from chatbot.services import reply_create
from chatbot.transfer import (
    ImportFileError,
    export_csv,
    export_json,
    import_plan,
    read_csv,
    read_file,
    read_json,
    replies_import,
)

from .conftest import EVERY_TYPE, make_bot


def row(n: int, **extra) -> dict:
    return {
        "skillname": "售后",
        "title": f"问题 {n}",
        "questions": [f"问法 {n}"],
        "content": f"回答 {n}",
        "managerid": "",
        **extra,
    }


@pytest.fixture
def filled_bot(demo_bot, actor):
    """One reply of every answer type, with hostile but valid content."""
    skill = Skill.objects.create(bot=demo_bot, name="售后服务")
    other = Skill.objects.create(bot=demo_bot, name="活动 ]]> 🎉")
    for number, (name, answer) in enumerate(sorted(EVERY_TYPE.items())):
        reply_create(
            skill=skill if number % 2 else other,
            title=f"{name} <script>alert(1)</script>",
            questions=[f"{name} 问法一", f'{name}, "引号"\n'],
            answer=answer_from_editor(answer),
            managerid="m_1" if number == 3 else "",
            actor=actor,
        )
    return demo_bot


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_then_import_gives_back_the_same_replies(filled_bot, actor, fmt):
    before = sorted(
        (r.skill.name, r.title, r.questions, json.dumps(r.content, ensure_ascii=False), r.managerid)
        for r in AutoReply.objects.select_related("skill")
    )
    text = export_json(bot=filled_bot) if fmt == "json" else export_csv(bot=filled_bot)
    records = read_json(text.encode()) if fmt == "json" else read_csv(text.encode("utf-8"))
    # Into the same bot: nothing changes.
    plan = replies_import(bot=filled_bot, records=records, actor=actor)
    assert plan.counts == {"created": 0, "changed": 0, "unchanged": len(before), "refused": 0}
    # Into a fresh bot: the same replies.
    other = make_bot("另一个机器人", token="OtherToken0123456789")
    plan = replies_import(bot=other, records=records, actor=actor)
    assert plan.count("created") == len(before)
    after = sorted(
        (r.skill.name, r.title, r.questions, json.dumps(r.content, ensure_ascii=False), r.managerid)
        for r in AutoReply.objects.filter(skill__bot=other).select_related("skill")
    )
    assert after == before


def test_the_csv_puts_single_answers_in_columns_a_spreadsheet_user_can_edit(filled_bot):
    text = export_csv(bot=filled_bot)
    assert text.startswith("\ufeffskillname,title,questions,managerid,answer_type,text,news_title")
    records = {r["title"].split(" ")[0]: r for r in read_csv(text.encode())}
    assert records["news"]["content"]["news"]["articles"][1]["type"] == "mp"
    import csv

    rows = {r["title"].split(" ")[0]: r for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
    assert rows["news"]["news_title"] == "实时更新：活动进展\n第二篇"
    assert rows["image"]["image_media_id"].startswith("Kegpip")
    assert rows["miniprogrampage"]["mp_appid"] == "wx8c631f7e9f2465e1"
    assert (
        rows["text_link"]["text"]
        == '请前往<a href="https://chatbot.weixin.qq.com/">openai</a>配置 🎉'
    )
    assert rows["multimsg"]["answer_type"] == "multimsg" and rows["multimsg"]["content_json"]
    assert rows["text"]["content_json"] == ""


def test_a_csv_saved_by_a_chinese_spreadsheet_program_is_read(filled_bot):
    text = export_csv(bot=filled_bot).lstrip("\ufeff").replace("\r\n", "\n")
    records = read_csv(text.encode("gb18030", errors="replace"))
    assert any(r["skillname"] == "售后服务" for r in records)


def test_edits_are_reported_row_by_row_and_bad_rows_refused_with_reasons(demo_bot, actor):
    replies_import(bot=demo_bot, records=[row(1), row(2), row(3)], actor=actor)
    records = [
        row(1),  # unchanged
        row(2, content="新的回答"),  # changed
        row(4),  # new
        row(5, content={"news": {"articles": [{"title": "t", "url": "javascript:alert(1)"}]}}),
        row(6, content="x" * 10_000),
        row(7, title="bad\x00"),
        "not an object",
        row(4),  # the same key again
        row(8, questions="not a list"),
        row(9, colour="red"),
    ]
    with translation.override("en"):
        plan = import_plan(bot=demo_bot, records=records)
    statuses = [r.status for r in plan.rows]
    assert statuses == [
        "unchanged",
        "changed",
        "created",
        "refused",
        "refused",
        "refused",
        "refused",
        "refused",
        "refused",
        "refused",
    ]
    reasons = {r.number: " ".join(r.reasons) for r in plan.rows}
    assert "Article 1: The link must be a web address" in reasons[4]
    assert "at most 2000 characters" in reasons[5]
    assert "control or invisible character" in reasons[6]
    assert "Row 3 has the same skill and standard question" in reasons[8]
    assert "must be a list of texts" in reasons[9]
    assert "Unknown field(s): colour" in reasons[10]
    assert plan.rows[1].changed_fields == ["content"]
    with translation.override("zh-hans"):
        assert plan.rows[1].changed_labels == ["回答"], "names a person reads, not code names"
    # Nothing is saved by a plan.
    assert AutoReply.objects.count() == 3


def test_an_import_saves_accepted_rows_in_one_transaction_and_marks_them_changed(
    demo_bot, actor, django_assert_max_num_queries
):
    replies_import(bot=demo_bot, records=[row(1)], actor=actor)
    long_ago = timezone.now() - timedelta(days=3)
    AutoReply.objects.update(sync_state=ReplySyncState.IN_SYNC, updated_at=long_ago)
    records = [row(1, questions=["新问法"]), row(2), row(3, skillname="新技能"), row(4, title="")]
    with CaptureQueriesContext(connection) as captured:
        plan = replies_import(bot=demo_bot, records=records, actor=actor)
    assert plan.counts == {"created": 2, "changed": 1, "unchanged": 0, "refused": 1}
    sql = [q["sql"] for q in captured.captured_queries]
    assert sum(1 for s in sql if s.startswith("SAVEPOINT") or s == "BEGIN") <= 1
    assert set(AutoReply.objects.values_list("sync_state", flat=True)) == {ReplySyncState.CHANGED}
    assert AutoReply.objects.get(title="问题 1").updated_at > long_ago, "the change time moves"
    assert Skill.objects.filter(name="新技能").exists()
    entry = LogEntry.objects.filter(object_repr="问题 1").latest("pk")
    assert "新问法" in entry.change_message and "Imported from a file" in entry.change_message


def test_a_failing_import_saves_nothing(demo_bot, actor, monkeypatch):
    from chatbot import transfer

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(transfer, "audit_record_many", broken)
    with pytest.raises(RuntimeError):
        replies_import(bot=demo_bot, records=[row(1), row(2)], actor=actor)
    assert not AutoReply.objects.exists() and not Skill.objects.exists()


def test_the_import_plan_of_2000_replies_runs_a_constant_number_of_queries(demo_bot, actor):
    records = [row(n) for n in range(2000)]
    replies_import(bot=demo_bot, records=records[:1000], actor=actor)
    with CaptureQueriesContext(connection) as few:
        import_plan(bot=demo_bot, records=records[:10])
    with CaptureQueriesContext(connection) as many:
        plan = import_plan(bot=demo_bot, records=records)
    assert len(many) == len(few) == 2
    assert plan.counts == {"created": 1000, "changed": 0, "unchanged": 1000, "refused": 0}
    with CaptureQueriesContext(connection) as applying:
        replies_import(bot=demo_bot, records=records, actor=actor)
    assert AutoReply.objects.count() == 2000
    # Bulk statements: a handful of queries for 1,000 new replies, not one per reply.
    # (SQLite takes 999 variables a statement: the INSERTs come in batches of ~70 replies.)
    assert len(applying) < 32


def test_unreadable_files_are_explained():
    with translation.override("en"):
        with pytest.raises(ImportFileError, match="not valid JSON"):
            read_json(b"[{")
        with pytest.raises(ImportFileError, match="must hold a list"):
            read_json(b'{"a": 1}')
        with pytest.raises(ImportFileError, match="lacks the column"):
            read_csv(b"name,answer\nx,y\n")
        with pytest.raises(ImportFileError, match="neither UTF-8 nor GB18030"):
            read_file("x.csv", b"\xff\xfe\x00\x81\x30")


# ---- the CLI -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def english_terminal(monkeypatch):
    monkeypatch.setenv("LANGUAGE", "en_US.UTF-8")


def test_skills_export_and_import_on_the_command_line(filled_bot, tmp_path, capsys):
    out = io.StringIO()
    call_command("skills", "export", "--bot", filled_bot.name, stdout=out)
    exported = json.loads(out.getvalue())
    assert all(
        set(r) == {"skillname", "title", "questions", "content", "managerid"} for r in exported
    )
    path = tmp_path / "replies.json"
    exported.append(row(99))
    path.write_text(json.dumps(exported, ensure_ascii=False), encoding="utf-8")
    out = io.StringIO()
    call_command("skills", "import", str(path), "--bot", filled_bot.name, "--dry-run", stdout=out)
    text = out.getvalue()
    assert "1 new, 0 changed, 8 unchanged, 0 refused." in text
    assert "Dry run: nothing was saved." in text
    assert not AutoReply.objects.filter(title="问题 99").exists()
    call_command("skills", "import", str(path), "--bot", filled_bot.name, stdout=io.StringIO())
    assert AutoReply.objects.filter(title="问题 99").exists()


def test_skills_import_reports_refused_rows_and_exits_1(demo_bot, tmp_path):
    path = tmp_path / "replies.json"
    path.write_text(json.dumps([row(1), row(2, content={"video": {}})]), encoding="utf-8")
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("skills", "import", str(path), "--bot", demo_bot.name, stdout=out)
    assert caught.value.returncode == 1
    assert "row 2: refused" in out.getvalue() and "Unknown answer type “video”" in out.getvalue()
    assert AutoReply.objects.filter(title="问题 1").exists()


def test_skills_commands_name_the_bots_when_one_is_unknown(demo_bot):
    with pytest.raises(CommandError, match=r"No chatbot named “nope”\. Chatbots: 演示机器人"):
        call_command("skills", "export", "--bot", "nope")


# ---- the admin pages -------------------------------------------------------------------------


def test_the_admin_import_shows_the_report_then_saves_on_confirmation(client, editor, demo_bot):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import PASSWORD

    client.login(username=editor.username, password=PASSWORD)
    url = "/admin/chatbot/autoreply/import/"
    assert client.get(url).status_code == 200
    records = [row(1), row(2, content={"image": {"media_id": ""}}), row(3, title="<b>x</b>")]
    upload = SimpleUploadedFile(
        "replies.json", json.dumps(records, ensure_ascii=False).encode(), "application/json"
    )
    response = client.post(url, {"bot": demo_bot.pk, "file": upload})
    page = response.content.decode()
    assert "2 个新增，0 个修改，0 个未变，1 个拒绝。" in page
    assert "素材 ID不能为空" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert not AutoReply.objects.exists()
    token = page.split('name="token" value="')[1].split('"')[0]
    response = client.post(url, {"confirm": "1", "token": token})
    assert response.status_code == 302
    assert set(AutoReply.objects.values_list("title", flat=True)) == {"问题 1", "<b>x</b>"}
    # The same preview cannot be applied twice.
    client.post(url, {"confirm": "1", "token": token})
    assert AutoReply.objects.count() == 2


def test_the_previewed_file_waits_outside_the_session_for_its_own_person_only(
    client, editor, make_user, demo_bot
):
    from django.contrib.messages import get_messages
    from django.core.files.uploadedfile import SimpleUploadedFile

    from console.roles import MARKETING_EDITOR
    from tests.conftest import PASSWORD

    url = "/admin/chatbot/autoreply/import/"
    client.login(username=editor.username, password=PASSWORD)
    records = [row(n) for n in range(2000)]
    upload = SimpleUploadedFile(
        "r.json", json.dumps(records, ensure_ascii=False).encode(), "application/json"
    )
    page = client.post(url, {"bot": demo_bot.pk, "file": upload}).content.decode()
    token = page.split('name="token" value="')[1].split('"')[0]
    # Every later page of this person reads the session: it stays small.
    assert len(client.session.encode(dict(client.session.items()))) < 1000

    colleague = make_user("colleague", role=MARKETING_EDITOR)
    client.login(username=colleague.username, password=PASSWORD)
    response = client.post(url, {"confirm": "1", "token": token})
    assert response.status_code == 302
    assert "过期" in str(list(get_messages(response.wsgi_request))[-1])
    assert not AutoReply.objects.exists()

    client.login(username=editor.username, password=PASSWORD)
    client.post(url, {"confirm": "1", "token": token})
    assert AutoReply.objects.count() == 2000


def test_the_admin_export_downloads_json_and_csv(client, auditor, filled_bot):
    from tests.conftest import PASSWORD

    client.login(username=auditor.username, password=PASSWORD)
    response = client.get(f"/admin/chatbot/autoreply/export/?bot={filled_bot.pk}&format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    response = client.get(f"/admin/chatbot/autoreply/export/?bot={filled_bot.pk}")
    assert len(json.loads(response.content)) == AutoReply.objects.count()
    # The auditor reads, but cannot import.
    assert client.get("/admin/chatbot/autoreply/import/").status_code == 403


def test_the_admin_import_preview_runs_a_constant_number_of_queries(client, editor, demo_bot):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import PASSWORD

    client.login(username=editor.username, password=PASSWORD)
    records = [row(n) for n in range(2000)]

    def preview(count: int) -> int:
        upload = SimpleUploadedFile(
            "r.json", json.dumps(records[:count], ensure_ascii=False).encode(), "application/json"
        )
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                "/admin/chatbot/autoreply/import/", {"bot": demo_bot.pk, "file": upload}
            )
        assert response.status_code == 200 and "import-report" in response.content.decode()
        return len(captured)

    assert preview(10) == preview(2000)
