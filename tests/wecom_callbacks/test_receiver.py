"""The callback receiver: URL verification, events recorded once, every refusal a counted 4xx."""

from __future__ import annotations

import logging
import time

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from console.models import Job
from tagging.strategy.callbacks import CALLBACK_PULL_KIND
from tests.wecom_callbacks.conftest import (
    CORP,
    crypt,
    envelope,
    event_request,
    signed_query,
)
from wecom.callbacks import MAX_BODY_BYTES
from wecom.models import WeComApp, WeComCallbackEvent, WeComCallbackStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def url(app: WeComApp) -> str:
    return reverse("wecom_callback", args=[app.pk])


def post(app: WeComApp, query: str, body: bytes):
    return Client().post(f"{url(app)}?{query}", data=body, content_type="text/xml")


def status(app: WeComApp) -> WeComCallbackStatus:
    return WeComCallbackStatus.objects.get(app=app)


EVENT = {"change_type": "update", "tag_type": "tag", "id": "etTAG", "strategy_id": 1}


def test_url_verification_answers_the_plain_echostr(configured):
    echostr = crypt().encrypt("1234567890abcdef")
    answer = Client().get(url(configured), signed_query(echostr, echostr=echostr))
    assert answer.status_code == 200
    assert answer.content == b"1234567890abcdef"
    assert status(configured).verified_at is not None


def test_an_event_is_recorded_once_and_one_pull_job_is_queued(configured):
    query, body = event_request(EVENT, timestamp=None)
    answer = post(configured, query, body)
    assert answer.status_code == 200
    assert answer.content == b""
    event = WeComCallbackEvent.objects.get()
    assert (event.change_type, event.tag_type, event.item_id, event.strategy_id) == (
        "update",
        "tag",
        "etTAG",
        1,
    )
    assert Job.objects.filter(kind=CALLBACK_PULL_KIND).count() == 1
    # WeCom's retry of the same event: a new request, the same event; answered, not recorded.
    query, body = event_request({**EVENT, "create_time": event.create_time})
    assert post(configured, query, body).status_code == 200
    assert WeComCallbackEvent.objects.count() == 1
    assert status(configured).events_received == 1
    assert status(configured).events_duplicate == 1
    # A second event while the first job has not started joins it.
    query, body = event_request({**EVENT, "id": "etOTHER"})
    assert post(configured, query, body).status_code == 200
    assert WeComCallbackEvent.objects.count() == 2
    assert Job.objects.filter(kind=CALLBACK_PULL_KIND).count() == 1


def test_other_events_are_answered_and_ignored(configured):
    xml = f"<xml><ToUserName>{CORP}</ToUserName><Event>change_external_contact</Event></xml>"
    encrypted = crypt().encrypt(xml)
    from urllib.parse import urlencode

    answer = post(configured, urlencode(signed_query(encrypted)), envelope(encrypted))
    assert answer.status_code == 200
    assert not WeComCallbackEvent.objects.exists()


def _refused(app, answer, status_code, reason):
    assert answer.status_code == status_code, answer.content
    assert not WeComCallbackEvent.objects.exists()
    assert status(app).events_refused == 1
    assert status(app).last_refusal == reason
    assert answer.content.decode().endswith((".", "。")), "a sentence"


def test_bad_signature_is_refused(configured):
    query, body = event_request(EVENT)
    query = query.replace("msg_signature=", "msg_signature=0")
    _refused(configured, post(configured, query, body), 403, "bad_signature")


def test_old_timestamp_is_refused(configured):
    query, body = event_request(EVENT, timestamp=int(time.time()) - 3600)
    _refused(configured, post(configured, query, body), 403, "stale")


def test_replayed_request_is_refused(configured):
    query, body = event_request(EVENT)
    assert post(configured, query, body).status_code == 200
    answer = post(configured, query, body)
    assert answer.status_code == 409
    assert status(configured).events_refused == 1
    assert status(configured).last_refusal == "replayed"


def test_undecryptable_payload_is_refused(configured):
    garbage = "QUJD" * 16  # valid base64, a whole number of blocks, not our key's
    from urllib.parse import urlencode

    answer = post(configured, urlencode(signed_query(garbage)), envelope(garbage))
    _refused(configured, answer, 400, "undecryptable")


def test_another_corps_message_is_refused(configured):
    from chatbot.crypto import WXBizMsgCrypt
    from tests.wecom_callbacks.conftest import CALLBACK_KEY, CALLBACK_TOKEN
    from wecom.sandbox.callbacks import event_xml

    other = WXBizMsgCrypt(CALLBACK_TOKEN, CALLBACK_KEY, "ww0000000000000000")
    encrypted = other.encrypt(event_xml("ww0000000000000000", EVENT))
    from urllib.parse import urlencode

    answer = post(configured, urlencode(signed_query(encrypted)), envelope(encrypted))
    _refused(configured, answer, 400, "undecryptable")


def test_body_over_the_limit_is_refused_without_reading_it(configured):
    query, _body = event_request(EVENT)
    answer = post(configured, query, b"<xml>" + b"x" * MAX_BODY_BYTES + b"</xml>")
    _refused(configured, answer, 413, "too_large")


def test_unknown_app_and_unconfigured_app_are_404(configured, app):
    query, body = event_request(EVENT)
    answer = Client().post(
        reverse("wecom_callback", args=[configured.pk + 1000]) + "?" + query,
        data=body,
        content_type="text/xml",
    )
    assert answer.status_code == 404
    WeComApp.objects.filter(pk=configured.pk).update(callback_token="")
    answer = post(configured, query, body)
    _refused(configured, answer, 404, "not_configured")


def test_flood_is_rate_limited_per_app(configured, settings, monkeypatch):
    settings.WECOM_CALLBACK_RATE_PER_MINUTE = 3
    held = time.time()
    monkeypatch.setattr("wecom.callbacks._clock", lambda: held)  # one minute throughout
    answers = []
    for _ in range(5):
        query, body = event_request(EVENT)
        answers.append(post(configured, query, body).status_code)
    assert answers == [200, 200, 200, 429, 429]
    assert status(configured).last_refusal == "rate_limited"
    # The flood is counted once a minute: no database write per refused request.
    assert status(configured).events_refused == 1


def test_refusals_log_one_line_and_no_traceback(configured, caplog):
    query, body = event_request(EVENT)
    query = query.replace("msg_signature=", "msg_signature=0")
    with caplog.at_level(logging.WARNING):
        post(configured, query, body)
    assert caplog.records
    assert all(record.exc_info is None for record in caplog.records)


def test_methods_other_than_get_and_post_are_405(configured):
    assert Client().put(url(configured)).status_code == 405
