"""/healthz and the dashboard report a task worker that is stuck or absent (from the heartbeat
of `qcluster`'s supervisor, console/jobs/supervisor.py)."""

from __future__ import annotations

import time

import pytest
from django.utils import translation

from console.dashboard import worker_panel
from console.jobs.supervisor import WorkerState, worker_heartbeat_publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def worker_required(settings):
    settings.HEALTHZ_REQUIRES_WORKER = True
    settings.WORKER_ABSENT_SECONDS = 60


def test_healthz_answers_503_when_no_worker_was_heard_from(client, worker_required):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == "absent"


def test_healthz_answers_503_when_the_heartbeat_is_too_old(client, worker_required):
    worker_heartbeat_publish(state=WorkerState.OK, idle=1, restarts=0, at=time.time() - 61)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == "absent"


def test_healthz_answers_503_while_the_worker_is_stuck(client, worker_required):
    worker_heartbeat_publish(state=WorkerState.STUCK, idle=151, restarts=0)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == "stuck"


def test_healthz_is_ok_with_a_fresh_heartbeat(client, worker_required):
    worker_heartbeat_publish(state=WorkerState.OK, idle=3, restarts=1)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"]["worker"] == "ok"


def test_the_dashboard_says_the_worker_is_stuck(superuser, worker_required):
    worker_heartbeat_publish(state=WorkerState.STUCK, idle=180, restarts=0)
    with translation.override("zh-hans"):
        panel = worker_panel(superuser)
    assert panel.status == "error"
    assert "后台任务进程卡住了" in panel.lines[0] and "3 分钟" in panel.lines[0]


def test_the_dashboard_says_the_worker_is_absent(superuser, worker_required):
    with translation.override("en"):
        panel = worker_panel(superuser)
    assert panel.status == "warning"
    assert panel.lines[0].startswith("The background worker is not running")
