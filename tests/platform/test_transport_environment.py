"""The client reads proxies from the environment once per base URL, and still obeys them."""

from __future__ import annotations

import pytest

from wecom.clients import PlatformTransportError
from wecom.clients.transport import forget_environment_settings


@pytest.fixture(autouse=True)
def _fresh_environment():
    forget_environment_settings()
    yield
    forget_environment_settings()


def test_a_proxy_in_the_environment_is_used(oa, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(PlatformTransportError):
        oa.tags()


def test_no_proxy_exempts_the_platform_host(oa, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert oa.tags()


def test_the_environment_is_read_once_per_base_url(oa, monkeypatch):
    assert oa.tags()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert oa.tags()  # settled at the first call of this process
