"""The gap between two shards of a bulk job: from the last platform call of one shard to the
first call of the next, with a real ``qcluster`` worker, each task through the queue
(``JOBS_CHAIN_SHARDS=false``, what the console did before) against a task that goes on with
the job's next free shard within its slice (``JOBS_CHAIN_SHARDS=true``).

    .venv/bin/python bench/shard_gap.py [--rounds 3] [--shards 40]          # SQLite, ORM broker
    .venv/bin/python bench/shard_gap.py --database postgres://postgres@127.0.0.1:5432/NAME \\
        --redis redis://127.0.0.1:6379/N                                    # creates NAME_shard_gap

The sandbox runs in this process and notes when each ``batchtagging`` call starts and ends; the
worker is a fresh ``manage.py qcluster --unsupervised`` (one worker process) per variant and
round, started after its job is submitted, the rounds interleaved (through the queue, chained,
then the other way round). Shards of 250 OpenIDs, batches of 50: five calls a shard. Per round
it prints the median gap at a shard boundary, the median gap between two calls of one shard
(the floor: a checkpoint and the next call), and their difference, which is what a boundary
costs; then the ratio of the two variants' boundary costs.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARD_SIZE = 250
BATCH = 50
PREFIX = "oW3Kq_"


class CallClock:
    """When each batchtagging call started and ended, by its first OpenID."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[float, float, str]] = []

    def install(self) -> None:
        from wecom.sandbox.state import SandboxState

        original = SandboxState.oa_batch_tagging
        clock = self

        def timed(self: Any, appid: str, body: dict, *, tagging: bool) -> dict:
            began = time.perf_counter()
            try:
                return original(self, appid, body, tagging=tagging)
            finally:
                first = (body.get("openid_list") or [""])[0]
                with clock.lock:
                    clock.calls.append((began, time.perf_counter(), first))

        SandboxState.oa_batch_tagging = timed  # type: ignore[method-assign]


def gaps(calls: list[tuple[float, float, str]], positions: dict[str, int]) -> dict[str, float]:
    """Median gaps (ms): at a shard boundary, between two calls of one shard, and the excess."""
    ordered = sorted(calls)
    boundary, within = [], []
    for (_b1, end, first), (began, _e2, second) in itertools.pairwise(ordered):
        same = positions[first] // SHARD_SIZE == positions[second] // SHARD_SIZE
        (within if same else boundary).append((began - end) * 1000)
    return {
        "boundary_ms": round(statistics.median(boundary), 2),
        "within_ms": round(statistics.median(within), 2),
        "excess_ms": round(statistics.median(boundary) - statistics.median(within), 2),
        "boundaries": len(boundary),
    }


def worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster", "--unsupervised"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--redis", default="", help="a Redis URL for the broker and cache")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shard-gap-"))
    run_id = secrets.token_hex(4)
    database_url = f"sqlite:///{work / 'gap.sqlite3'}"
    if args.database:
        from tests.harness import postgres_database

        database_url = postgres_database(args.database, "shard_gap")

    from wecom.sandbox import SandboxServer, SandboxState, seed_demo

    clock = CallClock()
    clock.install()
    state = SandboxState()
    seed_demo(state)
    sandbox = SandboxServer(state=state).start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.tagging.bulk.chaos_settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis,
        "CHAOS_API_BASE": sandbox.url,
        "CHAOS_SHARD_SIZE": str(SHARD_SIZE),
        "Q_CLUSTER_NAME": f"gap-{run_id}",
        "CACHE_KEY_PREFIX": f"gap-{run_id}",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    from tests.harness import django_setup
    from tests.tagging.bulk.chaos import demo_tag_pulled

    django_setup(env)
    tag, actor = demo_tag_pulled(state, name="gap", tag_name="间隙", rate_limit=1_000_000)
    from django.db import connection, transaction

    from console.models import Job, JobStatus
    from tagging.bulk.audience import audience_from_openids
    from tagging.bulk.services import bulk_job_start
    from wecom.sandbox.demo import demo_openid

    def one_run(chained: bool, number: int) -> dict[str, float]:
        count = args.shards * SHARD_SIZE
        openids = [demo_openid(PREFIX, 1_000_000 * (number + 1) + n) for n in range(count)]
        positions = {openid: position for position, openid in enumerate(openids)}
        with transaction.atomic():
            audience = audience_from_openids(openids=openids, label="gap", user=actor.user)
            job = bulk_job_start(audience=audience, target=tag, batch_size=BATCH, actor=actor)
        connection.close()
        with clock.lock:
            clock.calls.clear()
        process = worker(
            {**env, "JOBS_CHAIN_SHARDS": "true" if chained else "false"},
            work / f"worker-{number}.log",
        )
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()
                if status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                    break
                time.sleep(0.2)
        finally:
            stop(process)
        assert status == JobStatus.DONE, status
        with clock.lock:
            calls = list(clock.calls)
        return gaps(calls, positions)

    rows = []
    number = 0
    try:
        for round_number in range(args.rounds):
            order = (False, True) if round_number % 2 == 0 else (True, False)
            results = {}
            for chained in order:
                results[chained] = one_run(chained, number)
                number += 1
            row = {
                "round": round_number + 1,
                "queue": results[False],
                "chained": results[True],
                "excess_chained_over_queue": round(
                    results[True]["excess_ms"] / results[False]["excess_ms"], 3
                )
                if results[False]["excess_ms"]
                else None,
                "load": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
    finally:
        sandbox.stop()
        connection.close()
        if database_url.startswith("postgres"):
            from tests.harness import drop_postgres_database

            drop_postgres_database(database_url)
    for variant in ("queue", "chained"):
        excess = sorted(row[variant]["excess_ms"] for row in rows)
        sys.stdout.write(
            f"{variant}: boundary cost min {excess[0]} / median {statistics.median(excess)} / "
            f"max {excess[-1]} ms\n"
        )


if __name__ == "__main__":
    main()
