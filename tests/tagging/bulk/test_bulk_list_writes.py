"""How a read list becomes member rows (issue 18): staged as it is read, then one statement that
keeps first appearances numbered in order; nothing renumbered, nothing left behind."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tagging.bulk import audience as bulk_audience
from tagging.bulk.audience import AudienceError, audience_from_file, audience_openids
from tagging.bulk.models import BulkAudience, BulkAudienceMember
from wecom.sandbox import DEMO
from wecom.sandbox.demo import demo_openid

pytestmark = pytest.mark.django_db

MEMBERS = '"tagging_bulkaudiencemember"'


def oid(n: int) -> str:
    return demo_openid(DEMO.oa_openid_prefix, n)


def staging_exists() -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT to_regclass('pg_temp.tagging_audience_staging') IS NOT NULL")
        else:
            cursor.execute(
                "SELECT count(*) FROM sqlite_temp_master WHERE name = 'tagging_audience_staging'"
            )
        return bool(cursor.fetchone()[0])


def test_members_are_written_once_in_order_of_first_appearance_across_chunks(editor, monkeypatch):
    monkeypatch.setattr(bulk_audience, "CHUNK", 4)  # duplicates in other chunks than the first
    values = [oid(n) for n in (5, 3, 5, 9, 1, 3, 7, 9, 2, 5, 8, 1, 4)]
    data = "\n".join(values).encode()

    with CaptureQueriesContext(connection) as captured:
        audience = audience_from_file(
            stream=io.BytesIO(data), name="list.txt", size=len(data), user=editor
        )

    expected = list(dict.fromkeys(values))
    assert audience_openids(audience_id=audience.pk, start=0, end=100) == expected
    assert list(
        BulkAudienceMember.objects.filter(audience=audience)
        .order_by("position")
        .values_list("position", flat=True)
    ) == list(range(len(expected)))
    assert (audience.accepted, audience.duplicates) == (len(expected), len(values) - len(expected))
    # executemany is logged as "N times: INSERT …": any statement writing member rows.
    writes = [
        query["sql"]
        for query in captured.captured_queries
        if f"INSERT INTO {MEMBERS}" in query["sql"] or f"UPDATE {MEMBERS}" in query["sql"]
    ]
    assert len(writes) == 1  # not row by row, no renumbering
    assert writes[0].startswith(f"INSERT INTO {MEMBERS}") and " SELECT " in writes[0]
    assert not staging_exists()


def test_two_lists_in_one_transaction_and_a_failed_one_leave_no_staging(editor):
    first = audience_from_file(
        stream=io.BytesIO(oid(1).encode()), name="a.txt", size=28, user=editor
    )
    second = audience_from_file(
        stream=io.BytesIO(f"{oid(2)}\n{oid(1)}".encode()), name="b.txt", size=57, user=editor
    )
    with pytest.raises(AudienceError):
        audience_from_file(stream=io.BytesIO(b"nope\n"), name="c.txt", size=5, user=editor)

    assert audience_openids(audience_id=first.pk, start=0, end=10) == [oid(1)]
    assert audience_openids(audience_id=second.pk, start=0, end=10) == [oid(2), oid(1)]
    assert BulkAudience.objects.count() == 2
    assert not staging_exists()
