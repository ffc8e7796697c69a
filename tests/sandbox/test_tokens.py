"""Access tokens of WeCom and the Official Account: issue, reuse, expiry, invalidation."""

from __future__ import annotations

import pytest

from wecom.sandbox import DEMO

TAG_LIST = "/cgi-bin/externalcontact/get_strategy_tag_list"


def test_wecom_gettoken_answers_token_and_lifetime(api):
    answer = api.wecom_gettoken()
    assert answer["errcode"] == 0
    assert answer["errmsg"] == "ok"
    assert answer["expires_in"] == 7200
    assert len(answer["access_token"]) > 100


def test_wecom_token_is_reused_while_valid(api, clock):
    first = api.wecom_gettoken()
    clock.advance(100)
    second = api.wecom_gettoken()
    assert second["access_token"] == first["access_token"]
    assert second["expires_in"] == 7100  # what is left of its life
    assert api.server.calls("wecom", "/cgi-bin/gettoken") == 2


def test_wecom_token_is_per_secret(api):
    api.server.state.wecom.add_app(DEMO.wecom_corp_id, "S" * 43, agent_id=1000003)
    first = api.wecom_gettoken()["access_token"]
    other = api.wecom_gettoken(secret="S" * 43)["access_token"]
    assert first != other
    assert api.wecom(TAG_LIST, {}, token=other)["errcode"] == 0


@pytest.mark.parametrize(
    ("corpid", "secret", "errcode"),
    [
        ("ww0000000000000000", DEMO.wecom_secret, 40013),
        (DEMO.wecom_corp_id, "wrong-secret", 40001),
        ("", DEMO.wecom_secret, 41002),
        (DEMO.wecom_corp_id, "", 41004),
    ],
)
def test_wecom_gettoken_refusals(api, corpid, secret, errcode):
    answer = api.wecom_gettoken(corpid, secret)
    assert answer["errcode"] == errcode
    assert "access_token" not in answer


def test_wecom_missing_unknown_expired_tokens(api, clock, http, sandbox):
    url = sandbox.wecom_base + TAG_LIST
    assert http.post(url, json={}).json()["errcode"] == 41001
    assert http.post(url, params={"access_token": "nope"}, json={}).json()["errcode"] == 40014
    token = api.wecom_token()
    assert api.wecom(TAG_LIST, {}, token=token)["errcode"] == 0
    clock.advance(7199)
    assert api.wecom(TAG_LIST, {}, token=token)["errcode"] == 0
    clock.advance(1)
    assert api.wecom(TAG_LIST, {}, token=token)["errcode"] == 42001
    fresh = api.wecom_gettoken()
    assert fresh["access_token"] != token
    assert fresh["expires_in"] == 7200
    assert api.wecom(TAG_LIST, {}, token=fresh["access_token"])["errcode"] == 0


def test_small_token_ttl_expires_at_once(http, clock):
    from wecom.sandbox import SandboxServer, SandboxState, seed_demo

    state = SandboxState(clock=clock)
    seed_demo(state)
    with SandboxServer(state=state, token_ttl=0) as server:
        answer = http.get(
            server.wecom_base + "/cgi-bin/gettoken",
            params={"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret},
        ).json()
        assert answer["expires_in"] == 0
        used = http.post(
            server.wecom_base + TAG_LIST, params={"access_token": answer["access_token"]}, json={}
        ).json()
        assert used["errcode"] == 42001


def test_invalidate_tokens_of_one_platform(api, sandbox):
    wecom_token = api.wecom_token()
    oa_token = api.oa_token()
    assert sandbox.invalidate_tokens("wecom") == 1
    assert api.wecom(TAG_LIST, {}, token=wecom_token)["errcode"] == 42001
    assert "tags" in api.oa("/cgi-bin/tags/get", token=oa_token)
    new = api.wecom_gettoken()["access_token"]
    assert new != wecom_token
    assert api.wecom(TAG_LIST, {}, token=new)["errcode"] == 0


def test_invalidate_all_tokens(api, sandbox):
    wecom_token = api.wecom_token()
    oa_token = api.oa_token()
    sandbox.invalidate_tokens()
    assert api.wecom(TAG_LIST, {}, token=wecom_token)["errcode"] == 42001
    assert api.oa("/cgi-bin/tags/get", token=oa_token)["errcode"] == 42001


def test_invalidate_unknown_platform_is_refused(sandbox):
    with pytest.raises(ValueError, match="unknown platform"):
        sandbox.invalidate_tokens("qq")


def test_oa_stable_token_reuse_and_force_refresh(api, clock):
    first = api.oa_stable_token()
    assert set(first) == {"access_token", "expires_in"}
    assert first["expires_in"] == 7200
    clock.advance(60)
    again = api.oa_stable_token()
    assert again == {"access_token": first["access_token"], "expires_in": 7140}
    forced = api.oa_stable_token(force_refresh=True)
    assert forced["access_token"] != first["access_token"]
    assert forced["expires_in"] == 7200
    assert api.oa("/cgi-bin/tags/get", token=first["access_token"])["errcode"] == 42001
    assert "tags" in api.oa("/cgi-bin/tags/get", token=forced["access_token"])


def test_oa_token_expires(api, clock):
    token = api.oa_token()
    clock.advance(7200)
    assert api.oa("/cgi-bin/tags/get", token=token)["errcode"] == 42001
    assert api.oa_stable_token()["access_token"] != token


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"appid": "wx0000000000000000"}, 40013),
        ({"secret": "0" * 32}, 40125),
        ({"grant_type": "authorization_code"}, 40002),
        ({"appid": ""}, 41002),
    ],
)
def test_oa_stable_token_refusals(api, body, errcode):
    assert api.oa_stable_token(**body)["errcode"] == errcode


def test_oa_unknown_and_missing_token(http, sandbox):
    url = sandbox.wechat_base + "/cgi-bin/tags/get"
    assert http.get(url, params={"access_token": "bogus"}).json()["errcode"] == 40001
    assert http.get(url).json()["errcode"] == 41001


def test_oa_stable_token_body_must_be_json(http, sandbox):
    answer = http.post(sandbox.wechat_base + "/cgi-bin/stable_token", data=b"{not json")
    assert answer.json()["errcode"] == 47001


def test_oa_plain_token_replaces_the_previous_one(http, sandbox, api):
    params = {"grant_type": "client_credential", "appid": DEMO.oa_appid, "secret": DEMO.oa_secret}
    url = sandbox.wechat_base + "/cgi-bin/token"
    first = http.get(url, params=params).json()["access_token"]
    second = http.get(url, params=params).json()["access_token"]
    assert first != second
    assert api.oa("/cgi-bin/tags/get", token=first)["errcode"] == 42001
    assert "tags" in api.oa("/cgi-bin/tags/get", token=second)
    # independent of the stable token
    assert "tags" in api.oa("/cgi-bin/tags/get", token=api.oa_token())


def test_wecom_token_is_not_an_oa_token(api):
    assert api.oa("/cgi-bin/tags/get", token=api.wecom_token())["errcode"] == 40001
    assert api.wecom(TAG_LIST, {}, token=api.oa_token())["errcode"] == 40014
