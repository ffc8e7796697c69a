"""Chaos: a WeCom customer-tagging job survives workers killed with SIGKILL, errcode -1,
dropped connections and revoked tokens, and tags exactly the valid (member, customer) pairs,
once each, the pairs WeCom refuses for good failed with their sentence, and no pair in flight
twice at the same time.

The run happens in a process of its own (tests/tagging/bulk/chaos.py, ``--kind customers``)
against a database of its own, with real ``manage.py qcluster`` worker processes on this run's
broker (the database, or Redis on the PostgreSQL + Redis run). Here at 1,000 pairs (about 25 s
with other work on the machine); ``bench/bulk_jobs.py chaos --kind customers`` runs the
issue's size, 20,000 pairs.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import translation

from tests.harness import run_module
from wecom.clients.errors import ERRCODES, WECOM

PAIRS = 1000
REFUSED = 6


def test_a_customers_job_under_chaos_tags_exactly_the_valid_pairs_once_each():
    result = run_module(
        "tests.tagging.bulk.chaos",
        "--kind",
        "customers",
        "--pairs",
        str(PAIRS),
        "--bad",
        str(REFUSED),
        "--members",
        "5",
        "--workers",
        "2",
        # Fewer random kills than the full run's (two more come at 1/4 and 1/2 of the pairs):
        # each costs a worker's start and a lease, and this size is over in a few seconds.
        "--kill-every",
        "4",
        "9",
        # Reproducible platform faults and pairs; the kill times still vary with the machine.
        "--seed",
        "20261207",
        timeout=240,
    )
    summary = {key: value for key, value in result.items() if key not in ("calls", "faults")}

    assert result["status"] == "done", summary
    assert result["kills"] >= 2, summary
    assert result["token_invalidations"] >= 1, summary
    fired: dict[object, int] = {}
    for rule in result["faults"]:
        kind = rule["errcode"] if rule["errcode"] is not None else "drop"
        fired[kind] = fired.get(kind, 0) + rule["fired"]
    assert fired[-1] > 0 and fired["drop"] > 0, result["faults"]
    # Pairs over a handful of members, some customers followed by two of them.
    assert result["members"] == 5, summary
    assert result["customers"] < PAIRS, summary
    # Exact counts: every valid pair once, every refused one once, nothing counted twice.
    assert (result["total"], result["done"], result["failed"]) == (
        PAIRS + REFUSED,
        PAIRS,
        REFUSED,
    ), summary
    assert result["failure_items"] == result["failure_items_unique"] == REFUSED, summary
    assert result["failures_are_the_bad_ones"], summary
    with translation.override(settings.LANGUAGE_CODE):
        sentence = str(ERRCODES[WECOM, 84061].item.reason)
    assert result["failure_codes"] == {"84061": REFUSED}, summary
    assert result["failure_reasons"] == {sentence: REFUSED}, summary
    # On the platform: each valid pair carries the tag (once), no refused pair does.
    assert result["valid_missing_in_sandbox"] == 0, summary
    assert result["valid_tagged_once"] == PAIRS, summary
    assert result["bad_in_sandbox"] == 0, summary
    # Never two calls of one pair at once: not while the console waits for both, nor after a
    # timeout (the pair is sent again only once the call it gave up on has had as long again
    # to finish: wecom/clients/transport.py).
    assert result["overlaps_while_open"] == 0, summary
    assert result["overlaps_after_timeout"] == 0, summary
    # At least one call per pair; errcode -1, drops and revoked tokens add some, not many.
    calls = result["calls"]["wecom /cgi-bin/externalcontact/mark_tag"]
    assert PAIRS + REFUSED <= calls < 2 * (PAIRS + REFUSED), summary


def test_the_overlap_recorder_sees_one_pair_sent_twice_at_once(sandbox, db):
    """What the chaos run counts on: two mark_tag calls for the same pair at once are an
    overlap of that pair; the same customer with another member is not."""
    import threading

    from tests.tagging.bulk.chaos import MARK_TAG, InFlight
    from tests.tagging.customers.conftest import CORP
    from wecom.connections import client_for
    from wecom.models import WeComApp
    from wecom.sandbox import DEMO

    app = WeComApp.objects.create(
        name="重叠",
        corp_id=CORP,
        secret=DEMO.wecom_secret,
        agent_id=DEMO.wecom_agent_id,
        rate_limit=10_000,
    )
    customers = sandbox.state.customers
    ext = next(
        e for e in customers.customers_of(CORP, "zhangsan") if len(customers.followers(CORP, e)) > 1
    )
    other = next(u for u in customers.followers(CORP, ext) if u != "zhangsan")
    answer = sandbox.state.wecom.add_corp_tag(
        CORP, {"group_name": "重叠", "tag": [{"name": "重叠"}]}
    )
    tag_id = answer["tag_group"]["tag"][0]["id"]
    recorder = InFlight(latency=0.3, watch=MARK_TAG)
    recorder.install()
    try:
        client = client_for(WeComApp.objects.get(pk=app.pk))
        client.customer_tag_mark("zhangsan", ext, add=[tag_id])  # the token, before the race
        threads = [
            threading.Thread(
                target=client.customer_tag_mark, args=(userid, ext), kwargs={"add": [tag_id]}
            )
            for userid in ("zhangsan", "zhangsan", other)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        recorder.uninstall()
    assert recorder.report()["overlaps"] == recorder.report()["overlaps_while_open"] == 1
    assert recorder.per_item == {f"zhangsan/{ext}": 1}


def test_an_overlap_with_a_call_older_than_the_read_timeout_is_counted_apart(settings):
    from tests.tagging.bulk.chaos import MARK_TAG, InFlight

    recorder = InFlight(latency=0, watch=MARK_TAG)
    recorder.since = {"zhangsan/wm1": [100.0, 100.5]}
    recorder.note_overlap(["zhangsan/wm1"], 100.5 + settings.PLATFORM_READ_TIMEOUT + 0.1)
    # The youngest earlier call decides: still open here.
    recorder.note_overlap(["zhangsan/wm1"], 100.0 + settings.PLATFORM_READ_TIMEOUT + 0.1)
    report = recorder.report()
    assert (
        report["overlaps"],
        report["overlaps_after_timeout"],
        report["overlaps_while_open"],
    ) == (
        2,
        1,
        1,
    )
