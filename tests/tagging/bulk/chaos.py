"""A bulk job under chaos: worker processes killed, platform errors, tokens revoked, drops.

Run as a module (the test in test_bulk_chaos.py does, and bench/bulk_chaos.py at full size):

    python -m tests.tagging.bulk.chaos --openids 6000 --bad 12 --workers 2

It sets up a database of its own (a temporary SQLite file, or ``<name>_chaos`` next to the
PostgreSQL database of DATABASE_URL), migrates it, starts the sandbox in this process with 10%
errcode -1 and 2% dropped connections on batchtagging, starts ``manage.py qcluster`` worker
processes (django-q2 on the database broker, or Redis with REDIS_URL), starts one bulk job, and
then, until the job ends: kills a random worker's whole process group with SIGKILL at random
moments and starts it again, revokes every token now and then, and runs the job watchdog as its
schedule would (more often). The sandbox notes every OpenID in flight: a batch sent while an
OpenID of it is still being handled for another call counts as an overlap.

It prints one JSON object with what happened: counts, kills, overlaps, calls, seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[3]
PREFIX = "oW3Kq_"


def _postgres_database(url: str) -> str:
    """A fresh ``<name>_chaos`` database beside the one of ``url``; its URL."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/") + "_chaos"
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlunparse(parsed._replace(path="/" + name))


def _drop_postgres_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


