"""Hostile ids, filters, files and forms: a 4xx or a sentence, never a 500 or a held worker.

The fuzz test (tests/test_fuzz_admin.py) checks that nothing answers 5xx; these check what each
refusal says and that nothing was saved.
"""

from __future__ import annotations

import io
import time
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation
from django.utils.html import escape
from hypothesis import given, settings as hypothesis_settings, strategies as st

from chatbot.models import AutoReply, Skill
from console.ids import object_pk
from console.jobs.selectors import job_reason
from console.models import OPEN_JOB_STATUSES, Job
from console.spreadsheets import (
    SpreadsheetRefused,
    xlsx_rows,
)
from tagging.bulk.models import (
    AudienceStatus,
    BulkAudience,
    BulkAudienceMember,
    BulkAudienceRefusal,
    BulkUploadChunk,
)
from tagging.bulk.reading import READ_KIND
from tagging.official_account.models import OfficialAccountTag
from tagging.strategy.models import Strategy, Tag, TagGroup
from tests.conftest import PASSWORD
from tests.hostile_files import HOSTILE_IMPORTS, HOSTILE_XLSX, OPENID, good_xlsx
from tests.tagging.bulk.test_bulk_jobs import drain
from wecom.models import ChatbotBot, OfficialAccount, WeComApp

# ---- ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["²", "①", "١", " 1", "1 ", "+1", "-1", "1_000", "1.0", "0x10", "", "99999999999999999999",
     "9223372036854775808", "1\x00", True],
)  # fmt: skip
def test_an_id_is_ascii_digits_within_range(value, db):
    assert object_pk(value) is None


@given(st.text(max_size=25))
@hypothesis_settings(max_examples=300, deadline=None)
def test_object_pk_accepts_exactly_ascii_digits_in_range(value):
    expected = int(value) if value.isascii() and value.isdigit() and int(value) < 2**63 else None
    assert object_pk(value) == expected


