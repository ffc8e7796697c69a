"""The access tokens of WeCom and the Official Account platform: issued, checked, revoked.

A token belongs to a platform and a key (WeCom: corp id and secret; Official Account: appid and
``stable`` or ``plain``, the two token endpoints). Each key has one current token; issuing a new
one revokes the old. The endpoints that issue them are the platforms' own (wecom.py,
official_account.py); the dialogue platform has no tokens.
"""

from __future__ import annotations

from typing import Any

from .shared import ID_ALPHABET, PLATFORMS, WECHAT, WECOM, PlatformError, Shared

__all__ = ["TokenRegistry"]

_TOKEN_LENGTH = {WECOM: 214, WECHAT: 136}
_MAX_TOKEN_RECORDS = 20_000


class TokenRegistry:
    """The tokens of both platforms (``state.tokens``). ``issue`` and ``check`` run under the
    lock their platform's endpoint holds."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self.clear()

    def clear(self) -> None:
        # token -> {"platform", "key" (tuple), "expires_at", "revoked"}
        self._tokens: dict[str, dict[str, Any]] = {}
        # (platform, *key) -> current token
        self._current: dict[tuple[str, ...], str] = {}

    def issue(self, platform: str, key: tuple[str, ...], ttl: int, *, force: bool) -> dict:
        """``access_token`` and ``expires_in`` of the key's token: the current one while it is
        valid (unless ``force``), else a new one that revokes it."""
        now = self._shared.now()
        slot = (platform, *key)
        current = self._current.get(slot)
        if current is not None:
            record = self._tokens.get(current)
            if record and not force and not record["revoked"] and now < record["expires_at"]:
                # Same token while valid; expires_in is what is left of its life.
                return {"access_token": current, "expires_in": int(record["expires_at"] - now)}
            if record:
                record["revoked"] = True
        if len(self._tokens) > _MAX_TOKEN_RECORDS:
            live = set(self._current.values())
            self._tokens = {t: r for t, r in self._tokens.items() if t in live}
        token = "".join(self._shared.rng.choices(ID_ALPHABET, k=_TOKEN_LENGTH[platform]))
        self._tokens[token] = {
            "platform": platform,
            "key": key,
            "expires_at": now + ttl,
            "revoked": False,
        }
        self._current[slot] = token
        self._shared.changed()
        return {"access_token": token, "expires_in": int(ttl)}

    def check(self, platform: str, token: str | None) -> tuple[str, ...]:
        """The key of a valid token of ``platform``; the platform's errcode otherwise."""
        if not token:
            raise PlatformError(41001, "access_token missing")
        record = self._tokens.get(token)
        if record is None or record["platform"] != platform:
            if platform == WECOM:
                raise PlatformError(40014, "invalid access_token")
            raise PlatformError(40001, "invalid credential, access_token is invalid or not latest")
        if record["revoked"] or self._shared.now() >= record["expires_at"]:
            raise PlatformError(42001, "access_token expired")
        return record["key"]

    def invalidate(self, platform: str | None = None) -> int:
        """Every issued token (of ``platform``, or all) answers 42001 from now on."""
        if platform is not None and platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}; one of {PLATFORMS}")
        count = 0
        with self._shared.lock:
            for record in self._tokens.values():
                if (platform is None or record["platform"] == platform) and not record["revoked"]:
                    record["revoked"] = True
                    count += 1
            if count:
                self._shared.changed()
        return count

    def snapshot(self) -> list[dict[str, Any]]:
        current = set(self._current.values())
        return [
            {
                "token": token,
                "platform": r["platform"],
                "key": list(r["key"]),
                "expires_at": r["expires_at"],
                "revoked": r["revoked"],
                "current": token in current,
            }
            for token, r in self._tokens.items()
        ]

    def restore(self, tokens: list[dict[str, Any]]) -> None:
        for t in tokens:
            key = tuple(t["key"])
            self._tokens[t["token"]] = {
                "platform": t["platform"],
                "key": key,
                "expires_at": t["expires_at"],
                "revoked": t["revoked"],
            }
            if t.get("current"):
                self._current[(t["platform"], *key)] = t["token"]
