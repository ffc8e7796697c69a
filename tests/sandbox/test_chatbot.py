"""Dialogue platform open API (seeds 000 and 002, PLATFORM.md section 4)."""

from __future__ import annotations

import json

import pytest

from chatbot.crypto import WXBizMsgCrypt
from wecom.sandbox import DEMO
from wecom.sandbox.chatbot import IGNORED_ELEMENTS, parse_chatbot_xml

from .conftest import xml_doc

BATCHSET = "/openapi/label/batchset"
AUTOREPLY = "/openapi/setautoreply"
OPENIDS = ["oW3Kq_openid_one_000000000000"[:28], "oW3Kq_openid_two_000000000000"[:28]]


def label_fields(openids=OPENIDS, **overrides):
    fields = {
        "appid": DEMO.oa_appid,
        "category": "完成件",
        "label": "未完成",
        "desc": "在 app 中完善用户信息",
    }
    fields.update(overrides)
    result = [(k, v) for k, v in fields.items() if v is not None]
    return [*result, ("list", [("openid", o) for o in openids])]


def reply_fields(content="你好,请问有什么可以帮您?", questions=("在吗", "有人吗"), **overrides):
    fields = {
        "managerid": DEMO.bot_manager_id,
        "skillname": "售后",
        "title": "如何退货",
        "content": content,
    }
    fields.update(overrides)
    result = [(k, v) for k, v in fields.items() if v is not None]
    return [*result, ("list", [("question", q) for q in questions])]


NEWS = {
    "news": {
        "articles": [
            {
                "title": "实时更新",
                "description": "说明",
                "url": "https://news.qq.com/zt2020/page/feiyan.htm",
                "picurl": "http://mmbiz.qpic.cn/x.jpeg",
                "type": "h5",
            }
        ]
    }
}
IMAGE = {"image": {"media_id": "KegpipQG9t-klMo25My4e4BCZFcmKvgMcpMFAkC-VFE", "url": "http://x"}}
MINIPROGRAM = {
    "miniprogrampage": {
        "title": "对话插件",
        "appid": "wx8c631f7e9f2465e1",
        "pagepath": "pages/index/index",
        "thumb_media_id": "KegpipQG9t-klMo25My4e8zpBjhjg3JMrMSpgjikB4U",
        "thumb_url": "http://mmbiz.qpic.cn/y.png",
    }
}


def test_batchset_success_and_state(api, sandbox):
    answer = api.chatbot(BATCHSET, label_fields())
    assert answer == {"errcode": 0, "msg": "Success"}
    labels = sandbox.state.chatbot.labels(DEMO.bot_appid)
    assert labels[("完成件", "未完成")] == {
        "desc": "在 app 中完善用户信息",
        "openids": set(OPENIDS),
    }
    # Recorded without the TOKEN, with the decrypted fields.
    assert sandbox.calls("chatbot", BATCHSET) == 1
    record = sandbox.requests[-1]
    assert record.endpoint == BATCHSET
    assert record.errcode == 0
    assert record.xml["openid"] == OPENIDS
    assert record.xml["category"] == "完成件"
    assert set(record.body) == {"encrypt"}


def test_batchset_adds_to_existing_label(api, sandbox):
    api.chatbot(BATCHSET, label_fields())
    more = label_fields(desc="新规则", openids=["o" * 28])
    assert api.chatbot(BATCHSET, more)["errcode"] == 0
    label = sandbox.state.chatbot.labels(DEMO.bot_appid)[("完成件", "未完成")]
    assert label == {"desc": "新规则", "openids": {*OPENIDS, "o" * 28}}


def test_cdata_split_values_are_joined(api, sandbox):
    tricky = "a]]>b <c> & d"
    assert api.chatbot(BATCHSET, label_fields(desc=tricky))["errcode"] == 0
    assert sandbox.state.chatbot.labels(DEMO.bot_appid)[("完成件", "未完成")]["desc"] == tricky


@pytest.mark.parametrize(
    "content",
    [
        "你好,请问有什么可以帮您?",
        '请到<a href="weixin://bizmsgmenu?msgmenucontent=北京今天多少度&msgmenuid=1">北京</a>',
        json.dumps(NEWS, ensure_ascii=False),
        json.dumps(IMAGE),
        json.dumps(MINIPROGRAM, ensure_ascii=False),
        json.dumps({"multimsg": ["你好", IMAGE, MINIPROGRAM, NEWS]}, ensure_ascii=False),
    ],
)
def test_setautoreply_success(api, sandbox, content):
    answer = api.chatbot(AUTOREPLY, reply_fields(content))
    assert answer == {"code": 0, "msg": "Success"}
    skill = sandbox.state.chatbot.skills(DEMO.bot_appid)[("售后", "如何退货")]
    assert skill == {
        "content": content,
        "questions": ["在吗", "有人吗"],
        "managerid": DEMO.bot_manager_id,
    }
    assert sandbox.requests[-1].xml["question"] == ["在吗", "有人吗"]


