"""Stand-ins for time, so waits in the code under test pass instantly and are recorded."""

from __future__ import annotations


class FakeTime:
    """A wall clock that moves only when the code under test sleeps."""

    def __init__(self, now: float = 1_800_000_000.25) -> None:
        self.now = now
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds
