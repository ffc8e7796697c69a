"""A secret saved under another CREDENTIALS_KEY is a state the console explains, not a crash."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation

from chatbot.models import AutoReply, ReplySyncState, Skill
from chatbot.services import reply_push
from console.audit import Actor
from console.encryption import new_key_text
from tests.conftest import PASSWORD
from wecom.clients import PlatformCredentialError
from wecom.connections import client_for
from wecom.models import ChatbotBot, OfficialAccount, WeComApp
from wecom.sandbox import DEMO
from wecom.services import demo_credentials_ensure

UNREADABLE = "was saved under another CREDENTIALS_KEY and cannot be read"


@pytest.fixture
def other_key(db, settings):
    """The demo credentials, saved under a key the console no longer has."""
    demo_credentials_ensure(actor=Actor.system())
    settings.CREDENTIALS_KEY = new_key_text()


def admin_client(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.mark.parametrize(
    ("model", "url", "data"),
    [
        (
            WeComApp,
            "wecomapp",
            {"corp_id": DEMO.wecom_corp_id, "secret": "", "agent_id": "", "rate_limit": ""},
        ),
        (OfficialAccount, "officialaccount", {"appid": DEMO.oa_appid, "secret": ""}),
        (
            ChatbotBot,
            "chatbotbot",
            {
                "appid": DEMO.bot_appid,
                "token": "",
                "encoding_aes_key": "",
                "default_manager_id": "",
                "rate_limit": "",
            },
        ),
    ],
)
def test_the_change_form_explains_an_unreadable_secret_and_takes_a_new_one(
    other_key, credential_admin, model, url, data
):
    client = admin_client(credential_admin)
    credential = model.objects.get()
    change = f"/admin/wecom/{url}/{credential.pk}/change/"
    with translation.override("en"):
        form = client.get(change, HTTP_ACCEPT_LANGUAGE="en")
        assert form.status_code == 200
        assert "cannot be read with the configured keys" in form.content.decode()
        response = client.post(
            change, {"name": "renamed", **data, "rate_limit": ""}, HTTP_ACCEPT_LANGUAGE="en"
        )
    assert response.status_code == 200, "refused with a message, not a crash"
    assert UNREADABLE in response.content.decode()
    assert "EncodingAESKey is exactly" not in response.content.decode()
    credential.refresh_from_db()
    assert credential.name != "renamed", "nothing saved"

    fresh = {
        "secret": "a-brand-new-secret-0123456789",
        "token": "NewToken123",
        "encoding_aes_key": DEMO.bot_encoding_aes_key,
    }
    filled = {key: fresh.get(key, value) if value == "" else value for key, value in data.items()}
    filled["rate_limit"] = ""
    filled["default_manager_id"] = ""
    response = client.post(change, {"name": "renamed", **filled})
    assert response.status_code == 302, response.content.decode()[:3000]
    credential.refresh_from_db()
    assert credential.name == "renamed"


def test_credential_set_explains_an_unreadable_secret_and_takes_a_new_one(other_key):
    with translation.override("en"), pytest.raises(CommandError) as caught:
        call_command("credential", "set", "wecom", "演示企业（沙盒）", "agent_id=7")
    assert UNREADABLE in str(caught.value)
    assert "secret:" in str(caught.value)
    name = "演示企业（沙盒）"
    call_command("credential", "set", "wecom", name, "agent_id=7", f"secret={DEMO.wecom_secret}")
    assert WeComApp.objects.get().secret.reveal() == DEMO.wecom_secret


def test_bootstrap_check_and_healthz_count_unreadable_secrets(
    other_key, client, settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("LANGUAGE", "en")  # commands speak the terminal's language
    settings.STATIC_ROOT = tmp_path
    out = StringIO()
    with translation.override("en"):
        call_command("bootstrap", stdout=out)
    text = out.getvalue()
    assert "4 stored secret(s) cannot be read" in text
    assert "演示企业（沙盒）" in text
    assert "The console is ready." not in text

    from console.checks import check_stored_secrets_readable

    with translation.override("en"):
        warnings = check_stored_secrets_readable(None)
    assert [warning.id for warning in warnings] == ["console.W001"]
    assert "4 stored secret(s)" in warnings[0].msg

    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "degraded"
    assert answer.json()["unreadable_secrets"] == 4


def test_the_credential_admin_dashboard_says_which_secrets_cannot_be_read(
    other_key, credential_admin
):
    page = admin_client(credential_admin).get("/admin/", HTTP_ACCEPT_LANGUAGE="en")
    text = page.content.decode()
    assert "4 stored secret(s) cannot be read" in text
    assert "console-panel" in text


@pytest.mark.parametrize(
    ("model", "platform"),
    [
        (WeComApp, "WeCom"),
        (OfficialAccount, "the Official Account platform"),
        (ChatbotBot, "the dialogue platform"),
    ],
)
def test_a_client_for_an_unreadable_credential_is_a_platform_error_with_a_sentence(
    other_key, model, platform
):
    with translation.override("en"):
        with pytest.raises(PlatformCredentialError) as caught:
            client_for(model.objects.get())
        assert str(caught.value).startswith(f"The stored secrets for {platform} cannot be")


def test_an_unreadable_bot_fails_a_push_for_its_credential_not_as_a_crash(other_key):
    skill = Skill.objects.create(bot=ChatbotBot.objects.get(), name="售后")
    reply = AutoReply.objects.create(skill=skill, title="怎么退货", questions=[], content="七天内")
    with translation.override("en"):
        outcome = reply_push(reply=reply, actor=Actor.system())
    assert (outcome.ok, outcome.reason_code, outcome.retryable) == (False, "credential", False)
    assert "cannot be decrypted" in outcome.message
    assert AutoReply.objects.get().sync_state == ReplySyncState.FAILED
