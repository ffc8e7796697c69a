"""Each role reaches what it needs and nothing else, and no page it can open shows a secret."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin, urlparse

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from console.roles import AUDITOR, CREDENTIAL_ADMIN, MARKETING_EDITOR, ROLES, roles_ensure
from tests.conftest import PASSWORD
from wecom.models import ChatbotBot, OfficialAccount, WeComApp

WECOM_SECRET = "wecomSecretValue-0123456789abcdefghijklmnopq"
OA_SECRET = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
BOT_TOKEN = "BotTokenValue0123456789abcdefXYZ"
BOT_AES_KEY = "QmFzZTY0QWVzS2V5Rm9yVGhlU2FuZGJveEJvdDAxMjM"
SECRETS = [WECOM_SECRET, OA_SECRET, BOT_TOKEN, BOT_AES_KEY]


@pytest.fixture
def credentials(db):
    return [
        WeComApp.objects.create(name="主企业", corp_id="ww0123456789abcdef", secret=WECOM_SECRET),
        OfficialAccount.objects.create(name="品牌号", appid="wx0123456789abcdef", secret=OA_SECRET),
        ChatbotBot.objects.create(
            name="客服机器人", appid="bot01", token=BOT_TOKEN, encoding_aes_key=BOT_AES_KEY
        ),
    ]


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_roles_exist_after_migrate_and_ensuring_them_again_changes_nothing(db):
    before = {
        group.name: set(group.permissions.values_list("codename", flat=True))
        for group in Group.objects.filter(name__in=[role.group_name for role in ROLES])
    }
    assert set(before) == {role.group_name for role in ROLES}
    roles_ensure()
    roles_ensure()
    after = {
        group.name: set(group.permissions.values_list("codename", flat=True))
        for group in Group.objects.filter(name__in=[role.group_name for role in ROLES])
    }
    assert after == before
    assert Group.objects.filter(name__in=[role.group_name for role in ROLES]).count() == 3


def test_a_permission_added_to_a_role_by_hand_is_taken_away_again(db):
    group = Group.objects.get(name=MARKETING_EDITOR.group_name)
    group.permissions.add(Permission.objects.get(codename="view_wecomapp"))
    roles_ensure()
    assert not group.permissions.filter(codename="view_wecomapp").exists()


def test_role_permissions_follow_the_boundaries(db):
    def codenames(role):
        group = Group.objects.get(name=role.group_name)
        return set(group.permissions.values_list("content_type__app_label", "codename"))

    editor = codenames(MARKETING_EDITOR)
    assert {app for app, _ in editor} <= {"tagging", "chatbot", "console"}
    expected_editor = set(
        Permission.objects.filter(content_type__app_label__in=["tagging", "chatbot"]).values_list(
            "content_type__app_label", "codename"
        )
    ) | {
        ("console", "view_job"),
        ("console", "change_job"),
        ("console", "view_jobitemfailure"),
    }
    assert editor == expected_editor

    keyholder = codenames(CREDENTIAL_ADMIN)
    assert ("wecom", "change_wecomapp") in keyholder
    assert ("wecom", "test_connection_wecomapp") in keyholder
    assert {app for app, _ in keyholder} == {"wecom"}

    auditor = codenames(AUDITOR)
    assert all(codename.startswith("view_") for _, codename in auditor)
    assert ("admin", "view_logentry") in auditor
    assert ("wecom", "view_wecomapp") in auditor


@pytest.mark.parametrize(
    "url",
    [
        "/admin/wecom/wecomapp/",
        "/admin/wecom/officialaccount/",
        "/admin/wecom/chatbotbot/",
        "/admin/wecom/wecomapp/add/",
        "/admin/admin/logentry/",
        "/admin/auth/user/",
    ],
)
def test_the_marketing_editor_cannot_open_credentials_history_or_users(editor, credentials, url):
    assert logged_in(editor).get(url).status_code == 403


def test_the_marketing_editor_does_not_see_credentials_on_the_dashboard(editor, credentials):
    page = logged_in(editor).get("/admin/").content.decode()
    assert "/admin/wecom/" not in page
    for credential in credentials:
        assert credential.name not in page


def test_the_credential_admin_manages_credentials(credential_admin, credentials):
    client = logged_in(credential_admin)
    app = credentials[0]
    assert client.get("/admin/wecom/wecomapp/").status_code == 200
    assert client.get("/admin/wecom/wecomapp/add/").status_code == 200
    response = client.post(
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        {"name": "新名字", "corp_id": app.corp_id, "secret": "", "agent_id": "", "rate_limit": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    app.refresh_from_db()
    assert app.name == "新名字"
    assert app.secret.reveal() == WECOM_SECRET, "a blank secret keeps the stored one"
    assert client.get("/admin/admin/logentry/").status_code == 403


def test_the_auditor_reads_everything_and_changes_nothing(auditor, credentials):
    client = logged_in(auditor)
    app = credentials[0]
    for url in (
        "/admin/wecom/wecomapp/",
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        f"/admin/wecom/wecomapp/{app.pk}/history/",
        "/admin/admin/logentry/",
        "/admin/auth/user/",
        "/admin/django_q/failure/",
    ):
        assert client.get(url).status_code == 200, url
    page = client.get(f"/admin/wecom/wecomapp/{app.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    response = client.post(
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        {"name": "改名", "corp_id": app.corp_id, "secret": "", "agent_id": "", "rate_limit": ""},
    )
    assert response.status_code == 403
    app.refresh_from_db()
    assert app.name == "主企业"
    assert client.get("/admin/wecom/wecomapp/add/").status_code == 403
    assert client.post(
        "/admin/wecom/wecomapp/",
        {
            "action": "test_connection",
            "_selected_action": [app.pk],
        },
    ).status_code in {200, 302}
    app.refresh_from_db()
    assert app.last_checked_at is None, "the auditor may not run connection tests"


def _links(html: str, base: str) -> set[str]:
    found = set()
    for href in re.findall(r'href="([^"#]+)"', html):
        url = urljoin(base, unescape(href))
        parsed = urlparse(url)
        if parsed.netloc and parsed.netloc != "testserver":
            continue
        path = parsed.path
        if not path.startswith("/admin/") or "logout" in path or "/delete/" in path:
            continue
        # Filtered and sorted lists show the same columns as the plain list.
        found.add(path)
    return found


@pytest.mark.parametrize("role", ["editor", "credential_admin", "auditor", "superuser"])
def test_no_page_any_role_can_open_shows_a_secret(role, request, credentials):
    user = request.getfixturevalue(role)
    client = logged_in(user)
    secrets = [*SECRETS]
    # The credential admin edits one so that history has something to show.
    if role in {"credential_admin", "superuser"}:
        app = credentials[0]
        client.post(
            f"/admin/wecom/wecomapp/{app.pk}/change/",
            {
                "name": app.name,
                "corp_id": app.corp_id,
                "secret": WECOM_SECRET + "x",
                "agent_id": "",
                "rate_limit": "",
            },
        )
        secrets.append(WECOM_SECRET + "x")
    seen: set[str] = set()
    queue = ["/admin/"]
    opened: list[str] = []
    while queue and len(seen) < 400:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        opened.append(url)
        html = response.content.decode()
        for secret in secrets:
            assert secret not in html, f"{secret[:6]}… shown on {url} to {role}"
        queue.extend(_links(html, url) - seen)
    assert "/admin/" in opened
    if role != "editor":
        # The crawl reached the pages that could leak: credential forms and their history.
        assert any(re.search(r"/admin/wecom/\w+/\d+/change/", url) for url in opened)
        assert any(re.search(r"/admin/wecom/\w+/\d+/history/", url) for url in opened)
