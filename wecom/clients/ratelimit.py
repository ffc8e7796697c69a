"""A calls-per-second limit per credential, shared by every process through the cache.

Fixed windows: a counter per credential and window; a call that finds its window full waits for
the next one. Within any window at most ``allowance`` calls start, whichever process makes them.
On Redis the count is atomic (one script, one round trip); the database cache of a
single-machine install counts with a read and a write, so there the limit holds per process and
is approximate across processes.

A process takes slots from the shared counter a lease at a time: 1/LEASE_SHARE of the
allowance, so one by one below LEASE_SHARE * 2 calls per window (the default 20/s included) and
a cache round trip per hundred calls or more at high limits. Slots a process leased and did not
use lapse with their window: the cap holds; at worst other processes wait a window early.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.redis import RedisCache

LEASE_SHARE = 100

# Add ARGV[2] to a window's counter and give a new counter its expiry, atomically.
_REDIS_COUNT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# Slots this process leased and has not used, per limiter key: (window index, slots left).
# Per process, not per limiter: clients (and their limiters) are built per use.
_leases: dict[str, tuple[int, int]] = {}
_leases_guard = threading.Lock()


def _redis_counter(cache: Any) -> Any:
    """A script counting in one round trip, or None to count through the cache API.

    Django's RedisCache.incr is EXISTS then INCR, each on a client built for the occasion. The
    script needs Django's client (a private attribute of Django 5.2's RedisCache); should it
    move, counting falls back to the cache API, slower but as correct.
    """
    if not isinstance(cache, RedisCache):
        return None
    try:
        client = cache._cache.get_client(write=True)
    except AttributeError:
        return None
    return client.register_script(_REDIS_COUNT)


def forget_local_leases() -> None:
    """Drop this process's leased slots (tests)."""
    with _leases_guard:
        _leases.clear()


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
        self.lease = max(1, self.allowance // LEASE_SHARE)
        self._clock = clock
        self._sleep = sleep
        self._expiry = math.ceil(self.window) + 1
        self._redis_count = _redis_counter(cache)

    def acquire(self) -> float:
        """Wait for a slot; return how many seconds were spent waiting."""
        waited = 0.0
        while True:
            now = self._clock()
            window_index = math.floor(now / self.window)
            if self.lease > 1 and self._take_leased(window_index):
                return waited
            count = self._count(f"{self._key}:{window_index}", self.lease)
            if count is None:
                continue
            granted = min(self.lease, self.allowance - (count - self.lease))
            if granted > 0:
                if granted > 1:
                    with _leases_guard:
                        _leases[self._key] = (window_index, granted - 1)
                return waited
            pause = (window_index + 1) * self.window - now
            self._sleep(pause)
            waited += pause

    def _take_leased(self, window_index: int) -> bool:
        with _leases_guard:
            leased = _leases.get(self._key)
            if leased is None or leased[0] != window_index or leased[1] < 1:
                return False
            _leases[self._key] = (window_index, leased[1] - 1)
            return True

    def _count(self, key: str, n: int) -> int | None:
        """Add ``n`` to a window's counter: its new value, or None when it is to be redone."""
        if self._redis_count is not None:
            return int(self._redis_count(keys=[self._cache.make_key(key)], args=[self._expiry, n]))
        if isinstance(self._cache, DatabaseCache):
            # BaseCache.incr would re-set the row with the cache's default timeout (300 s): a
            # row per second that outlives its window by minutes, and culled neighbours.
            count = self._cache.get(key)
            if count is not None:
                self._cache.set(key, count + n, timeout=self._expiry)
                return count + n
        else:
            try:
                return self._cache.incr(key, n)
            except ValueError:
                pass
        # The first call of a window creates its counter; if another caller just did, count
        # again.
        if not self._cache.add(key, n, timeout=self._expiry):
            return None
        return n
