"""Every change is in the admin history: who, when, what (old → new) and from where."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from console.audit import Actor, AuditAction, AuditSource, audit_context, audit_record, client_ip
from tests.conftest import PASSWORD
from wecom.models import OfficialAccount, WeComApp

SECRET = "AuditedSecret-0123456789abcdefghijklmnopqr"


@pytest.fixture
def app(db) -> WeComApp:
    return WeComApp.objects.create(name="Main", corp_id="ww0123456789abcdef", secret=SECRET)


def test_audit_record_writes_who_what_and_from_where(app, editor):
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox")
    request.user = editor
    entry = audit_record(
        actor=Actor.from_request(request),
        obj=app,
        action=AuditAction.CHANGE,
        changes={"name": ("Main", "Brand"), "agent_id": (None, 1000002)},
    )
    assert entry.user == editor
    assert entry.action_flag == CHANGE
    assert str(entry.object_id) == str(app.pk)
    context = audit_context(entry)
    assert context is not None
    assert context.source == "console"
    assert context.ip == "203.0.113.7"
    assert context.user_agent == "Firefox"
    assert [(c.field, c.old, c.new) for c in context.changes] == [
        ("name", "Main", "Brand"),
        ("agent_id", None, "1000002"),
    ]
    with translation.override("en"):
        assert entry.get_change_message() == "Changed name and agent ID."


def test_field_labels_and_notes_are_translated_when_shown(app, editor):
    entry = audit_record(
        actor=Actor.system(detail="task 42"),
        obj=app,
        action=AuditAction.CHANGE,
        changes={"name": ("Main", "Brand")},
        note=_("Connection test passed."),
    )
    stored = json.loads(entry.change_message)
    assert stored[-1]["console"]["note"] == "Connection test passed."
    with translation.override("zh-hans"):
        context = audit_context(entry)
    assert context.changes[0].label == "名称"
    assert context.note == "连接测试通过。"
    assert context.source_label == "后台任务"
    assert context.detail == "task 42"


def test_secret_changes_are_recorded_without_values(app, editor):
    entry = audit_record(
        actor=Actor.system(),
        obj=app,
        action=AuditAction.CHANGE,
        changes={"secret": (app.secret, "NewSecretValue-0123456789abcdef")},
    )
    assert SECRET not in entry.change_message
    assert "NewSecretValue" not in entry.change_message
    assert SECRET[-4:] not in entry.change_message
    change = audit_context(entry).changes[0]
    assert change.secret and change.old is None and change.new is None


def test_jobs_and_pulls_act_as_a_system_user_who_cannot_log_in(app):
    entry = audit_record(
        actor=Actor.system(source=AuditSource.PLATFORM), obj=app, action=AuditAction.CHANGE
    )
    system = entry.user
    assert system.username == "system"
    assert not system.is_active
    assert not system.has_usable_password()
    assert audit_context(entry).source == "platform"
    # Every system entry reuses the one account.
    again = audit_record(actor=Actor.system(), obj=app, action=AuditAction.CHANGE)
    assert again.user_id == system.pk
    assert User.objects.filter(username="system").count() == 1


def test_client_address_comes_from_forwarded_for_only_behind_trusted_proxies(settings):
    factory = RequestFactory()
    request = factory.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4")
    settings.AUDIT_TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.2"
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    assert client_ip(request) == "198.51.100.4"
    settings.AUDIT_TRUSTED_PROXY_COUNT = 2
    assert client_ip(request) == "6.6.6.6"


def test_an_admin_form_edit_records_old_and_new_values_and_the_address(app, credential_admin):
    client = Client(REMOTE_ADDR="198.51.100.23")
    client.login(username=credential_admin.username, password=PASSWORD)
    response = client.post(
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        {
            "name": "Brand corp",
            "corp_id": app.corp_id,
            "secret": "Replaced-secret-0123456789ab",
            "agent_id": "1000005",
            "rate_limit": "",
        },
        HTTP_USER_AGENT="Mozilla/5.0 test",
    )
    assert response.status_code == 302
    entry = LogEntry.objects.get(action_flag=CHANGE, object_id=str(app.pk))
    assert entry.user == credential_admin
    context = audit_context(entry)
    assert context.source == "admin"
    assert context.ip == "198.51.100.23"
    changes = {change.field: change for change in context.changes}
    assert (changes["name"].old, changes["name"].new) == ("Main", "Brand corp")
    assert (changes["agent_id"].old, changes["agent_id"].new) == (None, "1000005")
    assert changes["secret"].secret
    assert "Replaced-secret" not in entry.change_message
    assert SECRET not in entry.change_message


def test_the_history_page_shows_who_what_when_and_from_where(app, credential_admin, auditor):
    editor_client = Client(REMOTE_ADDR="198.51.100.23")
    editor_client.login(username=credential_admin.username, password=PASSWORD)
    editor_client.post(
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        {
            "name": "Brand corp",
            "corp_id": app.corp_id,
            "secret": "",
            "agent_id": "",
            "rate_limit": "",
        },
    )
    audit_record(
        actor=Actor.system(source=AuditSource.PLATFORM),
        obj=app,
        action=AuditAction.CHANGE,
        changes={"corp_id": ("ww0123456789abcdef", "ww0123456789abcdee")},
    )
    reader = Client()
    reader.login(username=auditor.username, password=PASSWORD)
    page = reader.get(
        f"/admin/wecom/wecomapp/{app.pk}/history/", HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    assert "keyholder" in page and "system" in page
    assert "198.51.100.23" in page
    assert "表单" in page and "从平台拉取" in page
    assert "Main" in page and "Brand corp" in page
    assert "ww0123456789abcdee" in page


def test_admin_deletions_record_the_address(app, superuser):
    client = Client(REMOTE_ADDR="192.0.2.9")
    client.login(username=superuser.username, password=PASSWORD)
    response = client.post(f"/admin/wecom/wecomapp/{app.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    entry = LogEntry.objects.get(action_flag=DELETION)
    assert entry.object_repr == "Main"
    assert audit_context(entry).ip == "192.0.2.9"


def test_the_audit_log_lists_every_change_for_auditors(app, auditor):
    audit_record(
        actor=Actor.command_line(command="credential set"),
        obj=app,
        action=AuditAction.CHANGE,
        changes={"name": ("Main", "Brand")},
    )
    client = Client()
    client.login(username=auditor.username, password=PASSWORD)
    page = client.get("/admin/admin/logentry/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Command line" in page
    assert "name: Main → Brand" in page
    assert "credential set" in page


def test_the_credential_command_is_audited_as_the_command_line(db, monkeypatch):
    monkeypatch.setenv("OA_SECRET_FOR_TEST", "00112233445566778899aabbccddeeff")
    call_command(
        "credential",
        "set",
        "oa",
        "Brand OA",
        "appid=wx0123456789abcdef",
        "secret=env:OA_SECRET_FOR_TEST",
        verbosity=0,
    )
    account = OfficialAccount.objects.get(name="Brand OA")
    entry = LogEntry.objects.get(object_id=str(account.pk))
    assert entry.action_flag == ADDITION
    assert entry.user.username == "system"
    context = audit_context(entry)
    assert context.source == "cli"
    assert "credential set" in context.detail
    assert "00112233445566778899aabbccddeeff" not in entry.change_message


def test_admin_edits_name_their_fields_in_the_readers_language(app, credential_admin):
    client = Client()
    client.login(username=credential_admin.username, password=PASSWORD)
    client.post(
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        {
            "name": "Brand",
            "corp_id": app.corp_id,
            "secret": "Another-secret-0123456789abc",
            "agent_id": "",
            "rate_limit": "",
        },
    )
    entry = LogEntry.objects.get(action_flag=CHANGE, object_id=str(app.pk))
    with translation.override("zh-hans"):
        assert audit_context(entry).django_message == "已修改名称 和 应用 Secret。"
    with translation.override("en"):
        assert audit_context(entry).django_message == "Changed name and app secret."
