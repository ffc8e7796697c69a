"""The strategy tag rules over several values under arbitrary input (hypothesis)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, strategies as st

from wecom import rules

names = st.text(max_size=40)


def refused(check) -> bool:
    try:
        check()
    except ValidationError as error:
        assert error.messages and all(message.strip() for message in error.messages)
        return True
    return False


@given(names, st.dictionaries(names, st.sampled_from(["", "/admin/tagging/tag/1/change/"])))
def test_a_name_is_free_exactly_when_no_sibling_has_it(name, taken):
    clash = refused(lambda: rules.validate_name_free(name, taken=taken, what="Tag"))
    assert clash == (name in taken)


@given(st.text(min_size=1, max_size=10))
def test_the_clash_link_escapes_names(text):
    hostile = f"<script>{text}</script>"
    with pytest.raises(ValidationError) as caught:
        rules.validate_name_free(hostile, taken={hostile: "/x/"}, what="Tag")
    message = caught.value.messages[0]
    assert "<script>" not in message and "&lt;script&gt;" in message


@given(st.lists(names, max_size=12))
def test_distinct_names_are_refused_only_with_a_repeat(tag_names):
    assert refused(lambda: rules.validate_distinct_names(tag_names)) == (
        len(set(tag_names)) != len(tag_names)
    )


@given(st.integers(min_value=0, max_value=20_000), st.integers(min_value=0, max_value=20_000))
def test_the_corp_limit_counts_what_exists_plus_what_is_added(existing, adding):
    over = refused(lambda: rules.validate_corp_tag_limit(existing=existing, adding=adding))
    assert over == (existing + adding > rules.CORP_TAG_LIMIT)


@given(st.integers(min_value=-3, max_value=3))
def test_a_group_needs_a_tag(count):
    assert refused(lambda: rules.validate_group_not_empty(count)) == (count < 1)
