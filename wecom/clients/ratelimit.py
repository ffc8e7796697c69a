"""A calls-per-second limit per credential, shared by every process through the cache.

Fixed windows: a counter per credential and window, incremented once per call; a call that
finds its window full waits for the next one. Within any window at most ``allowance`` calls
start, whichever process makes them. On Redis the increment is atomic; the database cache of a
single-machine install increments with a read and a write, so there the limit holds per process
and is approximate across processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any


class RateLimiter:
    def __init__(
        self,
        *,
        cache: Any,
        key: str,
        rate: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._cache = cache
        self._key = key
        # Below one call per second a window is long enough to hold one call.
        self.window = max(1.0, 1.0 / rate)
        self.allowance = max(1, math.floor(rate * self.window))
        self._clock = clock
        self._sleep = sleep
        self._expiry = math.ceil(self.window) + 1

    def acquire(self) -> float:
        """Wait for a slot; return how many seconds were spent waiting."""
        waited = 0.0
        while True:
            now = self._clock()
            window_index = math.floor(now / self.window)
            key = f"{self._key}:{window_index}"
            try:
                count = self._cache.incr(key)
            except ValueError:
                # The first call of a window creates its counter; if another caller just did,
                # count again.
                if not self._cache.add(key, 1, timeout=self._expiry):
                    continue
                count = 1
            if count <= self.allowance:
                return waited
            pause = (window_index + 1) * self.window - now
            self._sleep(pause)
            waited += pause
