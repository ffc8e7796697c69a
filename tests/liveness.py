"""A real `manage.py qcluster` whose idle workers are killed with SIGKILL (django-q #394).

Run as a module (tests/test_worker_liveness.py does):

    python -m tests.liveness --stuck-seconds 6

It sets up a database of its own (a temporary SQLite file, or ``<name>_liveness`` next to the
PostgreSQL database of DATABASE_URL; Redis as the broker when REDIS_URL is set, on a queue of
the run's own), starts `manage.py qcluster` as the README says, waits until its workers have
run a first task, then SIGKILLs every idle worker of the cluster one after the other (whichever
of them held the task queue's read lock dies with it), queues a task and measures how long it
takes to run. It prints one JSON object: seconds until the task ran (or null), and the worker
states /healthz saw on the way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.harness import ROOT, django_setup, process_group_stop, run_database, run_database_drop


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    result = []
    for child in _children(pid):
        result.append(child)
        result.extend(_descendants(child))
    return result


def _wait_for_task(task_id: str, *, timeout: float) -> float | None:
    from django.db import connection
    from django_q.models import Task

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):
            if Task.objects.filter(id=task_id).exists():
                return time.monotonic() - started
        connection.close()
        time.sleep(0.2)
    return None


def _process_state(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        # The command name may hold spaces and parentheses: the state follows the last ')'.
        return text.rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "gone"


def _wait_until_idle(pids: list[int], *, timeout: float) -> float | None:
    """Wait until every worker sleeps (back on the queue, one of them holding its read lock),
    seen on two reads in a row; the seconds it took, or None."""
    started = time.monotonic()
    seen_idle = 0
    while time.monotonic() - started < timeout:
        seen_idle = seen_idle + 1 if all(_process_state(pid) == "S" for pid in pids) else 0
        if seen_idle >= 2:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stuck-seconds", type=float, default=6.0)
    parser.add_argument("--timeout", type=float, default=40.0)
    parser.add_argument(
        "--unsupervised", action="store_true", help="django-q2's cluster alone, as before"
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="liveness-"))
    run_id = secrets.token_hex(4)
    database_url = run_database(work, "liveness")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "Q_CLUSTER_NAME": f"liveness-{run_id}",
        "CACHE_KEY_PREFIX": f"liveness-{run_id}",
        "Q_WORKERS": "2",
        "WORKER_STUCK_SECONDS": str(args.stuck_seconds),
        "WORKER_SUPERVISE_SECONDS": "0.5",
        "JOBS_SLICE_SECONDS": "5",
        "PYTHONPATH": str(ROOT),
    }
    django_setup(env)
    from django_q.tasks import async_task

    from console.jobs.supervisor import worker_health

    log = (work / "qcluster.log").open("w")
    cluster = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "qcluster",
            *(["--unsupervised"] if args.unsupervised else []),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    result: dict[str, Any] = {"logs": str(work)}
    try:
        # Up and taking tasks: a first task runs.
        first = async_task("console.jobs.tasks.probe")
        result["first_task_seconds"] = _wait_for_task(first, timeout=30)
        from django_q.status import Stat

        workers = sorted({pid for stat in Stat.get_all() for pid in stat.workers})
        result["idle_seconds"] = _wait_until_idle(workers, timeout=10)
        result["killed"] = len(workers)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        # A task queued now and then: one of them runs once the cluster takes tasks again.
        from django_q.models import Task

        states = set()
        tasks: list[str] = []
        started = time.monotonic()
        next_task = started
        ran = None
        while time.monotonic() - started < args.timeout:
            now = time.monotonic()
            if now >= next_task:
                with contextlib.suppress(Exception):
                    tasks.append(async_task("console.jobs.tasks.probe"))
                next_task = now + 2.0
            with contextlib.suppress(Exception):
                states.add(worker_health().state)
            with contextlib.suppress(Exception):
                if Task.objects.filter(id__in=tasks).exists():
                    ran = time.monotonic() - started
                    break
            time.sleep(0.2)
        result["task_seconds"] = None if ran is None else round(ran, 1)
        result["states_seen"] = sorted(states)
        with contextlib.suppress(Exception):
            result["restarts"] = worker_health().restarts
    finally:
        process_group_stop(cluster)
        # The supervised cluster runs in a group of its own: whatever is left of it goes too.
        for pid in _descendants(cluster.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run_database_drop(database_url)
    return result


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(), ensure_ascii=False, indent=1) + "\n")
