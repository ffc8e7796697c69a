"""Access tokens shared by every process through the shared Django cache.

PLATFORM.md section 1: tokens are per secret, and processes that each fetch their own
invalidate each other. So a token lives in the shared cache under a key derived from the
credential; one process at a time refreshes it (a cache lock), the others wait for its result
and reuse it. A process also keeps the token in memory, so a call costs no cache round trip
while the token is fresh.

Lifecycle of a token fetched at ``t`` with ``expires_in = e``:

* until ``t + e - margin`` it is fresh and simply used;
* after that, one caller refreshes it while the others go on using it (it is still valid);
* after ``t + e`` nobody uses it: callers wait for the one refresher.

On 40001/40014/42001 a caller drops the token only if it is still the one that failed (another
caller may have replaced it already), under the same lock, then fetches and retries once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("wecom.platform")


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float
    refresh_at: float

    def __repr__(self) -> str:
        return f"Token(expires_at={self.expires_at:.0f})"


@dataclass(frozen=True)
class FetchedToken:
    value: str
    expires_in: int


def read_token(answer: dict[str, object]) -> FetchedToken:
    """A token answer (WeCom gettoken, OA stable_token); ValueError when it is not one."""
    value, expires_in = answer["access_token"], answer["expires_in"]
    if not isinstance(value, str) or not value:
        raise ValueError("access_token is not a non-empty string")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | str):
        raise ValueError("expires_in is not a number")
    return FetchedToken(value=value, expires_in=int(expires_in))


class TokenUnavailable(Exception):
    """The refresher holding the lock did not produce a token in time."""


# Per-process copies, shared by the threads of this process.
_local_tokens: dict[str, Token] = {}
# Values the platform refused, per key: never used again, even if another worker has not yet
# removed them from the shared cache. A fetch that returns one of them un-refuses it.
_refused: dict[str, list[str]] = {}
_REFUSED_KEPT = 8
_local_guard = threading.Lock()


def forget_local_tokens() -> None:
    """Drop this process's copies (tests; after a fork the shared cache still has them)."""
    with _local_guard:
        _local_tokens.clear()
        _refused.clear()


class TokenStore:
    def __init__(
        self,
        *,
        cache: Any,
        key: str,
        fetch: Callable[[], FetchedToken],
        refresh_margin: float,
        lock_timeout: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cache = cache
        self._key = key
        self._lock_key = f"{key}:lock"
        self._fetch = fetch
        self._margin = refresh_margin
        self._lock_timeout = lock_timeout
        self._clock = clock
        self._sleep = sleep

    # -- reading -------------------------------------------------------------------------------

    def get(self) -> str:
        now = self._clock()
        token = _local_tokens.get(self._key)
        if token is not None and now < token.refresh_at:
            return token.value
        token = self._usable(self._cache.get(self._key))
        if token is not None:
            self._remember(token)
            if now < token.refresh_at:
                return token.value
            if now < token.expires_at:
                # Still valid: refresh it if nobody else is, and go on with it meanwhile.
                refreshed = self._refresh_if_free()
                return (refreshed or token).value
        return self._refresh_or_wait().value

    def invalidate(self, failed_value: str) -> None:
        """The platform refused ``failed_value``: forget it, unless it was replaced already."""
        with _local_guard:
            local = _local_tokens.get(self._key)
            if local is not None and local.value == failed_value:
                del _local_tokens[self._key]
            refused = _refused.setdefault(self._key, [])
            if failed_value not in refused:
                refused.append(failed_value)
                del refused[:-_REFUSED_KEPT]
        owner = self._acquire_lock()
        if owner is None:
            # Someone is refreshing right now; what they store replaces the failed token.
            return
        try:
            shared = self._cache.get(self._key)
            if shared is not None and shared.value == failed_value:
                self._cache.delete(self._key)
        finally:
            self._release_lock(owner)

    # -- refreshing ----------------------------------------------------------------------------

    def _usable(self, token: Token | None) -> Token | None:
        """``token``, unless this process has seen the platform refuse it."""
        if token is None or token.value in _refused.get(self._key, ()):
            return None
        return token

    def _refresh_if_free(self) -> Token | None:
        owner = self._acquire_lock()
        if owner is None:
            return None
        try:
            current = self._usable(self._cache.get(self._key))
            # Refreshed meanwhile by someone else (possibly to the same value: the platforms
            # hand out the same token while it is valid).
            if current is not None and self._clock() < current.refresh_at:
                self._remember(current)
                return current
            return self._fetch_and_store()
        finally:
            self._release_lock(owner)

    def _refresh_or_wait(self) -> Token:
        deadline = self._clock() + self._lock_timeout
        pause = 0.01
        while True:
            owner = self._acquire_lock()
            if owner is not None:
                try:
                    # Another caller may have finished a refresh between our read and the lock.
                    current = self._usable(self._cache.get(self._key))
                    if current is not None and self._clock() < current.expires_at:
                        self._remember(current)
                        return current
                    return self._fetch_and_store()
                finally:
                    self._release_lock(owner)
            current = self._usable(self._cache.get(self._key))
            if current is not None and self._clock() < current.expires_at:
                self._remember(current)
                return current
            if self._clock() >= deadline:
                raise TokenUnavailable(self._key)
            self._sleep(pause)
            pause = min(pause * 2, 0.25)

    def _fetch_and_store(self) -> Token:
        fetched_at = self._clock()
        fetched = self._fetch()
        lifetime = max(1, int(fetched.expires_in))
        # A short-lived token is not refreshed the moment it arrives.
        margin = min(self._margin, lifetime / 2)
        token = Token(
            value=fetched.value,
            expires_at=fetched_at + lifetime,
            refresh_at=fetched_at + lifetime - margin,
        )
        self._cache.set(self._key, token, timeout=lifetime)
        with _local_guard:
            if fetched.value in _refused.get(self._key, ()):
                # The platform handed the same value out again: it is good after all.
                _refused[self._key].remove(fetched.value)
        self._remember(token)
        return token

    def _remember(self, token: Token) -> None:
        with _local_guard:
            _local_tokens[self._key] = token

    # -- the lock ------------------------------------------------------------------------------

    def _acquire_lock(self) -> str | None:
        owner = uuid.uuid4().hex
        if self._cache.add(self._lock_key, owner, timeout=self._lock_timeout):
            return owner
        return None

    def _release_lock(self, owner: str) -> None:
        if self._cache.get(self._lock_key) == owner:
            self._cache.delete(self._lock_key)
