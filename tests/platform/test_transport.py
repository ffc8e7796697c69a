"""Retries, timeouts, connection failures and the log line of every platform call."""

from __future__ import annotations

import logging
import socket

import pytest
from django.utils import translation

from tests.platform.conftest import RETRY
from wecom.clients import (
    OfficialAccountClient,
    PlatformAPIError,
    PlatformTransportError,
    WeComClient,
)
from wecom.clients.transport import RetryPolicy, Timeouts, http_session
from wecom.clients.wecom import NewTag
from wecom.sandbox import DEMO, FaultRule

TAG_LIST = "/cgi-bin/externalcontact/get_strategy_tag_list"
TAG_ADD = "/cgi-bin/externalcontact/add_strategy_tag"
TAGS_GET = "/cgi-bin/tags/get"


class Line:
    """Equal to a log line that starts with ``start`` and contains ``part``."""

    def __init__(self, start: str, part: str) -> None:
        self.start, self.part = start, part

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(self.start) and self.part in other

    def __repr__(self) -> str:
        return f"Line({self.start!r}…{self.part!r})"


def test_backoff_grows_exponentially_with_half_of_it_random():
    policy = RetryPolicy(max_attempts=6, budget=100, backoff_base=0.5, backoff_cap=8)
    assert [policy.backoff(n, 0.0) for n in range(1, 7)] == [0.25, 0.5, 1, 2, 4, 4]
    assert [policy.backoff(n, 0.999999) for n in range(1, 7)] == pytest.approx(
        [0.5, 1, 2, 4, 8, 8], rel=1e-5
    )


def test_the_retry_schedule_follows_the_policy(wecom, sandbox, clock):
    wecom.check_connection()
    clock.jitter = 0.0
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=TAG_LIST, errcode=-1))
    with pytest.raises(PlatformAPIError) as caught:
        wecom.strategy_tag_list()
    assert caught.value.errcode == -1
    assert sandbox.calls("wecom", TAG_LIST) == 4, "max_attempts"
    assert clock.pauses == [0.25, 0.5, 1.0]


def test_jitter_spreads_the_pauses(wecom, sandbox, clock):
    wecom.check_connection()
    clock.jitter = 0.9
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=TAG_LIST, errcode=45033, times=2))
    wecom.strategy_tag_list()
    assert clock.pauses == pytest.approx([0.25 + 0.9 * 0.25, 0.5 + 0.9 * 0.5])


def test_retries_stop_when_the_time_budget_is_spent(sandbox, clock):
    client = WeComClient(
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        clock=clock,
        retry=RetryPolicy(max_attempts=20, budget=3.0, backoff_base=1.0, backoff_cap=8.0),
    )
    client.check_connection()
    clock.jitter = 0.0
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=TAG_LIST, errcode=-1))
    with pytest.raises(PlatformAPIError):
        client.strategy_tag_list()
    # Pauses 0.5 and 1.0 fit in 3 s; the next (2.0) would not.
    assert clock.pauses == [0.5, 1.0]
    assert sandbox.calls("wecom", TAG_LIST) == 3


def test_server_errors_are_retried_for_calls_safe_to_repeat(wecom, sandbox, clock):
    wecom.check_connection()
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=TAG_LIST, http_status=502, times=2))
    assert wecom.strategy_tag_list(strategy_id=1)
    assert sandbox.calls("wecom", TAG_LIST) == 3


def test_a_server_error_on_adding_tags_is_not_resent(wecom, sandbox):
    wecom.check_connection()
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=TAG_ADD, http_status=503, times=1))
    with pytest.raises(PlatformTransportError) as caught:
        wecom.strategy_tag_add(strategy_id=1, group_name="新组", tags=[NewTag("a")])
    assert sandbox.calls("wecom", TAG_ADD) == 1
    with translation.override("en"):
        assert "HTTP 503" in str(caught.value)


def test_a_dropped_connection_is_retried_when_safe(oa, sandbox, clock):
    oa.check_connection()
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=TAGS_GET, drop=True, times=1))
    assert oa.tags()
    assert sandbox.calls("wechat", TAGS_GET) == 2


def test_a_dropped_connection_on_adding_tags_says_it_may_have_happened(wecom, sandbox):
    wecom.check_connection()
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=TAG_ADD, drop=True, times=1))
    with pytest.raises(PlatformTransportError) as caught:
        wecom.strategy_tag_add(strategy_id=1, group_name="新组", tags=[NewTag("a")])
    assert not caught.value.retryable
    assert sandbox.calls("wecom", TAG_ADD) == 1


