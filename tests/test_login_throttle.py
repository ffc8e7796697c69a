"""Repeated failed sign-ins lock the username and address pair out, in words, audited."""

from __future__ import annotations

import time
import types

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from console.audit import audit_context
from tests.conftest import PASSWORD


def attempt(username: str, password: str, *, ip: str = "203.0.113.5", language: str = "en"):
    client = Client(REMOTE_ADDR=ip, HTTP_ACCEPT_LANGUAGE=language)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )
    return client, response


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    settings.LOGIN_LOCKOUT_SECONDS = 900


def test_thirty_wrong_passwords_then_the_right_one_is_refused(editor):
    answers = [attempt("editor", "wrong password")[1] for _ in range(30)]
    assert not any(signed_in(answer) for answer in answers)
    _client, response = attempt("editor", PASSWORD)
    assert not signed_in(response)
    assert response.status_code == 200
    assert "Too many failed sign-ins for this username from your address" in (
        response.content.decode()
    )
    assert "Try again in 15 minutes" in response.content.decode()


def test_the_lock_starts_at_the_limit_and_speaks_chinese(editor):
    for _ in range(4):
        _client, response = attempt("editor", "wrong", language="zh-hans")
        assert "登录失败次数过多" not in response.content.decode()
    _client, response = attempt("editor", "wrong", language="zh-hans")
    assert "登录失败次数过多" in response.content.decode()


def test_only_the_pair_is_locked(editor, auditor):
    for _ in range(5):
        attempt("editor", "wrong")
    assert not signed_in(attempt("editor", PASSWORD)[1])
    assert signed_in(attempt("editor", PASSWORD, ip="198.51.100.77")[1]), "another address"
    assert signed_in(attempt("auditor", PASSWORD)[1]), "another username"


def test_a_success_before_the_limit_starts_the_count_again(editor):
    for _ in range(4):
        attempt("editor", "wrong")
    assert signed_in(attempt("editor", PASSWORD)[1])
    for _ in range(4):
        attempt("editor", "wrong")
    assert signed_in(attempt("editor", PASSWORD)[1])


def test_the_lock_ends(editor, settings, monkeypatch):
    import console.login_throttle as throttle

    for _ in range(5):
        attempt("editor", "wrong")
    assert not signed_in(attempt("editor", PASSWORD)[1])
    later = time.time() + settings.LOGIN_LOCKOUT_SECONDS + 1
    # Only the throttle's own clock moves on: the cache keeps its entry, so the lock must end
    # by the throttle's check, not by the cache forgetting it.
    monkeypatch.setattr(throttle, "time", types.SimpleNamespace(time=lambda: later))
    assert signed_in(attempt("editor", PASSWORD)[1])


def test_a_lockout_is_in_the_audit_log(editor):
    for _ in range(5):
        attempt("editor", "wrong", ip="203.0.113.9")
    entry = LogEntry.objects.get(object_id=str(editor.pk))
    context = audit_context(entry)
    assert context is not None
    assert context.ip == "203.0.113.9"
    assert "5 failed attempts" in context.note and "“editor”" in context.note
    assert "wrong" not in entry.change_message, "no password in the log"


VARIANTS = [
    "victim2 ",
    " victim2",
    "victim2\t",
    "victim2\u3000",
    "\u00a0victim2\n",
    "ｖｉｃｔｉｍ２",
    "𝐯𝐢𝐜𝐭𝐢𝐦𝟐",
    "VICTIM2",
    "Victim2",
]


def test_no_spelling_of_a_locked_name_gets_fresh_guesses(make_user):
    make_user("victim2")
    for _ in range(5):
        attempt("victim2", "wrong")
    for variant in VARIANTS:
        _client, response = attempt(variant, PASSWORD)
        assert not signed_in(response), f"{variant!r} signed in past the lock"
        assert "Too many failed sign-ins" in response.content.decode(), repr(variant)
    assert signed_in(attempt("victim2", PASSWORD, ip="198.51.100.77")[1])


@pytest.mark.parametrize("variant", VARIANTS[:7])
def test_failures_under_any_spelling_count_for_the_name_django_signs_in(make_user, variant):
    make_user("victim2")
    for _ in range(5):
        attempt(variant, "wrong")
    assert not signed_in(attempt("victim2", PASSWORD)[1])
