"""`manage.py sandbox` as `make run` starts it: a separate process, SIGTERM to stop."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from wecom.sandbox import DEMO

ROOT = Path(__file__).resolve().parents[2]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DEBUG="true",
        CONSOLE_READ_DOTENV="0",
        DJANGO_SETTINGS_MODULE="console.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_sandbox_command(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "sandbox", *arguments],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    """The first stdout line, waiting for it at most ``timeout`` seconds."""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            return process.stdout.readline()
    return ""


def oa_token(snapshot: dict) -> str:
    return next(t["token"] for t in snapshot["tokens"] if t["platform"] == "wechat")


@pytest.fixture
def start_sandbox():
    processes = []

    def start(*arguments: str) -> tuple[subprocess.Popen, str]:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "sandbox", "--port", "0", *arguments],
            cwd=ROOT,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        line = _read_line(process, timeout=60)
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, f"no ready line; stdout {line!r}, stderr {process.stderr.read()!r}"
        return process, match.group(1)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sandbox_command_serves_and_stops_cleanly(start_sandbox, tmp_path):
    state_file = tmp_path / "sandbox-state.json"
    process, url = start_sandbox("--demo", "--state", str(state_file), "--seed", "3")
    answer = requests.get(
        f"{url}/wecom/cgi-bin/gettoken",
        params={"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret},
        timeout=5,
    ).json()
    assert answer["errcode"] == 0
    created = requests.post(
        f"{url}/wechat/cgi-bin/tags/create",
        params={
            "access_token": requests.post(
                f"{url}/wechat/cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": DEMO.oa_appid,
                    "secret": DEMO.oa_secret,
                },
                timeout=5,
            ).json()["access_token"]
        },
        json={"tag": {"name": "持久化"}},
        timeout=5,
    ).json()
    assert created["tag"]["id"] == 104

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert "Traceback" not in process.stderr.read()
    saved = json.loads(state_file.read_text(encoding="utf-8"))
    assert "持久化" in {t["name"] for t in saved["wechat"][DEMO.oa_appid]["tags"]}

    # Started again on the same file: the state is back, tokens included.
    process, url = start_sandbox("--state", str(state_file))
    tags = requests.get(
        f"{url}/wechat/cgi-bin/tags/get",
        params={"access_token": oa_token(saved)},
        timeout=5,
    ).json()
    assert "持久化" in {t["name"] for t in tags["tags"]}
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0


def test_sandbox_command_faults_from_the_command_line(start_sandbox):
    process, url = start_sandbox(
        "--demo", "--fault", "errcode=-1,platform=wecom,endpoint=/cgi-bin/gettoken,times=1"
    )
    params = {"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret}
    first = requests.get(f"{url}/wecom/cgi-bin/gettoken", params=params, timeout=5).json()
    second = requests.get(f"{url}/wecom/cgi-bin/gettoken", params=params, timeout=5).json()
    assert (first["errcode"], second["errcode"]) == (-1, 0)
    stats = requests.get(f"{url}/__sandbox__/stats", timeout=5).json()
    assert stats["calls"] == {"wecom /cgi-bin/gettoken": 2}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_sandbox_command_refuses_bad_fault_spec():
    result = run_sandbox_command("--port", "0", "--fault", "nope")
    assert result.returncode != 0
    assert "--fault" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_state_file_from_before_customers_gets_the_demo_customers(start_sandbox, tmp_path):
    from wecom.sandbox import SandboxState, seed_demo
    from wecom.sandbox.persist import save_state

    state = SandboxState(seed=3)
    seed_demo(state)
    old = state.snapshot()
    del old["wecom_customers"]  # as the file of an earlier sandbox
    state_file = tmp_path / "sandbox-state.json"
    save_state(SandboxState.from_snapshot(old), state_file)

    process, url = start_sandbox("--demo", "--state", str(state_file))
    token = requests.get(
        f"{url}/wecom/cgi-bin/gettoken",
        params={"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret},
        timeout=5,
    ).json()["access_token"]
    members = requests.get(
        f"{url}/wecom/cgi-bin/externalcontact/get_follow_user_list",
        params={"access_token": token},
        timeout=5,
    ).json()
    assert members["follow_user"] == ["zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
