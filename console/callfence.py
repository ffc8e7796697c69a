"""The fence before each platform call: a check the platform transport runs right before it
sends an HTTP request, when the caller set one.

A job's shard sets it for the time it runs (``console.jobs.runner.ShardRun.fenced``): the check
reads the lease against the clock and raises when the shard may be another worker's by now, so a
worker frozen past its lease (SIGSTOP, a paused VM, a long pause between retries) never sends.
It lives here, apart from the job machinery, because the transport is loaded before the models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_FENCE: ContextVar[Callable[[], None] | None] = ContextVar("platform_call_fence", default=None)


def check_before_call() -> None:
    """Raise if the code that set a fence may no longer call the platform."""
    fence = _FENCE.get()
    if fence is not None:
        fence()


@contextmanager
def fence_calls(check: Callable[[], None]) -> Iterator[None]:
    token = _FENCE.set(check)
    try:
        yield
    finally:
        _FENCE.reset(token)