def test_a_slow_answer_times_out_and_is_explained(sandbox, clock, caplog):
    client = OfficialAccountClient(
        appid=DEMO.oa_appid,
        secret=DEMO.oa_secret,
        clock=clock,
        timeouts=Timeouts(connect=1.0, read=0.2),
        retry=RetryPolicy(max_attempts=2, budget=30, backoff_base=0.5, backoff_cap=8),
    )
    client.check_connection()
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=TAGS_GET, latency_ms=1500))
    with pytest.raises(PlatformTransportError) as caught:
        client.tags()
    assert caught.value.retryable
    # The sandbox counts a slow call only when it answers; the client's log counts attempts.
    timeouts = [r for r in caplog.records if "outcome=timeout" in r.getMessage()]
    assert len(timeouts) == 2
    with translation.override("zh-hans"):
        assert "0.2 秒内没有应答" in str(caught.value)
        assert "已尝试 2 次" in str(caught.value)


def test_a_platform_that_cannot_be_reached_is_explained_after_the_retries(settings, clock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    client = WeComClient(
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        clock=clock,
        base_url=f"http://127.0.0.1:{free_port}",
    )
    with pytest.raises(PlatformTransportError) as caught:
        client.check_connection()
    assert len(clock.pauses) == client.retry.max_attempts - 1
    with translation.override("en"):
        assert "Could not connect to WeCom" in str(caught.value)


@pytest.mark.parametrize("base_url", ["127.0.0.1:9/wecom", "http://", "http://[::1/wecom"])
def test_a_base_url_that_cannot_be_used_is_explained_not_a_crash(base_url, clock, caplog):
    client = WeComClient(
        corp_id=DEMO.wecom_corp_id, secret=DEMO.wecom_secret, clock=clock, base_url=base_url
    )
    with pytest.raises(PlatformTransportError) as caught:
        client.check_connection()
    with translation.override("en"):
        assert "Could not connect to WeCom" in str(caught.value)
    lines = [r.getMessage() for r in caplog.records if r.name == "wecom.platform"]
    assert lines and all("outcome=request-error" in line for line in lines)


def test_refused_connections_are_retried_even_for_calls_not_safe_to_repeat(wecom, sandbox, clock):
    wecom.check_connection()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    wecom.base_url = f"http://127.0.0.1:{free_port}"
    with pytest.raises(PlatformTransportError) as caught:
        wecom.strategy_tag_add(strategy_id=1, group_name="g", tags=[NewTag("a")])
    assert caught.value.retryable, "nothing was sent, so repeating is safe"
    assert len(clock.pauses) == wecom.retry.max_attempts - 1


def test_every_attempt_logs_one_line_without_secrets(wecom, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    wecom.check_connection()
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=TAG_LIST, errcode=-1, times=1))
    wecom.strategy_tag_list(strategy_id=1)
    lines = [r.getMessage() for r in caplog.records if r.name == "wecom.platform"]
    assert lines == [
        Line("platform=wecom endpoint=/cgi-bin/gettoken errcode=0", "attempt=1"),
        Line(f"platform=wecom endpoint={TAG_LIST} errcode=-1", "attempt=1"),
        Line(f"platform=wecom endpoint={TAG_LIST} errcode=0", "attempt=2"),
    ]
    assert all("latency_ms=" in line for line in lines)
    token = wecom.tokens.get()
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (DEMO.wecom_secret, token, "access_token="):
        assert secret not in everything


def test_the_session_is_one_per_process_and_reused():
    assert http_session() is http_session()


