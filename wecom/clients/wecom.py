"""WeCom server API: access token, customer strategies (规则组) and their tags.

Seed 003 and PLATFORM.md section 2 are the specification.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Unpack

from django.utils.translation import gettext_lazy as _

from wecom.clients.errors import WECOM, PlatformAPIError, PlatformInputError
from wecom.clients.tokens import FetchedToken, read_token
from wecom.clients.transport import (
    Endpoint,
    TokenAuthenticatedClient,
    TransportOptions,
    credential_key,
    text_field,
)
from wecom.rules import (
    WECOM_BY_USER_MEMBERS_MAX,
    WECOM_BY_USER_PAGE_MAX,
    validate_external_userid,
    validate_member_userid,
    validate_order,
    validate_tag_name,
    validate_wecom_tag_ids,
)

GET_TOKEN = Endpoint("/cgi-bin/gettoken", method="GET", authed=False)
STRATEGY_LIST = Endpoint("/cgi-bin/externalcontact/customer_strategy/list")
STRATEGY_GET = Endpoint("/cgi-bin/externalcontact/customer_strategy/get")
TAG_LIST = Endpoint("/cgi-bin/externalcontact/get_strategy_tag_list")
# Adding twice after a lost answer would fail on the duplicate name, deleting twice on the
# missing id: neither is resent after a timeout.
TAG_ADD = Endpoint("/cgi-bin/externalcontact/add_strategy_tag", idempotent=False)
TAG_EDIT = Endpoint("/cgi-bin/externalcontact/edit_strategy_tag")
TAG_DELETE = Endpoint("/cgi-bin/externalcontact/del_strategy_tag", idempotent=False)

STRATEGY_PAGE_LIMIT = 1000

# Customers (PLATFORM.md 2, "Corporate tags and tagging customers").
FOLLOW_USERS = Endpoint("/cgi-bin/externalcontact/get_follow_user_list", method="GET")
MEMBER_CUSTOMERS = Endpoint("/cgi-bin/externalcontact/list", method="GET")
CUSTOMERS_BY_USER = Endpoint("/cgi-bin/externalcontact/batch/get_by_user")
# Adding a tag the customer holds, or removing one it lacks, changes nothing: safe to resend.
MARK_TAG = Endpoint("/cgi-bin/externalcontact/mark_tag")
# WeCom's answer to ``list`` for a member without customers (not an empty list).
NO_CUSTOMERS_ERRCODE = 84061

_EMPTY_GROUP = _("A tag group cannot be empty: add at least one tag.")
_NOTHING_TO_CHANGE = _("Nothing to change: give a new name or a new order.")
_NOTHING_TO_DELETE = _("Nothing to delete: give at least one tag or tag group.")
_NOTHING_TO_MARK = _("Nothing to change: give at least one tag to add or to remove.")
_ADD_AND_REMOVE = _("A tag cannot be both added and removed in the same change: %(tags)s.")
_TOO_MANY_MEMBERS = _("At most %(limit)d members per call; %(count)d were given.")


@dataclass(frozen=True)
class StrategyPage:
    strategy_ids: list[int]
    next_cursor: str | None


@dataclass(frozen=True)
class Strategy:
    strategy_id: int
    parent_id: int
    name: str
    create_time: int
    admin_list: list[str] = field(default_factory=list)
    privilege: dict[str, Any] = field(default_factory=dict)

    @property
    def is_first_level(self) -> bool:
        return self.parent_id == 0


@dataclass(frozen=True)
class StrategyTag:
    id: str
    name: str
    order: int
    create_time: int


@dataclass(frozen=True)
class StrategyTagGroup:
    group_id: str
    group_name: str
    order: int
    create_time: int
    strategy_id: int | None
    tags: list[StrategyTag]


@dataclass(frozen=True)
class NewTag:
    name: str
    order: int | None = None


@dataclass(frozen=True)
class CustomerFollow:
    """One (customer, member) of ``batch/get_by_user``: the member's own tags on that customer."""

    external_userid: str
    name: str
    userid: str
    tag_ids: list[str]


@dataclass(frozen=True)
class CustomerPage:
    follows: list[CustomerFollow]
    next_cursor: str | None


def _customer_page(answer: dict[str, Any]) -> CustomerPage:
    follows = []
    for item in answer.get("external_contact_list") or []:
        contact, follow = item["external_contact"], item["follow_info"]
        follows.append(
            CustomerFollow(
                external_userid=text_field(contact, "external_userid"),
                name=str(contact.get("name", "")),
                userid=text_field(follow, "userid"),
                tag_ids=[str(t) for t in follow.get("tag_id") or []],
            )
        )
    return CustomerPage(follows=follows, next_cursor=answer.get("next_cursor") or None)


