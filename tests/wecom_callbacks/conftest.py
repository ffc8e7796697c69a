"""A WeCom app with callbacks configured, pointed at the demo sandbox and imported."""

from __future__ import annotations

import secrets
import time
import urllib.parse

import pytest

from chatbot.crypto import WXBizMsgCrypt
from tests.tagging.strategy.conftest import actor, app, imported  # noqa: F401  (fixtures)
from wecom.models import WeComApp
from wecom.sandbox import DEMO
from wecom.sandbox.callbacks import event_xml

CORP = DEMO.wecom_corp_id
CALLBACK_TOKEN = "CallbackToken123"
CALLBACK_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture(autouse=True)
def _no_coalescing_wait(settings):
    settings.WECOM_CALLBACK_COALESCE_SECONDS = 0


@pytest.fixture
def configured(imported) -> WeComApp:  # noqa: F811
    imported.callback_token = CALLBACK_TOKEN
    imported.callback_encoding_aes_key = CALLBACK_KEY
    imported.save()
    imported.refresh_from_db()
    return imported


def crypt() -> WXBizMsgCrypt:
    return WXBizMsgCrypt(CALLBACK_TOKEN, CALLBACK_KEY, CORP)


def signed_query(encrypted: str, *, timestamp: int | None = None, **extra: str) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(6)
    return {
        "msg_signature": crypt().signature(stamp, nonce, encrypted),
        "timestamp": stamp,
        "nonce": nonce,
        **extra,
    }


def envelope(encrypted: str, corp: str = CORP) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName><AgentID>1000002</AgentID>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    ).encode()


def event_request(event: dict, **query_extra) -> tuple[str, bytes]:
    """A signed POST as WeCom sends it: the query string and the body."""
    encrypted = crypt().encrypt(event_xml(CORP, event))
    query = signed_query(encrypted, **query_extra)
    return urllib.parse.urlencode(query), envelope(encrypted)
