"""Official Account tags in the admin: pull, create, rename, delete, refusals said on the page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tagging.official_account.models import OfficialAccountTag
from tests.conftest import PASSWORD
from wecom.sandbox import DEMO

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor_client(client, editor):
    client.login(username=editor.username, password=PASSWORD)
    return client


def pull(client) -> None:
    response = client.post(reverse("admin:tagging_officialaccounttag_pull"))
    assert response.status_code == 302


def test_pull_then_create_rename_and_delete_through_the_pages(editor_client, account, sandbox):
    pull(editor_client)
    assert OfficialAccountTag.objects.filter(account=account).count() == 5

    response = editor_client.post(
        reverse("admin:tagging_officialaccounttag_add"), {"account": account.pk, "name": "会员日"}
    )
    assert response.status_code == 302
    tag = OfficialAccountTag.objects.get(name="会员日")
    assert "会员日" in {
        t["name"] for t in sandbox.state.official_account.tags_get(DEMO.oa_appid)["tags"]
    }

    change = reverse("admin:tagging_officialaccounttag_change", args=[tag.pk])
    assert editor_client.post(change, {"name": "会员节"}).status_code == 302
    tag.refresh_from_db()
    assert tag.name == "会员节"

    delete = reverse("admin:tagging_officialaccounttag_delete", args=[tag.pk])
    assert editor_client.post(delete, {"post": "yes"}).status_code == 302
    assert not OfficialAccountTag.objects.filter(pk=tag.pk).exists()
    assert tag.tag_id not in {
        t["id"] for t in sandbox.state.official_account.tags_get(DEMO.oa_appid)["tags"]
    }


def test_a_platform_refusal_shows_on_the_form_and_nothing_is_saved(editor_client, account, sandbox):
    pull(editor_client)
    sandbox.state.official_account.add_tag(DEMO.oa_appid, "只在平台上")
    response = editor_client.post(
        reverse("admin:tagging_officialaccounttag_add"),
        {"account": account.pk, "name": "只在平台上"},
    )
    assert response.status_code == 200
    assert "45157" in response.content.decode()
    assert not OfficialAccountTag.objects.filter(name="只在平台上").exists()


def test_reserved_and_crowded_tags_cannot_be_deleted_and_say_why(editor_client, account, sandbox):
    pull(editor_client)
    star = OfficialAccountTag.objects.get(tag_id=2)
    page = editor_client.get(reverse("admin:tagging_officialaccounttag_change", args=[star.pk]))
    assert "deletelink" not in page.content.decode()

    crowded = OfficialAccountTag.objects.get(name="广东")
    crowded.follower_count = 150_000
    crowded.save()
    sandbox.reset_stats()
    response = editor_client.post(
        reverse("admin:tagging_officialaccounttag_delete", args=[crowded.pk]),
        {"post": "yes"},
        follow=True,
    )
    assert "150,000" in response.content.decode()  # said on the tag's page
    assert sandbox.total_calls() == 0
    assert OfficialAccountTag.objects.filter(pk=crowded.pk).exists()


def test_the_auditor_reads_tags_but_cannot_pull_or_change(client, auditor, account, sandbox):
    client.login(username=auditor.username, password=PASSWORD)
    assert client.get(reverse("admin:tagging_officialaccounttag_changelist")).status_code == 200
    assert client.post(reverse("admin:tagging_officialaccounttag_pull")).status_code == 403
    assert sandbox.total_calls() == 0