def _strategy_page(answer: dict[str, Any]) -> StrategyPage:
    return StrategyPage(
        strategy_ids=[int(item["strategy_id"]) for item in answer.get("strategy") or []],
        next_cursor=answer.get("next_cursor") or None,
    )


def _strategy(answer: dict[str, Any]) -> Strategy:
    strategy = answer["strategy"]
    return Strategy(
        strategy_id=int(strategy["strategy_id"]),
        parent_id=int(strategy.get("parent_id", 0)),
        name=str(strategy.get("strategy_name", "")),
        create_time=int(strategy.get("create_time", 0)),
        admin_list=list(strategy.get("admin_list") or []),
        privilege=dict(strategy.get("privilege") or {}),
    )


def _group_from(answer: dict[str, Any]) -> StrategyTagGroup:
    return StrategyTagGroup(
        group_id=text_field(answer, "group_id"),
        group_name=str(answer.get("group_name", "")),
        order=int(answer.get("order", 0)),
        create_time=int(answer.get("create_time", 0)),
        strategy_id=int(answer["strategy_id"]) if answer.get("strategy_id") is not None else None,
        tags=[
            StrategyTag(
                id=text_field(tag, "id"),
                name=str(tag.get("name", "")),
                order=int(tag.get("order", 0)),
                create_time=int(tag.get("create_time", 0)),
            )
            for tag in answer.get("tag") or []
        ],
    )


