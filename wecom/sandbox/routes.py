"""Which endpoint of which platform runs which state method, and how each platform's calls are
authenticated and read before it does.

WeCom and the Official Account platform take an ``access_token`` in the query and a JSON body;
the dialogue platform takes the bot's TOKEN in the path and XML encrypted with its
EncodingAESKey in a JSON body (aibot: plain JSON with a signature).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatbot.crypto import CryptoError, WXBizMsgCrypt

from .chatbot import ChatbotPlatform, parse_chatbot_xml
from .customers import CustomersPlatform
from .official_account import OfficialAccountPlatform
from .shared import CHATBOT, WECHAT, WECOM, PlatformError
from .state import SandboxState
from .wecom import WeComPlatform

if TYPE_CHECKING:
    from .server import SandboxServer

__all__ = ["CHATBOT_ENDPOINTS", "ROUTES", "Call", "chatbot_decrypt"]


class Call:
    """One platform request as the handlers see it."""

    __slots__ = (
        "body",
        "body_ok",
        "bot_token",
        "content_type",
        "endpoint",
        "method",
        "platform",
        "query",
        "raw",
        "xml",
        "xml_error",
    )

    def __init__(self, platform: str, endpoint: str, method: str, query: dict[str, str]) -> None:
        self.platform = platform
        self.endpoint = endpoint
        self.method = method
        self.query = query
        self.raw = b""
        self.body: Any = None
        self.body_ok = True
        self.bot_token = ""
        self.content_type = ""
        self.xml: dict[str, Any] | None = None
        self.xml_error: PlatformError | None = None

    def json_object(self) -> dict[str, Any]:
        if not self.body_ok or not isinstance(self.body, dict):
            raise PlatformError(47001, "data format error: the body must be a JSON object")
        return self.body


def chatbot_decrypt(state: SandboxState, call: Call) -> None:
    """Decrypt a chatbot call's ``encrypt`` into ``call.xml``, or note why it cannot be read in
    ``call.xml_error`` (raised once the TOKEN and the body were checked)."""
    body = call.body if call.body_ok and isinstance(call.body, dict) else {}
    encrypted = body.get("encrypt")
    if not isinstance(encrypted, str) or not encrypted:
        return
    creds = state.chatbot.bot_credentials(call.bot_token)
    if creds is None:
        return
    try:
        crypt = WXBizMsgCrypt(call.bot_token, creds["encoding_aes_key"], creds["appid"])
        text = crypt.decrypt(encrypted)
    except CryptoError:
        call.xml_error = PlatformError(1005, "decrypt failed: invalid encrypt")
        return
    try:
        call.xml = parse_chatbot_xml(text)
    except (ET.ParseError, ValueError) as exc:
        call.xml_error = PlatformError(1005, f"decrypted data is not valid XML: {exc}")


# ---- endpoint handlers: (sandbox, call) -> answer dict ---------------------------------------

Handler = Callable[["SandboxServer", Call], dict[str, Any]]


def _wecom(action: Callable[[WeComPlatform, str, dict[str, Any]], dict[str, Any]]) -> Handler:
    def handle(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
        wecom = sandbox.state.wecom
        corp_id = wecom.auth(call.query.get("access_token"), customer_contact=True)
        return action(wecom, corp_id, call.json_object())

    return handle


def _wecom_app(
    action: Callable[[WeComPlatform, str, dict[str, Any], str], dict[str, Any]],
) -> Handler:
    """A WeCom endpoint that needs to know which app calls (corporate tags: who created what)."""

    def handle(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
        wecom = sandbox.state.wecom
        corp_id, app = wecom.auth_app(call.query.get("access_token"), customer_contact=True)
        return action(wecom, corp_id, call.json_object(), app)

    return handle


def _wechat(
    action: Callable[[OfficialAccountPlatform, str, dict[str, Any]], dict[str, Any]],
) -> Handler:
    def handle(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
        account = sandbox.state.official_account
        appid = account.auth(call.query.get("access_token"))
        return action(account, appid, call.json_object())

    return handle


def _wecom_gettoken(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
    return sandbox.state.wecom.gettoken(call.query, sandbox.token_ttl)


def _oa_stable_token(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
    return sandbox.state.official_account.stable_token(call.json_object(), sandbox.token_ttl)


def _oa_plain_token(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
    return sandbox.state.official_account.plain_token(call.query, sandbox.token_ttl)


def _oa_tags_get(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
    account = sandbox.state.official_account
    return account.tags_get(account.auth(call.query.get("access_token")))


def _chatbot(action: Callable[[ChatbotPlatform, str, dict[str, Any]], dict[str, Any]]) -> Handler:
    def handle(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
        chatbot = sandbox.state.chatbot
        chatbot.bot(call.bot_token)  # 1001 unknown TOKEN, 1002 not reviewed
        body = call.body if call.body_ok and isinstance(call.body, dict) else {}
        encrypted = body.get("encrypt")
        if "application/json" not in call.content_type:
            raise PlatformError(1004, "encrypt field is empty: send Content-Type application/json")
        if not isinstance(encrypted, str) or not encrypted:
            raise PlatformError(1004, "encrypt field is empty")
        if call.xml_error is not None:
            raise call.xml_error
        assert call.xml is not None
        return action(chatbot, call.bot_token, call.xml)

    return handle


def _chatbot_aibot(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
    """aibot takes plain JSON (a signature, no encryption)."""
    chatbot = sandbox.state.chatbot
    chatbot.bot(call.bot_token)
    if not call.body_ok or not isinstance(call.body, dict):
        raise PlatformError(1008, "the body must be a JSON object")
    return chatbot.aibot(call.bot_token, call.body)


# platform -> endpoint -> (HTTP method, handler)
ROUTES: dict[str, dict[str, tuple[str, Handler]]] = {
    WECOM: {
        "/cgi-bin/gettoken": ("GET", _wecom_gettoken),
        "/cgi-bin/externalcontact/customer_strategy/list": (
            "POST",
            _wecom(WeComPlatform.strategy_list),
        ),
        "/cgi-bin/externalcontact/customer_strategy/get": (
            "POST",
            _wecom(WeComPlatform.strategy_get),
        ),
        "/cgi-bin/externalcontact/get_strategy_tag_list": (
            "POST",
            _wecom(WeComPlatform.get_strategy_tag_list),
        ),
        "/cgi-bin/externalcontact/add_strategy_tag": (
            "POST",
            _wecom(WeComPlatform.add_strategy_tag),
        ),
        "/cgi-bin/externalcontact/edit_strategy_tag": (
            "POST",
            _wecom(WeComPlatform.edit_strategy_tag),
        ),
        "/cgi-bin/externalcontact/del_strategy_tag": (
            "POST",
            _wecom(WeComPlatform.del_strategy_tag),
        ),
        "/cgi-bin/externalcontact/get_corp_tag_list": (
            "POST",
            _wecom_app(WeComPlatform.get_corp_tag_list),
        ),
        "/cgi-bin/externalcontact/add_corp_tag": ("POST", _wecom_app(WeComPlatform.add_corp_tag)),
        "/cgi-bin/externalcontact/edit_corp_tag": (
            "POST",
            _wecom_app(WeComPlatform.edit_corp_tag),
        ),
        "/cgi-bin/externalcontact/del_corp_tag": ("POST", _wecom_app(WeComPlatform.del_corp_tag)),
    },
    WECHAT: {
        "/cgi-bin/stable_token": ("POST", _oa_stable_token),
        "/cgi-bin/token": ("GET", _oa_plain_token),
        "/cgi-bin/tags/get": ("GET", _oa_tags_get),
        "/cgi-bin/tags/create": ("POST", _wechat(OfficialAccountPlatform.tags_create)),
        "/cgi-bin/tags/update": ("POST", _wechat(OfficialAccountPlatform.tags_update)),
        "/cgi-bin/tags/delete": ("POST", _wechat(OfficialAccountPlatform.tags_delete)),
        # Looked up at each call: the chaos harness wraps batch_tagging to watch what is in flight.
        "/cgi-bin/tags/members/batchtagging": (
            "POST",
            _wechat(lambda account, a, b: account.batch_tagging(a, b, tagging=True)),
        ),
        "/cgi-bin/tags/members/batchuntagging": (
            "POST",
            _wechat(lambda account, a, b: account.batch_tagging(a, b, tagging=False)),
        ),
        "/cgi-bin/tags/getidlist": ("POST", _wechat(OfficialAccountPlatform.getidlist)),
        "/cgi-bin/user/tag/get": ("POST", _wechat(OfficialAccountPlatform.user_tag_get)),
    },
    CHATBOT: {
        "/openapi/label/batchset": ("POST", _chatbot(ChatbotPlatform.batchset)),
        "/openapi/setautoreply": ("POST", _chatbot(ChatbotPlatform.setautoreply)),
        "/openapi/publish": ("POST", _chatbot(ChatbotPlatform.publish)),
        "/openapi/publish_progress": ("POST", _chatbot(ChatbotPlatform.publish_progress)),
        "/openapi/aibot": ("POST", _chatbot_aibot),
    },
}


# ---- WeCom customers (customers.py): GET endpoints read the query, the others a JSON body.


def _customers(
    action: Callable[[CustomersPlatform, str, dict[str, Any]], dict[str, Any]],
    *,
    query: bool = False,
) -> Handler:
    def handle(sandbox: SandboxServer, call: Call) -> dict[str, Any]:
        corp_id = sandbox.state.wecom.auth(call.query.get("access_token"), customer_contact=True)
        customers = sandbox.state.customers
        return action(customers, corp_id, call.query if query else call.json_object())

    return handle


ROUTES[WECOM].update(
    {
        "/cgi-bin/externalcontact/get_follow_user_list": (
            "GET",
            _customers(CustomersPlatform.get_follow_user_list, query=True),
        ),
        "/cgi-bin/externalcontact/list": (
            "GET",
            _customers(CustomersPlatform.member_list, query=True),
        ),
        "/cgi-bin/externalcontact/batch/get_by_user": (
            "POST",
            _customers(CustomersPlatform.batch_get_by_user),
        ),
        # Looked up at each call, as batchtagging: a test may wrap mark_tag to watch what is in
        # flight.
        "/cgi-bin/externalcontact/mark_tag": (
            "POST",
            _customers(lambda customers, corp_id, body: customers.mark_tag(corp_id, body)),
        ),
    }
)

# The chatbot's endpoints end in /TOKEN.
CHATBOT_ENDPOINTS = tuple(ROUTES[CHATBOT])
