"""`/healthz`, languages, and the completeness of the zh-hans catalogue."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from console import health

BASE_DIR = Path(__file__).resolve().parent.parent
# The project-wide catalogue, and one per app of ours that has strings of its own.
CATALOGUES = [
    BASE_DIR / app / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    for app in ("console", "tagging", "chatbot")
]


@pytest.mark.django_db
def test_healthz_reports_each_part_in_json(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "broker": "ok", "secrets": "ok"},
        "unreadable_secrets": 0,
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_says_which_part_failed_without_internals(client, monkeypatch, caplog):
    def broken() -> None:
        raise RuntimeError("password authentication failed for user postgres at 10.1.2.3")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "fail"
    assert response.json()["status"] == "fail"
    body = response.content.decode()
    assert "password" not in body and "10.1.2.3" not in body
    assert "health check database failed" in caplog.text


@pytest.mark.django_db
def test_healthz_is_exempt_from_the_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/admin/login/").status_code == 301


@pytest.mark.django_db
def test_the_login_page_is_in_simplified_chinese_by_default(client):
    page = client.get("/admin/login/").content.decode()
    assert 'lang="zh-hans"' in page
    assert "用户名" in page
    assert "客户标签控制台" in page


@pytest.mark.django_db
def test_the_browser_language_chooses_english(client):
    page = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert 'lang="en"' in page
    assert "Username" in page
    assert "Customer tag console" in page


@pytest.mark.django_db
def test_the_language_can_be_switched_on_every_page(client):
    page = client.get("/admin/login/").content.decode()
    assert 'action="/i18n/setlang/"' in page
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/admin/login/"})
    assert response.status_code == 302
    assert 'lang="en"' in client.get("/admin/login/").content.decode()


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.parts[-5])
def test_every_message_of_ours_is_translated_to_simplified_chinese(path):
    with path.open("rb") as handle:
        catalogue = read_po(handle)

    def untranslated(message) -> bool:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        return message.fuzzy or not all(strings)

    missing = [message.id for message in catalogue if message.id and untranslated(message)]
    assert not missing, f"untranslated or fuzzy in {path}: {missing[:10]}"


def test_compiletranslations_finds_every_catalogue():
    from console.management.commands.compiletranslations import catalogue_paths

    assert set(catalogue_paths()) == {path.resolve() for path in CATALOGUES}


def test_the_catalogue_holds_every_marked_string(tmp_path):
    """makemessages over the code finds nothing that the committed catalogue lacks."""
    if shutil.which("xgettext") is None:
        if os.environ.get("CI"):
            pytest.fail("GNU gettext (xgettext) is missing on the CI machine")
        pytest.skip("GNU gettext is not installed (apt-get install gettext)")
    work = tmp_path / "tree"
    shutil.copytree(
        BASE_DIR,
        work,
        ignore=shutil.ignore_patterns(
            ".venv",
            "var",
            ".git",
            "tests",
            "bench",
            "build",
            "*.mo",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
            ".hypothesis",
            "node_modules",
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "makemessages",
            "--locale",
            "zh_Hans",
            "--no-obsolete",
            "--add-location",
            "file",
        ],
        cwd=work,
        env={
            "DEBUG": "true",
            "CONSOLE_READ_DOTENV": "0",
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "PYTHONPATH": str(work),
        },
        check=True,
        capture_output=True,
        timeout=300,
    )
    for catalogue in CATALOGUES:
        with catalogue.open("rb") as handle:
            committed = {message.id for message in read_po(handle) if message.id}
        with (work / catalogue.relative_to(BASE_DIR)).open("rb") as handle:
            extracted = {message.id for message in read_po(handle) if message.id}
        lacking = sorted(extracted - committed)[:10]
        assert not lacking, f"not in {catalogue.relative_to(BASE_DIR)}: {lacking}"


@pytest.mark.django_db
def test_each_language_is_offered_in_its_own_words(client):
    page = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert ">English<" in page and ">简体中文<" in page


@pytest.mark.django_db
def test_a_missing_page_is_explained_inside_the_console(client, editor):
    from tests.conftest import PASSWORD

    client.login(username=editor.username, password=PASSWORD)
    response = client.get("/admin/wecom/nothing-here/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 404
    page = response.content.decode()
    assert "页面不存在" in page and "返回概览" in page and "客户标签控制台" in page
    response = client.get("/admin/wecom/wecomapp/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403
    assert "Your role does not allow you to open this page" in response.content.decode()


def test_the_server_error_page_renders_without_a_request_context():
    from django.template.loader import render_to_string
    from django.utils import translation

    with translation.override("zh-hans"):
        page = render_to_string("500.html")
    assert "出错了" in page and "之前保存的内容不会丢失" in page
