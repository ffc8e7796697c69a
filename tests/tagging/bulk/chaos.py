"""A bulk job under chaos: worker processes killed, platform errors, tokens revoked, drops.

Run as a module (the test in test_bulk_chaos.py does, and `bench/bulk_jobs.py chaos` at full size):

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

bench/job_faults.py runs a bulk job through other faults with the same pieces (``InFlight``,
``watched_sandbox``, ``bulk_run_start``).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.harness import ROOT, django_setup, run_database, run_database_drop

if TYPE_CHECKING:
    from console.models import Job
    from wecom.sandbox import SandboxServer

PREFIX = "oW3Kq_"


class InFlight:
    """Which OpenIDs the sandbox is handling right now; overlaps between calls."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.overlaps: list[list[str]] = []

    def install(self) -> None:
        from wecom.sandbox.official_account import OfficialAccountPlatform

        original = OfficialAccountPlatform.batch_tagging
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

        OfficialAccountPlatform.batch_tagging = recording  # type: ignore[method-assign]
        self._original = original

    def uninstall(self) -> None:
        from wecom.sandbox.official_account import OfficialAccountPlatform

        OfficialAccountPlatform.batch_tagging = self._original  # type: ignore[method-assign]


def watched_sandbox(*, latency_ms: float, seed: int | None) -> tuple[SandboxServer, InFlight]:
    """The demo platforms in this process, answering each batch after ``latency_ms`` and noting
    the OpenIDs in flight."""
    from wecom.sandbox import SandboxServer, SandboxState, seed_demo

    in_flight = InFlight(latency_ms / 1000)
    in_flight.install()
    state = SandboxState(seed=seed)
    seed_demo(state)
    return SandboxServer(state=state, seed=seed).start(), in_flight


@dataclass
class BulkRun:
    """A bulk job tagging ``valid`` OpenIDs of the demo account and ``bad`` ones of another
    (each refused by the platform) with a tag made for the run."""

    job: Job
    tag_id: int
    valid: list[str]
    bad: list[str]

    def tally(self, sandbox: SandboxServer) -> dict[str, Any]:
        """How the job ended, against what the platform holds."""
        from django.db import connection

        from console.models import JobItemFailure
        from wecom.sandbox import DEMO

        self.job.refresh_from_db()
        progress = self.job.progress()
        failure_items = list(
            JobItemFailure.objects.filter(job=self.job).values_list("item", flat=True)
        )
        fans = sandbox.state.official_account.tag_fans(DEMO.oa_appid, self.tag_id)
        return {
            "database": connection.vendor,
            "broker": "redis" if os.environ.get("REDIS_URL") else "orm",
            "status": str(self.job.status),
            "status_message": self.job.status_message,
            "total": progress.total,
            "done": progress.done,
            "failed": progress.failed,
            "valid": len(self.valid),
            "bad": len(self.bad),
            "failure_items": len(failure_items),
            "failure_items_unique": len(set(failure_items)),
            "failures_are_the_bad_ones": sorted(failure_items) == sorted(self.bad),
            "valid_missing_in_sandbox": len(set(self.valid) - fans),
            "bad_in_sandbox": len(set(self.bad) & fans),
        }


def demo_tag_pulled(state: Any, *, name: str, tag_name: str, rate_limit: int) -> tuple[Any, Any]:
    """The sandbox's demo Official Account as the credential ``name``, and a new tag of it,
    ``tag_name``, made on the platform and pulled in: (the tag, the command-line actor)."""
    from console.audit import Actor
    from tagging.official_account.models import OfficialAccountTag
    from tagging.official_account.services import oa_tags_pull
    from wecom.models import OfficialAccount
    from wecom.sandbox import DEMO

    actor = Actor.command_line(command=name)
    account = OfficialAccount.objects.create(
        name=name, appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=rate_limit
    )
    account = OfficialAccount.objects.get(pk=account.pk)
    tag_id = state.official_account.add_tag(DEMO.oa_appid, tag_name)
    oa_tags_pull(account=account, actor=actor)
    return OfficialAccountTag.objects.get(account=account, tag_id=tag_id), actor


def bulk_run_start(
    sandbox: SandboxServer,
    *,
    name: str,
    tag_name: str,
    valid: int,
    bad: int,
    mix: Callable[[list[str], list[str]], list[str]],
    batch_size: int | None = None,
) -> BulkRun:
    """Register the demo account, make the tag ``tag_name`` on the platform and pull it, and
    start tagging ``valid`` OpenIDs and ``bad`` ones, ``mix`` placing the bad among the valid.
    The platform's call counters start from zero here."""
    from django.db import connection, transaction

    from tagging.bulk.audience import audience_from_openids
    from tagging.bulk.services import bulk_job_start
    from wecom.sandbox.demo import demo_openid

    tag, actor = demo_tag_pulled(sandbox.state, name=name, tag_name=tag_name, rate_limit=10_000)
    valid_openids = [demo_openid(PREFIX, n) for n in range(100_000, 100_000 + valid)]
    bad_openids = [demo_openid("oZZZZZ", n) for n in range(bad)]
    openids = mix(valid_openids, bad_openids)
    with transaction.atomic():
        audience = audience_from_openids(openids=openids, label=name, user=actor.user)
        job = bulk_job_start(audience=audience, target=tag, batch_size=batch_size, actor=actor)
    connection.close()
    sandbox.reset_stats()
    return BulkRun(job=job, tag_id=tag.tag_id, valid=valid_openids, bad=bad_openids)


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
    database_url = run_database(work, "chaos")
    sandbox, in_flight = watched_sandbox(latency_ms=args.latency_ms, seed=args.seed)
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
    django_setup(env)
    from console.jobs.services import jobs_watchdog
    from console.models import Job, JobStatus
    from wecom.sandbox.faults import FaultRule

    def mix(valid: list[str], bad: list[str]) -> list[str]:
        openids = list(valid)
        for number, openid in enumerate(bad):
            openids.insert(rng.randrange(len(openids) + 1) if number else 0, openid)
        return openids

    run = bulk_run_start(
        sandbox, name="chaos", tag_name="混沌测试", valid=args.openids, bad=args.bad, mix=mix
    )
    job = run.job
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

    result = {
        **run.tally(sandbox),
        "seconds": round(seconds, 1),
        "overlaps": len(in_flight.overlaps),
        "overlap_examples": in_flight.overlaps[:3],
        "kills": workers.kills,
        "token_invalidations": invalidations,
        "calls": sandbox.stats(),
        "faults": sandbox.faults.describe(),
        "logs": str(work),
    }
    run_database_drop(database_url)
    return result


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(), ensure_ascii=False, indent=1) + "\n")
