"""Chaos bench: one bulk job of 20,000 OpenIDs through every fault of issue 16, on a PostgreSQL
and a Redis of its own.

    .venv/bin/python bench/job_faults.py --database postgres --redis --outage-seconds 600
    .venv/bin/python bench/job_faults.py --database sqlite --outage-seconds 120

It never touches the machine's shared PostgreSQL or Redis: with ``--database postgres`` it
starts a private PostgreSQL (``initdb`` + ``pg_ctl`` in a temporary directory, on a free port),
with ``--redis`` a private ``redis-server`` (no persistence, a free port), and it stops and
restarts only those, by their data directory and pid. The platform is the sandbox, in this
process, answering each batch after ``--latency-ms`` and noting every OpenID in flight (a batch
sent while one of its OpenIDs is still being handled for another call is an overlap).

`manage.py qcluster` (the console's, supervised, two workers) runs the job; the job is one
shard, so one worker is busy and the other idle. As the job goes, the faults come one after
the other, each once the job has moved on since the last:

1. the idle worker is killed with SIGKILL (django-q #394: it holds the queue's read lock);
2. the busy worker (the shard's lease owner) is killed with SIGKILL;
3. PostgreSQL is restarted (``pg_ctl restart -m fast``), with ``--database postgres``;
4. Redis is restarted (the broker's and cache's data gone with it), with ``--redis``;
5. the platform is unreachable (every connection dropped) for ``--outage-seconds``.

The stall after each fault is the longest time the job's count did not move between that fault
(for the outage: its end) and the next one. It prints one JSON object: the faults with their
stalls, the final counts against the platform's, overlaps, and the settings that were shortened.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH_TAGGING = "/cgi-bin/tags/members/batchtagging"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """A PostgreSQL of the run's own: nothing else connects to it, nothing else is restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "pgdata"
        self.port = free_port()
        self.user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.user, "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "pg.log"),
             "-w", *args],
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> str:
        if self.user:
            shutil.chown(self.directory, "postgres")
        subprocess.run(
            [*self.user, "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres"],
            check=True, capture_output=True,
        )  # fmt: skip
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "start")
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
             "CREATE DATABASE bench"],
            check=True, capture_output=True,
        )  # fmt: skip
        return f"postgres://postgres@127.0.0.1:{self.port}/bench"

    def restart(self) -> float:
        started = time.monotonic()
        self._pg_ctl("restart", "-m", "fast")
        return time.monotonic() - started

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("stop", "-m", "immediate")


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return f"redis://127.0.0.1:{self.port}/0"
            time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def restart(self) -> float:
        started = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # our own redis-server, by its pid
            self.process.wait(timeout=10)