def test_setautoreply_replaces_same_skill_and_title(api, sandbox):
    api.chatbot(AUTOREPLY, reply_fields("一"))
    api.chatbot(AUTOREPLY, reply_fields("二", questions=()))
    skills = sandbox.state.chatbot.skills(DEMO.bot_appid)
    assert skills == {
        ("售后", "如何退货"): {"content": "二", "questions": [], "managerid": "demo_manager"}
    }


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ('{"news": ', "not valid JSON"),
        ('{"video": {"media_id": "x"}}', "unknown kind"),
        ('{"image": {"media_id": "x"}, "news": {}}', "exactly one"),
        ('{"news": {"articles": []}}', "non-empty"),
        ('{"news": {"articles": [{"title": "t"}]}}', "url"),
        ('{"news": {"articles": [{"title": "t", "url": "u", "type": "pdf"}]}}', "type"),
        ('{"image": {"url": "http://x"}}', "media_id"),
        ('{"image": {"media_id": "m", "pic_url": "x"}}', "unknown fields"),
        ('{"miniprogrampage": {"title": "t", "appid": "wx1"}}', "pagepath"),
        ('{"multimsg": []}', "non-empty"),
        ('{"multimsg": [{"multimsg": ["x"]}]}', "unknown kind"),
        ('{"multimsg": [3]}', "string or an object"),
    ],
)
def test_setautoreply_bad_structured_content_1008(api, sandbox, content, complaint):
    answer = api.chatbot(AUTOREPLY, reply_fields(content))
    assert answer["errcode"] == 1008
    assert complaint in answer["errmsg"]
    assert sandbox.state.chatbot.skills(DEMO.bot_appid) == {}


@pytest.mark.parametrize("missing", ["managerid", "skillname", "title", "content"])
def test_setautoreply_required_fields_1008(api, missing):
    answer = api.chatbot(AUTOREPLY, reply_fields(**{missing: None}))
    assert answer["errcode"] == 1008
    assert missing in answer["errmsg"]
    assert api.chatbot(AUTOREPLY, reply_fields(**{missing: "  "}))["errcode"] == 1008


@pytest.mark.parametrize("missing", ["appid", "category", "label", "desc"])
def test_batchset_required_fields_1007(api, missing):
    answer = api.chatbot(BATCHSET, label_fields(**{missing: None}))
    assert answer["errcode"] == 1007
    assert set(answer) == {"errcode", "errmsg"}
    assert api.chatbot(BATCHSET, label_fields(**{missing: ""}))["errcode"] == 1007


def test_batchset_appid_is_that_of_the_official_account_not_the_bot(api, sandbox):
    answer = api.chatbot(BATCHSET, label_fields(appid=DEMO.oa_appid))
    assert answer["errcode"] == 0
    assert sandbox.state.chatbot.labels(DEMO.bot_appid)


def test_batchset_without_openid_1008(api, sandbox):
    fields = [f for f in label_fields() if f[0] != "list"]
    assert api.chatbot(BATCHSET, fields)["errcode"] == 1008
    assert api.chatbot(BATCHSET, label_fields(openids=[]))["errcode"] == 1008
    assert api.chatbot(BATCHSET, label_fields(openids=["", " "]))["errcode"] == 1008
    assert sandbox.state.chatbot.labels(DEMO.bot_appid) == {}


def test_unknown_or_missing_token_1001(api, http, sandbox):
    answer = api.chatbot(BATCHSET, label_fields(), token="NoSuchToken123")
    assert answer == {"errcode": 1001, "errmsg": "TOKEN is not valid"}
    bare = http.post(sandbox.chatbot_base + BATCHSET, json={"encrypt": "x"}).json()
    assert bare["errcode"] == 1001
    assert sandbox.calls("chatbot", BATCHSET) == 2


def test_bot_not_reviewed_1002(api, sandbox):
    sandbox.state.chatbot.set_review(DEMO.bot_appid, False)
    assert api.chatbot(AUTOREPLY, reply_fields())["errcode"] == 1002
    assert sandbox.requests[-1].xml["title"] == "如何退货"  # still recorded


def test_missing_encrypt_1004(api, http, sandbox):
    assert api.chatbot(BATCHSET, body={})["errcode"] == 1004
    assert api.chatbot(BATCHSET, body={"encrypt": ""})["errcode"] == 1004
    url = f"{sandbox.chatbot_base}{BATCHSET}/{DEMO.bot_token}"
    assert http.post(url, data=b"not json").json()["errcode"] == 1004
    encrypted = WXBizMsgCrypt(DEMO.bot_token, DEMO.bot_encoding_aes_key, DEMO.bot_appid).encrypt(
        xml_doc(label_fields())
    )
    form = http.post(url, data={"encrypt": encrypted})  # not application/json
    assert form.json()["errcode"] == 1004


def test_undecryptable_1005(api):
    assert api.chatbot(BATCHSET, body={"encrypt": "bm90IGVuY3J5cHRlZA=="})["errcode"] == 1005
    assert api.chatbot(BATCHSET, body={"encrypt": "%%%"})["errcode"] == 1005
    other_appid = api.chatbot(BATCHSET, label_fields(), appid="WrongAppId000001")
    assert other_appid["errcode"] == 1005
    other_key = api.chatbot(BATCHSET, label_fields(), key="A" * 43)
    assert other_key["errcode"] == 1005


