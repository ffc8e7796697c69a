"""WeCom's side of tag-change callbacks, for the sandbox's control API.

A change made "in WeCom's admin" (``POST /__sandbox__/wecom/admin_change``) is applied to the
state like an API call, then WeCom's event is encrypted, signed and POSTed to the corp's
configured callback URL, the way WeCom does (PLATFORM.md, section 2). Faults for a delivery:
``duplicate`` (sent twice), ``lost`` (never sent), ``bad_signature``, ``out_of_order`` (the
events of one change in reverse order). A receiver that does not answer within 5 s, or answers
with a server error, gets the event again, up to three more times (a slow receiver).
Standard library and our WXBizMsgCrypt only.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from chatbot.crypto import WXBizMsgCrypt

from .state import SandboxState

# A corporate tag change's events name no strategy (strategy_of answers None for its items).
ADMIN_CHANGES = (
    "add_strategy_tag",
    "edit_strategy_tag",
    "del_strategy_tag",
    "add_corp_tag",
    "edit_corp_tag",
    "del_corp_tag",
)
DELIVERIES = ("normal", "duplicate", "lost", "bad_signature", "out_of_order")
# WeCom waits this long for an answer, and tries again this many times when it gets none.
RECEIVER_TIMEOUT_SECONDS = 5.0
RETRIES = 3


@dataclass
class CallbackConfig:
    url: str
    token: str
    encoding_aes_key: str
    agent_id: int = 0


def _send(url: str, method: str, data: bytes | None = None, timeout: float = 5.0) -> int:
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - test host
    if data is not None:
        request.add_header("Content-Type", "text/xml")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


def _signed_url(config: CallbackConfig, crypt: WXBizMsgCrypt, encrypted: str, **extra: str) -> str:
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(8)
    signature = crypt.signature(timestamp, nonce, encrypted)
    query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce, **extra}
    separator = "&" if "?" in config.url else "?"
    return config.url + separator + urllib.parse.urlencode(query)


def callback_verify(corp_id: str, config: CallbackConfig) -> dict[str, Any]:
    """What WeCom does when the URL is saved: GET with an encrypted echostr; the answer must be
    the plain echostr, byte for byte."""
    crypt = WXBizMsgCrypt(config.token, config.encoding_aes_key, corp_id)
    plain = secrets.token_hex(10)
    echostr = crypt.encrypt(plain)
    url = _signed_url(config, crypt, echostr, echostr=echostr)
    request = urllib.request.Request(url, method="GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5.0) as answer:  # noqa: S310
            body = answer.read()
            status = int(answer.status)
    except urllib.error.HTTPError as error:
        return {"verified": False, "status": error.code}
    except (urllib.error.URLError, OSError) as error:
        return {"verified": False, "status": 0, "error": str(error)}
    return {"verified": status == 200 and body == plain.encode(), "status": status}


def event_xml(corp_id: str, event: dict[str, Any]) -> str:
    fields = [
        ("ToUserName", corp_id),
        ("FromUserName", "sys"),
        ("CreateTime", str(event.get("create_time") or int(time.time()))),
        ("MsgType", "event"),
        ("Event", "change_external_tag"),
        ("Id", event.get("id", "")),
        ("TagType", event.get("tag_type", "tag")),
        ("ChangeType", event["change_type"]),
    ]
    if event.get("strategy_id"):
        fields.append(("StrategyId", str(event["strategy_id"])))
    inner = "".join(f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields)
    return f"<xml>{inner}</xml>"


def deliver(
    corp_id: str, config: CallbackConfig, event: dict[str, Any], *, delivery: str = "normal"
) -> list[int]:
    """POST one event as WeCom would; the HTTP statuses of the attempts (none when lost)."""
    if delivery == "lost":
        return []
    crypt = WXBizMsgCrypt(config.token, config.encoding_aes_key, corp_id)
    encrypted = crypt.encrypt(event_xml(corp_id, event))
    body = (
        f"<xml><ToUserName><![CDATA[{escape(corp_id)}]]></ToUserName>"
        f"<AgentID><![CDATA[{config.agent_id}]]></AgentID>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    ).encode()
    url = _signed_url(config, crypt, encrypted)
    if delivery == "bad_signature":
        url = url.replace("msg_signature=", "msg_signature=0", 1)
    statuses = [_send(url, "POST", body, timeout=RECEIVER_TIMEOUT_SECONDS)]
    while (statuses[-1] == 0 or statuses[-1] >= 500) and len(statuses) <= RETRIES:
        statuses.append(
            _send(_signed_url(config, crypt, encrypted), "POST", body, RECEIVER_TIMEOUT_SECONDS)
        )
    if delivery == "duplicate":
        # WeCom's retry of the same event: a new request (new nonce), the same event.
        statuses.append(_send(_signed_url(config, crypt, encrypted), "POST", body))
    return statuses


def admin_change(state: SandboxState, corp_id: str, change: str, body: dict[str, Any]) -> tuple:
    """Apply a change as a person in WeCom's admin would; the answer and the events it makes."""
    if change not in ADMIN_CHANGES:
        raise ValueError("change must be one of " + ", ".join(ADMIN_CHANGES))
    wecom = state.wecom
    with state.lock:
        events: list[dict[str, Any]] = []
        if change in ("edit_strategy_tag", "edit_corp_tag"):
            item = str(body.get("id", ""))
            found = wecom.strategy_of(corp_id, item)
            if found is not None:
                tag_type, strategy = found
                events.append({"tag_type": tag_type, "id": item, "strategy_id": strategy})
            for event in events:
                event["change_type"] = "update"
        elif change in ("del_strategy_tag", "del_corp_tag"):
            for tag_type, key in (("tag_group", "group_id"), ("tag", "tag_id")):
                for item in body.get(key) or []:
                    found = wecom.strategy_of(corp_id, item)
                    if found is not None and found[0] == tag_type:
                        events.append({"tag_type": tag_type, "id": item, "strategy_id": found[1]})
            for event in events:
                event["change_type"] = "delete"
        groups_before = wecom.group_ids(corp_id)
        answer = getattr(wecom, change)(corp_id, body)
        if change in ("add_strategy_tag", "add_corp_tag"):
            group = answer["tag_group"]
            strategy = body.get("strategy_id")
            if group["group_id"] not in groups_before:
                events.append(
                    {"tag_type": "tag_group", "id": group["group_id"], "strategy_id": strategy}
                )
            events += [
                {"tag_type": "tag", "id": tag["id"], "strategy_id": strategy}
                for tag in group["tag"]
            ]
            for event in events:
                event["change_type"] = "create"
    return answer, events
