"""The emulated Official Account platform: accounts, their user tags and the followers tagged.

Methods named after an endpoint take the appid (``auth`` checked the token) and the decoded
body, and return the answer dict or raise ``PlatformError``; ``stable_token`` and
``plain_token`` issue the tokens.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from typing import Any

from .shared import OK, WECHAT, PlatformError, Shared, is_int
from .tokens import TokenRegistry

__all__ = ["OfficialAccountPlatform"]

# ---- limits (PLATFORM.md section 3) ---------------------------------------------------------
TAG_NAME_MAX_CHARS = 30
MAX_TAGS = 100
MAX_TAGS_PER_USER = 20
MAX_BATCH = 50
FIRST_TAG_ID = 100
UNDELETABLE_FANS = 100_000
PAGE_SIZE = 10_000
# 0/1/2 are the system tags (former groups: 未分组, 黑名单, 星标组). The real tags/get lists only
# 2 (星标组), which users can be tagged with; 0 and 1 cannot be listed, tagged, edited or deleted.
RESERVED_TAG_IDS = frozenset({0, 1, 2})
STAR_TAG = (2, "星标组")

_OPENID = re.compile(r"o[A-Za-z0-9_-]{27}")
_OPENID_PREFIX = re.compile(r"o[A-Za-z0-9_-]{5}")


def _tag_name(value: object) -> str:
    if not isinstance(value, str):
        raise PlatformError(45158, "invalid tag name: a string is required")
    if not value.strip():
        raise PlatformError(45158, "invalid tag name: the name is empty")
    if len(value) > TAG_NAME_MAX_CHARS:
        raise PlatformError(45158, f"tag name too long: more than {TAG_NAME_MAX_CHARS} characters")
    return value


class OfficialAccountPlatform:
    """The accounts (``state.official_account``); their tokens live in ``tokens``."""

    def __init__(self, shared: Shared, tokens: TokenRegistry) -> None:
        self._shared = shared
        self._tokens = tokens
        self.clear()

    def clear(self) -> None:
        self._accounts: dict[str, dict[str, Any]] = {}

    # ---- set-up helpers (the same rules as the endpoints)

    def add_account(self, appid: str, secret: str, *, openid_prefix: str) -> None:
        if not _OPENID_PREFIX.fullmatch(openid_prefix):
            raise ValueError('openid_prefix must be "o" and 5 characters of [A-Za-z0-9_-]')
        with self._shared.lock:
            if appid in self._accounts:
                raise ValueError(f"official account {appid} exists already")
            star_id, star_name = STAR_TAG
            self._accounts[appid] = {
                "secret": secret,
                "openid_prefix": openid_prefix,
                "next_tag_id": FIRST_TAG_ID,
                "tags": {star_id: self._new_tag(star_id, star_name)},
            }
            self._shared.changed()

    def add_tag(self, appid: str, name: str) -> int:
        with self._shared.lock:
            return self._create(appid, {"tag": {"name": name}})["tag"]["id"]

    def tag_users(self, appid: str, tag_id: int, openids: Iterable[str]) -> None:
        """Tag any number of followers at once (no batch-size limit; every other rule holds)."""
        with self._shared.lock:
            account = self._account(appid)
            self._apply_tagging(account, tag_id, list(openids), tagging=True)

    def set_tag_fan_count_override(self, appid: str, tag_id: int, n: int | None) -> None:
        """Report ``n`` as the tag's fan count (tags/get, the 100,000-fan delete rule);
        ``None`` goes back to counting the stored openids."""
        with self._shared.lock:
            tag = self._account(appid)["tags"].get(tag_id)
            if tag is None:
                raise ValueError(f"no tag {tag_id} in {appid}")
            tag["count_override"] = n
            self._shared.changed()

    # ---- reads for tests

    def tag_fans(self, appid: str, tag_id: int) -> set[str]:
        with self._shared.lock:
            return set(self._account(appid)["tags"][tag_id]["fans"])

    # ---- endpoints

    def stable_token(self, body: dict[str, Any], ttl: int) -> dict[str, Any]:
        if body.get("grant_type") != "client_credential":
            raise PlatformError(40002, "invalid grant_type")
        appid, secret = body.get("appid"), body.get("secret")
        if not appid or not isinstance(appid, str):
            raise PlatformError(41002, "appid missing")
        if not secret or not isinstance(secret, str):
            raise PlatformError(41004, "appsecret missing")
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            raise PlatformError(47001, "data format error: force_refresh must be a boolean")
        with self._shared.lock:
            account = self._accounts.get(appid)
            if account is None:
                raise PlatformError(40013, "invalid appid")
            if account["secret"] != secret:
                raise PlatformError(40125, "invalid appsecret")
            return self._tokens.issue(WECHAT, (appid, "stable"), ttl, force=force)

    def plain_token(self, query: dict[str, str], ttl: int) -> dict[str, Any]:
        """GET /cgi-bin/token: each call issues a new token and ends the previous one."""
        if query.get("grant_type") != "client_credential":
            raise PlatformError(40002, "invalid grant_type")
        appid, secret = query.get("appid", ""), query.get("secret", "")
        if not appid:
            raise PlatformError(41002, "appid missing")
        if not secret:
            raise PlatformError(41004, "appsecret missing")
        with self._shared.lock:
            account = self._accounts.get(appid)
            if account is None:
                raise PlatformError(40013, "invalid appid")
            if account["secret"] != secret:
                raise PlatformError(40001, "invalid credential, appsecret is wrong")
            return self._tokens.issue(WECHAT, (appid, "plain"), ttl, force=True)

    @staticmethod
    def _new_tag(tag_id: int, name: str) -> dict[str, Any]:
        # "sorted": the fans in openid order for user/tag/get paging, built on the first read;
        # "pending": changes since then (openid -> now present?), merged in at the next read so
        # that tagging never pays for a sort.
        return {
            "id": tag_id,
            "name": name,
            "fans": set(),
            "count_override": None,
            "sorted": None,
            "pending": {},
        }

    def _account(self, appid: str) -> dict[str, Any]:
        account = self._accounts.get(appid)
        if account is None:
            raise ValueError(f"unknown official account {appid}")
        return account

    def auth(self, token: str | None) -> str:
        with self._shared.lock:
            appid, _kind = self._tokens.check(WECHAT, token)
            return appid

    @staticmethod
    def _fan_count(tag: dict[str, Any]) -> int:
        override = tag["count_override"]
        return len(tag["fans"]) if override is None else override

    def tags_get(self, appid: str) -> dict[str, Any]:
        with self._shared.lock:
            tags = self._account(appid)["tags"].values()
            return {
                "tags": [
                    {"id": t["id"], "name": t["name"], "count": self._fan_count(t)} for t in tags
                ]
            }

    @staticmethod
    def _tag_body(body: dict[str, Any]) -> dict[str, Any]:
        tag = body.get("tag")
        if not isinstance(tag, dict):
            raise PlatformError(47001, 'data format error: {"tag": {...}} is required')
        return tag

    def tags_create(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._shared.lock:
            return self._create(appid, body)

    def _create(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        account = self._account(appid)
        name = _tag_name(self._tag_body(body).get("name"))
        tags = account["tags"]
        if any(t["name"] == name for t in tags.values()):
            raise PlatformError(45157, "invalid tag name: a tag with this name exists")
        if sum(1 for t in tags if t not in RESERVED_TAG_IDS) >= MAX_TAGS:
            raise PlatformError(45056, f"too many tags: at most {MAX_TAGS} per account")
        tag_id = account["next_tag_id"]
        account["next_tag_id"] += 1
        tags[tag_id] = self._new_tag(tag_id, name)
        self._shared.changed()
        return {"tag": {"id": tag_id, "name": name}}

    def _existing_tag(self, account: dict[str, Any], tag_id: object, *, edit: bool) -> dict:
        if edit and tag_id in RESERVED_TAG_IDS:
            raise PlatformError(45058, "can't modify sys tag: 0/1/2 are reserved")
        tag = account["tags"].get(tag_id) if is_int(tag_id) else None
        if tag is None:
            raise PlatformError(45159, "invalid tag id")
        return tag

    def tags_update(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        tag_body = self._tag_body(body)
        with self._shared.lock:
            account = self._account(appid)
            tag = self._existing_tag(account, tag_body.get("id"), edit=True)
            name = _tag_name(tag_body.get("name"))
            if any(t is not tag and t["name"] == name for t in account["tags"].values()):
                raise PlatformError(45157, "invalid tag name: a tag with this name exists")
            tag["name"] = name
            self._shared.changed()
            return dict(OK)

    def tags_delete(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        tag_body = self._tag_body(body)
        with self._shared.lock:
            account = self._account(appid)
            tag = self._existing_tag(account, tag_body.get("id"), edit=True)
            if self._fan_count(tag) > UNDELETABLE_FANS:
                raise PlatformError(
                    45057,
                    f"can't delete the tag that has more than {UNDELETABLE_FANS} fans; "
                    "untag them first",
                )
            del account["tags"][tag["id"]]
            self._shared.changed()
            return dict(OK)

    def _check_openid(self, account: dict[str, Any], openid: object) -> str:
        if not isinstance(openid, str) or not _OPENID.fullmatch(openid):
            raise PlatformError(40003, "invalid openid")
        if not openid.startswith(account["openid_prefix"]):
            raise PlatformError(49003, "not match openid with appid")
        return openid

    def _apply_tagging(
        self, account: dict[str, Any], tag_id: object, openids: list, *, tagging: bool
    ) -> None:
        checked = [self._check_openid(account, o) for o in openids]
        tags = account["tags"]
        if not is_int(tag_id) or tag_id not in tags:
            raise PlatformError(45159, "invalid tag id")
        tag = tags[tag_id]
        fans: set[str] = tag["fans"]
        unique = dict.fromkeys(checked)
        if tagging:
            new = [o for o in unique if o not in fans]
            # Only an account with more than 20 tags can push a user over 20.
            if new and len(tags) > MAX_TAGS_PER_USER:
                others = [t["fans"] for t in tags.values() if t is not tag]
                for openid in new:
                    if sum(1 for f in others if openid in f) >= MAX_TAGS_PER_USER:
                        raise PlatformError(
                            45059,
                            f"can not tagging one user too much: a user may have at most "
                            f"{MAX_TAGS_PER_USER} tags",
                        )
            if new:
                fans.update(new)
                self._note_fan_changes(tag, new, present=True)
                self._shared.changed()
        else:
            gone = [o for o in unique if o in fans]
            if gone:
                fans.difference_update(gone)
                self._note_fan_changes(tag, gone, present=False)
                self._shared.changed()

    @staticmethod
    def _note_fan_changes(tag: dict[str, Any], openids: list[str], *, present: bool) -> None:
        if tag["sorted"] is None:
            return
        pending = tag["pending"]
        for openid in openids:
            pending[openid] = present
        if len(pending) > max(1000, len(tag["sorted"]) // 20):
            tag["sorted"], tag["pending"] = None, {}  # cheaper to sort again at the next read

    @staticmethod
    def _sorted_fans(tag: dict[str, Any]) -> list[str]:
        ordered = tag["sorted"]
        if ordered is None:
            ordered = tag["sorted"] = sorted(tag["fans"])
            tag["pending"] = {}
            return ordered
        for openid, present in tag["pending"].items():
            index = bisect.bisect_left(ordered, openid)
            there = index < len(ordered) and ordered[index] == openid
            if present and not there:
                ordered.insert(index, openid)
            elif not present and there:
                del ordered[index]
        tag["pending"] = {}
        return ordered

    def batch_tagging(self, appid: str, body: dict[str, Any], *, tagging: bool) -> dict:
        openids = body.get("openid_list")
        if openids is not None and not isinstance(openids, list):
            raise PlatformError(47001, "data format error: openid_list must be a list")
        if not openids or len(openids) > MAX_BATCH:
            raise PlatformError(40032, f"invalid openid list size: 1..{MAX_BATCH} openids per call")
        with self._shared.lock:
            self._apply_tagging(self._account(appid), body.get("tagid"), openids, tagging=tagging)
            return dict(OK)

    def getidlist(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._shared.lock:
            account = self._account(appid)
            openid = self._check_openid(account, body.get("openid"))
            return {
                "tagid_list": [t["id"] for t in account["tags"].values() if openid in t["fans"]]
            }

    def user_tag_get(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        next_openid = body.get("next_openid") or ""
        if not isinstance(next_openid, str):
            raise PlatformError(47001, "data format error: next_openid must be a string")
        with self._shared.lock:
            account = self._account(appid)
            tag_id = body.get("tagid")
            tag = account["tags"].get(tag_id) if is_int(tag_id) else None
            if tag is None:
                raise PlatformError(45159, "invalid tag id")
            ordered = self._sorted_fans(tag)
            start = bisect.bisect_right(ordered, next_openid) if next_openid else 0
            page = ordered[start : start + PAGE_SIZE]
        if not page:
            # As the real one does when a listing is exhausted: nothing, no "data".
            return {"count": 0, "next_openid": ""}
        return {"count": len(page), "data": {"openid": page}, "next_openid": page[-1]}

    # ---- snapshots (the caller holds the lock)

    def snapshot(self) -> dict[str, Any]:
        return {
            appid: {
                "secret": account["secret"],
                "openid_prefix": account["openid_prefix"],
                "next_tag_id": account["next_tag_id"],
                "tags": [
                    {
                        "id": t["id"],
                        "name": t["name"],
                        "count_override": t["count_override"],
                        "fans": sorted(t["fans"]),
                    }
                    for t in account["tags"].values()
                ],
            }
            for appid, account in self._accounts.items()
        }

    def restore(self, accounts: dict[str, Any]) -> None:
        for appid, a in accounts.items():
            tags = {}
            for t in a.get("tags", []):
                tag = self._new_tag(t["id"], t["name"])
                tag["fans"] = set(t.get("fans", []))
                tag["count_override"] = t.get("count_override")
                tags[t["id"]] = tag
            self._accounts[appid] = {
                "secret": a["secret"],
                "openid_prefix": a["openid_prefix"],
                "next_tag_id": a.get("next_tag_id", FIRST_TAG_ID),
                "tags": tags,
            }