class InFlight:
    """Which OpenIDs the sandbox is handling right now; overlaps between calls."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.overlaps: list[list[str]] = []

    def install(self) -> None:
        from wecom.sandbox.state import SandboxState

        original = SandboxState.oa_batch_tagging
        recorder = self

        def recording(self: Any, appid: str, body: dict, *, tagging: bool) -> dict:
            openids = [o for o in body.get("openid_list") or [] if isinstance(o, str)]
            with recorder.lock:
                clash = [o for o in openids if recorder.now[o]]
                if clash:
                    recorder.overlaps.append(clash[:3])
                recorder.now.update(openids)
            try:
                time.sleep(recorder.latency)  # a platform takes its time: widens the window
                return original(self, appid, body, tagging=tagging)
            finally:
                with recorder.lock:
                    recorder.now.subtract(openids)

        SandboxState.oa_batch_tagging = recording  # type: ignore[method-assign]
        self._original = original

    def uninstall(self) -> None:
        from wecom.sandbox.state import SandboxState

        SandboxState.oa_batch_tagging = self._original  # type: ignore[method-assign]


class Workers:
    def __init__(self, count: int, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen | None] = [None] * count
        self.kills = 0
        self.starts = 0

    def start(self, index: int) -> None:
        log = (self.log_dir / f"worker-{index}-{self.starts}.log").open("w")
        self.starts += 1
        self.processes[index] = subprocess.Popen(
            # django-q2's cluster alone: a worker is killed every second or two here, and the
            # supervisor's own start (console/jobs/supervisor.py, tested in test_worker_liveness
            # and bench/job_faults.py) would double the time each new worker needs to begin.
            [sys.executable, "manage.py", "qcluster", "--unsupervised"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes its workers too
        )

    def start_all(self) -> None:
        for index in range(len(self.processes)):
            self.start(index)

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.kills += 1

    def stop_all(self) -> None:
        for index, process in enumerate(self.processes):
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            self.processes[index] = None


def tag_of_a_new_database(
    env: dict[str, str], state: Any, *, command: str, tag_name: str, rate_limit: int
) -> tuple[Any, Any]:
    """Django set up on ``env``'s new database (migrated), the sandbox's demo Official Account
    as a credential, and a new tag of it pulled in: (the tag, the command-line actor)."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    from console.audit import Actor
    from tagging.official_account.models import OfficialAccountTag
    from tagging.official_account.services import oa_tags_pull
    from wecom.models import OfficialAccount
    from wecom.sandbox import DEMO

    actor = Actor.command_line(command=command)
    account = OfficialAccount.objects.create(
        name=command, appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=rate_limit
    )
    account = OfficialAccount.objects.get(pk=account.pk)
    tag_id = state.add_oa_tag(DEMO.oa_appid, tag_name)
    oa_tags_pull(account=account, actor=actor)
    return OfficialAccountTag.objects.get(account=account, tag_id=tag_id), actor


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--openids", type=int, default=6000)
    parser.add_argument("--bad", type=int, default=12, help="OpenIDs of another account")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(0.8, 2.5))
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="bulk-chaos-"))
    run_id = secrets.token_hex(4)
    base_url = os.environ.get("DATABASE_URL", "")
    database_url = (
        _postgres_database(base_url)
        if base_url.startswith("postgres")
        else f"sqlite:///{work / 'chaos.sqlite3'}"
    )

    from wecom.sandbox import DEMO, SandboxServer, SandboxState, seed_demo
    from wecom.sandbox.faults import FaultRule

    in_flight = InFlight(args.latency_ms / 1000)
    in_flight.install()
    state = SandboxState(seed=args.seed)
    seed_demo(state)
    sandbox = SandboxServer(state=state, seed=args.seed).start()
    endpoint = "/cgi-bin/tags/members/batchtagging"

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.tagging.bulk.chaos_settings",
        "DATABASE_URL": database_url,
        "CHAOS_API_BASE": sandbox.url,
        "Q_CLUSTER_NAME": f"chaos-{run_id}",
        "CACHE_KEY_PREFIX": f"chaos-{run_id}",
        "PYTHONPATH": str(ROOT),
    }
    tag, actor = tag_of_a_new_database(
        env, state, command="chaos", tag_name="混沌测试", rate_limit=10_000
    )
    tag_id = tag.tag_id

    from django.db import connection, transaction

    from console.jobs.services import jobs_watchdog
    from console.models import Job, JobItemFailure, JobStatus
    from tagging.bulk.audience import audience_from_openids
    from tagging.bulk.services import bulk_job_start
    from wecom.sandbox.demo import demo_openid

    valid = [demo_openid(PREFIX, n) for n in range(100_000, 100_000 + args.openids)]
    bad = [demo_openid("oZZZZZ", n) for n in range(args.bad)]
    openids = list(valid)
    for number, openid in enumerate(bad):
        openids.insert(rng.randrange(len(openids) + 1) if number else 0, openid)

    with transaction.atomic():
        audience = audience_from_openids(openids=openids, label="chaos", user=actor.user)
        job = bulk_job_start(audience=audience, target=tag, actor=actor)
    connection.close()

    sandbox.reset_stats()
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=endpoint, errcode=-1, rate=0.1))
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=endpoint, drop=True, rate=0.02))
    # Two drops for certain, whatever the draws: a short run still meets a lost connection.
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=endpoint, drop=True, times=2))

    workers = Workers(args.workers, env, work)
    started = time.monotonic()
    workers.start_all()
    next_kill = started + rng.uniform(*args.kill_every)
    next_revoke = started + 1.5
    next_watchdog = started + 1.0
    invalidations = 0
    status = ""
    try:
        while time.monotonic() - started < args.timeout:
            now = time.monotonic()
            status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()
            if status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                break
            if now >= next_kill:
                index = rng.randrange(args.workers)
                workers.kill(index)
                workers.start(index)
                next_kill = now + rng.uniform(*args.kill_every)
            if now >= next_revoke:
                sandbox.invalidate_tokens("wechat")
                invalidations += 1
                next_revoke = now + rng.uniform(1.0, 3.0)
            if now >= next_watchdog:
                jobs_watchdog()  # the schedule, every second instead of every minute
                next_watchdog = now + 1.0
            time.sleep(0.1)
        seconds = time.monotonic() - started
    finally:
        workers.stop_all()
        sandbox.stop()

    job.refresh_from_db()
    progress = job.progress()
    failure_items = list(JobItemFailure.objects.filter(job=job).values_list("item", flat=True))
    fans = state.oa_tag_fans(DEMO.oa_appid, tag_id)
    result = {
        "database": connection.vendor,
        "broker": "redis" if os.environ.get("REDIS_URL") else "orm",
        "status": str(job.status),
        "status_message": job.status_message,
        "seconds": round(seconds, 1),
        "total": progress.total,
        "done": progress.done,
        "failed": progress.failed,
        "valid": len(valid),
        "bad": len(bad),
        "failure_items": len(failure_items),
        "failure_items_unique": len(set(failure_items)),
        "failures_are_the_bad_ones": sorted(failure_items) == sorted(bad),
        "valid_missing_in_sandbox": len(set(valid) - fans),
        "bad_in_sandbox": len(set(bad) & fans),
        "overlaps": len(in_flight.overlaps),
        "overlap_examples": in_flight.overlaps[:3],
        "kills": workers.kills,
        "token_invalidations": invalidations,
        "calls": sandbox.stats(),
        "faults": sandbox.faults.describe(),
        "logs": str(work),
    }
    connection.close()
    if database_url.startswith("postgres"):
        _drop_postgres_database(database_url)
    return result


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(), ensure_ascii=False, indent=1) + "\n")
