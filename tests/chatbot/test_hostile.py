"""Hostile content: refused or escaped, never breaking the XML, never running in a page.

`]]>`, emoji, a 10,000-character text, control characters, `javascript:` URLs and `<script>`
in every place a person can type, through the editor, the import and the push."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse
from django.utils import translation

from chatbot.answers import AnswerError, answer_from_content, answer_from_editor
from chatbot.crypto import WXBizMsgCrypt
from chatbot.models import AutoReply
from chatbot.services import reply_push
from chatbot.transfer import import_plan
from tests.conftest import PASSWORD
from wecom.sandbox import DEMO

from .conftest import saved_reply

pytestmark = pytest.mark.usefixtures("fast_platform")

NASTY = "]]> <script>alert('x')</script> ]]]]> 🎉👨‍👩‍👧 &amp; \" '"
ACCEPTED_EVERYWHERE = {
    "type": "multimsg",
    "items": [
        {
            "type": "text",
            "segments": [
                {"kind": "text", "text": NASTY + "\n第二行\t制表符"},
                {"kind": "menu", "label": "推荐 ]] 🎉", "question": "问 ]] 🎉", "menuid": "id]]"},
                {"kind": "link", "label": "链接 🎉", "url": "https://example.com/a?b=1&c=]]"},
            ],
        },
        {
            "type": "news",
            "articles": [
                {
                    "title": NASTY[:60],
                    "description": NASTY,
                    "url": "https://example.com/?q=]]",
                    "picurl": "https://example.com/p.png",
                    "type": "h5",
                }
            ],
        },
        {
            "type": "miniprogrampage",
            "title": "小程序 ]]> <script>",
            "appid": "wx8c631f7e9f2465e1",
            "pagepath": "pages/a/b?x=1&y=%5D",
            "thumb_media_id": "media-1_x",
            "thumb_url": "",
        },
    ],
}


def test_hostile_but_valid_content_travels_intact_and_the_xml_stays_whole(sandbox, skill, actor):
    reply = saved_reply(
        skill,
        actor,
        title="标准 ]]> <script>alert(1)</script> 🎉",
        questions=["相似 ]]> 🎉", "<![CDATA[x]]>"],
        content=ACCEPTED_EVERYWHERE,
    )
    assert reply_push(reply=reply, actor=actor).ok
    recorded = [r for r in sandbox.requests if r.endpoint == "/openapi/setautoreply"][-1]
    xml = WXBizMsgCrypt(DEMO.bot_token, DEMO.bot_encoding_aes_key, DEMO.bot_appid).decrypt(
        recorded.body["encrypt"]
    )
    root = ET.fromstring(xml)  # well-formed, one document  # noqa: S314
    assert [child.tag for child in root] == ["managerid", "skillname", "title", "content", "list"]
    assert root.findtext("title") == "标准 ]]> <script>alert(1)</script> 🎉"
    assert [q.text for q in root.find("list")] == ["相似 ]]> 🎉", "<![CDATA[x]]>"]
    content = json.loads(root.findtext("content"))
    assert answer_from_content(content) == answer_from_editor(ACCEPTED_EVERYWHERE)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"type": "text", "segments": [{"kind": "text", "text": "长" * 10_000}]}, "at most 2000"),
        ({"type": "text", "segments": [{"kind": "text", "text": "a\x00b"}]}, "control"),
        ({"type": "text", "segments": [{"kind": "text", "text": "a\u202eb"}]}, "control"),
        ({"type": "text", "segments": [{"kind": "text", "text": "a\ufffeb"}]}, "control"),
        (
            {
                "type": "text",
                "segments": [{"kind": "link", "label": "x", "url": "javascript:alert(1)"}],
            },
            "http:// or https://",
        ),
        (
            {
                "type": "text",
                "segments": [{"kind": "link", "label": "x", "url": 'https://a.b/"onclick="'}],
            },
            "http:// or https://",
        ),
        (
            {
                "type": "text",
                "segments": [{"kind": "link", "label": "<b>x</b>", "url": "https://a.b"}],
            },
            "cannot hold “<” or “>”",
        ),
        (
            {
                "type": "text",
                "segments": [{"kind": "text", "text": '<a href="javascript:x">y</a>'}],
            },
            "Plain text cannot hold “<a”",
        ),
        (
            {"type": "image", "media_id": "x", "url": "data:image/png;base64,AAAA"},
            "http:// or https://",
        ),
        (
            {"type": "news", "articles": [{"title": "t", "url": "JAVASCRIPT:alert(1)"}]},
            "http:// or https://",
        ),
        (
            {
                "type": "news",
                "articles": [{"title": "t", "url": "https://a.b", "picurl": "vbscript:x"}],
            },
            "http:// or https://",
        ),
        (
            {
                "type": "miniprogrampage",
                "title": "t",
                "appid": "wx8c631f7e9f2465e1",
                "pagepath": "javascript:alert(1)",
                "thumb_media_id": "m",
            },
            "page path",
        ),
    ],
)
def test_hostile_answers_are_refused_with_a_sentence(answer, expected):
    with translation.override("en"), pytest.raises(AnswerError) as caught:
        answer_from_editor(answer)
    assert expected in " ".join(caught.value.messages)


def test_hostile_imports_are_refused_row_by_row(demo_bot):
    records = [
        {"skillname": "s\x07", "title": "t", "content": "x"},
        {"skillname": "s", "title": "t" * 300, "content": "x"},
        {
            "skillname": "s",
            "title": "t",
            "content": {"image": {"media_id": "m", "url": "javascript:1"}},
        },
        {"skillname": "s", "title": "t2", "content": "ok ]]> 🎉 <script>"},
    ]
    plan = import_plan(bot=demo_bot, records=records)
    assert [row.status for row in plan.rows] == ["refused", "refused", "refused", "created"]


def test_pages_escape_what_was_typed(client, editor, skill, actor):
    reply = saved_reply(
        skill,
        actor,
        title="<script>alert(1)</script>",
        questions=["<img src=x onerror=alert(1)>"],
        content=ACCEPTED_EVERYWHERE,
    )
    client.login(username=editor.username, password=PASSWORD)
    for url in (
        reverse("admin:chatbot_autoreply_change", args=[reply.pk]),
        reverse("admin:chatbot_autoreply_changelist"),
        reverse("admin:chatbot_autoreply_history", args=[reply.pk]),
        reverse("admin:chatbot_autoreply_delete", args=[reply.pk]),
    ):
        page = client.get(url).content.decode()
        assert "<script>alert(" not in page, url
        assert "<img src=x" not in page, url
    assert AutoReply.objects.count() == 1


def test_the_editor_script_never_writes_html_from_data():
    import re
    from pathlib import Path

    import chatbot

    script = (Path(chatbot.__file__).parent / "static/chatbot/answer_editor.js").read_text()
    script = re.sub(r"/\*.*?\*/", "", script, flags=re.S)  # the comments may name the sinks
    script = re.sub(r"^\s*//.*$", "", script, flags=re.M)
    assert "textContent" in script
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("href"',
        ".href =",
    ):
        assert sink not in script, sink
