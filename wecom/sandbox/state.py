"""Everything the three emulated platforms know: the composition of their parts, and snapshots.

Everything a platform would decide lives in its module, as the console's clients have one per
platform: who may call, what a body must hold, which errcode a mistake earns, what is stored
(wecom.py, official_account.py, chatbot.py; the access tokens in tokens.py). The HTTP layer
(server.py, routes.py) only moves bytes and turns ``PlatformError`` into the JSON answer the
platform would send.

One re-entrant lock guards all data (shared.py); every public method takes it. Methods named
after an endpoint take the decoded request and return the answer dict, or raise
``PlatformError``. The set-up helpers (``add_*``, ``tag_users`` ...) go through the same rules,
so demo data and test fixtures can never hold what the platform would refuse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .chatbot import ChatbotPlatform
from .customers import CustomersPlatform
from .official_account import OfficialAccountPlatform
from .shared import Shared
from .tokens import TokenRegistry
from .wecom import WeComPlatform

__all__ = ["SandboxState"]


class SandboxState:
    """The three platforms (``wecom`` with its ``customers``, ``official_account``,
    ``chatbot``) and their ``tokens``, behind one lock.

    ``clock`` (default ``time.time``) decides token expiry and create_time; tests may replace it
    (``state.clock = lambda: ...``) to expire tokens without waiting.
    """

    def __init__(
        self, *, seed: int | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self._shared = Shared(seed=seed, clock=clock)
        self.tokens = TokenRegistry(self._shared)
        self.wecom = WeComPlatform(self._shared, self.tokens)
        # WeCom's members and customers: tagging customers reads the tags in ``wecom``.
        self.customers = CustomersPlatform(self._shared, self.wecom)
        self.official_account = OfficialAccountPlatform(self._shared, self.tokens)
        self.chatbot = ChatbotPlatform(self._shared)

    @property
    def lock(self) -> threading.RLock:
        return self._shared.lock

    @property
    def clock(self) -> Callable[[], float]:
        return self._shared.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._shared.clock = clock

    @property
    def version(self) -> int:
        """Counts the changes: the state file is written again when it moved."""
        return self._shared.version

    def invalidate_tokens(self, platform: str | None = None) -> int:
        """Every issued token (of ``platform``, or all) answers 42001 from now on."""
        return self.tokens.invalidate(platform)

    def reset(self) -> None:
        """Forget everything (tokens included)."""
        with self.lock:
            self._clear()
            self._shared.changed()

    def _clear(self) -> None:
        parts = (self.wecom, self.customers, self.official_account, self.chatbot, self.tokens)
        for part in parts:
            part.clear()

    # ---- snapshots

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-able data (sets as sorted lists)."""
        with self.lock:
            return {
                "format": 1,
                "wecom": self.wecom.snapshot(),
                "wecom_customers": self.customers.snapshot(),
                "wechat": self.official_account.snapshot(),
                "chatbot": self.chatbot.snapshot(),
                "tokens": self.tokens.snapshot(),
            }

    @classmethod
    def from_snapshot(
        cls,
        data: dict[str, Any],
        *,
        seed: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> SandboxState:
        state = cls(seed=seed, clock=clock)
        state.restore(data)
        return state

    def restore(self, data: dict[str, Any]) -> None:
        """Replace everything with a snapshot's content (in place: servers keep this object)."""
        if data.get("format") != 1:
            raise ValueError("not a sandbox snapshot (format 1)")
        with self.lock:
            self._clear()
            self.wecom.restore(data.get("wecom", {}))
            self.customers.restore(data.get("wecom_customers", {}))
            self.official_account.restore(data.get("wechat", {}))
            self.chatbot.restore(data.get("chatbot", {}))
            self.tokens.restore(data.get("tokens", []))
            self._shared.changed()
