"""HTTP plumbing: keep-alive, Content-Length, addresses, start/stop."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
import requests

from wecom.sandbox import DEMO, SandboxServer


def test_addresses(sandbox):
    assert sandbox.url == f"http://127.0.0.1:{sandbox.port}"
    assert sandbox.port > 0
    assert sandbox.wecom_base == sandbox.url + "/wecom"
    assert sandbox.wechat_base == sandbox.url + "/wechat"
    assert sandbox.chatbot_base == sandbox.url + "/chatbot"


def test_keep_alive_with_content_length(sandbox):
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
    path = f"/wecom/cgi-bin/gettoken?corpid={DEMO.wecom_corp_id}&corpsecret={DEMO.wecom_secret}"
    local_ports = set()
    for _ in range(5):
        connection.request("GET", path)
        answer = connection.getresponse()
        body = answer.read()
        assert answer.version == 11
        assert answer.getheader("Content-Length") == str(len(body))
        assert answer.getheader("Connection") is None  # not closing
        assert json.loads(body)["errcode"] == 0
        local_ports.add(connection.sock.getsockname()[1])
    assert len(local_ports) == 1  # one TCP connection served all five
    connection.close()


def test_chunked_request_body(sandbox, api):
    token = api.oa_token()

    def chunks():
        yield b'{"tag": {"name": '
        yield '"分块"}}'.encode()

    answer = requests.post(
        sandbox.wechat_base + "/cgi-bin/tags/create",
        params={"access_token": token},
        data=chunks(),
        timeout=5,
    )
    assert answer.json()["tag"]["name"] == "分块"


def test_unknown_prefix(http, sandbox):
    answer = http.get(sandbox.url + "/qq/cgi-bin/x")
    assert answer.status_code == 404
    assert sandbox.total_calls() == 0


def test_stop_closes_keep_alive_connections(http):
    server = SandboxServer().start()
    url = server.wecom_base + "/cgi-bin/gettoken"
    assert http.get(url).json()["errcode"] == 41002
    server.stop()
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        http.get(url, timeout=2)
    server.stop()  # twice is fine


def test_fixed_port_and_empty_state(http):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with SandboxServer(port=port) as server:
        assert server.port == port
        answer = http.get(
            server.wecom_base + "/cgi-bin/gettoken",
            params={"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret},
        )
        assert answer.json()["errcode"] == 40013  # no demo data unless seeded


def test_start_twice_is_refused(sandbox):
    with pytest.raises(RuntimeError):
        sandbox.start()


def test_concurrent_clients(sandbox, api):
    """Many keep-alive clients at once: every call answered, nothing lost under the lock."""
    from concurrent.futures import ThreadPoolExecutor

    from wecom.sandbox.demo import demo_openid

    token = api.oa_token()
    tag_id = api.oa("/cgi-bin/tags/create", {"tag": {"name": "并发"}})["tag"]["id"]
    url = sandbox.wechat_base + "/cgi-bin/tags/members/batchtagging"

    def worker(index: int) -> list[int]:
        with requests.Session() as session:
            codes = []
            for batch in range(10):
                openids = [
                    demo_openid(DEMO.oa_openid_prefix, 100_000 + index * 1000 + batch * 50 + n)
                    for n in range(50)
                ]
                answer = session.post(
                    url,
                    params={"access_token": token},
                    json={"openid_list": openids, "tagid": tag_id},
                    timeout=10,
                )
                codes.append(answer.json()["errcode"])
            return codes

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    assert all(code == 0 for codes in results for code in codes)
    assert len(sandbox.state.official_account.tag_fans(DEMO.oa_appid, tag_id)) == 8 * 10 * 50
    assert sandbox.calls("wechat", "/cgi-bin/tags/members/batchtagging") == 80
