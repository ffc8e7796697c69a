"""One rule per field, in the model: the admin and `credential set` trim and refuse alike."""

from __future__ import annotations

import math

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation
from hypothesis import given, strategies as st

from tests.conftest import PASSWORD
from wecom.models import OfficialAccount
from wecom.validators import validate_display_name, validate_rate_limit

APPID = "wx0123456789abcdef"
SECRET = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"

BAD_NAMES = {
    "only spaces": "   ",
    "empty": "",
    "newline": "品牌\n号",
    "ANSI escape": "\x1b[31m品牌号\x1b[0m",
    "tab": "品牌\t号",
    "right-to-left override": "品牌\u202e号",
    "NUL": "品牌\x00号",
}
BAD_RATES = {
    "nan": "nan",
    "inf": "inf",
    "-inf": "-inf",
    "zero": "0",
    "negative": "-5",
    "too many": "10001",
    "words": "fast",
}


def admin_errors(client: Client, data: dict) -> list[str]:
    response = client.post("/admin/wecom/officialaccount/add/", data, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, "refused, not saved"
    form = response.context["adminform"].form
    return [message for messages in form.errors.values() for message in messages]


def cli_errors(**values: str) -> str:
    name = values.pop("name")
    with pytest.raises(CommandError) as caught:
        call_command(
            "credential", "set", "oa", name, *(f"{key}={value}" for key, value in values.items())
        )
    return str(caught.value)


@pytest.fixture
def admin_client(credential_admin) -> Client:
    client = Client()
    assert client.login(username=credential_admin.username, password=PASSWORD)
    return client


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_bad_name_gets_the_same_message_from_the_admin_and_the_command_line(admin_client, name):
    with translation.override("en"):
        from_admin = admin_errors(
            admin_client, {"name": name, "appid": APPID, "secret": SECRET, "rate_limit": ""}
        )
        from_cli = cli_errors(name=name, appid=APPID, secret=SECRET)
    assert len(from_admin) == 1
    assert from_admin[0] in from_cli
    assert not OfficialAccount.objects.exists()


@pytest.mark.parametrize("rate", BAD_RATES.values(), ids=BAD_RATES.keys())
def test_a_bad_rate_limit_gets_the_same_message_from_the_admin_and_the_command_line(
    admin_client, rate
):
    with translation.override("en"):
        from_admin = admin_errors(
            admin_client, {"name": "品牌号", "appid": APPID, "secret": SECRET, "rate_limit": rate}
        )
        from_cli = cli_errors(name="品牌号", appid=APPID, secret=SECRET, rate_limit=rate)
    assert from_admin == [
        "Calls per second is a number from 0.1 to 10,000; leave it empty for the console's default."
    ]
    assert from_admin[0] in from_cli
    assert not OfficialAccount.objects.exists()


def test_names_are_trimmed_everywhere_so_no_look_alike_twin_appears(admin_client, capsys):
    call_command("credential", "set", "oa", "  品牌号 ", f"appid={APPID}", f"secret={SECRET}")
    account = OfficialAccount.objects.get()
    assert account.name == "品牌号"
    call_command("credential", "set", "oa", "品牌号  ", "rate_limit=5")
    assert OfficialAccount.objects.get().rate_limit == 5
    response = admin_client.post(
        f"/admin/wecom/officialaccount/{account.pk}/change/",
        {"name": " 品牌号 ", "appid": APPID, "secret": "", "rate_limit": "5"},
    )
    assert response.status_code == 302, "a record the command line saved saves again in the admin"
    assert OfficialAccount.objects.count() == 1


@given(st.text(max_size=40))
def test_an_accepted_name_is_printable(name):
    try:
        validate_display_name(name)
    except ValidationError:
        return
    assert name.strip()
    assert all(char.isprintable() or char in " \u3000\u200d" for char in name.strip())


@given(st.floats(allow_nan=True, allow_infinity=True) | st.none())
def test_an_accepted_rate_limit_is_finite_and_in_range(rate):
    try:
        validate_rate_limit(rate)
    except ValidationError:
        return
    assert rate is None or (math.isfinite(rate) and 0.1 <= rate <= 10_000)


def test_the_corp_id_message_names_both_prefixes_it_accepts():
    from wecom.validators import validate_corp_id

    validate_corp_id("wx0123456789abcdef")
    validate_corp_id("ww0123456789abcdef")
    with translation.override("en"):
        with pytest.raises(ValidationError) as caught:
            validate_corp_id("wy0123456789abcdef")
        assert "“ww” (or “wx”" in caught.value.messages[0]


def test_testing_a_credential_by_an_impossible_name_says_there_is_none(db):
    with translation.override("en"), pytest.raises(CommandError, match="There is no oa credential"):
        call_command("credential", "test", "oa", "品牌\x00号")
