"""The task cluster recovers by itself when an idle worker is killed (django-q #394).

A real `manage.py qcluster` in a process of its own (tests/liveness.py), on a database and queue
of the run's own; its idle workers are killed with SIGKILL. django-q2's cluster alone never runs
a task again (the killed worker held the task queue's read lock); the console's supervisor sees
a probe wait with nothing running, reports "stuck" to /healthz, and restarts the cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_killing_the_idle_workers_of_a_real_qcluster_stalls_nothing_for_long():
    completed = subprocess.run(
        [sys.executable, "-m", "tests.liveness", "--stuck-seconds", "6", "--timeout", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout[completed.stdout.index("{") :])
    assert result["first_task_seconds"] is not None, result
    assert result["idle_seconds"] is not None, result  # both workers back on the queue
    assert result["killed"] == 2, result
    # Stuck after 6 s without a task while a probe waits; restarted; a task runs again.
    assert result["task_seconds"] is not None and result["task_seconds"] < 20, result
    assert "stuck" in result["states_seen"], result
    assert result["restarts"] == 1, result
