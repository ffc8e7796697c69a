"""The task cluster recovers by itself when an idle worker is killed (django-q #394).

A real `manage.py qcluster` in a process of its own (tests/liveness.py), on a database and queue
of the run's own; its idle workers are killed with SIGKILL. django-q2's cluster alone never runs
a task again (the killed worker held the task queue's read lock); the console's supervisor sees
a probe wait with nothing running, reports "stuck" to /healthz, and restarts the cluster.
"""

from __future__ import annotations

from tests.harness import run_module


def test_killing_the_idle_workers_of_a_real_qcluster_stalls_nothing_for_long():
    result = run_module("tests.liveness", "--stuck-seconds", "6", "--timeout", "40", timeout=180)
    assert result["first_task_seconds"] is not None, result
    assert result["idle_seconds"] is not None, result  # both workers back on the queue
    assert result["killed"] == 2, result
    # Stuck after 6 s without a task while a probe waits; restarted; a task runs again.
    assert result["task_seconds"] is not None and result["task_seconds"] < 20, result
    assert "stuck" in result["states_seen"], result
    assert result["restarts"] == 1, result
