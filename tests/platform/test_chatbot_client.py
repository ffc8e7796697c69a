"""The dialogue-platform client against the sandbox: encrypted XML, both answer shapes, errcodes."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest
from django.utils import translation
from wechatpy.crypto.base import BasePrpCrypto

from chatbot.crypto import WXBizMsgCrypt
from wecom.clients import ChatbotClient, PlatformAPIError, PlatformInputError
from wecom.clients.chatbot import LABEL_BATCHSET, SET_AUTOREPLY, build_xml, cdata
from wecom.sandbox import DEMO, FaultRule
from wecom.sandbox.demo import demo_openid

OPENIDS = [demo_openid(DEMO.oa_openid_prefix, n) for n in range(3)]


def last_request(sandbox, endpoint):
    return [r for r in sandbox.requests if r.endpoint == endpoint][-1]


def sent_xml(sandbox, endpoint) -> ET.Element:
    """The last document sent to ``endpoint``, decrypted with wechatpy (not our crypto or the
    sandbox's parsing) and parsed."""
    encrypted = last_request(sandbox, endpoint).body["encrypt"]
    key = base64.b64decode(DEMO.bot_encoding_aes_key + "=")
    text = BasePrpCrypto(key)._decrypt(encrypted, DEMO.bot_appid)
    return ET.fromstring(text)  # noqa: S314 - our own client's output


def assert_list_holds(root: ET.Element, scalars: list[str], item: str, values: list[str]):
    """``scalars`` in order, then one ``<list>`` holding ``values`` as ``<item>``, in order;
    no ``<item>`` anywhere else."""
    assert [child.tag for child in root] == [*scalars, "list"]
    (wrapper,) = root.findall("list")
    assert [child.tag for child in wrapper] == [item] * len(values)
    assert [child.text or "" for child in wrapper] == values
    assert len(list(root.iter(item))) == len(values)


def test_labels_are_set_for_a_list_of_openids(bot, sandbox):
    bot.label_batchset(
        appid=DEMO.oa_appid,
        category="已完成",
        label="已完善资料",
        desc="在 App 内完善了资料",
        openids=OPENIDS,
    )
    labels = sandbox.state.chatbot.labels(DEMO.bot_appid)
    assert labels[("已完成", "已完善资料")]["openids"] == set(OPENIDS)
    recorded = last_request(sandbox, "/openapi/label/batchset")
    assert recorded.xml["appid"] == DEMO.oa_appid
    assert recorded.xml["openid"] == OPENIDS


def test_the_token_travels_in_the_path_and_the_body_is_encrypted(bot, sandbox):
    bot.label_batchset(appid=DEMO.oa_appid, category="c", label="l", desc="d", openids=OPENIDS)
    recorded = last_request(sandbox, "/openapi/label/batchset")
    assert set(recorded.body) == {"encrypt"}
    assert "已完成" not in recorded.body["encrypt"]
    decrypted = WXBizMsgCrypt(DEMO.bot_token, DEMO.bot_encoding_aes_key, DEMO.bot_appid).decrypt(
        recorded.body["encrypt"]
    )
    assert decrypted.startswith("<xml><appid><![CDATA[")


def test_a_text_answer_is_set_with_similar_questions(bot, sandbox):
    bot.set_autoreply(
        managerid=DEMO.bot_manager_id,
        skillname="售后",
        title="怎么退货？",
        content="请在订单页点击“申请退货”。",
        questions=["如何退货", "退货流程"],
    )
    skill = sandbox.state.chatbot.skills(DEMO.bot_appid)[("售后", "怎么退货？")]
    assert skill["content"] == "请在订单页点击“申请退货”。"
    assert skill["questions"] == ["如何退货", "退货流程"]


def test_a_rich_answer_travels_as_utf8_json_text(bot, sandbox):
    content = {
        "news": {
            "articles": [
                {
                    "title": "双十一活动",
                    "description": "全场五折",
                    "url": "https://example.com/a",
                    "picurl": "https://example.com/a.jpg",
                    "type": "h5",
                }
            ]
        }
    }
    bot.set_autoreply(
        managerid=DEMO.bot_manager_id, skillname="活动", title="有什么活动", content=content
    )
    stored = sandbox.state.chatbot.skills(DEMO.bot_appid)[("活动", "有什么活动")]["content"]
    assert json.loads(stored) == content
    assert "双十一活动" in stored and "\\u" not in stored


def test_text_holding_the_cdata_terminator_arrives_intact(bot, sandbox):
    tricky = 'a]]>b <a href="https://x.example/?q=1&r=2">link</a> ]]]]> end'
    bot.set_autoreply(managerid=DEMO.bot_manager_id, skillname="s", title="t", content=tricky)
    assert sandbox.state.chatbot.skills(DEMO.bot_appid)[("s", "t")]["content"] == tricky


def test_cdata_splits_the_terminator():
    assert cdata("x]]>y") == "<![CDATA[x]]]]><![CDATA[>y]]>"


@pytest.mark.parametrize("bad", ["\x00", "\x08", "\x0b", "\x1f", "\ufffe"])
def test_control_characters_are_refused_before_sending(bot, sandbox, bad):
    with pytest.raises(PlatformInputError) as caught:
        bot.set_autoreply(managerid="m", skillname="s", title=f"t{bad}", content="c")
    with translation.override("en"):
        assert "“title” contains a control character" in str(caught.value)
    assert sandbox.total_calls() == 0


def test_tabs_and_newlines_are_fine_in_the_answer_text_only():
    # A carriage return would arrive as a newline (XML parsers normalise line ends): refused.
    document = build_xml([("content", "line 1\n\tline 2\n")], endpoint=SET_AUTOREPLY)
    assert "line 1\n\tline 2\n" in document
    for field, value in [("content", "line 1\r\n"), ("title", "line 1\n"), ("question", "\t")]:
        with pytest.raises(PlatformInputError):
            build_xml([(field, value)], endpoint=SET_AUTOREPLY)


def test_both_answer_shapes_are_read(bot, sandbox):
    # batchset answers with "errcode", setautoreply with "code".
    bot.label_batchset(appid=DEMO.oa_appid, category="c", label="l", desc="d", openids=OPENIDS)
    bot.set_autoreply(managerid="m", skillname="s", title="t", content="c")
    sandbox.faults.add(
        FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", errcode=1008)
    )
    with pytest.raises(PlatformAPIError) as caught:
        bot.set_autoreply(managerid="m", skillname="s", title="t", content="c")
    assert caught.value.errcode == 1008


@pytest.mark.parametrize(
    ("call", "errcode"),
    [
        (
            lambda c: c.label_batchset(
                appid="", category="c", label="l", desc="d", openids=OPENIDS
            ),
            1007,
        ),
        (
            lambda c: c.label_batchset(
                appid=DEMO.oa_appid, category="c", label="", desc="d", openids=OPENIDS
            ),
            1007,
        ),
        (lambda c: c.set_autoreply(managerid="m", skillname="s", title="t", content=""), 1008),
        (lambda c: c.set_autoreply(managerid="", skillname="s", title="t", content="c"), 1008),
    ],
)
def test_empty_required_fields_are_explained(bot, call, errcode):
    with pytest.raises(PlatformAPIError) as caught:
        call(bot)
    assert caught.value.errcode == errcode
    assert caught.value.explanation


def test_a_wrong_token_is_explained(sandbox, clock):
    client = ChatbotClient(
        appid=DEMO.bot_appid,
        token="WrongToken123",
        encoding_aes_key=DEMO.bot_encoding_aes_key,
        clock=clock,
    )
    with pytest.raises(PlatformAPIError) as caught:
        client.check_connection()
    assert caught.value.errcode == 1001
    with translation.override("zh-hans"):
        assert "TOKEN 无效" in str(caught.value)


def test_a_wrong_key_or_appid_is_explained(sandbox, clock):
    wrong_key = "A" * 43
    for client in (
        ChatbotClient(
            appid=DEMO.bot_appid, token=DEMO.bot_token, encoding_aes_key=wrong_key, clock=clock
        ),
        ChatbotClient(
            appid="SomeOtherAppId01",
            token=DEMO.bot_token,
            encoding_aes_key=DEMO.bot_encoding_aes_key,
            clock=clock,
        ),
    ):
        with pytest.raises(PlatformAPIError) as caught:
            client.check_connection()
        assert caught.value.errcode == 1005
        with translation.override("en"):
            assert "EncodingAESKey or AppID" in str(caught.value)


def test_a_bot_under_review_is_explained(bot, sandbox):
    sandbox.state.chatbot.set_review(DEMO.bot_appid, False)
    with pytest.raises(PlatformAPIError) as caught:
        bot.check_connection()
    assert caught.value.errcode == 1002


def test_the_connection_check_changes_nothing(bot, sandbox):
    before = sandbox.state.chatbot.labels(DEMO.bot_appid)
    bot.check_connection()
    assert sandbox.state.chatbot.labels(DEMO.bot_appid) == before
    assert sandbox.calls("chatbot", "/openapi/label/batchset") == 1


def test_busy_answers_are_retried(bot, sandbox, clock):
    sandbox.faults.add(
        FaultRule(platform="chatbot", endpoint="/openapi/setautoreply", errcode=-1, times=1)
    )
    bot.set_autoreply(managerid="m", skillname="s", title="t", content="c")
    assert sandbox.calls("chatbot", "/openapi/setautoreply") == 2
    assert len(clock.pauses) == 1


# ---- the lists travel inside <list> (PLATFORM.md section 4; the seeds lost the wrapper) ------


def test_openids_travel_inside_list_after_the_scalar_fields(bot, sandbox):
    bot.label_batchset(appid=DEMO.oa_appid, category="c", label="l", desc="d", openids=OPENIDS)
    root = sent_xml(sandbox, "/openapi/label/batchset")
    assert_list_holds(root, ["appid", "category", "label", "desc"], "openid", OPENIDS)
    assert root.findtext("appid") == DEMO.oa_appid
    assert sandbox.state.chatbot.ignored_elements(DEMO.bot_appid) == {}


def test_similar_questions_travel_inside_list_after_content(bot, sandbox):
    questions = ["如何退货", "退货流程", "怎么退"]
    bot.set_autoreply(
        managerid="m",
        skillname="s",
        title="t",
        content={"image": {"media_id": "x"}},
        questions=questions,
    )
    root = sent_xml(sandbox, "/openapi/setautoreply")
    assert_list_holds(root, ["managerid", "skillname", "title", "content"], "question", questions)
    assert json.loads(root.findtext("content")) == {"image": {"media_id": "x"}}
    assert sandbox.state.chatbot.skills(DEMO.bot_appid)[("s", "t")]["questions"] == questions


def test_no_similar_questions_sends_an_empty_list(bot, sandbox):
    bot.set_autoreply(managerid="m", skillname="s", title="t", content="c", questions=["旧"])
    bot.set_autoreply(managerid="m", skillname="s", title="t", content="c")
    root = sent_xml(sandbox, "/openapi/setautoreply")
    assert_list_holds(root, ["managerid", "skillname", "title", "content"], "question", [])
    # The answer is replaced: the similar question pushed before is gone.
    assert sandbox.state.chatbot.skills(DEMO.bot_appid)[("s", "t")]["questions"] == []


HOSTILE = [
    "a]]>b",
    "]]>]]]]>]]",
    '<openid>x</openid> & "quotes" \'',
    "表情 🤖👍🏽 \U0001f916",
    "退" * 10_000,
    "x" * 9_999 + "]",
]


def test_hostile_values_round_trip_inside_list(bot, sandbox):
    bot.label_batchset(appid=DEMO.oa_appid, category="c", label="l", desc="d", openids=HOSTILE)
    root = sent_xml(sandbox, "/openapi/label/batchset")
    assert_list_holds(root, ["appid", "category", "label", "desc"], "openid", HOSTILE)
    assert sandbox.state.chatbot.labels(DEMO.bot_appid)[("c", "l")]["openids"] == set(HOSTILE)

    for value in HOSTILE:
        bot.set_autoreply(
            managerid="m", skillname="s", title=value, content=value, questions=HOSTILE
        )
        root = sent_xml(sandbox, "/openapi/setautoreply")
        scalars = ["managerid", "skillname", "title", "content"]
        assert_list_holds(root, scalars, "question", HOSTILE)
        assert root.findtext("title") == root.findtext("content") == value
        skill = sandbox.state.chatbot.skills(DEMO.bot_appid)[("s", value)]
        assert skill["content"] == value
        assert skill["questions"] == HOSTILE
    bot.set_autoreply(managerid="m", skillname="s", title="t", content="line 1\n\tline 2")
    assert sent_xml(sandbox, "/openapi/setautoreply").findtext("content") == "line 1\n\tline 2"


def test_an_empty_openid_list_is_refused_before_sending(bot, sandbox):
    with pytest.raises(PlatformInputError) as caught:
        bot.label_batchset(appid=DEMO.oa_appid, category="c", label="l", desc="d", openids=[])
    with translation.override("zh-hans"):
        assert "OpenID 列表为空" in str(caught.value)
    assert sandbox.total_calls() == 0


def test_one_string_is_not_a_list(bot, sandbox):
    with pytest.raises(TypeError):
        bot.label_batchset(appid="a", category="c", label="l", desc="d", openids=OPENIDS[0])
    with pytest.raises(TypeError):
        bot.set_autoreply(managerid="m", skillname="s", title="t", content="c", questions="q")
    assert sandbox.total_calls() == 0


@pytest.mark.parametrize("items", [["ok", "bad\x01"], ["\x1f"]])
def test_control_characters_in_list_items_are_refused_before_sending(bot, sandbox, items):
    with pytest.raises(PlatformInputError) as caught:
        bot.set_autoreply(managerid="m", skillname="s", title="t", content="c", questions=items)
    with translation.override("en"):
        assert "“question” contains a control character" in str(caught.value)
    with pytest.raises(PlatformInputError):
        bot.label_batchset(appid="a", category="c", label="l", desc="d", openids=items)
    assert sandbox.total_calls() == 0


def test_build_xml_places_the_list_last():
    fields = [("a", "1"), ("b", "2")]
    assert build_xml(fields, endpoint=LABEL_BATCHSET) == (
        "<xml><a><![CDATA[1]]></a><b><![CDATA[2]]></b></xml>"
    )
    assert build_xml(fields, endpoint=LABEL_BATCHSET, list_items=[]).endswith(
        "<b><![CDATA[2]]></b><list></list></xml>"
    )
    assert build_xml([], endpoint=LABEL_BATCHSET, list_items=[("q", "x]]>y"), ("q", "z")]) == (
        "<xml><list><q><![CDATA[x]]]]><![CDATA[>y]]></q><q><![CDATA[z]]></q></list></xml>"
    )
