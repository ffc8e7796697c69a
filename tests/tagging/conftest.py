"""Fixtures for Official Account tags and bulk jobs: demo credentials pointed at the sandbox."""

from __future__ import annotations

import pytest

from console.audit import Actor, AuditSource
from tests.conftest import shared_cache_across_threads
from wecom.models import ChatbotBot, OfficialAccount
from wecom.sandbox import DEMO


@pytest.fixture(autouse=True)
def quick_platform(settings):
    """Retries without long pauses, and (on SQLite) a shared cache other threads can see."""
    settings.PLATFORM_BACKOFF_BASE = 0.01
    settings.PLATFORM_BACKOFF_CAP = 0.05
    settings.PLATFORM_READ_TIMEOUT = 5.0
    shared_cache_across_threads(settings, "tagging-tests")


@pytest.fixture
def account(db, sandbox) -> OfficialAccount:
    created = OfficialAccount.objects.create(
        name="演示公众号", appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=10_000
    )
    return OfficialAccount.objects.get(pk=created.pk)  # secrets as loaded: Secret objects


@pytest.fixture
def bot_credential(db, sandbox) -> ChatbotBot:
    created = ChatbotBot.objects.create(
        name="演示机器人",
        appid=DEMO.bot_appid,
        token=DEMO.bot_token,
        encoding_aes_key=DEMO.bot_encoding_aes_key,
        rate_limit=10_000,
    )
    return ChatbotBot.objects.get(pk=created.pk)


@pytest.fixture
def actor(editor) -> Actor:
    return Actor(user=editor, source=AuditSource.CONSOLE, ip="127.0.0.1")
