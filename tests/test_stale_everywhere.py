"""Issue 15: every object two people can open carries its version. A save from a page opened
before someone else's change is refused with who, when and both values, and changes nothing:
Official Account tags (no platform call either), credentials, pull intervals."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import translation

from console.audit import Actor, AuditSource, audit_context
from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import oa_tag_rename, oa_tags_pull
from tagging.strategy.jobs import strategy_pull_interval_set
from tests.conftest import PASSWORD
from wecom.models import OfficialAccount, WeComApp
from wecom.sandbox import DEMO


@pytest.fixture(autouse=True)
def _english():
    """Sentences are stored in the language of whoever acts: here, English."""
    with translation.override("en"):
        yield


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    client.cookies["django_language"] = "en"
    return client


@pytest.fixture
def other(make_user):
    return Actor(user=make_user("other"), source=AuditSource.ADMIN)


def test_a_stale_official_account_tag_rename_is_refused_before_any_call(sandbox, editor, other):
    account = OfficialAccount.objects.create(
        name="演示公众号", appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=10_000
    )
    account = OfficialAccount.objects.get(pk=account.pk)
    oa_tags_pull(account=account, actor=other)
    tag = OfficialAccountTag.objects.filter(account=account, tag_id__gt=2).first()
    opened = tag.version
    oa_tag_rename(tag=tag, name="别人的名字", actor=other)
    sandbox.reset_stats()
    page = (
        logged_in(editor)
        .post(
            reverse("admin:tagging_officialaccounttag_change", args=[tag.pk]),
            {"name": "我的名字", "expected_version": opened},
        )
        .content.decode()
    )
    assert "Changed by other" in page and "别人的名字" in page and "我的名字" in page
    assert OfficialAccountTag.objects.get(pk=tag.pk).name == "别人的名字"
    assert sandbox.calls("wechat", "/cgi-bin/tags/update") == 0


def test_a_refused_official_account_rename_is_in_the_history(sandbox, other):
    from wecom.clients import PlatformError
    from wecom.sandbox import FaultRule

    account = OfficialAccount.objects.create(
        name="演示公众号", appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=10_000
    )
    account = OfficialAccount.objects.get(pk=account.pk)
    oa_tags_pull(account=account, actor=other)
    tag = OfficialAccountTag.objects.filter(account=account, tag_id__gt=2).first()
    sandbox.faults.add(FaultRule(platform="wechat", endpoint="/cgi-bin/tags/update", errcode=45157))
    with pytest.raises(PlatformError):
        oa_tag_rename(tag=tag, name="新名字", actor=other)
    entry = LogEntry.objects.filter(object_id=str(tag.pk)).latest("pk")
    assert "Not renamed" in audit_context(entry).note
    assert OfficialAccountTag.objects.get(pk=tag.pk).version == tag.version


def test_a_stale_credential_form_is_refused_without_showing_secrets(
    db, credential_admin, make_user
):
    app = WeComApp.objects.create(
        name="主企业", corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret, rate_limit=5
    )
    opened = WeComApp.objects.get(pk=app.pk).version
    first = logged_in(make_user("first", superuser=True))
    form = {"name": "主企业", "corp_id": app.corp_id, "secret": "", "agent_id": ""}
    saved = first.post(
        f"/admin/wecom/wecomapp/{app.pk}/change/",
        {**form, "rate_limit": "8", "expected_version": opened},
    )
    assert saved.status_code == 302
    page = (
        logged_in(credential_admin)
        .post(
            f"/admin/wecom/wecomapp/{app.pk}/change/",
            {**form, "rate_limit": "3", "expected_version": opened},
        )
        .content.decode()
    )
    assert "Changed by first" in page and "“8.0”" in page and "“3.0”" in page
    assert WeComApp.objects.get(pk=app.pk).rate_limit == 8
    assert DEMO.wecom_secret not in page


def test_a_stale_pull_interval_is_refused(db, editor, other):
    app = WeComApp.objects.create(
        name="主企业", corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret
    )
    pull = app.strategy_pull
    opened = pull.version
    strategy_pull_interval_set(pull=pull, every_minutes=30, actor=other)
    page = (
        logged_in(editor)
        .post(
            reverse("admin:tagging_strategypull_change", args=[pull.pk]),
            {"every_minutes": "5", "expected_version": opened},
        )
        .content.decode()
    )
    assert "Changed by other" in page and "“30”" in page and "“5”" in page
    pull.refresh_from_db()
    assert pull.every_minutes == 30
