"""Dialogue platform (chatbot) open API: user labels in bulk and auto-reply skills.

Seeds 000 and 002 and PLATFORM.md section 4 are the specification (where they differ, PLATFORM.md
is right). Each request is an XML document (``<xml>`` root, every value in CDATA, the openids or
similar questions inside one ``<list>``) encrypted with WXBizMsgCrypt and posted as
``{"encrypt": ...}`` to a path that ends with the bot's TOKEN.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from django.utils.translation import gettext_lazy as _

from chatbot.crypto import WXBizMsgCrypt
from chatbot.signature import signature_make
from wecom.clients.errors import CHATBOT, PlatformAPIError, PlatformInputError
from wecom.clients.transport import (
    Endpoint,
    PlatformClient,
    TransportOptions,
    credential_key,
)
from wecom.rules import has_forbidden_character

LABEL_BATCHSET = Endpoint("/openapi/label/batchset", authed=False)
SET_AUTOREPLY = Endpoint("/openapi/setautoreply", authed=False)
# Publishing twice is harmless but slow, and a timeout may hide a publish that started: the
# job asks publish_progress before starting one, so the call itself is not retried.
PUBLISH = Endpoint("/openapi/publish", authed=False, idempotent=False)
PUBLISH_PROGRESS = Endpoint("/openapi/publish_progress", authed=False)
AIBOT = Endpoint("/openapi/aibot", authed=False)

# The two environments of a bot (PLATFORM.md section 4, "Going live").
ENV_DEBUG = "debug"
ENV_ONLINE = "online"
ENVIRONMENTS = (ENV_DEBUG, ENV_ONLINE)

PUBLISH_SYNCING = 0
PUBLISH_SUCCEEDED = 1
PUBLISH_FAILED = 2

# The answer's text is the one field of lines (newline and tab pass the character rule there).
_MULTILINE_FIELDS = frozenset({"content"})
_CONTROL_CHARACTER = _(
    "The text of “%(field)s” contains a control character that cannot be sent. Remove it "
    "(it often comes with text pasted from other programs)."
)
_NO_OPENIDS = _("There is nobody to label: the list of OpenIDs is empty. Nothing was sent.")
# The answer to a probe with empty fields when the TOKEN, key and AppID are right.
_FIELDS_EMPTY = 1007


def cdata(value: str) -> str:
    """``value`` as CDATA; a ``]]>`` inside it is split across two sections."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(
    fields: Sequence[tuple[str, str]],
    *,
    endpoint: Endpoint,
    list_items: Sequence[tuple[str, str]] | None = None,
) -> str:
    """The request document: the scalar fields in order, then ``list_items`` in order inside
    one ``<list>`` element (none when ``None``, an empty one when empty); values in CDATA.

    PLATFORM.md section 4: the platform reads the openids and the similar questions from
    ``<list>`` only; the same elements directly under ``<xml>`` (as seeds 000 and 002 show
    them) are ignored while the call answers success.
    """
    parts = ["<xml>"]
    parts.extend(_element(name, value, endpoint=endpoint) for name, value in fields)
    if list_items is not None:
        parts.append("<list>")
        parts.extend(_element(name, value, endpoint=endpoint) for name, value in list_items)
        parts.append("</list>")
    parts.append("</xml>")
    return "".join(parts)


def _element(name: str, value: str, *, endpoint: Endpoint) -> str:
    # What forms and services refuse (wecom/rules.py), refused again here for every other caller.
    if has_forbidden_character(value, multiline=name in _MULTILINE_FIELDS):
        raise PlatformInputError(
            platform=CHATBOT,
            endpoint=endpoint.path,
            explanation=_CONTROL_CHARACTER,
            explanation_params={"field": name},
        )
    return f"<{name}>{cdata(value)}</{name}>"


def content_text(content: str | Mapping[str, Any]) -> str:
    """An answer as the platform wants it: text as is, a rich answer as UTF-8 JSON text."""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class PublishProgress:
    progress: int  # 0..100
    status: int  # PUBLISH_SYNCING, PUBLISH_SUCCEEDED or PUBLISH_FAILED

    @property
    def finished(self) -> bool:
        return self.status in (PUBLISH_SUCCEEDED, PUBLISH_FAILED)


def read_publish_progress(answer: dict[str, Any]) -> PublishProgress:
    data = answer["data"]
    progress = data["progress"]
    status = data["status"]
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        raise TypeError("progress is not a number")
    if isinstance(status, bool) or status not in (
        PUBLISH_SYNCING,
        PUBLISH_SUCCEEDED,
        PUBLISH_FAILED,
    ):
        raise ValueError("unknown publish status")
    return PublishProgress(progress=max(0, min(100, int(progress))), status=int(status))


@dataclass(frozen=True)
class BotOption:
    """A recommendation the bot offers when unsure (status ``FAQ_RECOMMEND``)."""

    title: str
    answer: str
    confidence: float
    node_name: str = ""


@dataclass(frozen=True)
class BotAnswer:
    """What ``aibot`` answered: ``answer`` as the platform sends it (text, or a rich answer's
    JSON text), the skill and standard question it matched, and the status."""

    status: str
    answer: str
    answer_type: str = ""
    skill_name: str = ""
    # The standard question the bot matched (``intent_name``; some pages say ``title``).
    standard_question: str = ""
    msg_id: str = ""
    options: tuple[BotOption, ...] = ()

    @property
    def matched(self) -> bool:
        return self.status not in ("NOMATCH", "FAQ_RECOMMEND") and bool(self.standard_question)


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"{what} is not text")


