"""A role changes nothing outside its own apps: every admin action and every POST endpoint of
every registered admin, third-party ones included, is tried per role against a snapshot."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import URLPattern
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Failure, Schedule, Success

from console.audit import audit_context
from console.roles import AUDITOR, CREDENTIAL_ADMIN, MARKETING_EDITOR, Role
from tests.conftest import PASSWORD
from wecom.models import ChatbotBot, OfficialAccount, WeComApp


@pytest.fixture
def world(db) -> None:
    WeComApp.objects.create(
        name="主企业", corp_id="ww0123456789abcdef", secret="wecomSecretValue-0123456789ab"
    )
    OfficialAccount.objects.create(
        name="品牌号", appid="wx0123456789abcdef", secret="9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    )
    ChatbotBot.objects.create(
        name="客服机器人",
        appid="bot01",
        token="BotTokenValue0123",
        encoding_aes_key="QmFzZTY0QWVzS2V5Rm9yVGhlU2FuZGJveEJvdDAxMjM",
    )
    now = timezone.now()
    for model, success in ((Success, True), (Failure, False)):
        model.objects.create(
            id=f"task{int(success)}" + "0" * 27,
            name=f"task-{success}",
            func="math.floor",
            args=(1.5,),
            kwargs={},
            started=now,
            stopped=now,
            success=success,
            result=None,
        )
    Schedule.objects.create(name="nightly", func="math.floor", schedule_type=Schedule.DAILY)
    get_broker().purge_queue()


def _snapshot() -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for model in apps.get_models():
        if model is Session or model._meta.proxy:
            continue
        rows[model._meta.label] = [
            {key: str(value) for key, value in row.items()}
            for row in model._default_manager.order_by("pk").values()
        ]
    rows["queue"] = get_broker().queue_size()
    return rows


def _own_apps(role: Role) -> set[str]:
    """The apps a role may change: what the walk leaves out for that role."""
    return {grant.app_label for grant in role.grants if grant.actions != ("view",)}


def _url_of(model_admin: admin.ModelAdmin, pattern: URLPattern, pk: Any) -> str | None:
    route = str(pattern.pattern)
    if "<" in route.replace("<path:object_id>", "").replace("<id>", ""):
        return None
    opts = model_admin.model._meta
    return f"/admin/{opts.app_label}/{opts.model_name}/" + route.replace(
        "<path:object_id>", str(pk)
    ).replace("<id>", str(pk))


def _all_posts(model_admin: admin.ModelAdmin) -> list[tuple[str, dict[str, Any]]]:
    obj = model_admin.model._default_manager.order_by("pk").first()
    pk = obj.pk if obj is not None else 1
    opts = model_admin.model._meta
    changelist = f"/admin/{opts.app_label}/{opts.model_name}/"
    posts: list[tuple[str, dict[str, Any]]] = []
    # Every action the admin has, whatever its permissions, confirmed at once.
    for _function, name, _description in model_admin._get_base_actions():
        posts.append(
            (changelist, {"action": name, "_selected_action": [str(pk)], "post": "yes", "index": 0})
        )
    for pattern in model_admin.get_urls():
        if not isinstance(pattern, URLPattern):
            continue
        url = _url_of(model_admin, pattern, pk)
        if url is not None:
            posts.append((url, {"name": "changed", "post": "yes", "_save": "1"}))
    return posts


@pytest.mark.parametrize(
    "role_fixture, role",
    [("auditor", AUDITOR), ("editor", MARKETING_EDITOR), ("credential_admin", CREDENTIAL_ADMIN)],
)
def test_no_role_changes_anything_outside_its_apps(request, world, role_fixture, role):
    user = request.getfixturevalue(role_fixture)
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    before = _snapshot()
    tried = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label in _own_apps(role):
            continue
        for url, data in _all_posts(model_admin):
            response = client.post(url, data)
            assert response.status_code in {200, 302, 403, 404, 405}, (url, data)
            tried.append((url, data.get("action")))
            assert _snapshot() == before, f"{role.key} changed something with {url} {data}"
    assert ("/admin/django_q/failure/", "resubmit_tasks") in tried
    assert ("/admin/django_q/success/", "resubmit_tasks") in tried
    assert any(re.search(r"/wecomapp/\d+/test-connection/", url) for url, _ in tried) or (
        "wecom" in _own_apps(role)
    )
    assert Group.objects.filter(name=role.group_name).exists()


def test_resubmitting_is_for_administrators_and_audited(
    world, superuser, auditor, django_capture_on_commit_callbacks
):
    failure = Failure.objects.get()
    page = Client()
    assert page.login(username=auditor.username, password=PASSWORD)
    assert "resubmit" not in page.get("/admin/django_q/failure/").content.decode()

    client = Client(REMOTE_ADDR="198.51.100.9")
    assert client.login(username=superuser.username, password=PASSWORD)
    assert "resubmit_tasks" in client.get("/admin/django_q/failure/").content.decode()
    broker = get_broker()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/django_q/failure/",
            {"action": "resubmit_tasks", "_selected_action": [failure.pk]},
        )
    assert response.status_code == 302
    assert broker.queue_size() == 1
    assert not Failure.objects.filter(pk=failure.pk).exists()
    entry = LogEntry.objects.get(object_id=failure.pk)
    assert entry.user == superuser
    context = audit_context(entry)
    assert context is not None and context.ip == "198.51.100.9"
    assert "math.floor" in context.note
    broker.purge_queue()


def _custom_object_urls() -> list[tuple[admin.ModelAdmin, str]]:
    """Routes our admins add with an object id in them (Django's own are handled by Django)."""
    standard = {"changelist", "add", "history", "delete", "change", "password_change"}
    found = []
    for model_admin in admin.site._registry.values():
        for pattern in model_admin.get_urls():
            route = str(getattr(pattern, "pattern", ""))
            name = getattr(pattern, "name", None) or ""
            if "<path:object_id>" not in route or not name:
                continue
            if name.rsplit("_", 1)[-1] in standard or name.endswith("_password_change"):
                continue
            found.append((model_admin, route))
    return found


@pytest.mark.parametrize("role_fixture", ["auditor", "editor", "credential_admin", "superuser"])
def test_custom_admin_urls_answer_404_after_the_permission_check(
    request, world, role_fixture, settings
):
    settings.PLATFORM_MAX_ATTEMPTS = 1  # the existing credential's test fails fast (no sandbox)
    user = request.getfixturevalue(role_fixture)
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    urls = _custom_object_urls()
    assert urls, "the credentials' test-connection URLs at least"
    for model_admin, route in urls:
        opts = model_admin.model._meta
        existing = model_admin.model._default_manager.order_by("pk").first()
        assert existing is not None, opts.label
        answers = {}
        for object_id in (str(existing.pk), "abc", "999999", "1%2F2"):
            url = f"/admin/{opts.app_label}/{opts.model_name}/" + route.replace(
                "<path:object_id>", object_id
            )
            answers[object_id] = client.post(url).status_code
        assert 500 not in answers.values(), (route, answers)
        if answers[str(existing.pk)] == 403:
            # Someone who may not use it learns nothing about which ids exist.
            assert set(answers.values()) == {403}, (route, answers)
        else:
            assert answers["abc"] == answers["999999"] == answers["1%2F2"] == 404, (route, answers)
