"""The validators under arbitrary input: a clear refusal or an acceptance that holds up.

Every validator either accepts or raises ValidationError (never anything else), what it accepts
meets the rule, and the sandbox (written from the platform documents independently of
wecom.rules) never refuses a name or an order that the validators let through.
"""

from __future__ import annotations

import string

import pytest
from defusedxml.ElementTree import fromstring as xml_fromstring
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings, strategies as st

from wecom import rules, validators
from wecom.clients import PlatformAPIError, PlatformInputError, WeComClient
from wecom.clients.chatbot import SET_AUTOREPLY, build_xml
from wecom.clients.wecom import NewTag
from wecom.sandbox import DEMO

anything = st.one_of(
    st.text(), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(), st.binary()
)
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=60) | st.text(max_size=60)


def outcome(validator, value) -> bool:
    """True when accepted, False when refused with ValidationError; anything else fails."""
    try:
        validator(value)
    except ValidationError as error:
        assert error.messages and all(message.strip() for message in error.messages)
        return False
    return True


@given(texts)
def test_accepted_names_meet_the_platform_rule(name):
    if outcome(rules.validate_tag_name, name):
        assert 1 <= len(name) <= rules.TAG_NAME_MAX_LENGTH
        assert name == name.strip()


@given(anything)
def test_names_of_any_type_are_refused_cleanly(value):
    outcome(rules.validate_tag_name, value)


@given(st.one_of(st.integers(min_value=-(2**70), max_value=2**70), anything))
def test_accepted_orders_are_whole_numbers_in_range(value):
    if outcome(rules.validate_order, value):
        assert type(value) is int and 0 <= value < 2**32


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_o!é ", max_size=40) | anything)
def test_accepted_openids_are_28_characters_starting_with_o(value):
    if outcome(rules.validate_openid, value):
        assert len(value) == 28 and value[0] == "o"


@given(st.lists(st.text(max_size=30), max_size=60))
def test_batches_hold_between_one_and_fifty_valid_openids(openids):
    if outcome(rules.validate_openid_batch, openids):
        assert 1 <= len(openids) <= 50


@pytest.mark.parametrize(
    "validator",
    [
        validators.validate_corp_id,
        validators.validate_oa_appid,
        validators.validate_bot_appid,
        validators.validate_platform_secret,
        validators.validate_bot_token,
        validators.validate_bot_encoding_aes_key,
        validators.validate_manager_id,
    ],
)
@given(value=st.text(max_size=140))
def test_credential_validators_never_repeat_what_they_refuse(validator, value):
    try:
        validator(value)
    except ValidationError as error:
        # The value may be a secret: a refusal explains the format without echoing it.
        if len(value) >= 4:
            assert all(value not in message for message in error.messages)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=texts, order=st.integers(min_value=-5, max_value=2**32 + 5))
def test_the_sandbox_accepts_whatever_the_validators_accept(sandbox, db, name, order):
    client = WeComClient(corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret, rate_limit=10_000)
    if not (outcome(rules.validate_tag_name, name) and outcome(rules.validate_order, order)):
        return
    try:
        client.strategy_tag_add(strategy_id=2, group_name="模糊测试", tags=[NewTag(name, order)])
    except PlatformAPIError as error:
        assert error.errcode == 40071, f"{name!r}/{order}: {error.errmsg}"


# ---- one character rule -------------------------------------------------------------------------

# Every character class at all, surrogates included, and the ones the rule is about.
any_characters = st.text(
    alphabet=st.characters(exclude_categories=())
    | st.sampled_from("\x00\x09\x0a\x0d\x1b\x7f\x85\u00ad\u200b\u200d\u202e\u2066\ufeff\ufffe")
    | st.sampled_from(["\ue000", "\U000e0041", "\U0010ffff", "\u3000", "\u2028"]),
    max_size=40,
)


def refusal_codes(validator, value, **options) -> set[str]:
    try:
        validator(value, **options)
    except ValidationError as error:
        return {item.code for item in error.error_list}
    return set()


def refused_by_the_client(field: str, value: str) -> bool:
    try:
        build_xml([(field, value)], endpoint=SET_AUTOREPLY)
    except PlatformInputError:
        return True
    return False


@settings(max_examples=400)
@given(any_characters)
def test_names_labels_texts_and_the_client_refuse_the_same_characters(value):
    line = rules.has_forbidden_character(value)
    lines = rules.has_forbidden_character(value, multiline=True)
    # Wrapped in letters: an empty name or one with spaces around is refused for that first.
    name = f"a{value}a"
    assert ("name_control" in refusal_codes(rules.validate_tag_name, name, max_length=99)) == line
    assert ("control" in refusal_codes(rules.validate_chatbot_label_text, name)) == line
    text_options = {"label": "x", "max_length": 99, "required": False}
    assert bool(refusal_codes(rules.validate_chatbot_text, value, **text_options)) == line
    assert bool(
        refusal_codes(rules.validate_chatbot_text, value, multiline=True, **text_options)
    ) == (lines)
    assert refused_by_the_client("title", value) == line
    assert refused_by_the_client("question", value) == line
    assert refused_by_the_client("content", value) == lines
    if line:
        assert "control" in refusal_codes(validators.validate_display_name, name)


@settings(max_examples=400)
@given(any_characters)
def test_what_the_rule_lets_through_travels_in_the_xml_unchanged(value):
    if rules.has_forbidden_character(value, multiline=True):
        return
    document = build_xml([("content", value)], endpoint=SET_AUTOREPLY)
    assert xml_fromstring(document).findtext("content") == value


@pytest.mark.parametrize(
    "char",
    ["\x00", "\x1b", "\r", "\x7f", "\x85", "\u00ad", "\u200b", "\u200e", "\u202e", "\u2066",
     "\ufeff", "\ue000", "\U000e0041", "\ufffe", "\ud800"],
)  # fmt: skip
def test_controls_invisible_formatting_private_use_and_unassigned_characters_are_refused(char):
    assert rules.has_forbidden_character(f"标{char}签")
    assert rules.has_forbidden_character(f"标{char}签", multiline=True)


@pytest.mark.parametrize(
    "text", ["👩\u200d💻", "🇨🇳", "❤\ufe0f", "é", "e\u0301", "标 签", "标\u3000签", "a\u2028b"]
)
def test_emoji_sequences_accents_and_spaces_pass(text):
    assert not rules.has_forbidden_character(text)


def test_newline_and_tab_pass_only_in_multi_line_text():
    assert rules.has_forbidden_character("第一行\n第二行\t")
    assert not rules.has_forbidden_character("第一行\n第二行\t", multiline=True)