@pytest.mark.parametrize(
    "text", ["<xml><appid>unclosed</xml>", "not xml at all", "<root><a>1</a></root>"]
)
def test_bad_xml_1005(api, text):
    assert api.chatbot(BATCHSET, text=text)["errcode"] == 1005


def test_doctype_is_refused(api):
    text = '<!DOCTYPE xml [<!ENTITY e "x">]><xml><appid>&e;</appid></xml>'
    assert api.chatbot(BATCHSET, text=text)["errcode"] == 1005


def test_wrong_method(http, sandbox):
    answer = http.get(f"{sandbox.chatbot_base}{AUTOREPLY}/{DEMO.bot_token}")
    assert answer.json()["errcode"] == 43002


# ---- the lists travel inside <list> (PLATFORM.md section 4: the seeds lost the wrapper) -------


def test_openids_outside_list_label_nobody(api, sandbox):
    # What seed 000 shows, and what the client sent before issue 9: the platform answers success.
    scalars = [f for f in label_fields() if f[0] != "list"]
    answer = api.chatbot(BATCHSET, scalars + [("openid", o) for o in OPENIDS])
    assert answer == {"errcode": 0, "msg": "Success"}
    assert sandbox.state.chatbot.labels(DEMO.bot_appid) == {}
    assert sandbox.state.chatbot.ignored_elements(DEMO.bot_appid) == {"xml/openid": 2}
    record = sandbox.requests[-1]
    assert "openid" not in record.xml
    assert record.xml[IGNORED_ELEMENTS] == [["xml/openid", o] for o in OPENIDS]


def test_only_the_openids_inside_list_are_labelled(api, sandbox):
    stray = "o" * 28
    fields = [*label_fields(), ("openid", stray)]
    assert api.chatbot(BATCHSET, fields)["errcode"] == 0
    label = sandbox.state.chatbot.labels(DEMO.bot_appid)[("完成件", "未完成")]
    assert label["openids"] == set(OPENIDS)
    assert sandbox.state.chatbot.ignored_elements(DEMO.bot_appid) == {"xml/openid": 1}


def test_questions_outside_list_are_not_set(api, sandbox):
    scalars = [f for f in reply_fields() if f[0] != "list"]
    answer = api.chatbot(AUTOREPLY, [*scalars, ("question", "在吗"), ("question", "有人吗")])
    assert answer == {"code": 0, "msg": "Success"}
    skill = sandbox.state.chatbot.skills(DEMO.bot_appid)[("售后", "如何退货")]
    assert skill["questions"] == []
    assert sandbox.state.chatbot.ignored_elements(DEMO.bot_appid) == {"xml/question": 2}

    # Inside <list> they are set, in order, and nothing more is ignored.
    assert api.chatbot(AUTOREPLY, reply_fields(questions=("三", "一", "二")))["code"] == 0
    skill = sandbox.state.chatbot.skills(DEMO.bot_appid)[("售后", "如何退货")]
    assert skill["questions"] == ["三", "一", "二"]
    assert sandbox.state.chatbot.ignored_elements(DEMO.bot_appid) == {"xml/question": 2}


def test_an_empty_list_clears_the_similar_questions(api, sandbox):
    api.chatbot(AUTOREPLY, reply_fields(questions=("在吗",)))
    assert api.chatbot(AUTOREPLY, reply_fields(questions=()))["code"] == 0
    assert sandbox.state.chatbot.skills(DEMO.bot_appid)[("售后", "如何退货")]["questions"] == []
    assert IGNORED_ELEMENTS not in sandbox.requests[-1].xml


def test_ignored_elements_are_counted_even_when_the_call_fails(api, sandbox):
    scalars = [f for f in label_fields(desc="") if f[0] != "list"]
    assert api.chatbot(BATCHSET, [*scalars, ("openid", "o" * 28)])["errcode"] == 1007
    assert sandbox.state.chatbot.ignored_elements(DEMO.bot_appid) == {"xml/openid": 1}


def test_parse_reads_list_items_only_from_list():
    text = (
        "<xml><appid>a</appid><openid>top</openid>"
        "<desc>d<question>nested</question></desc>"
        "<list><openid>one</openid><item>other</item><openid>two<openid>deep</openid></openid>"
        "</list><list><openid>three</openid></list></xml>"
    )
    fields = parse_chatbot_xml(text)
    assert fields["openid"] == ["one", "two", "three"]
    assert fields["appid"] == "a"
    assert fields["desc"] == "d"
    assert fields[IGNORED_ELEMENTS] == [
        ["xml/openid", "top"],
        ["xml/desc/question", "nested"],
        ["xml/list/item", "other"],
        ["xml/list/openid/openid", "deep"],
    ]
    assert IGNORED_ELEMENTS not in parse_chatbot_xml("<xml><list/></xml>")
