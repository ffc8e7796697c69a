"""Audiences of bulk jobs: files, pasted lists and tag followers, parsed as streams."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tagging.bulk.audience import (
    AudienceError,
    audience_from_file,
    audience_from_tag,
    audience_from_text,
    audience_openids,
    audience_preview,
    audience_refusal_rows,
)
from tagging.bulk.models import BulkAudience, BulkAudienceMember, BulkAudienceRefusal
from tagging.official_account.models import OfficialAccountTag
from tagging.official_account.services import oa_tags_pull
from wecom.sandbox import DEMO
from wecom.sandbox.demo import demo_openid

pytestmark = pytest.mark.django_db

PREFIX = DEMO.oa_openid_prefix


def oid(n: int) -> str:
    return demo_openid(PREFIX, n)


def upload(user, data: bytes, name: str = "list.csv", column: str = "") -> BulkAudience:
    return audience_from_file(
        stream=io.BytesIO(data), name=name, size=len(data), column=column, user=user
    )


def members(audience: BulkAudience) -> list[str]:
    return audience_openids(audience_id=audience.pk, start=0, end=audience.accepted)


def nothing_created() -> bool:
    return not (
        BulkAudience.objects.exists()
        or BulkAudienceMember.objects.exists()
        or BulkAudienceRefusal.objects.exists()
    )


def test_one_per_line_drops_and_counts_duplicates_blanks_and_refuses_malformed(editor):
    lines = [oid(1), "", oid(2), oid(1), "not-an-openid", "  ", oid(3), oid(2), "o" + "x" * 30]
    audience = upload(editor, "\r\n".join(lines).encode(), name="list.txt")

    assert members(audience) == [oid(1), oid(2), oid(3)]
    assert (audience.lines, audience.accepted, audience.duplicates) == (9, 3, 2)
    assert (audience.blanks, audience.refused) == (2, 2)
    refused = list(audience_refusal_rows(audience=audience))
    assert [(line, value) for line, value, _reason in refused] == [
        (5, "not-an-openid"),
        (9, "o" + "x" * 30),
    ]
    assert all("OpenID" in reason for _line, _value, reason in refused)


def test_csv_column_by_header_with_bom_and_crlf(editor):
    text = "\ufeffname,OpenID,city\r\n张三," + oid(1) + ",上海\r\n李四," + oid(2) + ",北京\r\n"
    audience = upload(editor, text.encode("utf-8"))
    assert members(audience) == [oid(1), oid(2)]
    assert audience.encoding == "utf-8-sig"


def test_gb18030_from_chinese_excel_with_a_chosen_column(editor):
    text = "姓名,用户标识,城市\r\n张三," + oid(1) + ",广州\r\n王五," + oid(5) + ",深圳\r\n"
    audience = upload(editor, text.encode("gb18030"), column="用户标识")
    assert members(audience) == [oid(1), oid(5)]
    assert audience.encoding == "gb18030"


def test_a_header_naming_openid_in_a_one_column_file_is_skipped(editor):
    audience = upload(editor, ("openid\n" + oid(1) + "\n" + oid(2) + "\n").encode())
    assert members(audience) == [oid(1), oid(2)]
    assert audience.refused == 0


def test_xlsx_first_sheet_column_by_header(editor):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["序号", "openid"])
    for n in range(1, 6):
        sheet.append([n, oid(n)])
    sheet.append([6, None])
    sheet.append([7, "bad"])
    other = workbook.create_sheet("其他")
    other.append(["openid"])
    other.append([oid(99)])
    data = io.BytesIO()
    workbook.save(data)

    audience = upload(editor, data.getvalue(), name="名单.xlsx")

    assert members(audience) == [oid(n) for n in range(1, 6)]
    assert (audience.blanks, audience.refused) == (1, 1)
    assert audience.encoding == "xlsx"


def test_pasted_list_separated_by_lines_spaces_and_commas(editor):
    audience = audience_from_text(
        text=f"{oid(1)}, {oid(2)}\n\n{oid(3)}；{oid(1)}\tnope", user=editor
    )
    assert members(audience) == [oid(1), oid(2), oid(3)]
    assert (audience.duplicates, audience.blanks, audience.refused) == (1, 1, 1)


def test_followers_of_another_tag_page_by_page(sandbox, account, actor, editor):
    oa_tags_pull(account=account, actor=actor)
    tag = OfficialAccountTag.objects.get(name="广东")
    sandbox.state.official_account.tag_users(
        DEMO.oa_appid, tag.tag_id, [oid(n) for n in range(1000, 11_500)]
    )
    sandbox.reset_stats()

    audience = audience_from_tag(tag=tag, user=editor)

    assert audience.accepted == len(
        sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag.tag_id)
    )
    assert set(members(audience)) == sandbox.state.official_account.tag_fans(
        DEMO.oa_appid, tag.tag_id
    )
    # 10,504 followers: two full-or-partial pages and the empty one that ends the list.
    assert sandbox.calls("wechat", "/cgi-bin/user/tag/get") == 3


def test_preview_shows_counts_first_rows_and_first_100_refusals(editor):
    lines = [oid(n) for n in range(20)] + [f"bad-{n}" for n in range(150)]
    audience = upload(editor, "\n".join(lines).encode())
    preview = audience_preview(audience=audience)
    assert preview.first_rows == [oid(n) for n in range(10)]
    assert len(preview.refusals) == 100
    assert preview.refusals[0].value == "bad-0"
    assert len(list(audience_refusal_rows(audience=audience))) == 150


def test_shards_read_their_positions_in_order(editor):
    audience = upload(editor, "\n".join(oid(n) for n in range(50)).encode())
    assert audience_openids(audience_id=audience.pk, start=20, end=25) == [
        oid(n) for n in range(20, 25)
    ]


def test_a_file_over_the_limit_is_refused_before_reading(editor, settings):
    settings.BULK_UPLOAD_MAX_BYTES = 1024 * 1024
    data = (oid(1) + "\n").encode() * 40_000
    with pytest.raises(AudienceError) as refused:
        upload(editor, data)
    assert "1 MB" in str(refused.value)
    assert nothing_created()


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls"),
        (b"PK\x03\x04 not really a zip", "broken.xlsx"),
        (b"\x00\x01\x02binary\x00", "picture.png"),
        (b"\x80\x81\xff\xfe\xfd", "weird.csv"),
    ],
)
def test_unreadable_files_leave_nothing_behind(editor, data, name):
    with pytest.raises(AudienceError):
        upload(editor, data, name=name)
    assert nothing_created()


def test_a_file_without_one_openid_creates_nothing(editor):
    with pytest.raises(AudienceError):
        upload(editor, b"foo\nbar\n\n")
    assert nothing_created()


def test_a_missing_column_names_the_columns_there_are(editor):
    with pytest.raises(AudienceError) as refused:
        upload(editor, f"name,uid\na,{oid(1)}\n".encode(), column="openid")
    assert "name" in str(refused.value) and "uid" in str(refused.value)
    with pytest.raises(AudienceError):
        upload(editor, f"name,uid\na,{oid(1)}\n".encode())
    assert nothing_created()


openid_alphabet = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
)
valid_openids = st.builds(
    lambda tail: "o" + "".join(tail), st.lists(openid_alphabet, min_size=27, max_size=27)
)


@given(st.one_of(valid_openids, st.text(max_size=40), valid_openids.map(lambda v: v + "\n")))
def test_fuzz_the_openid_validator_agrees_with_its_rule(value):
    from django.core.exceptions import ValidationError

    from wecom.rules import is_openid, validate_openid

    expected = (
        len(value) == 28
        and value[0] == "o"
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    )
    assert is_openid(value) is expected
    if expected:
        validate_openid(value)
    else:
        with pytest.raises(ValidationError):
            validate_openid(value)


@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=30).map(oid),
            st.just(""),
            st.text(alphabet="abcxyz,; \t", max_size=10),
        ),
        max_size=60,
    )
)
def test_fuzz_pasted_lists_keep_first_appearances_in_order(editor, values):
    text = "\n".join(values)
    expected = list(dict.fromkeys(v for v in values if v.startswith(PREFIX)))
    if not expected:
        with pytest.raises(AudienceError):
            audience_from_text(text=text, user=editor)
        return
    audience = audience_from_text(text=text, user=editor)
    assert members(audience) == expected
    assert audience.accepted + audience.duplicates == sum(v.startswith(PREFIX) for v in values)
