"""Fault injection: errcodes, HTTP errors, latency and dropped connections on chosen endpoints."""

from __future__ import annotations

import math
import random
import threading
from dataclasses import asdict, dataclass, fields
from fnmatch import fnmatchcase
from typing import Any

from .shared import PLATFORMS

__all__ = ["FaultRule", "FaultSet"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Ten minutes: longer than any client timeout, short enough for time.sleep() and for a test.
LATENCY_MS_MAX = 600_000
_ERRCODE_RANGE = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class FaultRule:
    """What to do to requests matching ``platform`` and ``endpoint`` (fnmatch patterns; the
    endpoint is the path after the platform prefix, without the chatbot TOKEN).

    With probability ``rate`` a matching request is answered with ``errcode`` (JSON, HTTP 200),
    or with HTTP ``http_status``, or with ``body`` as it is (HTTP 200: a proxy's HTML page, an
    answer missing fields), or its connection is dropped (``drop``); ``latency_ms`` delays
    whatever answer it gets (the normal one when nothing else is set). ``times`` caps how many
    requests the rule applies to.

    With ``after`` the request is carried out first and the fault then spoils its answer: the
    call happened but the client cannot know it (a timeout or a dropped connection after the
    platform did the work). Without it the request never reaches the platform's logic.
    """

    platform: str = "*"
    endpoint: str = "*"
    errcode: int | None = None
    http_status: int | None = None
    body: str | None = None
    latency_ms: float = 0
    drop: bool = False
    rate: float = 1.0
    times: int | None = None
    after: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.platform, str) or not isinstance(self.endpoint, str):
            raise ValueError("platform and endpoint must be strings (fnmatch patterns)")
        if not any(fnmatchcase(platform, self.platform) for platform in PLATFORMS):
            raise ValueError(
                f"platform {self.platform!r} matches none of wecom, wechat and chatbot "
                "(or * for all)"
            )
        if self.errcode is not None and (
            not isinstance(self.errcode, int)
            or isinstance(self.errcode, bool)
            or not _ERRCODE_RANGE[0] <= self.errcode <= _ERRCODE_RANGE[1]
        ):
            raise ValueError("errcode must be a whole number, such as -1 or 45009")
        if self.http_status is not None and (
            not isinstance(self.http_status, int) or not 100 <= self.http_status <= 599
        ):
            raise ValueError("http_status must be an HTTP status code (100..599)")
        if (
            not isinstance(self.latency_ms, int | float)
            or isinstance(self.latency_ms, bool)
            or not 0 <= self.latency_ms <= LATENCY_MS_MAX
        ):
            raise ValueError(
                f"latency_ms must be a number of milliseconds from 0 to {LATENCY_MS_MAX}"
            )
        if not isinstance(self.rate, int | float) or not 0 <= self.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if self.times is not None and (not isinstance(self.times, int) or self.times < 0):
            raise ValueError("times must be a non-negative integer")
        if not isinstance(self.after, bool):
            raise ValueError("after must be true or false")
        if self.body is not None and not isinstance(self.body, str):
            raise ValueError("body must be a string")
        outcomes = sum(
            (
                self.errcode is not None,
                self.http_status is not None,
                self.body is not None,
                bool(self.drop),
            )
        )
        if outcomes > 1:
            raise ValueError("choose one of errcode, http_status, body and drop")
        if outcomes == 0 and not self.latency_ms:
            raise ValueError("a fault needs errcode, http_status, body, drop or latency_ms")

    @property
    def kind(self) -> str:
        if self.drop:
            return "drop"
        if self.errcode is not None:
            return "errcode"
        if self.http_status is not None:
            return "http_status"
        if self.body is not None:
            return "body"
        return "latency"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("a fault rule is an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_spec(cls, spec: str) -> FaultRule:
        """Parse ``errcode=-1,rate=0.1,platform=wechat,endpoint=/cgi-bin/tags/*``."""
        values: dict[str, Any] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep:
                raise ValueError(f"{part!r}: expected key=value")
            try:
                values[key] = _SPEC_PARSERS[key](raw)
            except KeyError:
                raise ValueError(
                    f"unknown fault field {key!r}; known: {sorted(_SPEC_PARSERS)}"
                ) from None
            except ValueError as exc:
                raise ValueError(f"{key}={raw!r}: {exc}") from None
        return cls(**values)


def _bool(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError("expected true or false")


def _optional_int(raw: str) -> int | None:
    if raw.lower() in ("", "none", "null"):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None


def _number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return int(value) if value.is_integer() else value


_SPEC_PARSERS = {
    "platform": str,
    "endpoint": str,
    "errcode": _optional_int,
    "http_status": _optional_int,
    "body": str,
    "latency_ms": _number,
    "drop": _bool,
    "rate": _number,
    "times": _optional_int,
    "after": _bool,
}


class _Entry:
    __slots__ = ("fired", "remaining", "rule")

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.remaining = rule.times
        self.fired = 0


class FaultSet:
    """The active rules, in order; thread-safe. ``pick`` decides for one request."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._rng = random.Random(seed)  # noqa: S311 - fault sampling, reproducible with a seed

    def add(self, rule: FaultRule) -> FaultRule:
        if not isinstance(rule, FaultRule):
            raise TypeError("add() takes a FaultRule")
        with self._lock:
            self._entries.append(_Entry(rule))
        return rule

    def extend(self, rules: list[FaultRule], *, replace: bool = False) -> None:
        with self._lock:
            if replace:
                self._entries = []
            self._entries.extend(_Entry(rule) for rule in rules)

    def clear(self) -> None:
        with self._lock:
            self._entries = []

    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._rng.seed(seed)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [entry.rule for entry in self._entries]

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {**entry.rule.to_dict(), "fired": entry.fired, "remaining": entry.remaining}
                for entry in self._entries
            ]

    def __len__(self) -> int:
        return len(self._entries)

    def pick(self, platform: str, endpoint: str) -> FaultRule | None:
        """The first matching rule that fires for this request (and count it), or None."""
        if not self._entries:
            return None
        with self._lock:
            for entry in self._entries:
                rule = entry.rule
                if entry.remaining == 0:
                    continue
                if not fnmatchcase(platform, rule.platform) or not fnmatchcase(
                    endpoint, rule.endpoint
                ):
                    continue
                if rule.rate < 1 and self._rng.random() >= rule.rate:
                    continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                entry.fired += 1
                return rule
        return None
