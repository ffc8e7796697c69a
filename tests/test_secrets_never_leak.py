"""Secrets and tokens never reach a log line, an error page, an exception report or a form."""

from __future__ import annotations

import io
import logging
import socket
import sys

import pytest
from django.test import Client, RequestFactory
from django.views.debug import ExceptionReporter

from console.encryption import Secret
from console.logging import redact
from tests.conftest import PASSWORD
from wecom.clients import ChatbotClient, PlatformError, WeComClient
from wecom.models import WeComApp
from wecom.sandbox import DEMO

SECRET = "LeakCanarySecret-0123456789abcdefghijklmn"


@pytest.fixture
def console_log():
    """What the console's configured log handler writes, secrets filter included."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def unreachable_base() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_a_failed_token_request_logged_with_its_traceback_shows_no_secret(db, console_log):
    client = WeComClient(
        corp_id=DEMO.wecom_corp_id,
        secret=SECRET,
        base_url=unreachable_base(),
    )
    client.retry = type(client.retry)(max_attempts=1, budget=1, backoff_base=0.1, backoff_cap=0.1)
    try:
        client.check_connection()
    except PlatformError:
        logging.getLogger("console.test").exception("the connection test failed")
    written = console_log.getvalue()
    assert "the connection test failed" in written
    assert "platform=wecom endpoint=/cgi-bin/gettoken" in written
    assert SECRET not in written


def test_the_exception_itself_carries_no_secret(db):
    client = WeComClient(corp_id=DEMO.wecom_corp_id, secret=SECRET, base_url=unreachable_base())
    client.retry = type(client.retry)(max_attempts=1, budget=1, backoff_base=0.1, backoff_cap=0.1)
    with pytest.raises(PlatformError) as caught:
        client.check_connection()
    error = caught.value
    chain = [error, error.__cause__, error.__context__ if not error.__suppress_context__ else None]
    assert all(SECRET not in repr(item) and SECRET not in str(item) for item in chain)
    assert "ConnectionError" in error.errmsg


def test_urls_with_tokens_are_redacted_wherever_they_are_logged(console_log):
    logging.getLogger("urllib3.connectionpool").warning(
        'http://h:80 "GET /cgi-bin/gettoken?corpid=ww1&corpsecret=%s HTTP/1.1" 200', SECRET
    )
    logging.getLogger("console.test").error("posted to /openapi/setautoreply/%s", "BotTok3n")
    logging.getLogger("console.test").error('{"access_token": "%s"}', "tok-123")
    written = console_log.getvalue()
    assert SECRET not in written and "BotTok3n" not in written and "tok-123" not in written
    assert written.count("[redacted]") == 3


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("GET /cgi-bin/tags/get?access_token=abc&x=1", "x=1"),
        ("/openapi/label/batchset/TOKEN123", "/openapi/label/batchset/"),
        ('{"secret": "s3cr3t", "appid": "wx1"}', '"appid": "wx1"'),
    ],
)
def test_redaction_keeps_what_is_not_secret(text, kept):
    cleaned = redact(text)
    assert kept in cleaned
    assert "abc" not in cleaned and "TOKEN123" not in cleaned and "s3cr3t" not in cleaned


def test_error_reports_mask_secret_objects_and_secret_form_fields(settings):
    settings.DEBUG = True
    request = RequestFactory().post(
        "/admin/wecom/wecomapp/1/change/", {"name": "x", "secret": SECRET, "token": SECRET}
    )

    def failing_view(credential_secret: Secret) -> None:
        raise RuntimeError("boom")

    try:
        failing_view(Secret(SECRET))
    except RuntimeError:
        report = ExceptionReporter(request, *sys.exc_info())
        html = report.get_traceback_html()
        text = report.get_traceback_text()
    assert "boom" in text
    assert SECRET not in html and SECRET not in text


def test_reprs_of_clients_show_no_secret():
    wecom = WeComClient(corp_id=DEMO.wecom_corp_id, secret=SECRET)
    bot = ChatbotClient(
        appid=DEMO.bot_appid, token=DEMO.bot_token, encoding_aes_key=DEMO.bot_encoding_aes_key
    )
    assert SECRET not in repr(wecom)
    assert DEMO.bot_token not in repr(bot) and DEMO.bot_encoding_aes_key not in repr(bot)
    assert DEMO.bot_token not in repr(bot._crypt)


@pytest.mark.django_db
def test_a_form_sent_back_with_errors_does_not_echo_the_typed_secret(credential_admin):
    client = Client()
    client.login(username=credential_admin.username, password=PASSWORD)
    response = client.post(
        "/admin/wecom/wecomapp/add/",
        {
            "name": "Bad corp id",
            "corp_id": "not-a-corp-id",
            "secret": SECRET,
            "agent_id": "",
            "rate_limit": "",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "errornote" in page
    assert SECRET not in page
    assert not WeComApp.objects.exists()


@pytest.mark.django_db
def test_the_secret_field_is_required_when_adding(credential_admin):
    client = Client()
    client.login(username=credential_admin.username, password=PASSWORD)
    response = client.post(
        "/admin/wecom/wecomapp/add/",
        {
            "name": "No secret",
            "corp_id": "ww0123456789abcdef",
            "secret": "",
            "agent_id": "",
            "rate_limit": "",
        },
    )
    assert response.status_code == 200
    assert not WeComApp.objects.exists()
