"""Supervision of the task cluster: what `manage.py qcluster` runs around django-q2's cluster.

Why: django-q2's workers take tasks from one multiprocessing queue whose read lock a worker
holds while it waits for work. A worker killed while it waits (the OOM killer, ``kill -9``)
never releases it: the sentinel starts a replacement, and the replacement and every other
worker wait on that lock for ever (django-q #394). No task runs again, and nothing inside the
cluster notices. So the liveness of the workers is judged from outside the cluster, by this
supervisor, which does not depend on the queue:

* The cluster runs as a child process group (``qcluster --unsupervised``). Its worker
  processes note in a directory of the supervisor's when they start and end a task
  (``record_activity``, on django-q's ``pre_execute`` and ``post_execute_in_worker`` signals).
* Once the cluster says it runs, and whenever no task has started or ended for a while and no
  worker is inside a task, the supervisor queues a no-op probe task. A cluster that then runs
  nothing for ``WORKER_STUCK_SECONDS`` (longer than a job's slice) is stuck: the supervisor
  kills it and every process under it and starts a new cluster, which counts as stuck until it
  has run a task. A cluster process that ended, or that does not come up, is started again too.
  Every shard nobody holds is then queued again at once: the old cluster's tasks went with it.
* Every few seconds (``WORKER_SUPERVISE_SECONDS``) it runs the jobs watchdog itself, not through
  the queue, telling it which lease owners on this host are dead processes: a busy worker killed
  in the middle of a shard has its shard queued again within seconds, not after its lease.
* It publishes a heartbeat in the shared cache (host, pid, state, seconds since the last task);
  ``/healthz`` and the dashboard read it and report a worker that is stuck or absent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import close_old_connections, connection

from console import childwatch
from console.jobs.runner import owner_process

logger = logging.getLogger(__name__)

ACTIVITY_DIR_ENV = "CONSOLE_WORKER_ACTIVITY_DIR"
HEARTBEAT_KEY = "console:worker-supervisor"
PROBE_TASK = "console.jobs.tasks.probe"
STOP_GRACE_SECONDS = 20.0


class WorkerState:
    STARTING = "starting"
    OK = "ok"
    STUCK = "stuck"


# --- What the worker processes write ---------------------------------------------------------


def record_activity(state: str) -> None:
    """In a worker process: note that it starts (``busy``) or ended (``idle``) a task now."""
    directory = os.environ.get(ACTIVITY_DIR_ENV)
    if not directory:
        return
    path = Path(directory) / str(os.getpid())
    temporary = path.with_suffix(".tmp")
    try:
        temporary.write_text(f"{state} {time.time():.3f}")
        temporary.replace(path)
    except OSError:  # the supervisor removed the directory: the cluster is being replaced
        pass


def on_task_start(**kwargs: Any) -> None:
    record_activity("busy")


def on_task_end(**kwargs: Any) -> None:
    record_activity("idle")


@dataclass(frozen=True)
class Activity:
    last: float | None  # when a task last started or ended, as time.time()
    busy: int  # live workers inside a task that started less than the cluster's timeout ago


def read_activity(directory: Path, *, now: float | None = None) -> Activity:
    now = time.time() if now is None else now
    timeout = float(settings.Q_CLUSTER.get("timeout") or 0) or float("inf")
    last: float | None = None
    busy = 0
    for path in directory.iterdir():
        if not path.name.isdigit():
            continue
        try:
            state, stamp = path.read_text().split()
            when = float(stamp)
        except (OSError, ValueError):
            continue
        last = when if last is None else max(last, when)
        if state == "busy" and now - when < timeout and pid_alive(int(path.name)):
            busy += 1
    return Activity(last=last, busy=busy)


def descendants(pid: int) -> list[int]:
    """The processes under ``pid``, children first (Linux: from /proc; elsewhere none)."""
    parents: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_owner_on_this_host(owner: str) -> bool:
    """Whether a lease owner names a process of this host that no longer runs."""
    process = owner_process(owner)
    if process is None:
        return False
    host, pid = process
    return host == socket.gethostname() and not pid_alive(pid)


# --- The heartbeat that /healthz and the dashboard read ---------------------------------------


def worker_heartbeat() -> dict[str, Any] | None:
    """The supervisor's last heartbeat, or ``None``; raises when the cache cannot be read."""
    return caches[settings.SHARED_CACHE_ALIAS].get(HEARTBEAT_KEY)