def logged_in(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def tree(db):
    app = WeComApp.objects.create(name="主企业", corp_id="ww0123456789abcdef", secret="s" * 43)
    strategy = Strategy.objects.create(app=app, name="规则组", wecom_id=1)
    group = TagGroup.objects.create(app=app, strategy=strategy, name="组", wecom_id="g1")
    tag = Tag.objects.create(app=app, group=group, name="标签", wecom_id="t1", order=1)
    return app, strategy, tag


@pytest.fixture
def oa_tags(db):
    account = OfficialAccount.objects.create(
        name="品牌号", appid="wx0123456789abcdef", secret="9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    )
    reserved = OfficialAccountTag.objects.create(account=account, tag_id=1, name="黑名单")
    plain = OfficialAccountTag.objects.create(account=account, tag_id=100, name="新关注")
    return reserved, plain


def test_ids_with_a_space_or_another_scripts_digit_address_nothing(editor, tree):
    _app, _strategy, tag = tree
    client = logged_in(editor)
    assert client.get(f"/admin/tagging/tag/{tag.pk}/change/").status_code == 200
    arabic = "".join(chr(0x660 + int(digit)) for digit in str(tag.pk))
    for written in (f"%20{tag.pk}", f"{tag.pk}%20", arabic, "²", "abc", "99999999999999999999"):
        for page in ("change", "delete", "history"):
            response = client.get(f"/admin/tagging/tag/{written}/{page}/")
            assert response.status_code == 404, (written, page)


def test_custom_pages_answer_403_whatever_the_id_and_404_to_who_may(
    make_user, editor, oa_tags, tree
):
    reserved, _plain = oa_tags
    app, _strategy, _tag = tree
    job = Job.objects.create(kind="tagging.bulk", title="作业", created_by=editor)
    stranger = logged_in(make_user("stranger"))
    allowed = logged_in(editor)
    pages = [
        "/admin/tagging/officialaccounttag/{}/delete/",
        "/admin/console/job/{}/change/",
        "/admin/console/job/{}/progress/",
        "/admin/console/job/{}/failures.csv",
        "/admin/tagging/bulkaudience/{}/start/",
        "/admin/tagging/bulkaudience/{}/refused.csv",
        "/admin/tagging/bulkaudience/retry/{}/",
        "/admin/tagging/strategy/tree/{}/",
    ]
    real = {
        "officialaccounttag": reserved.pk,
        "job": job.pk,
        "bulkaudience": job.pk,
        "tree": app.pk,
    }
    for page in pages:
        existing = next(v for k, v in real.items() if k in page)
        for written in (str(existing), "999999", "abc", "²", "%201", "99999999999999999999"):
            url = page.format(written)
            assert stranger.get(url).status_code == 403, url
            if written != str(existing):
                assert allowed.get(url).status_code == 404, url


def test_absurd_filters_give_the_whole_list_with_a_sentence(superuser, tree):
    client = logged_in(superuser)
    for url, query in [
        ("/admin/tagging/tag/", {"app__id__exact": "99999999999999999999"}),
        ("/admin/tagging/tag/", {"strategy": "²"}),
        ("/admin/tagging/tag/", {"strategy": "99999999999999999999"}),
        ("/admin/tagging/taggroup/", {"strategy": "99999999999999999999"}),
        ("/admin/console/job/", {"created_at__year": "1"}),
        (
            "/admin/console/job/",
            {"created_at__year": "9999", "created_at__month": "12", "created_at__day": "31"},
        ),
        ("/admin/tagging/bulkaudience/", {"created_at__year": "9999"}),
        ("/admin/admin/logentry/", {"action_time__year": "1"}),
        ("/admin/tagging/tag/", {"sync_state__exact": "\x00"}),
    ]:
        response = client.get(url, query)
        assert response.status_code == 302, (url, query)
        assert response["Location"].endswith("?e=1")
        page = client.get(response["Location"]).content.decode()
        assert "was not understood; the whole list is shown" in page
    tree_page = client.get(f"/admin/tagging/strategy/tree/{tree[0].pk}/", {"strategy": "²"})
    assert tree_page.status_code == 200


# ---- forms --------------------------------------------------------------------------------------


def test_saving_a_reserved_official_account_tag_says_it_is_locked(editor, oa_tags):
    reserved, _plain = oa_tags
    client = logged_in(editor)
    url = f"/admin/tagging/officialaccounttag/{reserved.pk}/change/"
    for data in ({"name": "改名", "_save": "1"}, {"_save": "1"}):
        response = client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 200
        assert "Tags 0, 1 and 2 are reserved by the platform" in response.content.decode()
    reserved.refresh_from_db()
    assert reserved.name == "黑名单"


@pytest.mark.parametrize(
    "answer",
    ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
     '{"type":"multimsg","items":' + "[" * 500 + "]" * 500 + "}"],
    ids=["arrays", "objects", "items"],
)  # fmt: skip
def test_an_answer_nested_deep_is_refused_in_words(editor, answer, db):
    bot = ChatbotBot.objects.create(
        name="客服机器人", appid="bot01", token="BotTokenValue0123",
        encoding_aes_key="QmFzZTY0QWVzS2V5Rm9yVGhlU2FuZGJveEJvdDAxMjM",
    )  # fmt: skip
    skill = Skill.objects.create(bot=bot, name="技能")
    response = logged_in(editor).post(
        "/admin/chatbot/autoreply/add/",
        {"skill": skill.pk, "title": "问题", "questions": "", "managerid": "", "answer": answer},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert "nested more than" in response.content.decode()
    assert not AutoReply.objects.exists()


# ---- files --------------------------------------------------------------------------------------

XLSX_SENTENCES = {
    "entity expansion": "document type declaration or entities",
    "external entity": "document type declaration or entities",
    "malformed sheet": "cannot be read",
    "shared-strings bomb": "at most 64 MB can be read",
    "huge shared string": "more than 32,767 characters",
    "huge cell": "more than 32,767 characters",
    "huge declared dimension": "16,384 columns",
    "row numbered 50,000,000": "numbers a row 50,000,000",
    # Read to the row limit in about 4 s; under a profiler or a loaded machine, the time limit.
    "many empty rows": ("numbers a row 1,048,577", "could not be read within"),
    "row of 20,000 cells": "1,001 columns",
}


def said(expected: str | tuple[str, ...], text: str) -> bool:
    return any(
        sentence in text for sentence in ((expected,) if isinstance(expected, str) else expected)
    )


@pytest.fixture(scope="module")
def hostile_xlsx() -> dict[str, bytes]:
    return {name: make() for name, make in HOSTILE_XLSX.items()}


@pytest.mark.parametrize("name", list(HOSTILE_XLSX))
def test_each_hostile_xlsx_is_refused_quickly_and_in_little_memory(name, hostile_xlsx):
    tracemalloc.start()
    began = time.monotonic()
    with translation.override("en"), pytest.raises(SpreadsheetRefused) as refusal:
        for _row in xlsx_rows(io.BytesIO(hostile_xlsx[name])):
            pass
    elapsed = time.monotonic() - began
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert said(XLSX_SENTENCES[name], str(refusal.value))
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.1f} MB"
    assert elapsed < 20


def test_a_plain_xlsx_is_still_read():
    rows = list(xlsx_rows(io.BytesIO(good_xlsx(2))))
    assert rows == [(1, ["openid"]), (2, [OPENID[:-4] + "0000"]), (3, [OPENID[:-4] + "0001"])]


def read_refusal_page(client: Client, response) -> str:
    """The audience page once a worker has tried to read the uploaded list, in English."""
    assert response.status_code == 302  # the upload answers at once; a worker reads the list
    for job in Job.objects.filter(kind=READ_KIND, status__in=OPEN_JOB_STATUSES):
        drain(job)
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    return page.content.decode()


def nothing_read_is_kept() -> bool:
    """A refused file: its audience says so and holds nothing, not even the file."""
    return (
        not BulkAudience.objects.exclude(status=AudienceStatus.FAILED).exists()
        and not BulkAudienceMember.objects.exists()
        and not BulkAudienceRefusal.objects.exists()
        and not BulkUploadChunk.objects.exists()
    )


def test_the_bulk_upload_refuses_each_hostile_xlsx_in_words(editor, oa_tags, hostile_xlsx):
    _reserved, plain = oa_tags
    client = logged_in(editor)
    for name, data in hostile_xlsx.items():
        response = client.post(
            "/admin/tagging/bulkaudience/add/",
            {
                "target_kind": "oa",
                "oa_tag": plain.pk,
                "operation": "tag",
                "source": "file",
                "file": SimpleUploadedFile("名单.xlsx", data),
            },
            HTTP_ACCEPT_LANGUAGE="en",
        )
        html = read_refusal_page(client, response)
        assert said(XLSX_SENTENCES[name], html), name
        assert "data-bulk-read-refusal" in html and "data-bulk-start" not in html
        # The same sentence in Chinese for a Chinese reader: the job stored it untranslated.
        job = Job.objects.filter(kind=READ_KIND).latest("pk")
        with translation.override("zh-hans"):
            chinese = job_reason(job)
        assert chinese != job_reason(job) and not chinese.isascii(), name
        page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert escape(chinese) in page, name
    assert nothing_read_is_kept()
    assert BulkAudience.objects.count() == len(hostile_xlsx)


@pytest.mark.parametrize("name", ["entity expansion", "malformed sheet", "row numbered 50,000,000"])
def test_tag_users_refuses_each_hostile_xlsx_in_words(
    name, oa_tags, hostile_xlsx, tmp_path, monkeypatch
):
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    path = tmp_path / "list.xlsx"
    path.write_bytes(hostile_xlsx[name])
    with pytest.raises(CommandError) as refusal:
        call_command("tag_users", "--oa", "品牌号", "--tagid", "100", "--file", str(path))
    assert said(XLSX_SENTENCES[name], str(refusal.value))
    assert not BulkAudience.objects.exists()


def test_a_csv_line_of_50_mb_is_refused_in_words(editor, oa_tags):
    _reserved, plain = oa_tags
    client = logged_in(editor)
    response = client.post(
        "/admin/tagging/bulkaudience/add/",
        {
            "target_kind": "oa",
            "oa_tag": plain.pk,
            "operation": "tag",
            "source": "file",
            "file": SimpleUploadedFile("名单.csv", b"openid\n" + b"o" * (3 * 1024 * 1024)),
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    html = read_refusal_page(client, response)
    assert "Line 2 of the file is longer than 1,048,576 characters" in html
    assert nothing_read_is_kept()


IMPORT_SENTENCES = {
    "JSON nested 100,000 deep": "nested more than",
    "JSON objects nested 100,000 deep": "nested more than",
    "multimsg nested 400 deep": "nested more than",
    "a million tiny rows": "too many values",
    "CSV with a 2 MB header field": "a cell holds more than 131,072 characters",
}


@pytest.fixture
def bot(db) -> ChatbotBot:
    return ChatbotBot.objects.create(
        name="客服机器人", appid="bot01", token="BotTokenValue0123",
        encoding_aes_key="QmFzZTY0QWVzS2V5Rm9yVGhlU2FuZGJveEJvdDAxMjM",
    )  # fmt: skip


@pytest.mark.parametrize("name", list(HOSTILE_IMPORTS))
def test_each_hostile_import_is_refused_in_words(editor, bot, name):
    filename, make = HOSTILE_IMPORTS[name]
    response = logged_in(editor).post(
        "/admin/chatbot/autoreply/import/",
        {"bot": bot.pk, "file": SimpleUploadedFile(filename, make())},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert IMPORT_SENTENCES[name] in response.content.decode()
    assert not AutoReply.objects.exists() and not Skill.objects.exists()


def test_an_import_over_its_limit_is_refused_while_it_arrives(editor, bot, monkeypatch):
    monkeypatch.setattr("chatbot.admin.MAX_IMPORT_BYTES", 1024 * 1024)
    stored: list[int] = []
    from django.core.files.uploadhandler import MemoryFileUploadHandler

    original = MemoryFileUploadHandler.receive_data_chunk

    def counting(self, raw_data, start):
        stored.append(len(raw_data))
        return original(self, raw_data, start)

    monkeypatch.setattr(MemoryFileUploadHandler, "receive_data_chunk", counting)
    response = logged_in(editor).post(
        "/admin/chatbot/autoreply/import/",
        {"bot": bot.pk, "file": SimpleUploadedFile("big.json", b"[" + b" " * (3 << 20) + b"]")},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert "at most 1 MB can be uploaded" in response.content.decode()
    assert sum(stored) <= 1024 * 1024, "no byte past the limit was stored"


def test_an_import_of_more_rows_than_the_limit_is_refused(editor, bot, monkeypatch):
    monkeypatch.setattr("chatbot.transfer.MAX_IMPORT_ROWS", 3)
    rows = ",".join(f'{{"skillname":"s","title":"t{n}","content":"a"}}' for n in range(4))
    response = logged_in(editor).post(
        "/admin/chatbot/autoreply/import/",
        {"bot": bot.pk, "file": SimpleUploadedFile("rows.json", f"[{rows}]".encode())},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "more than 3 replies" in response.content.decode()


def test_every_admin_of_the_site_checks_ids_and_filters():
    from django.contrib import admin

    from console.admin_guard import GuardedAdminMixin

    unguarded = [
        type(model_admin).__qualname__
        for model_admin in admin.site._registry.values()
        if not isinstance(model_admin, GuardedAdminMixin)
    ]
    assert not unguarded
    assert len(admin.site._registry) >= 18  # django-q2's queue page only with its ORM broker
