"""Fixtures for the platform clients: a demo sandbox over real HTTP, clients pointed at it."""

from __future__ import annotations

import time

import pytest

from tests.conftest import shared_cache_across_threads
from wecom.clients import ChatbotClient, OfficialAccountClient, WeComClient
from wecom.clients.transport import Clock, RetryPolicy, Timeouts
from wecom.sandbox import DEMO


class RecordingClock(Clock):
    """Real time plus the pauses the client asked for, which pass without waiting.

    Retry schedules and rate-limit waits become lists of numbers instead of seconds of test time.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self.pauses: list[float] = []
        self.jitter = 0.5
        super().__init__(
            monotonic=lambda: time.monotonic() + self.offset,
            wall=lambda: time.time() + self.offset,
            sleep=self._sleep,
            random=lambda: self.jitter,
        )

    def _sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.offset += seconds


@pytest.fixture(autouse=True)
def shared_cache(settings):
    """The shared cache the clients use, reachable from several threads."""
    return shared_cache_across_threads(settings, "platform-tests")


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


RETRY = RetryPolicy(max_attempts=4, budget=30.0, backoff_base=0.5, backoff_cap=8.0)
TIMEOUTS = Timeouts(connect=2.0, read=2.0)


@pytest.fixture
def wecom(sandbox, clock) -> WeComClient:
    return WeComClient(
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        rate_limit=1000,
        retry=RETRY,
        timeouts=TIMEOUTS,
        clock=clock,
    )


@pytest.fixture
def oa(sandbox, clock) -> OfficialAccountClient:
    return OfficialAccountClient(
        appid=DEMO.oa_appid,
        secret=DEMO.oa_secret,
        rate_limit=1000,
        retry=RETRY,
        timeouts=TIMEOUTS,
        clock=clock,
    )


@pytest.fixture
def bot(sandbox, clock) -> ChatbotClient:
    return ChatbotClient(
        appid=DEMO.bot_appid,
        token=DEMO.bot_token,
        encoding_aes_key=DEMO.bot_encoding_aes_key,
        rate_limit=1000,
        retry=RETRY,
        timeouts=TIMEOUTS,
        clock=clock,
    )