def worker_heartbeat_publish(
    *, state: str, idle: float, restarts: int, at: float | None = None
) -> None:
    """What the supervisor says every few seconds: its cluster's state, seconds since a task
    last started or ended, how often it restarted the cluster."""
    beat = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "at": time.time() if at is None else at,
        "state": state,
        "idle": round(idle, 1),
        "restarts": restarts,
    }
    caches[settings.SHARED_CACHE_ALIAS].set(
        HEARTBEAT_KEY, beat, timeout=int(settings.WORKER_ABSENT_SECONDS * 2)
    )


@dataclass(frozen=True)
class WorkerHealth:
    state: str  # "ok", "starting", "stuck" or "absent"
    seconds_idle: float | None = None
    restarts: int = 0

    @property
    def healthy(self) -> bool:
        return self.state in (WorkerState.OK, WorkerState.STARTING)


def worker_health(*, now: float | None = None) -> WorkerHealth:
    now = time.time() if now is None else now
    beat = worker_heartbeat()
    if not beat or now - float(beat.get("at", 0)) > settings.WORKER_ABSENT_SECONDS:
        return WorkerHealth(state="absent")
    return WorkerHealth(
        state=str(beat.get("state", WorkerState.OK)),
        seconds_idle=beat.get("idle"),
        restarts=int(beat.get("restarts", 0)),
    )


# --- The supervisor ---------------------------------------------------------------------------


