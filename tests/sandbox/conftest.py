"""Fixtures for the sandbox tests: a demo-seeded sandbox per test, spoken to over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chatbot.crypto import WXBizMsgCrypt
from wecom.sandbox import DEMO, SandboxServer, SandboxState, seed_demo

WECOM_TAGS = "/cgi-bin/externalcontact"


class FakeClock:
    """A clock the test moves by hand: token expiry without waiting."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cdata(value: str) -> str:
    # A value holding "]]>" travels split across two CDATA sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


XmlFields = list[tuple[str, "str | XmlFields"]]


def xml_elements(fields: XmlFields) -> str:
    # A value that is a list of pairs becomes elements inside: ("list", [("openid", "o…")]).
    return "".join(
        f"<{k}>{cdata(v) if isinstance(v, str) else xml_elements(v)}</{k}>" for k, v in fields
    )


def xml_doc(fields: XmlFields) -> str:
    return f"<xml>{xml_elements(fields)}</xml>"


class Platforms:
    """Small helpers over one requests.Session; every call is real HTTP to the sandbox."""

    def __init__(self, server: SandboxServer, session: requests.Session) -> None:
        self.server = server
        self.http = session
        self._wecom_token: str | None = None
        self._oa_token: str | None = None

    # WeCom
    def wecom_gettoken(self, corpid: str = DEMO.wecom_corp_id, secret: str = DEMO.wecom_secret):
        return self.http.get(
            self.server.wecom_base + "/cgi-bin/gettoken",
            params={"corpid": corpid, "corpsecret": secret},
            timeout=5,
        ).json()

    def wecom_token(self) -> str:
        if self._wecom_token is None:
            answer = self.wecom_gettoken()
            assert answer["errcode"] == 0, answer
            self._wecom_token = answer["access_token"]
        return self._wecom_token

    def wecom(self, endpoint: str, body: Any = None, *, token: str | None = None) -> dict:
        answer = self.http.post(
            self.server.wecom_base + endpoint,
            params={"access_token": token or self.wecom_token()},
            json=body if body is not None else {},
            timeout=5,
        )
        assert answer.status_code == 200
        return answer.json()

    def tags(self, endpoint: str, body: Any = None, **kwargs: Any) -> dict:
        return self.wecom(f"{WECOM_TAGS}/{endpoint}", body, **kwargs)

    # Official Account
    def oa_stable_token(self, **body: Any) -> dict:
        payload = {
            "grant_type": "client_credential",
            "appid": DEMO.oa_appid,
            "secret": DEMO.oa_secret,
            "force_refresh": False,
            **body,
        }
        return self.http.post(
            self.server.wechat_base + "/cgi-bin/stable_token", json=payload, timeout=5
        ).json()

    def oa_token(self) -> str:
        if self._oa_token is None:
            self._oa_token = self.oa_stable_token()["access_token"]
        return self._oa_token

    def oa(self, endpoint: str, body: Any = None, *, token: str | None = None) -> dict:
        url = self.server.wechat_base + endpoint
        params = {"access_token": token or self.oa_token()}
        if body is None:
            answer = self.http.get(url, params=params, timeout=5)
        else:
            answer = self.http.post(url, params=params, json=body, timeout=5)
        assert answer.status_code == 200
        return answer.json()

    # chatbot
    def chatbot(
        self,
        endpoint: str,
        fields: XmlFields | None = None,
        *,
        text: str | None = None,
        token: str = DEMO.bot_token,
        appid: str = DEMO.bot_appid,
        key: str = DEMO.bot_encoding_aes_key,
        body: Any = None,
    ) -> dict:
        if body is None:
            document = text if text is not None else xml_doc(fields or [])
            body = {"encrypt": WXBizMsgCrypt(token, key, appid).encrypt(document)}
        answer = self.http.post(
            f"{self.server.chatbot_base}{endpoint}/{token}", json=body, timeout=5
        )
        assert answer.status_code == 200
        return answer.json()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[SandboxServer]:
    state = SandboxState(seed=1234, clock=clock)
    seed_demo(state)
    with SandboxServer(state=state, seed=1234) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def api(sandbox: SandboxServer, http: requests.Session) -> Platforms:
    return Platforms(sandbox, http)