class Progress:
    """The job's count over time; the stall is the longest time it stood still."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []

    def add(self, processed: int) -> None:
        now = time.monotonic()
        if not self.samples or processed != self.samples[-1][1]:
            self.samples.append((now, processed))

    def longest_stall(self, start: float, end: float) -> float:
        moves = [when for when, _count in self.samples if start <= when <= end]
        points = [start, *moves, end]
        return max(b - a for a, b in itertools.pairwise(points)) if moves else end - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    servers: list[Any] = []
    try:
        return _run(argv, servers)
    finally:
        from django.db import connection

        with contextlib.suppress(Exception):
            connection.close()
        for server in servers:  # ours only: the private PostgreSQL and redis-server
            server.stop()


def _run(argv: list[str] | None, servers: list[Any]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--redis", action="store_true", help="Redis as broker and cache")
    parser.add_argument("--openids", type=int, default=20_000)
    parser.add_argument("--bad", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=80.0)
    parser.add_argument("--outage-seconds", type=float, default=600.0)
    parser.add_argument("--stuck-seconds", type=float, default=150.0, help="WORKER_STUCK_SECONDS")
    parser.add_argument("--slice-seconds", type=int, default=120, help="JOBS_SLICE_SECONDS")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="job-faults-"))
    postgres = PrivatePostgres(work) if args.database == "postgres" else None
    redis = PrivateRedis(work) if args.redis else None
    servers.extend(server for server in (postgres, redis) if server is not None)
    database_url = postgres.start() if postgres else f"sqlite:///{work / 'bench.sqlite3'}"
    redis_url = redis.start() if redis else ""

    from tests.harness import django_setup, process_group_stop
    from tests.tagging.bulk.chaos import bulk_run_start, watched_sandbox
    from wecom.sandbox.faults import FaultRule

    sandbox, in_flight = watched_sandbox(latency_ms=args.latency_ms, seed=1)
    run_id = secrets.token_hex(4)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.fault_settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "FAULTS_API_BASE": sandbox.url,
        # One shard: one worker busy, the other idle.
        "FAULTS_SHARD_SIZE": str(
            -(-(args.openids + args.bad) // args.batch_size) * args.batch_size
        ),
        "Q_CLUSTER_NAME": f"faults-{run_id}",
        "CACHE_KEY_PREFIX": f"faults-{run_id}",
        "WORKER_STUCK_SECONDS": str(args.stuck_seconds),
        "JOBS_SLICE_SECONDS": str(args.slice_seconds),
        "PYTHONPATH": str(ROOT),
    }
    django_setup(env)
    from django.db import connection
    from django_q.status import Stat

    from console.jobs.runner import owner_process
    from console.jobs.supervisor import worker_health
    from console.models import Job, JobShard, JobStatus

    def spread(valid: list[str], bad: list[str]) -> list[str]:
        step = max(len(valid) // (len(bad) + 1), 1)
        openids = list(valid)
        for number, openid in enumerate(bad):
            openids.insert((number + 1) * step, openid)
        return openids

    run = bulk_run_start(
        sandbox,
        name="faults",
        tag_name="故障测试",
        valid=args.openids,
        bad=args.bad,
        mix=spread,
        batch_size=args.batch_size,
    )
    job = run.job

    log = (work / "qcluster.log").open("w")
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    def read(query: Any, default: Any = None) -> Any:
        try:
            return query()
        except Exception:  # the database restarting: ask again next round
            with contextlib.suppress(Exception):
                connection.close()
            return default

    def processed() -> int | None:
        return read(lambda: job.progress().processed)

    def lease_owner_pid() -> int | None:
        owner = read(
            lambda: JobShard.objects.filter(job=job).values_list("lease_owner", flat=True).get(), ""
        )
        process = owner_process(owner or "")
        return process[1] if process else None

    def idle_worker_pid() -> int | None:
        busy = lease_owner_pid()
        workers = read(lambda: sorted({pid for stat in Stat.get_all() for pid in stat.workers}), [])
        idle = [pid for pid in workers if pid != busy]
        return idle[0] if busy and idle else None

    progress = Progress()
    faults: list[dict[str, Any]] = []
    plan = ["idle worker killed", "busy worker killed"]
    if postgres:
        plan.append("PostgreSQL restarted")
    if redis:
        plan.append("Redis restarted")
    plan.append("platform unreachable")
    total = args.openids + args.bad
    started = time.monotonic()
    status = ""
    outage_ends: float | None = None
    health_states: set[str] = set()
    try:
        while time.monotonic() - started < args.timeout:
            count = processed()
            if count is not None:
                progress.add(count)
            status = read(
                lambda: Job.objects.filter(pk=job.pk).values_list("status", flat=True).get(), status
            )
            health_states.add(read(lambda: worker_health().state, "unknown"))
            if status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED):
                break
            now = time.monotonic()
            if outage_ends is not None and now >= outage_ends:
                sandbox.faults.clear()
                faults[-1]["ended_at"] = round(now - started, 1)
                faults[-1]["_from"] = now
                outage_ends = None
            # The next fault once the last one is over: the job moving again, and long enough
            # after it for what it may still cause (an idle worker's death shows only once the
            # busy one ends its slice, and then WORKER_STUCK_SECONDS pass).
            settle = 15.0
            if faults and faults[-1]["fault"] == "idle worker killed":
                settle = args.slice_seconds + args.stuck_seconds + 15
            due = (
                len(faults) < len(plan)
                and count is not None
                and count >= total * 0.05
                and (not faults or now - faults[-1]["_from"] >= settle)
            )
            moved = not faults or bool(progress.samples and now - progress.samples[-1][0] < 1.0)
            if due and moved and outage_ends is None:
                name = plan[len(faults)]
                fault: dict[str, Any] = {
                    "fault": name,
                    "at": round(now - started, 1),
                    "processed": count,
                    "_from": now,
                    "_at": now,
                }
                if name in ("idle worker killed", "busy worker killed"):
                    pid = idle_worker_pid() if name == "idle worker killed" else lease_owner_pid()
                    if pid is None:
                        time.sleep(0.1)
                        continue
                    os.kill(pid, signal.SIGKILL)
                elif name == "PostgreSQL restarted":
                    assert postgres is not None
                    fault["restart_seconds"] = round(postgres.restart(), 1)
                elif name == "Redis restarted":
                    assert redis is not None
                    fault["restart_seconds"] = round(redis.restart(), 1)
                else:
                    sandbox.faults.add(
                        FaultRule(platform="wechat", endpoint=BATCH_TAGGING, drop=True)
                    )
                    outage_ends = now + args.outage_seconds
                    fault["outage_seconds"] = args.outage_seconds
                faults.append(fault)
            time.sleep(0.2)
        seconds = time.monotonic() - started
    finally:
        process_group_stop(cluster)
        sandbox.stop()

    end = time.monotonic()
    for index, fault in enumerate(faults):
        until = faults[index + 1]["_at"] if index + 1 < len(faults) else end
        fault["stall_seconds"] = round(progress.longest_stall(fault["_from"], until), 1)
    for fault in faults:
        del fault["_from"], fault["_at"]
    tally = run.tally(sandbox)
    result = {
        **tally,
        "seconds": round(seconds, 1),
        "faults": faults,
        "exact": (tally["done"], tally["failed"]) == (len(run.valid), len(run.bad)),
        "overlaps": len(in_flight.overlaps),
        "calls": sandbox.stats(),
        "worker_states_seen": sorted(health_states),
        "settings": {
            "WORKER_STUCK_SECONDS": args.stuck_seconds,
            "JOBS_SLICE_SECONDS": args.slice_seconds,
            "latency_ms": args.latency_ms,
            "batch_size": args.batch_size,
        },
        "logs": str(work),
    }
    return result


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(), ensure_ascii=False, indent=1) + "\n")
