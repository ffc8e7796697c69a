"""Answers of every type: one validator, one serializer, the seed's exact format, fuzzed."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from hypothesis import HealthCheck, given, settings, strategies as st

from chatbot.answers import (
    AnswerError,
    HyperLink,
    ImageAnswer,
    MenuLink,
    MiniProgramAnswer,
    MultiAnswer,
    NewsAnswer,
    NewsArticle,
    TextAnswer,
    answer_from_content,
    answer_from_editor,
    answer_to_editor,
    validate_answer,
    validate_questions,
)
from wecom.clients.chatbot import SET_AUTOREPLY, build_xml, content_text
from wecom.sandbox.chatbot import validate_reply_content

from .conftest import EVERY_TYPE


def messages(error: ValidationError) -> str:
    with translation.override("en"):
        return " | ".join(error.messages)


# ---- the seed's format, exactly ------------------------------------------------------------


def test_the_seed_examples_read_and_write_back_identically():
    seed_text = (
        "我们还没有找到对应的答案。"
        '<a href="weixin://bizmsgmenu?msgmenucontent=今天北京多少度&msgmenuid=今天北京多少度">'
        "今天北京多少度</a>"
    )
    answer = answer_from_content(seed_text)
    assert answer.segments[1] == MenuLink("今天北京多少度", "今天北京多少度", "今天北京多少度")
    assert answer.content() == seed_text
    link = '请前往<a href="https://chatbot.weixin.qq.com/">openai</a>配置'
    assert answer_from_content(link).segments[1] == HyperLink(
        "openai", "https://chatbot.weixin.qq.com/"
    )
    assert answer_from_content(link).content() == link
    multi = {
        "multimsg": [
            "Hello",
            {"image": {"media_id": "KegpipQG9t-klMo25", "url": "http://mmbiz.qpic.cn/a.jpg"}},
            {
                "miniprogrampage": {
                    "title": "OpenAI Dialogue Plugin",
                    "appid": "wx8c631f7e9f2465e1",
                    "pagepath": "pages/index/index",
                    "thumb_media_id": "KegpipQG9t",
                    "thumb_url": "http://mmbiz.qpic.cn/b.png",
                }
            },
        ]
    }
    answer = answer_from_content(multi)
    assert isinstance(answer, MultiAnswer)
    assert [item.kind for item in answer.items] == ["text", "image", "miniprogrampage"]
    assert answer.content() == multi
    # Key order and spelling as in seed 002, as UTF-8 JSON text.
    assert content_text(answer.content()).startswith('{"multimsg":["Hello",{"image":{"media_id"')


def test_news_articles_carry_all_five_fields_in_the_seeds_order():
    answer = answer_from_content(
        {"news": {"articles": [{"title": "T", "url": "https://e.com/a", "type": "mp"}]}}
    )
    assert list(answer.content()["news"]["articles"][0]) == [
        "title",
        "description",
        "url",
        "picurl",
        "type",
    ]


@pytest.mark.parametrize("name", sorted(EVERY_TYPE))
def test_editor_and_platform_formats_are_two_views_of_one_answer(name):
    answer = answer_from_editor(EVERY_TYPE[name])
    assert answer_to_editor(answer) == EVERY_TYPE[name]
    assert answer_from_content(answer.content()) == answer
    # What the sandbox (written from the seed independently) accepts as content.
    assert validate_reply_content(content_text(answer.content())) == ""


# ---- refusals, each a sentence that says where -----------------------------------------------


@pytest.mark.parametrize(
    ("editor", "expected"),
    [
        ({"type": "text", "segments": []}, "The text cannot be empty"),
        (
            {
                "type": "text",
                "segments": [{"kind": "link", "label": "x", "url": "javascript:alert(1)"}],
            },
            "Link 1: The address must be a web address starting with http:// or https://",
        ),
        (
            {
                "type": "text",
                "segments": [{"kind": "text", "text": 'see <a href="https://x.com">x</a>'}],
            },
            "Plain text cannot hold “<a”",
        ),
        (
            {"type": "text", "segments": [{"kind": "text", "text": "x" * 10_000}]},
            "at most 2000 characters; this one has 10000",
        ),
        (
            {"type": "text", "segments": [{"kind": "text", "text": "bell\x07"}]},
            "control or invisible character",
        ),
        (
            {
                "type": "text",
                "segments": [{"kind": "menu", "label": "a", "question": "x&y", "menuid": "1"}],
            },
            "The question sent cannot hold “&”",
        ),
        ({"type": "news", "articles": []}, "1 to 8 articles; this one has 0"),
        (
            {"type": "news", "articles": [{"title": "t", "url": "data:text/html,<script>"}]},
            "Article 1: The link must be a web address",
        ),
        ({"type": "image", "media_id": "", "url": ""}, "The media ID cannot be empty"),
        (
            {
                "type": "miniprogrampage",
                "title": "t",
                "appid": "wx123",
                "pagepath": "p",
                "thumb_media_id": "m",
                "thumb_url": "",
            },
            "The AppID is “wx” followed by 16 hexadecimal digits",
        ),
        (
            {
                "type": "multimsg",
                "items": [
                    {"type": "image", "media_id": "ok", "url": ""},
                    {"type": "news", "articles": [{"title": "", "url": "https://a.b"}]},
                ],
            },
            "Part 2 › Article 1: The title cannot be empty",
        ),
        ({"type": "multimsg", "items": []}, "1 to 10 parts; this one has 0"),
        ({"type": "nonsense"}, "Choose the type of the answer"),
    ],
)
def test_bad_answers_are_refused_with_a_sentence(editor, expected):
    with translation.override("en"), pytest.raises(AnswerError) as caught:
        answer_from_editor(editor)
    assert expected in messages(caught.value)


def test_a_text_answer_cannot_start_with_a_brace_but_a_part_of_a_combined_one_may():
    # The platform reads content that starts with "{" as a rich answer (the sandbox refuses it).
    alone = TextAnswer(segments=(" {价格}见官网",))
    with translation.override("en"), pytest.raises(AnswerError) as caught:
        validate_answer(alone)
    assert "cannot start with “{”" in messages(caught.value)
    assert validate_reply_content(content_text(alone.content()))

    combined = MultiAnswer(items=(TextAnswer(segments=("{价格}见官网",)),))
    assert validate_answer(combined) is combined
    assert validate_reply_content(content_text(combined.content())) == ""


def test_a_combined_answer_cannot_nest_another():
    nested = MultiAnswer(items=(MultiAnswer(items=(TextAnswer(segments=("a",)),)),))  # type: ignore[arg-type]
    with translation.override("en"), pytest.raises(AnswerError) as caught:
        validate_answer(nested)
    assert "cannot hold another combined answer" in messages(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            {"news": {"articles": [{"title": "t", "url": "https://a.b", "extra": "x"}]}},
            "Unknown field(s): extra",
        ),
        ({"video": {}}, "Unknown answer type “video”"),
        ({"news": {}, "image": {}}, "exactly one of"),
        ({"image": {"media_id": 5}}, "“media_id” must be text"),
        ({"multimsg": "x"}, "“multimsg” must be a list"),
        (42, "An answer is a text, or an object"),
    ],
)
def test_malformed_platform_content_is_refused(content, expected):
    with translation.override("en"), pytest.raises(AnswerError) as caught:
        answer_from_content(content)
    assert expected in messages(caught.value)


def test_messages_are_in_chinese_for_chinese_users():
    with translation.override("zh-hans"), pytest.raises(AnswerError) as caught:
        answer_from_editor({"type": "news", "articles": [{"title": "", "url": "ftp://x"}]})
    text = " ".join(caught.value.messages)
    assert "第 1 篇文章" in text and "不能为空" in text


def test_questions_are_trimmed_and_checked():
    assert validate_questions("怎么退货", [" 如何退货 ", "", "退货流程"]) == [
        "如何退货",
        "退货流程",
    ]
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        validate_questions("怎么退货", ["a", "a", "怎么退货", "x\x00"])
    text = messages(caught.value)
    assert "listed twice" in text and "repeats the standard question" in text
    assert "control or invisible character" in text


# ---- fuzzing ---------------------------------------------------------------------------------

safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn")), min_size=1, max_size=30
).filter(lambda s: s.strip())
label = safe_text.filter(lambda s: "<" not in s and ">" not in s)
menu_value = safe_text.filter(lambda s: not set(s) & set('&"<>'))
url = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.text(alphabet="abcdefghij", min_size=1, max_size=8),
    st.text(alphabet="abcxyz0123/?=&%-_.", max_size=20),
)
media_id = st.text(alphabet="abcXYZ019-_", min_size=1, max_size=40)
segment = st.one_of(
    safe_text,
    st.builds(MenuLink, label=label, question=menu_value, menuid=menu_value),
    st.builds(HyperLink, label=label, url=url),
)


def _normal(segments: list) -> tuple:
    merged: list = []
    for part in segments:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return tuple(merged)


text_answer = st.lists(segment, min_size=1, max_size=5).map(
    lambda s: TextAnswer(segments=_normal(s))
)
article = st.builds(
    NewsArticle,
    title=safe_text,
    url=url,
    description=st.just("") | safe_text,
    picurl=st.just("") | url,
    type=st.sampled_from(["h5", "mp"]),
)
single = st.one_of(
    text_answer,
    st.builds(NewsAnswer, articles=st.lists(article, min_size=1, max_size=3).map(tuple)),
    st.builds(ImageAnswer, media_id=media_id, url=st.just("") | url),
    st.builds(
        MiniProgramAnswer,
        title=safe_text,
        appid=st.from_regex(r"\Awx[0-9a-f]{16}\Z"),
        pagepath=st.from_regex(r"\Apages/[a-z]{1,8}/[a-z]{1,8}\Z"),
        thumb_media_id=media_id,
        thumb_url=st.just("") | url,
    ),
)
answers = single | st.builds(MultiAnswer, items=st.lists(single, min_size=1, max_size=4).map(tuple))


def accepted(answer) -> bool:
    try:
        validate_answer(answer)
    except AnswerError as error:
        assert error.messages and all(m.strip() for m in error.messages)
        return False
    return True


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(answers)
def test_every_accepted_answer_round_trips_and_fits_in_the_xml(answer):
    if not accepted(answer):
        return
    content = answer.content()
    assert answer_from_content(content) == answer
    assert answer_from_content(json.loads(json.dumps(content))) == answer
    assert answer_from_editor(answer_to_editor(answer)) == answer
    text = content_text(content)
    assert validate_reply_content(text) == ""
    build_xml([("content", text)], endpoint=SET_AUTOREPLY)  # never raises for accepted answers


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "news",
                    "articles",
                    "image",
                    "multimsg",
                    "miniprogrampage",
                    "title",
                    "url",
                    "media_id",
                    "segments",
                    "kind",
                    "text",
                    "items",
                    "label",
                ]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(json_like)
def test_anything_read_is_accepted_or_refused_with_sentences(data):
    for reader in (answer_from_content, answer_from_editor):
        try:
            answer = reader(data)
        except AnswerError as error:
            assert error.messages and all(m.strip() for m in error.messages)
        else:
            assert answer_from_content(answer.content()) == answer


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_text_is_read_back_as_written_or_refused(text):
    try:
        answer = answer_from_content(text)
    except AnswerError:
        return
    assert answer.content() == text
