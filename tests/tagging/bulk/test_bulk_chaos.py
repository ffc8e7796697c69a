"""Chaos: a bulk job survives workers killed with SIGKILL, platform errors, revoked tokens and
dropped connections, and ends with every valid OpenID tagged, exact counts, no batch on two
workers at once.

The run happens in a process of its own (tests/tagging/bulk/chaos.py) against a database of its own,
with real ``manage.py qcluster`` worker processes on this run's broker (the database, or Redis on
the PostgreSQL + Redis run). At the size the issue asks for, 20,000 OpenIDs (about 25 s here on
either database); `bench/bulk_jobs.py chaos` runs the same from a terminal.
"""

from __future__ import annotations

from tests.harness import run_module


def test_a_bulk_job_under_chaos_tags_every_valid_openid_exactly_once():
    result = run_module(
        "tests.tagging.bulk.chaos",
        "--openids",
        "20000",
        "--bad",
        "12",
        "--workers",
        "2",
        # Reproducible platform faults; the kill times still vary with the machine.
        "--seed",
        "20261124",
        timeout=360,
    )
    summary = {key: value for key, value in result.items() if key not in ("calls", "faults")}

    assert result["status"] == "done", summary
    assert result["kills"] >= 5, summary
    assert result["token_invalidations"] >= 3, summary
    fired: dict[object, int] = {}
    for rule in result["faults"]:
        kind = rule["errcode"] if rule["errcode"] is not None else "drop"
        fired[kind] = fired.get(kind, 0) + rule["fired"]
    assert fired[-1] > 0 and fired["drop"] > 0, result["faults"]
    # Exact counts: every valid OpenID once, every bad one once, nothing counted twice.
    assert (result["total"], result["done"], result["failed"]) == (20012, 20000, 12), summary
    assert result["failure_items"] == result["failure_items_unique"] == 12, summary
    assert result["failures_are_the_bad_ones"], summary
    assert result["valid_missing_in_sandbox"] == 0, summary
    assert result["bad_in_sandbox"] == 0, summary
    assert result["overlaps"] == 0, summary


def test_the_overlap_recorder_sees_one_batch_sent_twice_at_once(sandbox, account):
    """What the chaos run counts on: two calls with the same OpenIDs at once are an overlap."""
    import threading

    from tests.tagging.bulk.chaos import InFlight
    from wecom.connections import client_for
    from wecom.sandbox import DEMO

    tag_id = sandbox.state.official_account.add_tag(DEMO.oa_appid, "重叠")
    openids = [f"oW3Kq_{n:022d}" for n in range(5)]
    # Long enough for the second thread to arrive while the first call is held, on a loaded
    # machine too (0.3 s was missed at a load average of 12).
    recorder = InFlight(latency=2.0)
    recorder.install()
    try:
        client = client_for(account)
        client.batch_tag(tag_id=tag_id, openids=openids)  # the token, before the race
        threads = [
            threading.Thread(target=client.batch_tag, kwargs={"tag_id": tag_id, "openids": openids})
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        recorder.uninstall()
    assert len(recorder.overlaps) == 1
