"""Official Account (公众号) API: stable access token and user tags.

Seed 001 and PLATFORM.md section 3 are the specification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Unpack

from wecom.clients.errors import WECHAT
from wecom.clients.tokens import FetchedToken, read_token
from wecom.clients.transport import (
    Endpoint,
    TokenAuthenticatedClient,
    TransportOptions,
    credential_key,
)
from wecom.rules import (
    OA_BATCH_SIZE_MAX,
    OA_TAG_NAME_MAX_LENGTH,
    validate_oa_tag_id,
    validate_openid,
    validate_openid_batch,
    validate_tag_name,
)

STABLE_TOKEN = Endpoint("/cgi-bin/stable_token", authed=False)
TAGS_GET = Endpoint("/cgi-bin/tags/get", method="GET")
# A lost answer to create or delete must not be resent: the second would fail on the duplicate
# name or the missing id although the first did what was asked.
TAG_CREATE = Endpoint("/cgi-bin/tags/create", idempotent=False)
TAG_UPDATE = Endpoint("/cgi-bin/tags/update")
TAG_DELETE = Endpoint("/cgi-bin/tags/delete", idempotent=False)
BATCH_TAGGING = Endpoint("/cgi-bin/tags/members/batchtagging")
BATCH_UNTAGGING = Endpoint("/cgi-bin/tags/members/batchuntagging")
USER_TAGS = Endpoint("/cgi-bin/tags/getidlist")
TAG_FOLLOWERS = Endpoint("/cgi-bin/user/tag/get")

_validate_oa_tag_name = partial(validate_tag_name, max_length=OA_TAG_NAME_MAX_LENGTH)


@dataclass(frozen=True)
class UserTag:
    id: int
    name: str
    count: int = 0


@dataclass(frozen=True)
class FollowerPage:
    count: int
    openids: list[str]
    next_openid: str


def _user_tag(tag: dict[str, Any]) -> UserTag:
    return UserTag(id=int(tag["id"]), name=str(tag.get("name", "")), count=int(tag.get("count", 0)))


def _follower_page(answer: dict[str, Any]) -> FollowerPage:
    openids = (answer.get("data") or {}).get("openid") or []
    if not isinstance(openids, list):
        raise TypeError("data.openid is not a list")
    return FollowerPage(
        count=int(answer.get("count", 0)),
        openids=[str(openid) for openid in openids],
        next_openid=str(answer.get("next_openid") or ""),
    )


class OfficialAccountClient(TokenAuthenticatedClient):
    platform = WECHAT
    base_url_setting = "WECHAT_API_BASE"

    def __init__(
        self,
        *,
        appid: str,
        secret: str,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(credential_key=credential_key(WECHAT, appid, secret), **options)
        self._appid = appid
        self._secret = secret

    def __repr__(self) -> str:
        return f"OfficialAccountClient(appid={self._appid!r})"

    # -- token --------------------------------------------------------------------------------

    def _fetch_token(self) -> FetchedToken:
        # force_refresh false: while the token is valid every worker gets the same one.
        return self._call(
            STABLE_TOKEN,
            body={
                "grant_type": "client_credential",
                "appid": self._appid,
                "secret": self._secret,
                "force_refresh": False,
            },
            read=read_token,
        )

    def verify_connection(self) -> None:
        # The account's tag list: authenticated and read-only.
        self.tags()

    # -- tags ---------------------------------------------------------------------------------

    def tags(self) -> list[UserTag]:
        return self._call(
            TAGS_GET, read=lambda answer: [_user_tag(tag) for tag in answer.get("tags") or []]
        )

    def tag_create(self, *, name: str) -> UserTag:
        self._check(_validate_oa_tag_name, name, TAG_CREATE)
        return self._call(
            TAG_CREATE, body={"tag": {"name": name}}, read=lambda answer: _user_tag(answer["tag"])
        )

    def tag_update(self, *, tag_id: int, name: str) -> None:
        self._check(validate_oa_tag_id, tag_id, TAG_UPDATE)
        self._check(_validate_oa_tag_name, name, TAG_UPDATE)
        self._call(TAG_UPDATE, body={"tag": {"id": tag_id, "name": name}})

    def tag_delete(self, *, tag_id: int) -> None:
        self._check(validate_oa_tag_id, tag_id, TAG_DELETE)
        self._call(TAG_DELETE, body={"tag": {"id": tag_id}})

    # -- members ------------------------------------------------------------------------------

    def batch_tag(self, *, tag_id: int, openids: Sequence[str]) -> None:
        """Tag up to 50 followers at once (PLATFORM.md 3: the platform's cap per call)."""
        self._check(
            partial(validate_openid_batch, batch_size=OA_BATCH_SIZE_MAX), openids, BATCH_TAGGING
        )
        self._call(BATCH_TAGGING, body={"openid_list": list(openids), "tagid": tag_id})

    def batch_untag(self, *, tag_id: int, openids: Sequence[str]) -> None:
        self._check(
            partial(validate_openid_batch, batch_size=OA_BATCH_SIZE_MAX), openids, BATCH_UNTAGGING
        )
        self._call(BATCH_UNTAGGING, body={"openid_list": list(openids), "tagid": tag_id})

    def user_tag_ids(self, *, openid: str) -> list[int]:
        self._check(validate_openid, openid, USER_TAGS)
        return self._call(
            USER_TAGS,
            body={"openid": openid},
            read=lambda answer: [int(tag_id) for tag_id in answer.get("tagid_list") or []],
        )

    def tag_followers(self, *, tag_id: int, next_openid: str = "") -> FollowerPage:
        return self._call(
            TAG_FOLLOWERS, body={"tagid": tag_id, "next_openid": next_openid}, read=_follower_page
        )
