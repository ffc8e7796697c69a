"""Fixtures for chatbot skills: the sandbox's demo bot registered as a console credential."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from chatbot.answers import answer_from_editor
from chatbot.models import AutoReply, Skill
from chatbot.services import reply_create
from console.audit import Actor, AuditSource
from wecom.models import ChatbotBot
from wecom.sandbox import DEMO

# Every answer type of seed 002, as the editor posts them.
NEWS = {
    "type": "news",
    "articles": [
        {
            "title": "实时更新：活动进展",
            "description": "第一时间同步最新进展",
            "url": "https://news.qq.com/zt2020/page/feiyan.htm",
            "picurl": "http://mmbiz.qpic.cn/mmbiz_jpg/W3gQtpV3j8D8k/0?wx_fmt=jpeg",
            "type": "h5",
        },
        {
            "title": "第二篇",
            "description": "",
            "url": "https://mp.weixin.qq.com/s/abc",
            "picurl": "",
            "type": "mp",
        },
    ],
}
IMAGE = {
    "type": "image",
    "media_id": "KegpipQG9t-klMo25My4e4BCZFcmKvgMcpMFAkC-VFE",
    "url": "http://mmbiz.qpic.cn/mmbiz_jpg/W3gQtpV3j8Bax22/0?wx_fmt=jpeg",
}
MINIPROGRAM = {
    "type": "miniprogrampage",
    "title": "对话插件",
    "appid": "wx8c631f7e9f2465e1",
    "pagepath": "pages/index/index?from=bot",
    "thumb_media_id": "KegpipQG9t-klMo25My4e8zpBjhjg3JMrMSpgjikB4U",
    "thumb_url": "http://mmbiz.qpic.cn/mmbiz_png/W3gQtpV3j8BYhW/0?wx_fmt=png",
}
TEXT = {"type": "text", "segments": [{"kind": "text", "text": "您好，请问有什么可以帮您？"}]}
TEXT_WITH_MENU = {
    "type": "text",
    "segments": [
        {"kind": "text", "text": "我们还没有找到对应的答案。您可以问："},
        {
            "kind": "menu",
            "label": "今天北京多少度",
            "question": "今天北京多少度",
            "menuid": "weather-1",
        },
    ],
}
TEXT_WITH_LINK = {
    "type": "text",
    "segments": [
        {"kind": "text", "text": "请前往"},
        {"kind": "link", "label": "openai", "url": "https://chatbot.weixin.qq.com/"},
        {"kind": "text", "text": "配置 🎉"},
    ],
}
MULTI = {"type": "multimsg", "items": [TEXT, NEWS, MINIPROGRAM]}
EVERY_TYPE = {
    "text": TEXT,
    "text_menu": TEXT_WITH_MENU,
    "text_link": TEXT_WITH_LINK,
    "news": NEWS,
    "image": IMAGE,
    "miniprogrampage": MINIPROGRAM,
    "multimsg": MULTI,
    "multimsg_all": {"type": "multimsg", "items": [TEXT_WITH_LINK, IMAGE, NEWS, TEXT_WITH_MENU]},
}


def make_bot(name: str = "演示机器人", *, token: str = DEMO.bot_token) -> ChatbotBot:
    return ChatbotBot.objects.create(
        name=name,
        appid=DEMO.bot_appid,
        token=token,
        encoding_aes_key=DEMO.bot_encoding_aes_key,
        default_manager_id=DEMO.bot_manager_id,
        rate_limit=1000,
    )


@pytest.fixture
def demo_bot(db) -> ChatbotBot:
    return make_bot()


@pytest.fixture
def skill(demo_bot) -> Skill:
    return Skill.objects.create(bot=demo_bot, name="售后服务")


@pytest.fixture
def actor(editor) -> Actor:
    return Actor(user=editor, source=AuditSource.CONSOLE, ip="127.0.0.1")


@pytest.fixture
def fast_platform(settings):
    """No waiting between retries: failures are explained at once."""
    settings.PLATFORM_MAX_ATTEMPTS = 1
    settings.PLATFORM_BACKOFF_BASE = 0.0
    settings.PLATFORM_CONNECT_TIMEOUT = 2.0
    settings.PLATFORM_READ_TIMEOUT = 2.0


def saved_reply(
    skill: Skill,
    actor: Actor,
    *,
    title: str = "q",
    questions: Sequence[str] = (),
    content: dict[str, Any] = TEXT,
) -> AutoReply:
    """A reply saved through the service, as the editor saves it (``content`` in the editor's
    format: one of the answers above)."""
    return reply_create(
        skill=skill,
        title=title,
        questions=list(questions),
        answer=answer_from_editor(content),
        actor=actor,
    )