@pytest.mark.parametrize(
    ("platform", "endpoint", "body", "call"),
    [
        (
            "wecom",
            "/cgi-bin/gettoken",
            '{"errcode": 0, "errmsg": "ok"}',
            lambda clients: clients["wecom"].check_connection(),
        ),
        (
            "wecom",
            "/cgi-bin/gettoken",
            '{"errcode": 0, "access_token": "", "expires_in": 7200}',
            lambda clients: clients["wecom"].check_connection(),
        ),
        (
            "wecom",
            "/cgi-bin/externalcontact/customer_strategy/get",
            '{"errcode": 0}',
            lambda clients: clients["wecom"].strategy_get(1),
        ),
        (
            "wecom",
            "/cgi-bin/externalcontact/get_strategy_tag_list",
            '{"errcode": 0, "tag_group": [{"group_name": "no id"}]}',
            lambda clients: clients["wecom"].strategy_tag_list(),
        ),
        (
            "wechat",
            "/cgi-bin/tags/get",
            "<html><body>502 Bad Gateway</body></html>",
            lambda clients: clients["oa"].tags(),
        ),
        (
            "wechat",
            "/cgi-bin/tags/get",
            '{"tags": [{"id": "not a number"}]}',
            lambda clients: clients["oa"].tags(),
        ),
        (
            "wechat",
            "/cgi-bin/user/tag/get",
            '{"count": 1, "data": {"openid": "oAbc"}}',
            lambda clients: clients["oa"].tag_followers(tag_id=100),
        ),
        (
            "chatbot",
            "/openapi/setautoreply",
            "[1, 2, 3]",
            lambda clients: clients["bot"].set_autoreply(
                managerid="m", skillname="s", title="t", content="c"
            ),
        ),
        (
            "chatbot",
            "/openapi/setautoreply",
            '{"code": "zero"}',
            lambda clients: clients["bot"].set_autoreply(
                managerid="m", skillname="s", title="t", content="c"
            ),
        ),
    ],
)
def test_an_answer_the_console_cannot_read_is_explained_not_a_crash(
    wecom, oa, bot, sandbox, platform, endpoint, body, call
):
    clients = {"wecom": wecom, "oa": oa, "bot": bot}
    if endpoint != "/cgi-bin/gettoken":
        wecom.check_connection()
        oa.check_connection()
    sandbox.faults.add(FaultRule(platform=platform, endpoint=endpoint, body=body))
    with pytest.raises(PlatformTransportError) as caught:
        call(clients)
    assert not caught.value.retryable
    with translation.override("zh-hans"):
        assert "无法识别的应答" in str(caught.value)


def test_a_call_that_timed_out_is_sent_again_only_once_it_may_have_finished(sandbox, clock):
    """The platform may still be running a call the client gave up on: the next attempt waits
    as long as the read timeout again, however short the backoff."""
    client = OfficialAccountClient(
        appid=DEMO.oa_appid,
        secret=DEMO.oa_secret,
        clock=clock,
        timeouts=Timeouts(connect=1.0, read=0.3),
        retry=RetryPolicy(max_attempts=2, budget=30, backoff_base=0.01, backoff_cap=0.02),
    )
    client.check_connection()
    sandbox.faults.add(FaultRule(platform="wechat", endpoint=TAGS_GET, latency_ms=600, times=1))
    assert client.tags()
    assert len(clock.pauses) == 1
    assert clock.pauses[0] == pytest.approx(0.3, abs=0.05)


def test_a_server_error_is_retried_after_the_backoff_alone(wecom, sandbox, clock):
    """An answer, even an error, means the call is over: no wait for it to settle."""
    sandbox.faults.add(FaultRule(platform="wecom", endpoint=TAG_LIST, http_status=502, times=1))
    wecom.strategy_tag_list(strategy_id=1)
    assert clock.pauses == [pytest.approx(RETRY.backoff(1, clock.jitter))]


def test_prepared_requests_are_reused_with_each_call_s_own_body(wecom, sandbox):
    """Calls to one endpoint share a prepared request; each still carries its own body."""
    from wecom.clients import transport

    transport._templates.clear()
    wecom.strategy_tag_list(strategy_id=1)
    wecom.strategy_tag_list(strategy_id=2)
    bodies = [r.body for r in sandbox.requests if r.endpoint == TAG_LIST]
    assert [b.get("strategy_id") for b in bodies[-2:]] == [1, 2]
    assert len([k for k in transport._templates if k[1].endswith(TAG_LIST)]) == 1


def test_the_prepared_requests_kept_are_bounded(monkeypatch):
    from wecom.clients import transport

    monkeypatch.setattr(transport, "_TEMPLATES_MAX", 3)
    transport._templates.clear()
    for n in range(5):
        template = transport._request_template(
            "POST", "http://127.0.0.1:9/x", {"access_token": f"t{n}"}, {}
        )
        assert template.prepared.url.endswith(f"access_token=t{n}")
    assert len(transport._templates) <= 3


def test_calls_to_one_platform_share_a_pool_and_a_closed_pool_is_replaced(wecom, sandbox):
    from wecom.clients import transport

    transport._routes.clear()
    wecom.strategy_tag_list(strategy_id=1)
    wecom.strategy_tag_list(strategy_id=2)
    (route,) = transport._routes.values()
    # A pool evicted by the session's pool manager (more hosts than it keeps), and closed as
    # urllib3 1.26 closes them (2.x leaves an evicted pool open and usable).
    http_session().get_adapter(wecom.base_url + "/").poolmanager.pools.clear()
    route.pool.close()

    wecom.strategy_tag_list(strategy_id=3)

    (replaced,) = transport._routes.values()
    assert replaced.pool is not route.pool
    assert [r.body.get("strategy_id") for r in sandbox.requests if r.endpoint == TAG_LIST] == [
        1,
        2,
        3,
    ]
