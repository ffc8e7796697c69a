"""The emulated WeCom: corps, their apps, customer strategies and strategy tag groups and tags.

Methods named after an endpoint take the corp id (``auth`` checked the token) and the decoded
body, and return the answer dict or raise ``PlatformError``; ``gettoken`` issues the tokens.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
from collections.abc import Iterable
from typing import Any

from .shared import ID_ALPHABET, OK, WECOM, PlatformError, Shared, is_int
from .tokens import TokenRegistry

__all__ = ["WeComPlatform"]

# ---- limits (PLATFORM.md section 2) ---------------------------------------------------------
NAME_MAX_CHARS = 30
ORDER_LIMIT = 2**32
CORP_TAG_LIMIT = 10_000
STRATEGY_LIST_MAX_LIMIT = 1000
# Filler corporate tags (set_corp_tag_count) go in groups of this many.
FILLER_GROUP_SIZE = 1000

# Default privileges of a strategy as doc 94883 lists them.
_DEFAULT_PRIVILEGE = {
    "view_customer_list": True,
    "view_customer_data": True,
    "view_room_list": True,
    "contact_me": True,
    "join_room": True,
    "share_customer": False,
    "oper_resign_customer": True,
    "oper_resign_group": True,
    "send_customer_msg": True,
    "edit_welcome_msg": True,
    "view_behavior_data": True,
    "view_room_data": True,
    "send_group_msg": True,
    "room_deduplication": True,
    "rapid_reply": True,
    "onjob_customer_transfer": True,
    "edit_anti_spam_rule": True,
    "export_customer_list": True,
    "export_customer_data": True,
    "export_customer_group_list": True,
    "manage_customer_tag": True,
}


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlatformError(40058, f"invalid {what}: a non-empty string is required")
    if len(value) > NAME_MAX_CHARS:
        raise PlatformError(
            40058,
            f"invalid {what}: {len(value)} characters, at most {NAME_MAX_CHARS} are allowed",
        )
    return value


def _order(value: object, what: str) -> int:
    if not is_int(value) or not 0 <= value < ORDER_LIMIT:  # type: ignore[operator]
        raise PlatformError(40058, f"invalid {what}: an integer in [0, 2^32) is required")
    return value  # type: ignore[return-value]


def _id_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlatformError(40058, f"invalid {what}: a list of id strings is required")
    return value


class WeComPlatform:
    """The corps (``state.wecom``); the WeCom half of the tokens lives in ``tokens``."""

    def __init__(self, shared: Shared, tokens: TokenRegistry) -> None:
        self._shared = shared
        self._tokens = tokens
        self.clear()

    def clear(self) -> None:
        self._corps: dict[str, dict[str, Any]] = {}
        self._ids: set[str] = set()

    def _new_et_id(self) -> str:
        while True:
            value = "et" + "".join(self._shared.rng.choices(ID_ALPHABET, k=22))
            if value not in self._ids:
                self._ids.add(value)
                return value

    # ---- set-up helpers (the same rules as the endpoints)

    def add_app(
        self,
        corp_id: str,
        secret: str,
        *,
        agent_id: int | None = None,
        customer_contact: bool = True,
    ) -> None:
        """An app of a corp; ``customer_contact=False`` -> 48002 on externalcontact endpoints."""
        with self._shared.lock:
            corp = self._corp(corp_id, create=True)
            corp["apps"][secret] = {"agent_id": agent_id, "customer_contact": customer_contact}
            self._shared.changed()

    def add_strategy(
        self,
        corp_id: str,
        strategy_id: int,
        name: str,
        *,
        parent_id: int = 0,
        admin_list: list[str] | None = None,
        privilege: dict[str, bool] | None = None,
    ) -> None:
        with self._shared.lock:
            corp = self._corp(corp_id, create=True)
            if not is_int(strategy_id) or strategy_id <= 0:
                raise ValueError("strategy_id must be a positive integer")
            if strategy_id in corp["strategies"]:
                raise ValueError(f"strategy {strategy_id} exists already")
            if parent_id and parent_id not in corp["strategies"]:
                raise ValueError(f"parent strategy {parent_id} does not exist")
            corp["strategies"][strategy_id] = {
                "strategy_id": strategy_id,
                "parent_id": parent_id,
                "strategy_name": name,
                "create_time": int(self._shared.now()),
                "admin_list": list(admin_list if admin_list is not None else ["zhangsan"]),
                "privilege": dict(privilege if privilege is not None else _DEFAULT_PRIVILEGE),
            }
            self._shared.changed()

    def add_strategy_group(
        self,
        corp_id: str,
        strategy_id: int,
        group_name: str,
        *,
        order: int = 0,
        tags: Iterable[tuple[str, int]] = (),
    ) -> dict[str, Any]:
        """Add a tag group through the add_strategy_tag rules; returns the answer's tag_group."""
        body = {
            "strategy_id": strategy_id,
            "group_name": group_name,
            "order": order,
            "tag": [{"name": name, "order": tag_order} for name, tag_order in tags],
        }
        with self._shared.lock:
            self._corp(corp_id)
            return self._add_strategy_tag(corp_id, body)["tag_group"]

    def add_corp_group(
        self,
        corp_id: str,
        group_name: str,
        *,
        order: int = 0,
        tags: Iterable[tuple[str, int]] = (),
        app_secret: str | None = None,
    ) -> dict[str, Any]:
        """Add a corporate tag group through the add_corp_tag rules, as the app whose secret is
        ``app_secret`` (None: a person in WeCom's admin); returns the answer's tag_group."""
        body = {
            "group_name": group_name,
            "order": order,
            "tag": [{"name": name, "order": tag_order} for name, tag_order in tags],
        }
        with self._shared.lock:
            self._corp(corp_id)
            return self.add_corp_tag(corp_id, body, app=app_secret)["tag_group"]

    def set_corp_tag_count(self, corp_id: str, n: int) -> None:
        """Make the corp hold ``n`` corporate tags, filling with admin-made groups of filler tags
        (those made before are replaced): counted against the 10,000 tags of a corp."""
        if not is_int(n) or n < 0:
            raise ValueError("n must be a non-negative integer")
        with self._shared.lock:
            corp = self._corp(corp_id, create=True)
            groups, index = corp["corp_groups"], corp["corp_tag_index"]
            for group_id in [g for g, group in groups.items() if group.get("filler")]:
                for tag_id in groups.pop(group_id)["tags"]:
                    index.pop(tag_id, None)
            missing = n - len(index)
            if missing < 0:
                raise ValueError(f"the corp holds {len(index)} corporate tags already")
            now = int(self._shared.now())
            number = 0
            while missing > 0:
                number += 1
                group_id = self._new_et_id()
                group = groups[group_id] = {
                    "group_id": group_id,
                    "group_name": f"填充标签组 {number}",
                    "create_time": now,
                    "order": 0,
                    "strategy_id": None,
                    "creator": None,
                    "filler": True,
                    "tags": {},
                }
                for i in range(min(missing, FILLER_GROUP_SIZE)):
                    tag_id = self._new_et_id()
                    group["tags"][tag_id] = {
                        "id": tag_id,
                        "name": f"填充 {number}-{i + 1}",
                        "create_time": now,
                        "order": 0,
                        "creator": None,
                    }
                    index[tag_id] = group_id
                missing -= len(group["tags"])
            self._shared.changed()

    # ---- reads for tests and the callbacks

    def strategy_tag_count(self, corp_id: str) -> int:
        with self._shared.lock:
            return sum(len(g["tags"]) for g in self._corp(corp_id)["groups"].values())

    def corp_tag_count(self, corp_id: str) -> int:
        with self._shared.lock:
            return len(self._corp(corp_id)["corp_tag_index"])

    def tag_exists(self, corp_id: str, tag_id: str) -> bool:
        """Whether ``tag_id`` is a tag of the corp: a strategy tag or a corporate tag."""
        with self._shared.lock:
            corp = self._corps.get(corp_id)
            if corp is None:
                return False
            return tag_id in corp["tag_index"] or tag_id in corp["corp_tag_index"]

    def group_ids(self, corp_id: str) -> set[str]:
        """The tag group ids of the corp, strategy and corporate."""
        with self._shared.lock:
            corp = self._corp(corp_id)
            return set(corp["groups"]) | set(corp["corp_groups"])

    def strategy_of(self, corp_id: str, item_id: str) -> tuple[str, int | None] | None:
        """``("tag_group", strategy id)`` or ``("tag", strategy id)`` of a group or tag id of the
        corp, as a change event names it (strategy id None: a corporate tag or group); None for
        an unknown id."""
        with self._shared.lock:
            corp = self._corp(corp_id)
            for groups, index in (
                (corp["groups"], corp["tag_index"]),
                (corp["corp_groups"], corp["corp_tag_index"]),
            ):
                if item_id in groups:
                    return "tag_group", groups[item_id]["strategy_id"]
                if item_id in index:
                    return "tag", groups[index[item_id]]["strategy_id"]
            return None

    # ---- endpoints

    def gettoken(self, query: dict[str, str], ttl: int) -> dict[str, Any]:
        corp_id = query.get("corpid", "")
        secret = query.get("corpsecret", "")
        if not corp_id:
            raise PlatformError(41002, "corpid missing")
        if not secret:
            raise PlatformError(41004, "corpsecret missing")
        with self._shared.lock:
            corp = self._corps.get(corp_id)
            if corp is None:
                raise PlatformError(40013, "invalid corpid")
            if secret not in corp["apps"]:
                raise PlatformError(40001, "invalid secret")
            return {**OK, **self._tokens.issue(WECOM, (corp_id, secret), ttl, force=False)}

    def _corp(self, corp_id: str, *, create: bool = False) -> dict[str, Any]:
        corp = self._corps.get(corp_id)
        if corp is None:
            if not create:
                raise ValueError(f"unknown corp {corp_id}")
            corp = self._corps[corp_id] = {
                "apps": {},
                "strategies": {},
                "groups": {},  # strategy tag groups
                "tag_index": {},  # strategy tag id -> group id
                "corp_groups": {},  # corporate tag groups
                "corp_tag_index": {},  # corporate tag id -> group id
            }
        return corp

    def auth(self, token: str | None, *, customer_contact: bool) -> str:
        """Check the token (and the app's customer-contact permission); return the corp id."""
        return self.auth_app(token, customer_contact=customer_contact)[0]

    def auth_app(self, token: str | None, *, customer_contact: bool) -> tuple[str, str]:
        """``auth``, also naming the calling app (by its secret): corporate tags remember it."""
        with self._shared.lock:
            corp_id, secret = self._tokens.check(WECOM, token)
            if customer_contact:
                app = self._corps[corp_id]["apps"].get(secret)
                if app is None or not app["customer_contact"]:
                    raise PlatformError(
                        48002,
                        "api forbidden: the app is not configured in 「客户联系 可调用接口的应用」",
                    )
            return corp_id, secret

    def strategy_list(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        limit = body.get("limit", STRATEGY_LIST_MAX_LIMIT)
        if not is_int(limit) or not 1 <= limit <= STRATEGY_LIST_MAX_LIMIT:
            raise PlatformError(40058, f"invalid limit: 1..{STRATEGY_LIST_MAX_LIMIT} required")
        cursor = body.get("cursor") or ""
        if not isinstance(cursor, str):
            raise PlatformError(40058, "invalid cursor")
        after = 0
        if cursor:
            try:
                decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
                prefix, _, number = decoded.partition(":")
                if prefix != "strategy-after":
                    raise ValueError(decoded)
                after = int(number)
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise PlatformError(40058, "invalid cursor") from None
        with self._shared.lock:
            ids = sorted(self._corp(corp_id)["strategies"])
        start = bisect.bisect_right(ids, after)
        page = ids[start : start + limit]
        answer: dict[str, Any] = {**OK, "strategy": [{"strategy_id": i} for i in page]}
        if start + limit < len(ids):
            raw = f"strategy-after:{page[-1]}".encode()
            answer["next_cursor"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return answer

    def strategy_get(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        strategy_id = body.get("strategy_id")
        with self._shared.lock:
            strategies = self._corp(corp_id)["strategies"]
            strategy = strategies.get(strategy_id) if is_int(strategy_id) else None
            if strategy is None:
                raise PlatformError(40058, "invalid strategy_id")
            return {**OK, "strategy": copy.deepcopy(strategy)}

    # ---- the two tag libraries: strategy tags and corporate tags share every rule

    @staticmethod
    def _library(corp: dict[str, Any], corporate: bool) -> tuple[dict[str, Any], dict[str, str]]:
        """(groups by id, tag id -> group id) of the corp's corporate or strategy tags."""
        if corporate:
            return corp["corp_groups"], corp["corp_tag_index"]
        return corp["groups"], corp["tag_index"]

    @staticmethod
    def _group_answer(
        group: dict[str, Any],
        tags: Iterable[dict[str, Any]] | None = None,
        *,
        corporate: bool = False,
    ) -> dict:
        chosen = list(group["tags"].values()) if tags is None else list(tags)
        chosen.sort(key=lambda t: -t["order"])
        answer: dict[str, Any] = {
            "group_id": group["group_id"],
            "group_name": group["group_name"],
            "create_time": group["create_time"],
            "order": group["order"],
        }
        if corporate:
            answer["deleted"] = False
        else:
            answer["strategy_id"] = group["strategy_id"]
        answer["tag"] = [_public_tag(t, corporate=corporate) for t in chosen]
        return answer

    def _tag_list(
        self,
        corp: dict[str, Any],
        body: dict[str, Any],
        *,
        corporate: bool,
        strategy_id: int | None,
    ) -> dict[str, Any]:
        tag_ids = _id_list(body.get("tag_id"), "tag_id")
        group_ids = _id_list(body.get("group_id"), "group_id")
        all_groups, _index = self._library(corp, corporate)
        groups = [
            g for g in all_groups.values() if strategy_id is None or g["strategy_id"] == strategy_id
        ]
        groups.sort(key=lambda g: -g["order"])
        if group_ids:  # group_id wins; tag_id is ignored
            wanted = set(group_ids)
            result = [
                self._group_answer(g, corporate=corporate)
                for g in groups
                if g["group_id"] in wanted
            ]
        elif tag_ids:
            wanted = set(tag_ids)
            result = []
            for g in groups:
                chosen = [t for t in g["tags"].values() if t["id"] in wanted]
                if chosen:
                    result.append(self._group_answer(g, chosen, corporate=corporate))
        else:
            result = [self._group_answer(g, corporate=corporate) for g in groups]
        return {**OK, "tag_group": result}

    def _add_tags(
        self,
        corp: dict[str, Any],
        body: dict[str, Any],
        *,
        corporate: bool,
        strategy_id: int | None,
        creator: str | None,
    ) -> dict[str, Any]:
        """add_strategy_tag and add_corp_tag once the strategy (if any) was checked."""
        groups, index = self._library(corp, corporate)
        raw_tags = body.get("tag")
        if not isinstance(raw_tags, list) or not raw_tags:
            raise PlatformError(40058, "invalid tag: a non-empty tag list is required")
        new_tags: dict[str, int] = {}  # name -> order; first occurrence wins
        for item in raw_tags:
            if not isinstance(item, dict):
                raise PlatformError(40058, "invalid tag: each tag must be an object")
            name = _name(item.get("name"), "tag name")
            order = _order(item.get("order", 0), "tag order")
            new_tags.setdefault(name, order)

        group_id = body.get("group_id")
        group: dict[str, Any] | None = None
        group_name = group_order = None
        if group_id:
            group = groups.get(group_id) if isinstance(group_id, str) else None
            if group is None or group["strategy_id"] != strategy_id:
                where = "of the corp" if corporate else "in this strategy"
                raise PlatformError(40068, f"invalid group_id: no such group {where}")
        else:
            if body.get("group_name") in (None, ""):
                raise PlatformError(40058, "group_name or group_id is required")
            group_name = _name(body.get("group_name"), "group_name")
            group_order = _order(body.get("order", 0), "group order")
            for candidate in groups.values():
                same_scope = candidate["strategy_id"] == strategy_id
                if same_scope and candidate["group_name"] == group_name:
                    group = candidate  # same name: the tags join the existing group
                    break
        if group is not None:
            existing = {t["name"] for t in group["tags"].values()}
            clash = [name for name in new_tags if name in existing]
            if clash:
                raise PlatformError(40071, f"tag name exists in the group: {clash[0]}")
        total = len(corp["corp_tag_index"]) + len(corp["tag_index"]) + len(new_tags)
        if total > CORP_TAG_LIMIT:
            raise PlatformError(
                40058,
                f"too many tags: corp tags plus strategy tags may not exceed {CORP_TAG_LIMIT} "
                f"per corp ({total} after this call)",
            )

        now = int(self._shared.now())
        if group is None:
            new_group_id = self._new_et_id()
            group = groups[new_group_id] = {
                "group_id": new_group_id,
                "group_name": group_name,
                "create_time": now,
                "order": group_order,
                "strategy_id": strategy_id,
                "tags": {},
            }
            if corporate:
                group["creator"] = creator
        created = []
        for name, order in new_tags.items():
            tag = {"id": self._new_et_id(), "name": name, "create_time": now, "order": order}
            if corporate:
                tag["creator"] = creator
            group["tags"][tag["id"]] = tag
            index[tag["id"]] = group["group_id"]
            created.append(tag)
        self._shared.changed()
        return {**OK, "tag_group": self._group_answer(group, created, corporate=corporate)}

    @staticmethod
    def _may_change(item: dict[str, Any], app: str | None, what: str) -> None:
        """An app changes only the corporate tags and groups it created (admin: ``app`` None)."""
        if app is not None and item.get("creator", app) != app:
            raise PlatformError(
                301002, f"no privilege: this {what} was created by another app or in the admin"
            )

    def _edit_tag(
        self, corp: dict[str, Any], body: dict[str, Any], *, corporate: bool, app: str | None
    ) -> dict[str, Any]:
        item_id = body.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise PlatformError(40058, "invalid id: a tag id or group id is required")
        name = body.get("name")
        order = body.get("order")
        groups, index = self._library(corp, corporate)
        group = groups.get(item_id)
        tag = None
        if group is None:
            group_id = index.get(item_id)
            if group_id is None:
                raise PlatformError(40068, "invalid tag id")
            group = groups[group_id]
            tag = group["tags"][item_id]
        self._may_change(tag if tag is not None else group, app, "tag" if tag else "tag group")
        if name is not None:
            name = _name(name, "name")
        if order is not None:
            order = _order(order, "order")
        if name is not None and tag is None:
            for other in groups.values():
                if (
                    other is not group
                    and other["strategy_id"] == group["strategy_id"]
                    and other["group_name"] == name
                ):
                    where = "of the corp" if corporate else "in this strategy"
                    raise PlatformError(40071, f"tag group name exists {where}")
        if name is not None and tag is not None:
            for sibling in group["tags"].values():
                if sibling is not tag and sibling["name"] == name:
                    raise PlatformError(40071, "tag name exists in the group")
        target = tag if tag is not None else group
        if name is not None:
            target["name" if tag is not None else "group_name"] = name
        if order is not None:
            target["order"] = order
        self._shared.changed()
        return dict(OK)

    def _delete_tags(
        self, corp: dict[str, Any], body: dict[str, Any], *, corporate: bool, app: str | None
    ) -> dict[str, Any]:
        tag_ids = _id_list(body.get("tag_id"), "tag_id")
        group_ids = _id_list(body.get("group_id"), "group_id")
        if not tag_ids and not group_ids:
            raise PlatformError(40058, "tag_id and group_id may not both be empty")
        groups, index = self._library(corp, corporate)
        for group_id in group_ids:
            if group_id not in groups:
                raise PlatformError(40068, f"invalid group id: {group_id}")
            self._may_change(groups[group_id], app, "tag group")
        for tag_id in tag_ids:
            if tag_id not in index:
                raise PlatformError(40068, f"invalid tag id: {tag_id}")
            self._may_change(groups[index[tag_id]]["tags"][tag_id], app, "tag")
        for group_id in group_ids:
            group = groups.pop(group_id, None)
            if group:
                for tag_id in group["tags"]:
                    index.pop(tag_id, None)
        for tag_id in tag_ids:
            group_id = index.pop(tag_id, None)
            if group_id is None:
                continue  # its group went above
            group = groups[group_id]
            del group["tags"][tag_id]
            if not group["tags"]:
                del groups[group_id]  # no empty groups
        self._shared.changed()
        return dict(OK)

    # ---- strategy tag endpoints

    def get_strategy_tag_list(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        strategy_id = body.get("strategy_id")
        with self._shared.lock:
            corp = self._corp(corp_id)
            if strategy_id is not None and (
                not is_int(strategy_id) or strategy_id not in corp["strategies"]
            ):
                raise PlatformError(40058, "invalid strategy_id")
            return self._tag_list(corp, body, corporate=False, strategy_id=strategy_id)

    def add_strategy_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._shared.lock:
            return self._add_strategy_tag(corp_id, body)

    def _add_strategy_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        corp = self._corp(corp_id)
        strategy_id = body.get("strategy_id")
        if not is_int(strategy_id):
            raise PlatformError(40058, "invalid strategy_id: an integer is required")
        strategy = corp["strategies"].get(strategy_id)
        if strategy is None:
            raise PlatformError(40058, "invalid strategy_id")
        if strategy["parent_id"] != 0:
            raise PlatformError(
                40058, "invalid strategy_id: tags can only be added to first-level strategies"
            )
        answer = self._add_tags(corp, body, corporate=False, strategy_id=strategy_id, creator=None)
        # add_strategy_tag's answer names no strategy (the caller knows it).
        answer["tag_group"].pop("strategy_id", None)
        return answer

    def edit_strategy_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._shared.lock:
            return self._edit_tag(self._corp(corp_id), body, corporate=False, app=None)

    def del_strategy_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._shared.lock:
            return self._delete_tags(self._corp(corp_id), body, corporate=False, app=None)

    # ---- corporate tag endpoints (``app``: the calling app's secret; None: WeCom's admin)

    def get_corp_tag_list(
        self, corp_id: str, body: dict[str, Any], app: str | None = None
    ) -> dict[str, Any]:
        with self._shared.lock:
            return self._tag_list(self._corp(corp_id), body, corporate=True, strategy_id=None)

    def add_corp_tag(
        self, corp_id: str, body: dict[str, Any], app: str | None = None
    ) -> dict[str, Any]:
        with self._shared.lock:
            corp = self._corp(corp_id)
            return self._add_tags(corp, body, corporate=True, strategy_id=None, creator=app)

    def edit_corp_tag(
        self, corp_id: str, body: dict[str, Any], app: str | None = None
    ) -> dict[str, Any]:
        with self._shared.lock:
            return self._edit_tag(self._corp(corp_id), body, corporate=True, app=app)

    def del_corp_tag(
        self, corp_id: str, body: dict[str, Any], app: str | None = None
    ) -> dict[str, Any]:
        with self._shared.lock:
            return self._delete_tags(self._corp(corp_id), body, corporate=True, app=app)

    # ---- snapshots (the caller holds the lock)

    @staticmethod
    def _groups_snapshot(groups: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                **{k: v for k, v in g.items() if k != "tags"},
                "tag": [dict(t) for t in g["tags"].values()],
            }
            for g in groups.values()
        ]

    def snapshot(self) -> dict[str, Any]:
        return {
            corp_id: {
                "apps": [{"secret": s, **app} for s, app in corp["apps"].items()],
                "strategies": [copy.deepcopy(s) for s in corp["strategies"].values()],
                "groups": self._groups_snapshot(corp["groups"]),
                "corp_groups": self._groups_snapshot(corp["corp_groups"]),
            }
            for corp_id, corp in self._corps.items()
        }

    def restore(self, corps: dict[str, Any]) -> None:
        for corp_id, c in corps.items():
            corp = self._corp(corp_id, create=True)
            for app in c.get("apps", []):
                corp["apps"][app["secret"]] = {
                    "agent_id": app.get("agent_id"),
                    "customer_contact": app.get("customer_contact", True),
                }
            for s in c.get("strategies", []):
                corp["strategies"][s["strategy_id"]] = dict(s)
            for key, corporate in (("groups", False), ("corp_groups", True)):
                groups, index = self._library(corp, corporate)
                for g in c.get(key, []):
                    group = {k: v for k, v in g.items() if k != "tag"}
                    group["tags"] = {t["id"]: dict(t) for t in g.get("tag", [])}
                    groups[group["group_id"]] = group
                    self._ids.add(group["group_id"])
                    for tag_id in group["tags"]:
                        index[tag_id] = group["group_id"]
                        self._ids.add(tag_id)
            if c.get("corp_tag_count") and not c.get("corp_groups"):
                # A state file from before corporate tags: its count, as filler tags.
                self.set_corp_tag_count(corp_id, c["corp_tag_count"])


def _public_tag(tag: dict[str, Any], *, corporate: bool) -> dict[str, Any]:
    """A tag as an answer shows it: who created it stays inside the sandbox."""
    answer = {k: v for k, v in tag.items() if k != "creator"}
    if corporate:
        answer["deleted"] = False
    return answer
