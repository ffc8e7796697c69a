"""Dialogue platform (chatbot) open API: user labels in bulk and auto-reply skills.

Seeds 000 and 002 and PLATFORM.md section 4 are the specification (where they differ, PLATFORM.md
is right). Each request is an XML document (``<xml>`` root, every value in CDATA, the openids or
similar questions inside one ``<list>``) encrypted with WXBizMsgCrypt and posted as
``{"encrypt": ...}`` to a path that ends with the bot's TOKEN.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

from django.utils.translation import gettext_lazy as _

from chatbot.crypto import WXBizMsgCrypt
from wecom.clients.errors import CHATBOT, PlatformAPIError, PlatformInputError
from wecom.clients.transport import (
    Endpoint,
    PlatformClient,
    TransportOptions,
    credential_key,
)

LABEL_BATCHSET = Endpoint("/openapi/label/batchset", authed=False)
SET_AUTOREPLY = Endpoint("/openapi/setautoreply", authed=False)

# XML 1.0 has no way to carry these, not even in CDATA; tab, newline and return are fine.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
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
    if _NOT_IN_XML.search(value):
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
