"""WeCom server API: access token, customer strategies (规则组) and their tags, and the corp's
corporate tags (企业客户标签).

Seed 003 and PLATFORM.md section 2 are the specification. Strategy tags and corporate tags are
one tag library on two sets of endpoints (a strategy tag call names its strategy): one
implementation, picked by ``TagEndpoints``.
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
CORP_TAG_LIST = Endpoint("/cgi-bin/externalcontact/get_corp_tag_list")
CORP_TAG_ADD = Endpoint("/cgi-bin/externalcontact/add_corp_tag", idempotent=False)
CORP_TAG_EDIT = Endpoint("/cgi-bin/externalcontact/edit_corp_tag")
CORP_TAG_DELETE = Endpoint("/cgi-bin/externalcontact/del_corp_tag", idempotent=False)


@dataclass(frozen=True)
class TagEndpoints:
    """The four endpoints of one tag library."""

    list: Endpoint
    add: Endpoint
    edit: Endpoint
    delete: Endpoint


STRATEGY_TAGS = TagEndpoints(list=TAG_LIST, add=TAG_ADD, edit=TAG_EDIT, delete=TAG_DELETE)
CORP_TAGS = TagEndpoints(
    list=CORP_TAG_LIST, add=CORP_TAG_ADD, edit=CORP_TAG_EDIT, delete=CORP_TAG_DELETE
)

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
    """A tag group of either library: ``strategy_id`` is None for a corporate tag group (and
    where an answer does not say)."""

    group_id: str
    group_name: str
    order: int
    create_time: int
    strategy_id: int | None
    tags: list[StrategyTag]


# The same shapes name corporate tags too.
WeComTag = StrategyTag
WeComTagGroup = StrategyTagGroup


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
        return self._tag_list(STRATEGY_TAGS, body, tag_ids=tag_ids, group_ids=group_ids)

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
        return self._tag_add(
            STRATEGY_TAGS,
            {"strategy_id": strategy_id},
            tags=tags,
            group_id=group_id,
            group_name=group_name,
            group_order=group_order,
        )

    def strategy_tag_edit(
        self, *, id: str, name: str | None = None, order: int | None = None
    ) -> None:
        """Rename or reorder a tag or a tag group (``id`` is either's id)."""
        self._tag_edit(STRATEGY_TAGS, id=id, name=name, order=order)

    def strategy_tag_delete(
        self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()
    ) -> None:
        """Delete tags and whole groups; a group left without tags disappears with them."""
        self._tag_delete(STRATEGY_TAGS, tag_ids=tag_ids, group_ids=group_ids)

    # -- corporate tags (企业客户标签): the same library without strategies ---------------------

    def corp_tag_list(
        self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()
    ) -> list[StrategyTagGroup]:
        return self._tag_list(CORP_TAGS, {}, tag_ids=tag_ids, group_ids=group_ids)

    def corp_tag_add(
        self,
        *,
        tags: Sequence[NewTag],
        group_id: str | None = None,
        group_name: str | None = None,
        group_order: int | None = None,
    ) -> StrategyTagGroup:
        """Add corporate tags to an existing group (``group_id``) or to the group named
        ``group_name``, created unless the corp has a corporate group of that name."""
        return self._tag_add(
            CORP_TAGS,
            {},
            tags=tags,
            group_id=group_id,
            group_name=group_name,
            group_order=group_order,
        )

    def corp_tag_edit(self, *, id: str, name: str | None = None, order: int | None = None) -> None:
        """Rename or reorder a corporate tag or group; WeCom lets an app change only those it
        created (301002 otherwise)."""
        self._tag_edit(CORP_TAGS, id=id, name=name, order=order)

    def corp_tag_delete(
        self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()
    ) -> None:
        """Delete corporate tags and whole groups; only those the app created (301002)."""
        self._tag_delete(CORP_TAGS, tag_ids=tag_ids, group_ids=group_ids)

    # -- one implementation for both libraries --------------------------------------------------

    def _tag_list(
        self,
        endpoints: TagEndpoints,
        body: dict[str, Any],
        *,
        tag_ids: Sequence[str],
        group_ids: Sequence[str],
    ) -> list[StrategyTagGroup]:
        if group_ids:
            # With both filters the platform ignores tag_id; sending it would only mislead.
            body["group_id"] = list(group_ids)
        elif tag_ids:
            body["tag_id"] = list(tag_ids)
        return self._call(
            endpoints.list,
            body=body,
            read=lambda answer: [_group_from(group) for group in answer.get("tag_group") or []],
        )

    def _tag_add(
        self,
        endpoints: TagEndpoints,
        body: dict[str, Any],
        *,
        tags: Sequence[NewTag],
        group_id: str | None,
        group_name: str | None,
        group_order: int | None,
    ) -> StrategyTagGroup:
        endpoint = endpoints.add
        if not tags:
            raise PlatformInputError(
                platform=WECOM, endpoint=endpoint.path, explanation=_EMPTY_GROUP
            )
        if group_id:
            body["group_id"] = group_id
        else:
            self._check(validate_tag_name, group_name, endpoint)
            body["group_name"] = group_name
            if group_order is not None:
                self._check(validate_order, group_order, endpoint)
                body["order"] = group_order
        wire_tags = []
        for tag in tags:
            self._check(validate_tag_name, tag.name, endpoint)
            item: dict[str, Any] = {"name": tag.name}
            if tag.order is not None:
                self._check(validate_order, tag.order, endpoint)
                item["order"] = tag.order
            wire_tags.append(item)
        body["tag"] = wire_tags
        strategy_id = body.get("strategy_id")
        return self._call(
            endpoint,
            body=body,
            read=lambda answer: _group_from({**answer["tag_group"], "strategy_id": strategy_id}),
        )

    def _tag_edit(
        self, endpoints: TagEndpoints, *, id: str, name: str | None, order: int | None
    ) -> None:
        endpoint = endpoints.edit
        body: dict[str, Any] = {"id": id}
        if name is not None:
            self._check(validate_tag_name, name, endpoint)
            body["name"] = name
        if order is not None:
            self._check(validate_order, order, endpoint)
            body["order"] = order
        if len(body) == 1:
            raise PlatformInputError(
                platform=WECOM, endpoint=endpoint.path, explanation=_NOTHING_TO_CHANGE
            )
        self._call(endpoint, body=body)

    def _tag_delete(
        self, endpoints: TagEndpoints, *, tag_ids: Sequence[str], group_ids: Sequence[str]
    ) -> None:
        endpoint = endpoints.delete
        if not tag_ids and not group_ids:
            raise PlatformInputError(
                platform=WECOM, endpoint=endpoint.path, explanation=_NOTHING_TO_DELETE
            )
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        self._call(endpoint, body=body)

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

    def tag_library(self, *, corporate: bool) -> TagLibrary:
        """The strategy tags' or the corporate tags' calls, with one signature for both."""
        return TagLibrary(self, corporate=corporate)


class TagLibrary:
    """One tag library of the client's corp: services call the same four methods for strategy
    tags and corporate tags (``strategy_id`` is ignored for corporate tags)."""

    def __init__(self, client: WeComClient, *, corporate: bool) -> None:
        self.client = client
        self.corporate = corporate

    def list(
        self,
        *,
        strategy_id: int | None = None,
        tag_ids: Sequence[str] = (),
        group_ids: Sequence[str] = (),
    ) -> list[StrategyTagGroup]:
        if self.corporate:
            return self.client.corp_tag_list(tag_ids=tag_ids, group_ids=group_ids)
        return self.client.strategy_tag_list(
            strategy_id=strategy_id, tag_ids=tag_ids, group_ids=group_ids
        )

    def add(
        self,
        *,
        strategy_id: int | None,
        tags: Sequence[NewTag],
        group_id: str | None = None,
        group_name: str | None = None,
        group_order: int | None = None,
    ) -> StrategyTagGroup:
        body: dict[str, Any] = {} if self.corporate else {"strategy_id": strategy_id}
        return self.client._tag_add(
            CORP_TAGS if self.corporate else STRATEGY_TAGS,
            body,
            tags=tags,
            group_id=group_id,
            group_name=group_name,
            group_order=group_order,
        )

    def edit(self, *, id: str, name: str | None = None, order: int | None = None) -> None:
        endpoints = CORP_TAGS if self.corporate else STRATEGY_TAGS
        self.client._tag_edit(endpoints, id=id, name=name, order=order)

    def delete(self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> None:
        endpoints = CORP_TAGS if self.corporate else STRATEGY_TAGS
        self.client._tag_delete(endpoints, tag_ids=tag_ids, group_ids=group_ids)