class ClusterSupervisor:
    def __init__(self, *, argv: list[str] | None = None) -> None:
        self.argv = argv or [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "qcluster",
            "--unsupervised",
        ]
        self.process: subprocess.Popen | None = None
        self.activity_dir: Path | None = None
        self.started_at = 0.0
        self.up_at: float | None = None
        self.probe_at: float | None = None
        self.restarts = 0
        self.state = WorkerState.STARTING
        self.stopping = False
        self.tasks_lost = False

    # -- the loop

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._start()
            while not self.stopping:
                self._sleep(settings.WORKER_SUPERVISE_SECONDS)
                if not self.stopping:
                    self.tick()
        finally:
            self._stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    def tick(self, *, now: float | None = None) -> None:
        """One look: the cluster alive and not stuck, the watchdog, the heartbeat."""
        now = time.time() if now is None else now
        assert self.process is not None and self.activity_dir is not None
        if self.process.poll() is not None:
            logger.warning(
                "task cluster ended (exit code %s); starting it again", self.process.returncode
            )
            self._restart()
            return
        if self.up_at is None:
            # The stuck clock starts once the cluster says it runs (its start takes seconds);
            # one that does not come up within WORKER_STUCK_SECONDS is replaced.
            if self._cluster_up():
                self.up_at = now
            elif now - self.started_at >= settings.WORKER_STUCK_SECONDS:
                logger.error("task cluster did not come up; starting it again")
                self._restart()
                return
            else:
                self._watchdog()
                self._publish(now - self.started_at)
                return
        activity = read_activity(self.activity_dir, now=now)
        since = max(activity.last or 0.0, self.up_at)
        idle = now - since
        if activity.last is not None and activity.last > self.started_at:
            self.state = WorkerState.OK
        if self.state == WorkerState.STUCK and self.probe_at is None:
            # A cluster started in place of a stuck one is "stuck" until it has run a task:
            # the probe goes at once.
            self.probe_at = now if self._probe() else None
        elif self.state != WorkerState.STUCK and (
            activity.busy or idle < settings.WORKER_STUCK_SECONDS / 3
        ):
            self.probe_at = None
        elif self.probe_at is None or self.probe_at < since:
            # Idle for a while: a probe tells an idle cluster from one that cannot take tasks.
            self.probe_at = now if self._probe() else None
        elif now - self.probe_at >= settings.WORKER_STUCK_SECONDS * 2 / 3:
            self.state = WorkerState.STUCK
            self._publish(idle)
            logger.error(
                "task cluster stuck: no task started for %.0f s while a probe waits; restarting",
                idle,
            )
            self._kill()
            self._release_orm_tasks(taken_after=since)
            self.restarts += 1
            self._start()
            return
        self._watchdog()
        self._publish(idle)

    # -- the cluster

    def _start(self) -> None:
        self.activity_dir = Path(tempfile.mkdtemp(prefix="console-workers-"))
        arm = childwatch.parent_death_signal(os.getpid())
        self.process = subprocess.Popen(  # noqa: S603
            self.argv,
            env={**os.environ, ACTIVITY_DIR_ENV: str(self.activity_dir)},
            # In the supervisor's process group: a stop signal to the group (`make run`, a
            # terminal's Ctrl-C) reaches the workers as it always did.
            preexec_fn=arm,  # safe: the supervisor starts no threads
        )
        self.started_at = time.time()
        self.up_at = None
        self.probe_at = None
        if self.state != WorkerState.STUCK:  # stuck until the new cluster runs a task
            self.state = WorkerState.STARTING
        # The tasks the previous cluster held are gone: shards are queued again at once.
        self.tasks_lost = self.restarts > 0
        self._publish(0.0)

    def _restart(self) -> None:
        self._kill()
        self.restarts += 1
        self._start()

    def _kill(self) -> None:
        if self.process is not None:
            # The cluster and every process under it (sentinel, pusher, monitor, workers).
            for pid in [self.process.pid, *descendants(self.process.pid)]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self._forget_activity()

    def _stop(self) -> None:
        if self.process is None:
            return
        # The cluster's own stop first (running tasks finish their batch), then SIGKILL.
        if self.process.poll() is None:
            childwatch.signal_leader(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._kill()
        self._forget_activity()
        with contextlib.suppress(Exception):
            caches[settings.SHARED_CACHE_ALIAS].delete(HEARTBEAT_KEY)

    def _forget_activity(self) -> None:
        if self.activity_dir is not None:
            shutil.rmtree(self.activity_dir, ignore_errors=True)
            self.activity_dir = None

    # -- the probe, the watchdog, the heartbeat: each may meet a database or cache that is down

    def _cluster_up(self) -> bool:
        from django_q.conf import Conf
        from django_q.status import Stat

        assert self.process is not None
        try:
            stats = Stat.get_all()
        except Exception:
            return False
        return any(
            stat.pid == self.process.pid and stat.status in (Conf.IDLE, Conf.WORKING)
            for stat in stats
        )

    def _probe(self) -> bool:
        from django_q.tasks import async_task

        try:
            async_task(PROBE_TASK, save=False)
        except Exception:
            logger.warning("could not queue the worker probe", exc_info=True)
            return False
        return True

    def _release_orm_tasks(self, *, taken_after: float) -> None:
        """Give back the tasks the stuck cluster took from the database broker.

        Its pusher went on taking tasks into the queue that no worker could read; the broker
        would hand them out again only after Q_RETRY (20 minutes). Those taken since the last
        task ran are released at once. With several clusters on one queue, one of them might
        have been another's, run twice then: job shards are fenced by their lease, and the
        console's other tasks are idempotent. The Redis broker loses such tasks instead: job
        shards come back through the watchdog, schedules at their next run.
        """
        if "orm" not in settings.Q_CLUSTER:
            return
        from datetime import UTC, datetime, timedelta

        from django_q.brokers import get_broker
        from django_q.models import OrmQ

        retry = float(settings.Q_CLUSTER.get("retry") or 0)
        threshold = datetime.fromtimestamp(taken_after, tz=UTC) + timedelta(seconds=retry)
        try:
            released = OrmQ.objects.filter(key=get_broker().list_key, lock__gt=threshold).update(
                lock=datetime.now(tz=UTC)
            )
        except Exception:
            logger.warning("could not release the stuck cluster's tasks", exc_info=True)
            return
        if released:
            logger.warning("released %d task(s) the stuck cluster had taken", released)

    def _watchdog(self) -> None:
        from console.jobs.services import jobs_watchdog

        try:
            close_old_connections()
            jobs_watchdog(dead_owner=dead_owner_on_this_host, tasks_lost=self.tasks_lost)
            self.tasks_lost = False
        except Exception:
            logger.warning("jobs watchdog failed; trying again next round", exc_info=True)
            with contextlib.suppress(Exception):
                connection.close()

    def _publish(self, idle: float) -> None:
        try:
            worker_heartbeat_publish(state=self.state, idle=idle, restarts=self.restarts)
        except Exception:
            logger.warning("could not publish the worker heartbeat", exc_info=True)
