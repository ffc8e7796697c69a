"""Managing platform credentials: the admin, the connection test and `manage.py credential`."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation

from console.audit import Actor, audit_context
from tests.conftest import PASSWORD
from wecom.models import ChatbotBot, OfficialAccount, WeComApp
from wecom.sandbox import DEMO
from wecom.services import credential_test_connection, demo_credentials_ensure


def logged_in(user) -> Client:
    client = Client(REMOTE_ADDR="198.51.100.8")
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def demo(db) -> dict:
    demo_credentials_ensure(actor=Actor.command_line(command="test"))
    return {
        "wecom": WeComApp.objects.get(),
        "oa": OfficialAccount.objects.get(),
        "chatbot": ChatbotBot.objects.get(),
    }


# -- the command line ----------------------------------------------------------------------


def test_credential_set_creates_then_updates(db, capsys, monkeypatch):
    monkeypatch.setenv("WECOM_SECRET_FOR_TEST", DEMO.wecom_secret)
    call_command(
        "credential",
        "set",
        "wecom",
        "主企业",
        f"corp_id={DEMO.wecom_corp_id}",
        "secret=env:WECOM_SECRET_FOR_TEST",
        "agent_id=1000002",
    )
    app = WeComApp.objects.get(name="主企业")
    assert app.secret.reveal() == DEMO.wecom_secret
    assert app.agent_id == 1000002
    call_command("credential", "set", "wecom", "主企业", "agent_id=")
    app.refresh_from_db()
    assert app.agent_id is None
    assert app.secret.reveal() == DEMO.wecom_secret
    output = capsys.readouterr().out
    assert "Created wecom “主企业”" in output and "Updated wecom “主企业”: agent_id" in output
    assert DEMO.wecom_secret not in output


def test_credential_set_refuses_bad_values_and_saves_nothing(db):
    with pytest.raises(CommandError) as caught:
        call_command(
            "credential",
            "set",
            "chatbot",
            "机器人",
            "appid=bot1",
            "token=短",
            "encoding_aes_key=tooshort",
        )
    message = str(caught.value)
    assert "Nothing was saved" in message
    assert "token:" in message and "encoding_aes_key:" in message
    assert not ChatbotBot.objects.exists()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["set", "oa", "x", "colour=blue"], "Unknown key(s) colour"),
        (["set", "oa", "x", "appid"], "is not key=value"),
        (["set", "oa", "x", "appid=wx1", "appid=wx2"], "given twice"),
        (
            ["set", "oa", "x", "secret=env:NO_SUCH_VARIABLE_HERE"],
            "NO_SUCH_VARIABLE_HERE is not set",
        ),
        (["test", "oa", "nobody"], "There is no oa credential"),
    ],
)
def test_credential_command_mistakes_are_explained(db, args, complaint):
    with pytest.raises(CommandError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        call_command("credential", *args)


def test_credential_list_masks_secrets(demo, capsys):
    call_command("credential", "list")
    output = capsys.readouterr().out
    assert "演示企业（沙盒）" in output and "演示机器人（沙盒）" in output
    for secret in (DEMO.wecom_secret, DEMO.oa_secret, DEMO.bot_token, DEMO.bot_encoding_aes_key):
        assert secret not in output
    assert f"secret=••••{DEMO.wecom_secret[-4:]}" in output


def test_credential_test_reports_in_words(demo, sandbox, capsys):
    call_command("credential", "test", "wecom", "演示企业（沙盒）")
    assert "Connected" in capsys.readouterr().out
    sandbox.state.chatbot.set_review(DEMO.bot_appid, False)
    with pytest.raises(CommandError, match="has not passed the platform's review"):
        call_command("credential", "test", "chatbot", "演示机器人（沙盒）")


def test_demo_credentials_are_registered_once(db):
    assert len(demo_credentials_ensure(actor=Actor.system())) == 3
    assert demo_credentials_ensure(actor=Actor.system()) == []
    assert WeComApp.objects.count() == OfficialAccount.objects.count() == 1


# -- the connection test -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wecom", "oa", "chatbot"])
def test_each_kind_of_credential_connects_to_the_sandbox(demo, sandbox, kind):
    check = credential_test_connection(credential=demo[kind], actor=Actor.system())
    assert check.ok, check.message
    demo[kind].refresh_from_db()
    assert demo[kind].last_check_ok is True
    assert demo[kind].last_checked_at is not None


def test_a_failed_test_is_recorded_with_its_reason(demo, sandbox):
    app = demo["wecom"]
    WeComApp.objects.filter(pk=app.pk).update(secret="wrong-secret-0123456789abcdef")
    app.refresh_from_db()
    with translation.override("zh-hans"):
        check = credential_test_connection(credential=app, actor=Actor.system())
    assert not check.ok
    assert "Secret 不正确" in check.message
    app.refresh_from_db()
    assert app.last_check_ok is False
    assert "Secret 不正确" in app.last_check_message
    entry = LogEntry.objects.filter(object_id=str(app.pk)).latest("action_time")
    with translation.override("zh-hans"):
        assert audit_context(entry).note.startswith("连接测试失败")


def test_a_secret_that_cannot_be_decrypted_is_explained(demo, settings):
    from console.encryption import new_key_text

    settings.CREDENTIALS_KEY = new_key_text()
    app = WeComApp.objects.get()
    with translation.override("en"):
        check = credential_test_connection(credential=app, actor=Actor.system())
    assert not check.ok
    assert "cannot be decrypted" in check.message


# -- the admin -----------------------------------------------------------------------------


def test_the_admin_shows_secrets_by_their_last_four_characters(demo, credential_admin):
    client = logged_in(credential_admin)
    page = client.get("/admin/wecom/wecomapp/").content.decode()
    assert f"••••{DEMO.wecom_secret[-4:]}" in page
    assert DEMO.wecom_secret not in page
    form = client.get(f"/admin/wecom/wecomapp/{demo['wecom'].pk}/change/").content.decode()
    assert DEMO.wecom_secret not in form
    assert DEMO.wecom_secret[-4:] in form  # the help text says which value is stored
    assert 'type="password"' in form


def test_the_test_connection_button_reports_in_words(demo, sandbox, credential_admin):
    client = logged_in(credential_admin)
    app = demo["wecom"]
    response = client.post(
        f"/admin/wecom/wecomapp/{app.pk}/test-connection/",
        follow=True,
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 200
    assert "连接正常" in response.content.decode()
    entry = LogEntry.objects.filter(object_id=str(app.pk)).latest("action_time")
    assert entry.user == credential_admin
    context = audit_context(entry)
    assert context.source == "admin" and context.ip == "198.51.100.8"


def test_the_test_connection_action_covers_several_credentials(demo, sandbox, credential_admin):
    client = logged_in(credential_admin)
    response = client.post(
        "/admin/wecom/officialaccount/",
        {"action": "test_connection", "_selected_action": [demo["oa"].pk]},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "Connected: the Official Account platform accepted" in response.content.decode()


def test_the_test_connection_button_needs_the_permission(demo, sandbox, auditor):
    response = logged_in(auditor).post(f"/admin/wecom/wecomapp/{demo['wecom'].pk}/test-connection/")
    assert response.status_code == 403
    assert sandbox.total_calls() == 0


def test_the_test_connection_button_needs_a_post(demo, credential_admin):
    response = logged_in(credential_admin).get(
        f"/admin/wecom/wecomapp/{demo['wecom'].pk}/test-connection/"
    )
    assert response.status_code == 405


def test_the_dashboard_tells_the_credential_admin_what_needs_attention(demo, credential_admin):
    WeComApp.objects.update(last_check_ok=False)
    page = (
        logged_in(credential_admin).get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    )
    assert "平台凭证" in page
    assert "失败：演示企业（沙盒）" in page
    assert "尚未测试：演示公众号（沙盒）" in page


def test_the_dashboard_shows_the_worker_and_the_role(demo, editor):
    page = logged_in(editor).get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "你的角色" in page and "营销编辑" in page
    assert "后台任务进程未运行" in page
    assert "演示企业" not in page


def test_changing_the_secret_forgets_the_last_connection_test(demo, sandbox, credential_admin):
    app = demo["wecom"]
    credential_test_connection(credential=app, actor=Actor.system())
    client = logged_in(credential_admin)
    client.post(
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        {"name": app.name, "corp_id": app.corp_id, "secret": "", "agent_id": "", "rate_limit": "5"},
    )
    app.refresh_from_db()
    assert app.last_check_ok is True, "the rate limit does not change what was tested"
    client.post(
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        {
            "name": app.name,
            "corp_id": app.corp_id,
            "secret": "another-secret-0123456789abcdef",
            "agent_id": "",
            "rate_limit": "5",
        },
    )
    app.refresh_from_db()
    assert app.last_check_ok is None and app.last_checked_at is None


def test_the_command_line_also_forgets_the_last_connection_test(demo, sandbox):
    credential_test_connection(credential=demo["oa"], actor=Actor.system())
    call_command(
        "credential", "set", "oa", demo["oa"].name, "appid=wx00000000000000aa", verbosity=0
    )
    demo["oa"].refresh_from_db()
    assert demo["oa"].last_check_ok is None


def test_the_add_form_shows_no_empty_status_rows(db, credential_admin):
    page = (
        logged_in(credential_admin)
        .get("/admin/wecom/wecomapp/add/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        .content.decode()
    )
    assert "上次连接测试" not in page and "尚未测试" not in page


@pytest.mark.parametrize(
    ("kind", "setting", "endpoint"),
    [
        ("wecom", "WECOM_API_BASE", ("wecom", "/cgi-bin/externalcontact/customer_strategy/list")),
        ("oa", "WECHAT_API_BASE", ("wechat", "/cgi-bin/tags/get")),
    ],
)
def test_the_connection_test_contacts_the_platform_even_with_a_cached_token(
    demo, sandbox, settings, kind, setting, endpoint
):
    credential = demo[kind]
    assert credential_test_connection(credential=credential, actor=Actor.system()).ok
    assert credential_test_connection(credential=credential, actor=Actor.system()).ok
    # Two tests, two authenticated calls; the token was fetched once and reused.
    assert sandbox.calls(*endpoint) == 2
    settings.PLATFORM_MAX_ATTEMPTS = 1
    setattr(settings, setting, "http://127.0.0.1:9")  # nothing listens there
    with translation.override("en"):
        check = credential_test_connection(credential=credential, actor=Actor.system())
    assert not check.ok
    assert "Connected" not in check.message
    credential.refresh_from_db()
    assert credential.last_check_ok is False


def test_the_connection_test_reports_a_refused_cached_token_after_a_fresh_one_works(demo, sandbox):
    app = demo["wecom"]
    assert credential_test_connection(credential=app, actor=Actor.system()).ok
    sandbox.invalidate_tokens("wecom")
    assert credential_test_connection(credential=app, actor=Actor.system()).ok
    assert sandbox.calls("wecom", "/cgi-bin/gettoken") == 2
