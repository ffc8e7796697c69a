"""What the three emulated platforms share: their names, the refusal they raise, and one lock,
clock, random source and change counter for all of their data.

The rules come from the seeds and PLATFORM.md (see /work/shared); nothing here is shared with the
console's own client code, so the sandbox can catch the console misreading the docs.
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Callable

__all__ = [
    "CHATBOT",
    "ID_ALPHABET",
    "OK",
    "PLATFORMS",
    "WECHAT",
    "WECOM",
    "PlatformError",
    "Shared",
]

WECOM = "wecom"
WECHAT = "wechat"
CHATBOT = "chatbot"
PLATFORMS = (WECOM, WECHAT, CHATBOT)

ID_ALPHABET = string.ascii_letters + string.digits + "_-"
OK = {"errcode": 0, "errmsg": "ok"}


class PlatformError(ValueError):
    """A refusal the platform would answer with ``{"errcode": errcode, "errmsg": errmsg}``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Shared:
    """One re-entrant lock over the data of every platform (a snapshot sees all of it at one
    moment), the clock that decides token expiry and create_time, the random source of ids and
    tokens (reproducible with a seed), and ``version``, counting changes for the state file."""

    def __init__(self, *, seed: int | None, clock: Callable[[], float] | None) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], float] = clock or time.time
        # Reproducible ids with a seed; these are fake credentials, not secrets.
        self.rng = random.Random(seed)  # noqa: S311 - emulator ids, reproducible with --seed
        self.version = 0

    def changed(self) -> None:
        self.version += 1

    def now(self) -> float:
        return self.clock()
