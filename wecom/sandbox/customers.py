"""The emulated WeCom's members and customers (外部联系人), and the tags members put on them.

PLATFORM.md section 2, "Corporate tags and tagging customers": members with customer contact
(``get_follow_user_list``), each member's customers (``list?userid=``, ``batch/get_by_user``
with its cursor), and ``mark_tag``, one customer per call. A customer is tagged per member: the
same customer followed by two members has two sets of tags, at most 3,000 in each.

Which errcode a refusal earns, where the documents name none, is a choice written down here
(and in the client's table, ``wecom/clients/errors.py``):

* the customer is not one of this member's: **84061** (WeCom's "不存在外部联系人的关系",
  which production also answers to ``list`` for a member without customers: the sandbox
  does the same);
* an external_userid that is malformed or unknown to the corp: **40096** (不合法的外部联系人
  userid); a member userid unknown to the corp: **60111** (UserID 不存在);
* a strategy tag where the member is outside that strategy's range: **60011** (no privilege,
  what WeCom answers for a member outside an admin range);
* more than 3,000 tags on one (member, customer): **45035**, a limit code of the sandbox's
  choosing (WeCom documents the cap, not its errcode).

Unknown tag ids earn 40068, as the tag endpoints do.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any

from .shared import ID_ALPHABET, OK, PlatformError, Shared, is_int
from .wecom import WeComPlatform

__all__ = [
    "ERR_CUSTOMER_UNKNOWN",
    "ERR_MEMBER_UNKNOWN",
    "ERR_NOT_THIS_MEMBERS_CUSTOMER",
    "ERR_OUTSIDE_STRATEGY_RANGE",
    "ERR_TAG_CAP",
    "TAGS_PER_CUSTOMER_MAX",
    "CustomersPlatform",
]

TAGS_PER_CUSTOMER_MAX = 3000
BATCH_USERIDS_MAX = 100
BATCH_LIMIT_MAX = 100
BATCH_LIMIT_DEFAULT = 50

ERR_NOT_THIS_MEMBERS_CUSTOMER = 84061
ERR_CUSTOMER_UNKNOWN = 40096
ERR_MEMBER_UNKNOWN = 60111
ERR_OUTSIDE_STRATEGY_RANGE = 60011
ERR_TAG_CAP = 45035

_EXTERNAL_USERID = re.compile(r"w[mo][A-Za-z0-9_-]{20,62}")
_USERID = re.compile(r"[A-Za-z0-9_@.-]{1,64}")
_CURSOR_PREFIX = "by-user:"


def _userid(value: object, corp: dict[str, Any]) -> str:
    if not isinstance(value, str) or not _USERID.fullmatch(value):
        raise PlatformError(40058, "invalid userid")
    if value not in corp["members"]:
        raise PlatformError(ERR_MEMBER_UNKNOWN, f"userid not found: {value}")
    return value


def _tag_ids(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PlatformError(40058, f"invalid {what}: a list of tag id strings is required")
    return list(dict.fromkeys(value))


class CustomersPlatform:
    """Per corp: ``members`` (userid -> name, customer contact on, strategy range) and
    ``customers`` (external_userid -> name and, per following member, the tags it holds)."""

    def __init__(self, shared: Shared, wecom: WeComPlatform) -> None:
        self._shared = shared
        self._wecom = wecom
        self.clear()

    def clear(self) -> None:
        self._corps: dict[str, dict[str, Any]] = {}

    def _corp(self, corp_id: str) -> dict[str, Any]:
        corp = self._corps.get(corp_id)
        if corp is None:
            # members: userid -> {"name", "contact", "strategies": set}
            # customers: external_userid -> {"name", "follows": {userid: {"createtime", "tags"}}}
            # by_member: userid -> [external_userid, ...] in the order they were added (paging)
            corp = self._corps[corp_id] = {"members": {}, "customers": {}, "by_member": {}}
        return corp

    # ---- the tags a member may use (one place: corporate tags land in wecom.py)

    def _tag_strategy(self, corp_id: str, tag_id: str) -> tuple[bool, int | None]:
        """(the tag exists, the strategy it belongs to or None for a corporate tag)."""
        found = self._wecom.strategy_of(corp_id, tag_id)
        if found is not None and found[0] == "tag":
            return True, found[1]
        return self._wecom.tag_exists(corp_id, tag_id), None

    # ---- set-up helpers (the same rules as the endpoints)

    def add_member(
        self,
        corp_id: str,
        userid: str,
        *,
        name: str = "",
        strategies: Iterable[int] = (),
        customer_contact: bool = True,
    ) -> None:
        """A member of the corp; ``strategies`` are the strategies whose range holds it."""
        if not _USERID.fullmatch(userid):
            raise ValueError(f"not a WeCom userid: {userid!r}")
        with self._shared.lock:
            corp = self._corp(corp_id)
            if userid in corp["members"]:
                raise ValueError(f"member {userid} exists already")
            corp["members"][userid] = {
                "name": name or userid,
                "contact": customer_contact,
                "strategies": set(strategies),
            }
            corp["by_member"][userid] = []
            self._shared.changed()

    def new_external_userid(self) -> str:
        with self._shared.lock:
            while True:
                value = "wm" + "".join(self._shared.rng.choices(ID_ALPHABET, k=30))
                if not any(value in corp["customers"] for corp in self._corps.values()):
                    return value

    def add_customer(
        self,
        corp_id: str,
        external_userid: str | None = None,
        *,
        name: str = "",
        followers: Iterable[str] = (),
    ) -> str:
        """A customer followed by ``followers`` (member userids); returns its external_userid."""
        with self._shared.lock:
            corp = self._corp(corp_id)
            ext = external_userid or self.new_external_userid()
            if not _EXTERNAL_USERID.fullmatch(ext):
                raise ValueError(f"not an external_userid: {ext!r}")
            if ext in corp["customers"]:
                raise ValueError(f"customer {ext} exists already")
            corp["customers"][ext] = {"name": name or ext[-6:], "follows": {}}
            for userid in followers:
                self._follow(corp, ext, userid)
            self._shared.changed()
            return ext

    def follow(self, corp_id: str, external_userid: str, userid: str) -> None:
        """``userid`` adds the customer (a second member following the same customer)."""
        with self._shared.lock:
            self._follow(self._corp(corp_id), external_userid, userid)
            self._shared.changed()

    def _follow(self, corp: dict[str, Any], ext: str, userid: str) -> None:
        if userid not in corp["members"]:
            raise ValueError(f"unknown member {userid}")
        follows = corp["customers"][ext]["follows"]
        if userid not in follows:
            follows[userid] = {"createtime": int(self._shared.now()), "tags": {}}
            corp["by_member"][userid].append(ext)

    def set_strategies(self, corp_id: str, userid: str, strategies: Iterable[int]) -> None:
        """Move the member in or out of strategy ranges (a range changed in WeCom's admin)."""
        with self._shared.lock:
            self._corp(corp_id)["members"][userid]["strategies"] = set(strategies)
            self._shared.changed()

    # ---- reads for tests

    def tags_of(self, corp_id: str, userid: str, external_userid: str) -> list[str]:
        """The tag ids ``userid`` has put on the customer, in the order they were added (none
        when the member does not follow the customer)."""
        with self._shared.lock:
            customer = self._corp(corp_id)["customers"][external_userid]
            follow = customer["follows"].get(userid)
            return list(follow["tags"]) if follow is not None else []

    def followers(self, corp_id: str, external_userid: str) -> list[str]:
        with self._shared.lock:
            return list(self._corp(corp_id)["customers"][external_userid]["follows"])

    def customers_of(self, corp_id: str, userid: str) -> list[str]:
        with self._shared.lock:
            return list(self._corp(corp_id)["by_member"][userid])

    def has_members(self, corp_id: str) -> bool:
        with self._shared.lock:
            corp = self._corps.get(corp_id)
            return bool(corp and corp["members"])

    def members(self, corp_id: str) -> list[str]:
        with self._shared.lock:
            return list(self._corp(corp_id)["members"])

    # ---- endpoints

    def get_follow_user_list(self, corp_id: str, query: dict[str, str]) -> dict[str, Any]:
        with self._shared.lock:
            members = self._corp(corp_id)["members"]
            return {**OK, "follow_user": [u for u, m in members.items() if m["contact"]]}

    def member_list(self, corp_id: str, query: dict[str, str]) -> dict[str, Any]:
        """``GET externalcontact/list?userid=``: one member's customers."""
        with self._shared.lock:
            corp = self._corp(corp_id)
            userid = _userid(query.get("userid"), corp)
            customers = corp["by_member"][userid]
            if not customers:
                # Production's answer for a member without customers, not an empty list.
                raise PlatformError(ERR_NOT_THIS_MEMBERS_CUSTOMER, "not external contact")
            return {**OK, "external_userid": list(customers)}

    def batch_get_by_user(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        userids = body.get("userid_list")
        if (
            not isinstance(userids, list)
            or not userids
            or len(userids) > BATCH_USERIDS_MAX
            or not all(isinstance(u, str) for u in userids)
        ):
            raise PlatformError(
                40058, f"invalid userid_list: 1 to {BATCH_USERIDS_MAX} userids are required"
            )
        limit = body.get("limit", BATCH_LIMIT_DEFAULT)
        if not is_int(limit) or not 1 <= limit <= BATCH_LIMIT_MAX:
            raise PlatformError(40058, f"invalid limit: 1..{BATCH_LIMIT_MAX} required")
        member_at, customer_at = self._cursor(body.get("cursor"))
        with self._shared.lock:
            corp = self._corp(corp_id)
            order = list(dict.fromkeys(_userid(u, corp) for u in userids))
            items: list[dict[str, Any]] = []
            position = (member_at, customer_at)
            while position[0] < len(order) and len(items) < limit:
                userid = order[position[0]]
                customers = corp["by_member"][userid]
                if position[1] >= len(customers):
                    position = (position[0] + 1, 0)
                    continue
                ext = customers[position[1]]
                items.append(self._contact(corp, ext, userid))
                position = (position[0], position[1] + 1)
            more = any(
                len(corp["by_member"][order[i]]) > (position[1] if i == position[0] else 0)
                for i in range(position[0], len(order))
            )
            raw = f"{_CURSOR_PREFIX}{position[0]}:{position[1]}".encode()
            next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=") if more else ""
            return {**OK, "external_contact_list": items, "next_cursor": next_cursor}

    @staticmethod
    def _cursor(value: object) -> tuple[int, int]:
        if value in (None, ""):
            return 0, 0
        if not isinstance(value, str):
            raise PlatformError(40058, "invalid cursor")
        try:
            decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            if not decoded.startswith(_CURSOR_PREFIX):
                raise ValueError(decoded)
            member_at, customer_at = (int(n) for n in decoded[len(_CURSOR_PREFIX) :].split(":"))
            if member_at < 0 or customer_at < 0:
                raise ValueError(decoded)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise PlatformError(40058, "invalid cursor") from None
        return member_at, customer_at

    @staticmethod
    def _contact(corp: dict[str, Any], ext: str, userid: str) -> dict[str, Any]:
        customer = corp["customers"][ext]
        follow = customer["follows"][userid]
        return {
            "external_contact": {
                "external_userid": ext,
                "name": customer["name"],
                "type": 1,
                "avatar": "",
                "gender": 0,
            },
            "follow_info": {
                "userid": userid,
                "remark": "",
                "description": "",
                "createtime": follow["createtime"],
                "tag_id": list(follow["tags"]),
                "remark_mobiles": [],
                "add_way": 0,
                "oper_userid": userid,
            },
        }

    def mark_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        add = _tag_ids(body.get("add_tag"), "add_tag")
        remove = _tag_ids(body.get("remove_tag"), "remove_tag")
        if not add and not remove:
            raise PlatformError(40058, "add_tag and remove_tag may not both be empty")
        ext = body.get("external_userid")
        with self._shared.lock:
            corp = self._corp(corp_id)
            userid = _userid(body.get("userid"), corp)
            if not isinstance(ext, str) or ext not in corp["customers"]:
                raise PlatformError(ERR_CUSTOMER_UNKNOWN, "invalid external userid")
            follow = corp["customers"][ext]["follows"].get(userid)
            if follow is None:
                raise PlatformError(ERR_NOT_THIS_MEMBERS_CUSTOMER, "not external contact")
            member = corp["members"][userid]
            for tag_id in (*add, *remove):
                exists, strategy_id = self._tag_strategy(corp_id, tag_id)
                if not exists:
                    raise PlatformError(40068, f"invalid tag id: {tag_id}")
                if strategy_id is not None and strategy_id not in member["strategies"]:
                    raise PlatformError(
                        ERR_OUTSIDE_STRATEGY_RANGE,
                        f"no privilege: {userid} is outside the range of strategy {strategy_id}",
                    )
            tags: dict[str, None] = follow["tags"]
            adding = [t for t in add if t not in tags and t not in remove]
            if len(tags) + len(adding) > TAGS_PER_CUSTOMER_MAX:
                raise PlatformError(
                    ERR_TAG_CAP,
                    f"too many tags: a member may put at most {TAGS_PER_CUSTOMER_MAX} tags "
                    "on one customer",
                )
            for tag_id in adding:
                tags[tag_id] = None
            for tag_id in remove:
                tags.pop(tag_id, None)
            self._shared.changed()
            return dict(OK)

    def put_tags(self, corp_id: str, userid: str, external_userid: str, tag_ids: list[str]) -> None:
        """Tags held already, without the rules (a test filling a customer up to the cap)."""
        with self._shared.lock:
            follow = self._corp(corp_id)["customers"][external_userid]["follows"][userid]
            follow["tags"].update(dict.fromkeys(tag_ids))
            self._shared.changed()

    # ---- snapshots (the caller holds the lock)

    def snapshot(self) -> dict[str, Any]:
        return {
            corp_id: {
                "members": [
                    {
                        "userid": userid,
                        "name": m["name"],
                        "contact": m["contact"],
                        "strategies": sorted(m["strategies"]),
                    }
                    for userid, m in corp["members"].items()
                ],
                "customers": [
                    {
                        "external_userid": ext,
                        "name": c["name"],
                        "follows": [
                            {"userid": u, "createtime": f["createtime"], "tags": list(f["tags"])}
                            for u, f in c["follows"].items()
                        ],
                    }
                    for ext, c in corp["customers"].items()
                ],
                "by_member": {u: list(exts) for u, exts in corp["by_member"].items()},
            }
            for corp_id, corp in self._corps.items()
        }

    def restore(self, corps: dict[str, Any]) -> None:
        for corp_id, c in corps.items():
            corp = self._corp(corp_id)
            for m in c.get("members", []):
                corp["members"][m["userid"]] = {
                    "name": m["name"],
                    "contact": m.get("contact", True),
                    "strategies": set(m.get("strategies", [])),
                }
                corp["by_member"][m["userid"]] = []
            for item in c.get("customers", []):
                corp["customers"][item["external_userid"]] = {
                    "name": item["name"],
                    "follows": {
                        f["userid"]: {
                            "createtime": f["createtime"],
                            "tags": dict.fromkeys(f.get("tags", [])),
                        }
                        for f in item.get("follows", [])
                    },
                }
            for userid, exts in c.get("by_member", {}).items():
                corp["by_member"][userid] = list(exts)
