"""The customer ids' validators, the list reader and the sandbox's customer endpoints under
arbitrary input: a clear refusal or an acceptance that holds up, never a crash."""

from __future__ import annotations

import string

from django.core.exceptions import ValidationError
from hypothesis import given, settings, strategies as st

from tagging.bulk.audience import AudienceError
from tagging.customers.audience import RowSink, read_rows
from tagging.customers.forms import QUERY_MAX, TagSearchForm
from wecom import rules
from wecom.sandbox import DEMO, PlatformError, SandboxState, seed_demo
from wecom.sandbox.customers import _EXTERNAL_USERID as SANDBOX_EXTERNAL_USERID

anything = st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.binary())
ids = st.text(alphabet=string.ascii_letters + string.digits + "-_@.wmoet!é ，", max_size=70)


def outcome(validator, value) -> bool:
    try:
        validator(value)
    except ValidationError as error:
        assert error.messages and all(message.strip() for message in error.messages)
        return False
    return True


@given(st.one_of(ids, st.just("wm").map(lambda p: p + "A" * 30), anything))
def test_accepted_external_userids_are_what_the_sandbox_takes(value):
    if outcome(rules.validate_external_userid, value):
        assert SANDBOX_EXTERNAL_USERID.fullmatch(value)
        assert len(value) <= rules.EXTERNAL_USERID_MAX_LENGTH


@given(st.one_of(ids, anything))
def test_accepted_userids_are_1_to_64_safe_characters(value):
    if outcome(rules.validate_member_userid, value):
        assert 1 <= len(value) <= rules.USERID_MAX_LENGTH
        assert "/" not in value, "a pair item splits on it"


@given(st.lists(st.one_of(ids, anything), max_size=4))
def test_tag_id_lists_are_accepted_or_refused_cleanly(value):
    if outcome(rules.validate_wecom_tag_ids, value):
        assert all(isinstance(tag, str) and tag.startswith("et") for tag in value)


cells = st.one_of(ids, st.sampled_from(["external_userid", "userid", "", "wm" + "b" * 30, "成员"]))


class Kept(RowSink):
    """What the reader tells, kept in lists (a test's few rows)."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[str, str]] = []
        self.customers: list[str] = []
        self.refusals: list[tuple[int, str, str]] = []

    def refuse(self, line, value, reason):
        super().refuse(line, value, reason)
        self.refusals.append((line, value, str(reason)))

    def pair(self, line, userid, external_userid):
        self.pairs.append((userid, external_userid))

    def unassigned(self, line, external_userid):
        super().unassigned(line, external_userid)
        self.customers.append(external_userid)


@given(st.lists(st.lists(cells, max_size=4), max_size=12))
@settings(max_examples=300)
def test_any_rows_become_pairs_or_a_sentence(rows):
    kept = Kept()
    try:
        read_rows(list(enumerate(rows, 1)), kept)
    except AudienceError as error:
        assert str(error).strip()
        return
    for userid, external_userid in kept.pairs:
        assert rules.is_member_userid(userid) and rules.is_external_userid(external_userid)
    assert all(rules.is_external_userid(customer) for customer in kept.customers)
    assert kept.refused == len(kept.refusals) and all(r[2].strip() for r in kept.refusals)
    assert kept.expanded == len(kept.customers)
    assert kept.lines == len(rows)


_state = SandboxState(seed=3)
seed_demo(_state)
bodies = st.dictionaries(
    st.sampled_from(
        ["userid", "external_userid", "add_tag", "remove_tag", "userid_list", "cursor", "limit"]
    ),
    st.one_of(anything, st.lists(st.one_of(ids, anything), max_size=3), st.just("lisi")),
    max_size=5,
)


@given(bodies)
@settings(max_examples=300)
def test_the_sandbox_answers_any_body_with_an_errcode_or_ok(body):
    for endpoint in (_state.customers.mark_tag, _state.customers.batch_get_by_user):
        try:
            answer = endpoint(DEMO.wecom_corp_id, body)
        except PlatformError as error:
            assert error.errcode and error.errmsg
        else:
            assert answer["errcode"] == 0


search_params = st.dictionaries(
    st.sampled_from(["app", "q", "ids"]),
    st.one_of(st.text(max_size=80), ids, st.integers().map(str), st.just("etA1 etB2")),
)


@given(search_params)
@settings(max_examples=300)
def test_the_tag_pickers_query_is_taken_or_refused_in_words(params):
    form = TagSearchForm(params)
    if not form.is_valid():
        assert form.refusal().strip()
        return
    data = form.cleaned_data
    assert isinstance(data["app"], int) and data["app"] >= 0
    assert len(data["q"]) <= QUERY_MAX and not rules.has_forbidden_character(data["q"])
    assert all(tag.startswith("et") for tag in data["ids"])