def read_bot_answer(answer: dict[str, Any]) -> BotAnswer:
    """Both envelopes the platform's pages show: the fields at the top, or inside ``data``."""
    fields = answer.get("data") if isinstance(answer.get("data"), dict) else answer
    status = fields["status"]
    if not isinstance(status, str) or not status:
        raise ValueError("status is not text")
    raw_options = fields.get("options") or []
    if not isinstance(raw_options, list):
        raise TypeError("options is not a list")
    options = []
    for item in raw_options:
        if not isinstance(item, dict):
            raise TypeError("an option is not an object")
        confidence = item.get("confidence", 0)
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            raise TypeError("confidence is not a number")
        options.append(
            BotOption(
                title=_text(item.get("title"), "title"),
                answer=_text(item.get("answer"), "answer"),
                confidence=float(confidence),
                node_name=_text(item.get("ans_node_name"), "ans_node_name"),
            )
        )
    return BotAnswer(
        status=status,
        answer=_text(fields.get("answer"), "answer"),
        answer_type=_text(fields.get("answer_type"), "answer_type"),
        skill_name=_text(fields.get("skill_name"), "skill_name"),
        standard_question=_text(fields.get("intent_name") or fields.get("title"), "intent_name"),
        msg_id=_text(fields.get("msg_id"), "msg_id"),
        options=tuple(options),
    )


class ChatbotClient(PlatformClient):
    platform = CHATBOT
    base_url_setting = "CHATBOT_API_BASE"

    def __init__(
        self,
        *,
        appid: str,
        token: str,
        encoding_aes_key: str,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(credential_key=credential_key(CHATBOT, appid, token), **options)
        self._appid = appid
        self._token = token
        self._crypt = WXBizMsgCrypt(token, encoding_aes_key, appid)
        self._signing_key = encoding_aes_key

    def __repr__(self) -> str:
        return f"ChatbotClient(appid={self._appid!r})"

    def _post(
        self,
        endpoint: Endpoint,
        fields: Sequence[tuple[str, str]],
        list_items: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        document = build_xml(fields, endpoint=endpoint, list_items=list_items)
        return self._call(
            endpoint,
            body={"encrypt": self._crypt.encrypt(document)},
            path_suffix=f"/{self._token}",
        )

    def label_batchset(
        self, *, appid: str, category: str, label: str, desc: str, openids: Sequence[str]
    ) -> None:
        """Give ``openids`` the label ``category``/``label`` (seed 000).

        ``appid`` is that of the Official Account or Mini Program the OpenIDs belong to, not
        the bot's (which only keys the encryption). The openids travel inside ``<list>``;
        an empty list is refused before sending: the call would label nobody.
        """
        if isinstance(openids, str):
            raise TypeError("openids must be a sequence of OpenIDs, not one string")
        if not openids:
            raise PlatformInputError(
                platform=CHATBOT, endpoint=LABEL_BATCHSET.path, explanation=_NO_OPENIDS
            )
        self._post(
            LABEL_BATCHSET,
            [("appid", appid), ("category", category), ("label", label), ("desc", desc)],
            [("openid", openid) for openid in openids],
        )

    def set_autoreply(
        self,
        *,
        managerid: str,
        skillname: str,
        title: str,
        content: str | Mapping[str, Any],
        questions: Sequence[str] = (),
    ) -> None:
        """Create or replace the answer to ``title`` in skill ``skillname`` (seed 002).

        The similar questions travel inside ``<list>``. No questions sends an empty
        ``<list></list>``: the call replaces the answer, so it says "no similar questions"
        outright instead of leaving the platform to guess what a missing list means.
        """
        if isinstance(questions, str):
            raise TypeError("questions must be a sequence of questions, not one string")
        self._post(
            SET_AUTOREPLY,
            [
                ("managerid", managerid),
                ("skillname", skillname),
                ("title", title),
                ("content", content_text(content)),
            ],
            [("question", question) for question in questions],
        )

    def publish(self, *, managerid: str) -> None:
        """Start copying the debug environment to online ("机器人发布")."""
        self._post(PUBLISH, [("managerid", managerid)])

    def publish_progress(self, *, managerid: str) -> PublishProgress:
        """How far the current (or last) publish is ("发布进度查询")."""
        document = build_xml([("managerid", managerid)], endpoint=PUBLISH_PROGRESS)
        return self._call(  # type: ignore[no-any-return]
            PUBLISH_PROGRESS,
            body={"encrypt": self._crypt.encrypt(document)},
            path_suffix=f"/{self._token}",
            read=read_publish_progress,
        )

    def ask(self, *, query: str, env: str, userid: str) -> BotAnswer:
        """Ask the bot ``query`` in ``env`` as ``userid`` (``aibot``), with a signature made
        here: a JWT, HS256, keyed with the EncodingAESKey, as ``sign`` would return it."""
        if env not in ENVIRONMENTS:
            raise ValueError(f"env must be one of {ENVIRONMENTS}")
        signature = signature_make(key=self._signing_key, userid=userid, username=userid)
        return self._call(  # type: ignore[no-any-return]
            AIBOT,
            body={"signature": signature, "query": query, "env": env},
            path_suffix=f"/{self._token}",
            read=read_bot_answer,
        )

    def check_connection(self) -> None:
        """Send a label request with empty fields, which changes nothing.

        The platform checks the TOKEN, then decrypts, then the fields: "fields empty" (1007)
        proves that TOKEN, EncodingAESKey and AppID are right. Anything else is raised.
        """
        try:
            self._post(
                LABEL_BATCHSET, [("appid", ""), ("category", ""), ("label", ""), ("desc", "")]
            )
        except PlatformAPIError as error:
            if error.errcode != _FIELDS_EMPTY:
                raise

    def verify_connection(self) -> None:
        """Every chatbot call carries the TOKEN: the check above contacts the platform each time."""
        self.check_connection()
