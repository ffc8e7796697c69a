"""The sandbox refuses what it cannot do in words, keeps no secret in its request log, and its
control API refuses web pages of other origins."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from tests.sandbox.test_command import run_sandbox_command
from wecom.sandbox import DEMO, FaultRule, SandboxServer

CONTROL = "/__sandbox__/"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("latency_ms=99999999999999999999", "latency_ms must be a number of milliseconds"),
        ("latency_ms=inf", "latency_ms='inf': expected a finite number"),
        ("latency_ms=-5", "latency_ms must be a number of milliseconds"),
        ("errcode=abc", "errcode='abc': expected a whole number"),
        ("errcode=99999999999999999999", "errcode must be a whole number"),
        ("errcode=-1,platform=qq", "platform 'qq' matches none of wecom, wechat and chatbot"),
        ("rate=lots,errcode=-1", "rate='lots': expected a number"),
        ("rate=nan,errcode=-1", "rate='nan': expected a finite number"),
    ],
)
def test_a_fault_the_sandbox_cannot_apply_is_refused_in_words(spec, words):
    with pytest.raises(ValueError) as caught:
        FaultRule.from_spec(spec)
    assert words in str(caught.value)
    assert "invalid literal" not in str(caught.value)
    assert "could not convert" not in str(caught.value)


def test_a_refused_fault_over_http_leaves_the_sandbox_serving(sandbox, http):
    answer = http.post(
        sandbox.url + CONTROL + "faults", json={"rules": [{"latency_ms": 1e20}]}, timeout=5
    )
    assert answer.status_code == 400
    assert "latency_ms must be a number of milliseconds" in answer.json()["error"]
    token = http.get(
        sandbox.wecom_base + "/cgi-bin/gettoken",
        params={"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret},
        timeout=5,
    ).json()
    assert token["errcode"] == 0


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"port": 99999}, "the port must be from 1 to 65535"),
        ({"port": -1}, "the port must be from 1 to 65535"),
        ({"token_ttl": -5}, "the token lifetime must be from 0 to 604800 seconds, not -5"),
    ],
)
def test_sandbox_out_of_range_options_are_refused(options, words):
    with pytest.raises(ValueError, match=words):
        SandboxServer(**options)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--port", "99999"], "the port must be from 1 to 65535"),
        (["--token-ttl", "-5"], "the token lifetime must be from 0 to 604800 seconds"),
        (["--fault", "errcode=-1,platform=qq"], "matches none of wecom, wechat and chatbot"),
        (["--fault", "latency_ms=99999999999999999999"], "latency_ms must be a number"),
    ],
)
def test_the_sandbox_command_refuses_bad_options_in_words(arguments, words):
    with pytest.raises(CommandError, match=words):
        call_command("sandbox", *arguments)


def test_the_sandbox_command_line_prints_no_traceback_for_a_bad_port():
    result = run_sandbox_command("--port", "99999")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "the port must be from 1 to 65535" in result.stderr


def test_invalidating_tokens_of_an_unknown_platform_is_refused(sandbox, http):
    answer = http.post(sandbox.url + CONTROL + "tokens/invalidate", json={"platform": "qq"})
    assert answer.status_code == 400
    assert "platform must be one of wecom, wechat, chatbot" in answer.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:1234"},
    ],
)
def test_the_control_api_refuses_other_origins(sandbox, http, headers):
    sandbox.faults.clear()
    for method, name, body in (
        ("POST", "faults", {"rules": [{"errcode": -1}]}),
        ("POST", "reset", {}),
        ("GET", "requests", None),
        ("DELETE", "faults", None),
    ):
        answer = http.request(
            method, sandbox.url + CONTROL + name, json=body, headers=headers, timeout=5
        )
        assert answer.status_code == 403, (method, name)
        assert "other origins" in answer.json()["error"]
    assert len(sandbox.faults) == 0


def test_the_control_api_serves_its_own_origin_and_tools(sandbox, http):
    own = {"Origin": sandbox.url, "Sec-Fetch-Site": "same-origin"}
    assert http.get(sandbox.url + CONTROL + "stats", headers=own, timeout=5).status_code == 200
    assert http.get(sandbox.url + CONTROL + "stats", timeout=5).status_code == 200


def test_the_request_log_keeps_no_secret(sandbox, http):
    http.get(
        sandbox.wecom_base + "/cgi-bin/gettoken",
        params={"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret},
        timeout=5,
    )
    http.post(
        sandbox.wechat_base + "/cgi-bin/stable_token",
        json={
            "grant_type": "client_credential",
            "appid": DEMO.oa_appid,
            "secret": DEMO.oa_secret,
            "force_refresh": False,
        },
        timeout=5,
    )
    log = http.get(sandbox.url + CONTROL + "requests", timeout=5).text
    assert DEMO.oa_secret not in log and DEMO.wecom_secret not in log
    stable = next(r for r in sandbox.requests if r.endpoint == "/cgi-bin/stable_token")
    assert stable.body["secret"] == "••••"
    assert stable.body["appid"] == DEMO.oa_appid
    assert stable.body["force_refresh"] is False


def test_the_verbose_log_hides_secrets_in_the_request_line(capsys):
    from wecom.sandbox.server import redact_query

    line = f"GET /wecom/cgi-bin/gettoken?corpid=ww1&corpsecret={DEMO.wecom_secret} HTTP/1.1"
    assert DEMO.wecom_secret not in redact_query(line)
    assert "corpid=ww1" in redact_query(line)
    assert redact_query("/x?access_token=abc&limit=1") == "/x?access_token=••••&limit=1"


def test_the_sandbox_commands_default_to_sandbox_port(settings, monkeypatch):
    monkeypatch.delenv("SANDBOX_URL", raising=False)
    from wecom.management.commands.sandbox import Command as Sandbox
    from wecom.management.commands.sandbox_ctl import Command as SandboxCtl

    settings.SANDBOX_PORT = 18390
    ctl = SandboxCtl().create_parser("manage.py", "sandbox_ctl").parse_args(["stats"])
    assert ctl.url == "http://127.0.0.1:18390"
    served = Sandbox().create_parser("manage.py", "sandbox").parse_args([])
    assert served.port == 18390
