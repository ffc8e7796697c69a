"""Every errcode the console knows, answered by the sandbox: explained in both languages and
handled as its kind says (retried, token renewed once, or given up at once).

The sandbox produces most of these from its own state elsewhere in tests/platform; here each one
is injected as a fault so that none is left out.
"""

from __future__ import annotations

import pytest
from django.utils import translation

from wecom.clients import PlatformAPIError
from wecom.clients.errors import CHATBOT, ERRCODES, WECHAT, WECOM
from wecom.sandbox import DEMO, FaultRule

# One harmless call per platform, and the endpoint the fault is put on.
CALLS = {
    WECOM: (
        "/cgi-bin/externalcontact/get_strategy_tag_list",
        lambda clients: clients["wecom"].strategy_tag_list(strategy_id=1),
    ),
    WECHAT: ("/cgi-bin/tags/get", lambda clients: clients["oa"].tags()),
    CHATBOT: (
        "/openapi/setautoreply",
        lambda clients: clients["bot"].set_autoreply(
            managerid=DEMO.bot_manager_id, skillname="s", title="t", content="c"
        ),
    ),
}


@pytest.fixture
def clients(wecom, oa, bot):
    wecom.check_connection()
    oa.check_connection()
    return {"wecom": wecom, "oa": oa, "bot": bot}


@pytest.mark.parametrize(("platform", "errcode"), sorted(ERRCODES))
def test_each_errcode_is_explained_and_handled(clients, sandbox, clock, platform, errcode):
    info = ERRCODES[(platform, errcode)]
    endpoint, call = CALLS[platform]
    sandbox.reset_stats()
    sandbox.faults.add(FaultRule(platform=platform, endpoint=endpoint, errcode=errcode))

    with pytest.raises(PlatformAPIError) as caught:
        call(clients)

    error = caught.value
    assert error.errcode == errcode
    with translation.override("en"):
        english = str(error)
    with translation.override("zh-hans"):
        chinese = str(error)
    assert english != chinese, "translated"
    assert f"Error code {errcode}" in english and f"错误码 {errcode}" in chinese
    assert "%(" not in english and "%(" not in chinese

    attempts = sandbox.calls(platform, endpoint)
    if info.retryable:
        assert attempts == clients["wecom"].retry.max_attempts
        assert len(clock.pauses) == attempts - 1
    elif info.token:
        assert attempts == 2, "the token is renewed and the call retried once"
        assert clock.pauses == []
    else:
        assert attempts == 1
        assert clock.pauses == []
    assert error.quota == info.quota


def test_an_unknown_errcode_gets_a_generic_sentence_with_the_platforms_words(clients, sandbox):
    sandbox.faults.add(FaultRule(platform=WECHAT, endpoint="/cgi-bin/tags/get", errcode=61234))
    with pytest.raises(PlatformAPIError) as caught:
        clients["oa"].tags()
    with translation.override("zh-hans"):
        text = str(caught.value)
    assert text.startswith("公众号平台拒绝了该请求（平台返回：")
    assert "错误码 61234" in text