class WeComClient(TokenAuthenticatedClient):
    platform = WECOM
    base_url_setting = "WECOM_API_BASE"

    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(credential_key=credential_key(WECOM, corp_id, secret), **options)
        self._corp_id = corp_id
        self._secret = secret

    def __repr__(self) -> str:
        return f"WeComClient(corp_id={self._corp_id!r})"

    # -- token --------------------------------------------------------------------------------

    def _fetch_token(self) -> FetchedToken:
        return self._call(
            GET_TOKEN,
            params={"corpid": self._corp_id, "corpsecret": self._secret},
            read=read_token,
        )

    def verify_connection(self) -> None:
        # The first page of one strategy: authenticated, read-only, and it needs the very
        # permission (customer contact) the console works with.
        self.strategy_list(limit=1)

    # -- strategies ---------------------------------------------------------------------------

    def strategy_list(self, *, cursor: str = "", limit: int = STRATEGY_PAGE_LIMIT) -> StrategyPage:
        return self._call(
            STRATEGY_LIST, body={"cursor": cursor, "limit": limit}, read=_strategy_page
        )

    def strategy_ids(self) -> Iterator[int]:
        """Every strategy id, following the cursor to the last page."""
        cursor = ""
        while True:
            page = self.strategy_list(cursor=cursor)
            yield from page.strategy_ids
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def strategy_get(self, strategy_id: int) -> Strategy:
        return self._call(STRATEGY_GET, body={"strategy_id": strategy_id}, read=_strategy)

    # -- strategy tags ------------------------------------------------------------------------

    def strategy_tag_list(
        self,
        *,
        strategy_id: int | None = None,
        tag_ids: Sequence[str] = (),
        group_ids: Sequence[str] = (),
    ) -> list[StrategyTagGroup]:
        body: dict[str, Any] = {}
        if strategy_id is not None:
            body["strategy_id"] = strategy_id
        if group_ids:
            # With both filters the platform ignores tag_id; sending it would only mislead.
            body["group_id"] = list(group_ids)
        elif tag_ids:
            body["tag_id"] = list(tag_ids)
        return self._call(
            TAG_LIST,
            body=body,
            read=lambda answer: [_group_from(group) for group in answer.get("tag_group") or []],
        )

    def strategy_tag_add(
        self,
        *,
        strategy_id: int,
        tags: Sequence[NewTag],
        group_id: str | None = None,
        group_name: str | None = None,
        group_order: int | None = None,
    ) -> StrategyTagGroup:
        """Add tags to an existing group (``group_id``) or to the group named ``group_name``,
        which is created unless the strategy has a group of that name already."""
        if not tags:
            raise PlatformInputError(
                platform=WECOM, endpoint=TAG_ADD.path, explanation=_EMPTY_GROUP
            )
        body: dict[str, Any] = {"strategy_id": strategy_id}
        if group_id:
            body["group_id"] = group_id
        else:
            self._check(validate_tag_name, group_name, TAG_ADD)
            body["group_name"] = group_name
            if group_order is not None:
                self._check(validate_order, group_order, TAG_ADD)
                body["order"] = group_order
        wire_tags = []
        for tag in tags:
            self._check(validate_tag_name, tag.name, TAG_ADD)
            item: dict[str, Any] = {"name": tag.name}
            if tag.order is not None:
                self._check(validate_order, tag.order, TAG_ADD)
                item["order"] = tag.order
            wire_tags.append(item)
        body["tag"] = wire_tags
        return self._call(
            TAG_ADD,
            body=body,
            read=lambda answer: _group_from({"strategy_id": strategy_id, **answer["tag_group"]}),
        )

    def strategy_tag_edit(
        self, *, id: str, name: str | None = None, order: int | None = None
    ) -> None:
        """Rename or reorder a tag or a tag group (``id`` is either's id)."""
        body: dict[str, Any] = {"id": id}
        if name is not None:
            self._check(validate_tag_name, name, TAG_EDIT)
            body["name"] = name
        if order is not None:
            self._check(validate_order, order, TAG_EDIT)
            body["order"] = order
        if len(body) == 1:
            raise PlatformInputError(
                platform=WECOM, endpoint=TAG_EDIT.path, explanation=_NOTHING_TO_CHANGE
            )
        self._call(TAG_EDIT, body=body)

    def strategy_tag_delete(
        self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()
    ) -> None:
        """Delete tags and whole groups; a group left without tags disappears with them."""
        if not tag_ids and not group_ids:
            raise PlatformInputError(
                platform=WECOM, endpoint=TAG_DELETE.path, explanation=_NOTHING_TO_DELETE
            )
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        self._call(TAG_DELETE, body=body)

    # -- customers (members, their customers, tags on customers) -------------------------------

    def follow_users(self) -> list[str]:
        """The userids of the members with customer contact enabled."""
        return self._call(
            FOLLOW_USERS, read=lambda answer: [str(u) for u in answer.get("follow_user") or []]
        )

    def member_customers(self, userid: str) -> list[str]:
        """One member's customers (external_userids); a member without any has none."""
        self._check(validate_member_userid, userid, MEMBER_CUSTOMERS)
        try:
            return self._call(
                MEMBER_CUSTOMERS,
                params={"userid": userid},
                read=lambda answer: [str(e) for e in answer.get("external_userid") or []],
            )
        except PlatformAPIError as error:
            if error.errcode == NO_CUSTOMERS_ERRCODE:
                return []
            raise

    def customers_page(
        self, userids: Sequence[str], *, cursor: str = "", limit: int = WECOM_BY_USER_PAGE_MAX
    ) -> CustomerPage:
        """One page of ``batch/get_by_user``: (customer, member) pairs of up to 100 members."""
        if not 1 <= len(userids) <= WECOM_BY_USER_MEMBERS_MAX:
            raise PlatformInputError(
                platform=WECOM,
                endpoint=CUSTOMERS_BY_USER.path,
                explanation=_TOO_MANY_MEMBERS,
                explanation_params={"limit": WECOM_BY_USER_MEMBERS_MAX, "count": len(userids)},
            )
        for userid in userids:
            self._check(validate_member_userid, userid, CUSTOMERS_BY_USER)
        body = {"userid_list": list(userids), "cursor": cursor, "limit": limit}
        return self._call(CUSTOMERS_BY_USER, body=body, read=_customer_page)

    def customers_by_members(self, userids: Sequence[str]) -> Iterator[CustomerPage]:
        """Every (customer, member) pair of ``userids``, page by page: 100 members per call
        sequence, each followed to its last page."""
        unique = list(dict.fromkeys(userids))
        for start in range(0, len(unique), WECOM_BY_USER_MEMBERS_MAX):
            chunk = unique[start : start + WECOM_BY_USER_MEMBERS_MAX]
            cursor = ""
            while True:
                page = self.customers_page(chunk, cursor=cursor)
                yield page
                if not page.next_cursor:
                    break
                cursor = page.next_cursor

    def customer_tag_mark(
        self,
        userid: str,
        external_userid: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> None:
        """Add and/or remove tags (corporate or strategy) that the member ``userid`` holds on
        one customer: WeCom tags a customer per member, one customer per call."""
        self._check(validate_member_userid, userid, MARK_TAG)
        self._check(validate_external_userid, external_userid, MARK_TAG)
        self._check(validate_wecom_tag_ids, [*add, *remove], MARK_TAG)
        if not add and not remove:
            raise PlatformInputError(
                platform=WECOM, endpoint=MARK_TAG.path, explanation=_NOTHING_TO_MARK
            )
        both = sorted(set(add) & set(remove))
        if both:
            raise PlatformInputError(
                platform=WECOM,
                endpoint=MARK_TAG.path,
                explanation=_ADD_AND_REMOVE,
                explanation_params={"tags": ", ".join(both)},
            )
        body: dict[str, Any] = {"userid": userid, "external_userid": external_userid}
        if add:
            body["add_tag"] = list(add)
        if remove:
            body["remove_tag"] = list(remove)
        self._call(MARK_TAG, body=body)
