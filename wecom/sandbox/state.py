"""Data and rules of the three emulated platforms.

Everything a platform would decide lives here: who may call, what a body must hold, which
errcode a mistake earns, what is stored. The HTTP layer (server.py) only moves bytes and turns
``PlatformError`` into the JSON answer the platform would send.

One re-entrant lock guards all data; every public method takes it. Methods named after an
endpoint (``wecom_*``, ``oa_*``, ``chatbot_*``) take the decoded request and return the answer
dict, or raise ``PlatformError``. The set-up helpers (``add_*``, ``tag_users`` ...) go through the
same rules, so demo data and test fixtures can never hold what the platform would refuse.

The rules come from the seeds and PLATFORM.md (see /work/shared); nothing here is shared with the
console's own client code, so the sandbox can catch the console misreading the docs.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
import random
import re
import string
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "CHATBOT",
    "IGNORED_ELEMENTS",
    "OA_RESERVED_TAG_IDS",
    "WECHAT",
    "WECOM",
    "PlatformError",
    "SandboxState",
    "validate_reply_content",
]

WECOM = "wecom"
WECHAT = "wechat"
CHATBOT = "chatbot"
# How long a publish takes in the sandbox by default: long enough to see the bar move.
PUBLISH_SECONDS = 4.0
PLATFORMS = (WECOM, WECHAT, CHATBOT)

# ---- limits (PLATFORM.md sections 2 and 3) --------------------------------------------------
NAME_MAX_CHARS = 30
ORDER_LIMIT = 2**32
CORP_TAG_LIMIT = 10_000
STRATEGY_LIST_MAX_LIMIT = 1000
OA_MAX_TAGS = 100
OA_MAX_TAGS_PER_USER = 20
OA_MAX_BATCH = 50
OA_FIRST_TAG_ID = 100
OA_UNDELETABLE_FANS = 100_000
OA_PAGE_SIZE = 10_000
# 0/1/2 are the system tags (former groups: 未分组, 黑名单, 星标组). The real tags/get lists only
# 2 (星标组), which users can be tagged with; 0 and 1 cannot be listed, tagged, edited or deleted.
OA_RESERVED_TAG_IDS = frozenset({0, 1, 2})
OA_STAR_TAG = (2, "星标组")

_ID_ALPHABET = string.ascii_letters + string.digits + "_-"
_OPENID = re.compile(r"o[A-Za-z0-9_-]{27}")
_OPENID_PREFIX = re.compile(r"o[A-Za-z0-9_-]{5}")
_TOKEN_LENGTH = {WECOM: 214, WECHAT: 136}
_MAX_TOKEN_RECORDS = 20_000

_OK = {"errcode": 0, "errmsg": "ok"}

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


class PlatformError(ValueError):
    """A refusal the platform would answer with ``{"errcode": errcode, "errmsg": errmsg}``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


# ---- small validators ------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _wecom_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlatformError(40058, f"invalid {what}: a non-empty string is required")
    if len(value) > NAME_MAX_CHARS:
        raise PlatformError(
            40058,
            f"invalid {what}: {len(value)} characters, at most {NAME_MAX_CHARS} are allowed",
        )
    return value


def _wecom_order(value: object, what: str) -> int:
    if not _is_int(value) or not 0 <= value < ORDER_LIMIT:  # type: ignore[operator]
        raise PlatformError(40058, f"invalid {what}: an integer in [0, 2^32) is required")
    return value  # type: ignore[return-value]


def _id_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlatformError(40058, f"invalid {what}: a list of id strings is required")
    return value


def _oa_tag_name(value: object) -> str:
    if not isinstance(value, str):
        raise PlatformError(45158, "invalid tag name: a string is required")
    if not value.strip():
        raise PlatformError(45158, "invalid tag name: the name is empty")
    if len(value) > NAME_MAX_CHARS:
        raise PlatformError(45158, f"tag name too long: more than {NAME_MAX_CHARS} characters")
    return value


def _field(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


# Key of the chatbot request fields under which the server lists the elements the platform does
# not read (an <openid> outside <list> ...) as [path, text] pairs. "#" cannot start an XML name,
# so no element of the request can clash with it.
IGNORED_ELEMENTS = "#ignored"


def _field_list(fields: dict[str, Any], name: str) -> list[str]:
    value = fields.get(name)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.strip()]


# ---- chatbot reply content (seed 002, PLATFORM.md section 4) --------------------------------

_NEWS_ARTICLE_FIELDS = {"title", "description", "url", "picurl", "type"}
_IMAGE_FIELDS = {"media_id", "url"}
_MINIPROGRAM_FIELDS = {"title", "appid", "pagepath", "thumb_media_id", "thumb_url"}
_RICH_KINDS = ("news", "image", "miniprogrampage", "multimsg")


def _check_object(value: object, where: str, allowed: set[str], required: Iterable[str]) -> str:
    if not isinstance(value, dict):
        return f"{where} must be an object"
    unknown = sorted(set(value) - allowed)
    if unknown:
        return f"{where} has unknown fields {unknown}; allowed: {sorted(allowed)}"
    for key in required:
        if not isinstance(value.get(key), str) or not value[key].strip():
            return f"{where}.{key} is required (non-empty string)"
    for key, item in value.items():
        if not isinstance(item, str):
            return f"{where}.{key} must be a string"
    return ""


def _check_single(kind: str, payload: object, where: str) -> str:
    if kind == "news":
        if not isinstance(payload, dict) or set(payload) != {"articles"}:
            return f"{where}.news must be an object with exactly the key 'articles'"
        articles = payload["articles"]
        if not isinstance(articles, list) or not articles:
            return f"{where}.news.articles must be a non-empty list"
        for index, article in enumerate(articles):
            here = f"{where}.news.articles[{index}]"
            problem = _check_object(article, here, _NEWS_ARTICLE_FIELDS, ("title", "url"))
            if problem:
                return problem
            if "type" in article and article["type"] not in ("h5", "mp"):
                return f"{here}.type must be 'h5' or 'mp'"
        return ""
    if kind == "image":
        return _check_object(payload, f"{where}.image", _IMAGE_FIELDS, ("media_id",))
    if kind == "miniprogrampage":
        return _check_object(
            payload,
            f"{where}.miniprogrampage",
            _MINIPROGRAM_FIELDS,
            ("title", "appid", "pagepath", "thumb_media_id"),
        )
    return f"{where}: unknown kind {kind!r}"


def validate_reply_content(content: str) -> str:
    """Return what is wrong with an auto-reply ``content``, or "" when it is acceptable.

    Plain text is anything that does not start with "{". An object travels as JSON text with
    exactly one of the keys news / image / miniprogrampage / multimsg.
    """
    if not content.lstrip().startswith("{"):
        return ""
    try:
        value = json.loads(content)
    except ValueError as exc:
        return f"content starts with '{{' but is not valid JSON ({exc})"
    if not isinstance(value, dict) or len(value) != 1:
        return f"content JSON must be an object with exactly one of the keys {list(_RICH_KINDS)}"
    ((kind, payload),) = value.items()
    if kind not in _RICH_KINDS:
        return f"content JSON has unknown kind {kind!r}; expected one of {list(_RICH_KINDS)}"
    if kind != "multimsg":
        return _check_single(kind, payload, "content")
    if not isinstance(payload, list) or not payload:
        return "content.multimsg must be a non-empty list"
    for index, item in enumerate(payload):
        where = f"content.multimsg[{index}]"
        if isinstance(item, str):
            if not item.strip():
                return f"{where} is an empty string"
            continue
        if not isinstance(item, dict) or len(item) != 1:
            return f"{where} must be a string or an object with one of news/image/miniprogrampage"
        ((inner, inner_payload),) = item.items()
        if inner not in ("news", "image", "miniprogrampage"):
            return f"{where} has unknown kind {inner!r}"
        problem = _check_single(inner, inner_payload, where)
        if problem:
            return problem
    return ""


# ---- the state -------------------------------------------------------------------------------


class SandboxState:
    """Everything the three platforms know, behind one lock.

    ``clock`` (default ``time.time``) decides token expiry and create_time; tests may replace it
    (``state.clock = lambda: ...``) to expire tokens without waiting.
    """

    def __init__(
        self, *, seed: int | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], float] = clock or time.time
        # Reproducible ids with a seed; these are fake credentials, not secrets.
        self._rng = random.Random(seed)  # noqa: S311 - emulator ids, reproducible with --seed
        self.version = 0
        self._clear()

    def _clear(self) -> None:
        self._corps: dict[str, dict[str, Any]] = {}
        self._oa: dict[str, dict[str, Any]] = {}
        self._bots: dict[str, dict[str, Any]] = {}
        self._bot_by_token: dict[str, str] = {}
        # token -> {"platform", "key" (tuple), "expires_at", "revoked"}
        self._tokens: dict[str, dict[str, Any]] = {}
        # (platform, *key) -> current token
        self._current: dict[tuple[str, ...], str] = {}
        self._ids: set[str] = set()

    def _changed(self) -> None:
        self.version += 1

    def _now(self) -> float:
        return self.clock()

    def _new_et_id(self) -> str:
        while True:
            value = "et" + "".join(self._rng.choices(_ID_ALPHABET, k=22))
            if value not in self._ids:
                self._ids.add(value)
                return value

    # ================================================================ set-up helpers

    def add_wecom_app(
        self,
        corp_id: str,
        secret: str,
        *,
        agent_id: int | None = None,
        customer_contact: bool = True,
    ) -> None:
        """An app of a corp; ``customer_contact=False`` -> 48002 on externalcontact endpoints."""
        with self.lock:
            corp = self._corp(corp_id, create=True)
            corp["apps"][secret] = {"agent_id": agent_id, "customer_contact": customer_contact}
            self._changed()

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
        with self.lock:
            corp = self._corp(corp_id, create=True)
            if not _is_int(strategy_id) or strategy_id <= 0:
                raise ValueError("strategy_id must be a positive integer")
            if strategy_id in corp["strategies"]:
                raise ValueError(f"strategy {strategy_id} exists already")
            if parent_id and parent_id not in corp["strategies"]:
                raise ValueError(f"parent strategy {parent_id} does not exist")
            corp["strategies"][strategy_id] = {
                "strategy_id": strategy_id,
                "parent_id": parent_id,
                "strategy_name": name,
                "create_time": int(self._now()),
                "admin_list": list(admin_list if admin_list is not None else ["zhangsan"]),
                "privilege": dict(privilege if privilege is not None else _DEFAULT_PRIVILEGE),
            }
            self._changed()

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
        with self.lock:
            self._corp(corp_id)
            return self._add_strategy_tag(corp_id, body)["tag_group"]

    def set_corp_tag_count(self, corp_id: str, n: int) -> None:
        """Corp tags outside strategies, counted against the 10,000 tags of a corp."""
        if not _is_int(n) or n < 0:
            raise ValueError("n must be a non-negative integer")
        with self.lock:
            self._corp(corp_id, create=True)["corp_tag_count"] = n
            self._changed()

    def add_official_account(self, appid: str, secret: str, *, openid_prefix: str) -> None:
        if not _OPENID_PREFIX.fullmatch(openid_prefix):
            raise ValueError('openid_prefix must be "o" and 5 characters of [A-Za-z0-9_-]')
        with self.lock:
            if appid in self._oa:
                raise ValueError(f"official account {appid} exists already")
            star_id, star_name = OA_STAR_TAG
            self._oa[appid] = {
                "secret": secret,
                "openid_prefix": openid_prefix,
                "next_tag_id": OA_FIRST_TAG_ID,
                "tags": {star_id: self._new_oa_tag(star_id, star_name)},
            }
            self._changed()

    def add_oa_tag(self, appid: str, name: str) -> int:
        with self.lock:
            return self._oa_create(appid, {"tag": {"name": name}})["tag"]["id"]

    def tag_users(self, appid: str, tag_id: int, openids: Iterable[str]) -> None:
        """Tag any number of followers at once (no batch-size limit; every other rule holds)."""
        with self.lock:
            account = self._account(appid)
            self._oa_apply_tagging(account, tag_id, list(openids), tagging=True)

    def set_oa_tag_fan_count_override(self, appid: str, tag_id: int, n: int | None) -> None:
        """Report ``n`` as the tag's fan count (tags/get, the 100,000-fan delete rule);
        ``None`` goes back to counting the stored openids."""
        with self.lock:
            tag = self._account(appid)["tags"].get(tag_id)
            if tag is None:
                raise ValueError(f"no tag {tag_id} in {appid}")
            tag["count_override"] = n
            self._changed()

    def add_bot(
        self, appid: str, token: str, encoding_aes_key: str, *, review_passed: bool = True
    ) -> None:
        with self.lock:
            if appid in self._bots:
                raise ValueError(f"bot {appid} exists already")
            if token in self._bot_by_token:
                raise ValueError("another bot has this TOKEN")
            self._bots[appid] = {
                "appid": appid,
                "token": token,
                "encoding_aes_key": encoding_aes_key,
                "review_passed": review_passed,
                "labels": {},
                "skills": {},
                "online_skills": {},
            }
            self._bot_by_token[token] = appid
            self._changed()

    def set_publish_behaviour(
        self,
        appid: str,
        *,
        seconds: float = PUBLISH_SECONDS,
        fail_at: int | None = None,
        stuck_at: int | None = None,
        envelope: str = "top",
    ) -> None:
        """How the bot's next publishes go: ``seconds`` from 0 to 100 %; ``fail_at`` ends them
        with status 2 at that percentage, ``stuck_at`` keeps them syncing there for good.
        ``envelope`` is where aibot puts its fields: ``top`` or inside ``data``."""
        for value in (fail_at, stuck_at):
            if value is not None and (not isinstance(value, int) or not 0 <= value <= 100):
                raise ValueError("fail_at and stuck_at are percentages (0..100)")
        if not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        if envelope not in ("top", "data"):
            raise ValueError("envelope must be top or data")
        with self.lock:
            self._bots[appid]["behaviour"] = {
                "seconds": float(seconds),
                "fail_at": fail_at,
                "stuck_at": stuck_at,
                "envelope": envelope,
            }
            self._changed()

    def set_bot_review(self, appid: str, passed: bool) -> None:
        with self.lock:
            self._bots[appid]["review_passed"] = passed
            self._changed()

    # ================================================================ read helpers for tests

    def strategy_tag_count(self, corp_id: str) -> int:
        with self.lock:
            return sum(len(g["tags"]) for g in self._corp(corp_id)["groups"].values())

    def oa_tag_fans(self, appid: str, tag_id: int) -> set[str]:
        with self.lock:
            return set(self._account(appid)["tags"][tag_id]["fans"])

    def bot_labels(self, appid: str) -> dict[tuple[str, str], dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._bots[appid]["labels"])

    def bot_skills(self, appid: str) -> dict[tuple[str, str], dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._bots[appid]["skills"])

    def bot_online_skills(self, appid: str) -> dict[tuple[str, str], dict[str, Any]]:
        """What the bot's online environment answers with (the last publish that succeeded)."""
        with self.lock:
            return copy.deepcopy(self._bots[appid].get("online_skills", {}))

    def bot_ignored_elements(self, appid: str) -> dict[str, int]:
        """How many elements the bot's calls sent that the platform does not read, by path
        (``xml/openid``: an openid outside ``<list>``). Not platform data: not in snapshots."""
        with self.lock:
            return dict(self._bots[appid].get("ignored_elements", {}))

    # ================================================================ tokens

    def _issue(self, platform: str, key: tuple[str, ...], ttl: int, *, force: bool) -> dict:
        now = self._now()
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
        token = "".join(self._rng.choices(_ID_ALPHABET, k=_TOKEN_LENGTH[platform]))
        self._tokens[token] = {
            "platform": platform,
            "key": key,
            "expires_at": now + ttl,
            "revoked": False,
        }
        self._current[slot] = token
        self._changed()
        return {"access_token": token, "expires_in": int(ttl)}

    def _check_token(self, platform: str, token: str | None) -> tuple[str, ...]:
        if not token:
            raise PlatformError(41001, "access_token missing")
        record = self._tokens.get(token)
        if record is None or record["platform"] != platform:
            if platform == WECOM:
                raise PlatformError(40014, "invalid access_token")
            raise PlatformError(40001, "invalid credential, access_token is invalid or not latest")
        if record["revoked"] or self._now() >= record["expires_at"]:
            raise PlatformError(42001, "access_token expired")
        return record["key"]

    def invalidate_tokens(self, platform: str | None = None) -> int:
        """Every issued token (of ``platform``, or all) answers 42001 from now on."""
        if platform is not None and platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}; one of {PLATFORMS}")
        count = 0
        with self.lock:
            for record in self._tokens.values():
                if (platform is None or record["platform"] == platform) and not record["revoked"]:
                    record["revoked"] = True
                    count += 1
            if count:
                self._changed()
        return count

    def wecom_gettoken(self, query: dict[str, str], ttl: int) -> dict[str, Any]:
        corp_id = query.get("corpid", "")
        secret = query.get("corpsecret", "")
        if not corp_id:
            raise PlatformError(41002, "corpid missing")
        if not secret:
            raise PlatformError(41004, "corpsecret missing")
        with self.lock:
            corp = self._corps.get(corp_id)
            if corp is None:
                raise PlatformError(40013, "invalid corpid")
            if secret not in corp["apps"]:
                raise PlatformError(40001, "invalid secret")
            return {**_OK, **self._issue(WECOM, (corp_id, secret), ttl, force=False)}

    def oa_stable_token(self, body: dict[str, Any], ttl: int) -> dict[str, Any]:
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
        with self.lock:
            account = self._oa.get(appid)
            if account is None:
                raise PlatformError(40013, "invalid appid")
            if account["secret"] != secret:
                raise PlatformError(40125, "invalid appsecret")
            return self._issue(WECHAT, (appid, "stable"), ttl, force=force)

    def oa_plain_token(self, query: dict[str, str], ttl: int) -> dict[str, Any]:
        """GET /cgi-bin/token: each call issues a new token and ends the previous one."""
        if query.get("grant_type") != "client_credential":
            raise PlatformError(40002, "invalid grant_type")
        appid, secret = query.get("appid", ""), query.get("secret", "")
        if not appid:
            raise PlatformError(41002, "appid missing")
        if not secret:
            raise PlatformError(41004, "appsecret missing")
        with self.lock:
            account = self._oa.get(appid)
            if account is None:
                raise PlatformError(40013, "invalid appid")
            if account["secret"] != secret:
                raise PlatformError(40001, "invalid credential, appsecret is wrong")
            return self._issue(WECHAT, (appid, "plain"), ttl, force=True)

    # ================================================================ WeCom

    def _corp(self, corp_id: str, *, create: bool = False) -> dict[str, Any]:
        corp = self._corps.get(corp_id)
        if corp is None:
            if not create:
                raise ValueError(f"unknown corp {corp_id}")
            corp = self._corps[corp_id] = {
                "apps": {},
                "corp_tag_count": 0,
                "strategies": {},
                "groups": {},
                "tag_index": {},  # tag id -> group id
            }
        return corp

    def wecom_auth(self, token: str | None, *, customer_contact: bool) -> str:
        """Check the token (and the app's customer-contact permission); return the corp id."""
        with self.lock:
            corp_id, secret = self._check_token(WECOM, token)
            if customer_contact:
                app = self._corps[corp_id]["apps"].get(secret)
                if app is None or not app["customer_contact"]:
                    raise PlatformError(
                        48002,
                        "api forbidden: the app is not configured in 「客户联系 可调用接口的应用」",
                    )
            return corp_id

    def wecom_strategy_list(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        limit = body.get("limit", STRATEGY_LIST_MAX_LIMIT)
        if not _is_int(limit) or not 1 <= limit <= STRATEGY_LIST_MAX_LIMIT:
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
        with self.lock:
            ids = sorted(self._corp(corp_id)["strategies"])
        start = bisect.bisect_right(ids, after)
        page = ids[start : start + limit]
        answer: dict[str, Any] = {**_OK, "strategy": [{"strategy_id": i} for i in page]}
        if start + limit < len(ids):
            raw = f"strategy-after:{page[-1]}".encode()
            answer["next_cursor"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return answer

    def wecom_strategy_get(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        strategy_id = body.get("strategy_id")
        with self.lock:
            strategies = self._corp(corp_id)["strategies"]
            strategy = strategies.get(strategy_id) if _is_int(strategy_id) else None
            if strategy is None:
                raise PlatformError(40058, "invalid strategy_id")
            return {**_OK, "strategy": copy.deepcopy(strategy)}

    @staticmethod
    def _group_answer(group: dict[str, Any], tags: Iterable[dict[str, Any]] | None = None) -> dict:
        chosen = list(group["tags"].values()) if tags is None else list(tags)
        chosen.sort(key=lambda t: -t["order"])
        return {
            "group_id": group["group_id"],
            "group_name": group["group_name"],
            "create_time": group["create_time"],
            "order": group["order"],
            "strategy_id": group["strategy_id"],
            "tag": [dict(t) for t in chosen],
        }

    def wecom_get_strategy_tag_list(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        tag_ids = _id_list(body.get("tag_id"), "tag_id")
        group_ids = _id_list(body.get("group_id"), "group_id")
        strategy_id = body.get("strategy_id")
        with self.lock:
            corp = self._corp(corp_id)
            if strategy_id is not None and (
                not _is_int(strategy_id) or strategy_id not in corp["strategies"]
            ):
                raise PlatformError(40058, "invalid strategy_id")
            groups = [
                g
                for g in corp["groups"].values()
                if strategy_id is None or g["strategy_id"] == strategy_id
            ]
            groups.sort(key=lambda g: -g["order"])
            if group_ids:  # group_id wins; tag_id is ignored
                wanted = set(group_ids)
                result = [self._group_answer(g) for g in groups if g["group_id"] in wanted]
            elif tag_ids:
                wanted = set(tag_ids)
                result = []
                for g in groups:
                    chosen = [t for t in g["tags"].values() if t["id"] in wanted]
                    if chosen:
                        result.append(self._group_answer(g, chosen))
            else:
                result = [self._group_answer(g) for g in groups]
            return {**_OK, "tag_group": result}

    def wecom_add_strategy_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._add_strategy_tag(corp_id, body)

    def _add_strategy_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        corp = self._corp(corp_id)
        strategy_id = body.get("strategy_id")
        if not _is_int(strategy_id):
            raise PlatformError(40058, "invalid strategy_id: an integer is required")
        strategy = corp["strategies"].get(strategy_id)
        if strategy is None:
            raise PlatformError(40058, "invalid strategy_id")
        if strategy["parent_id"] != 0:
            raise PlatformError(
                40058, "invalid strategy_id: tags can only be added to first-level strategies"
            )
        raw_tags = body.get("tag")
        if not isinstance(raw_tags, list) or not raw_tags:
            raise PlatformError(40058, "invalid tag: a non-empty tag list is required")
        new_tags: dict[str, int] = {}  # name -> order; first occurrence wins
        for item in raw_tags:
            if not isinstance(item, dict):
                raise PlatformError(40058, "invalid tag: each tag must be an object")
            name = _wecom_name(item.get("name"), "tag name")
            order = _wecom_order(item.get("order", 0), "tag order")
            new_tags.setdefault(name, order)

        group_id = body.get("group_id")
        group: dict[str, Any] | None = None
        group_name = group_order = None
        if group_id:
            group = corp["groups"].get(group_id) if isinstance(group_id, str) else None
            if group is None or group["strategy_id"] != strategy_id:
                raise PlatformError(40068, "invalid group_id: no such group in this strategy")
        else:
            if body.get("group_name") in (None, ""):
                raise PlatformError(40058, "group_name or group_id is required")
            group_name = _wecom_name(body.get("group_name"), "group_name")
            group_order = _wecom_order(body.get("order", 0), "group order")
            for candidate in corp["groups"].values():
                same_strategy = candidate["strategy_id"] == strategy_id
                if same_strategy and candidate["group_name"] == group_name:
                    group = candidate  # same name: the tags join the existing group
                    break
        if group is not None:
            existing = {t["name"] for t in group["tags"].values()}
            clash = [name for name in new_tags if name in existing]
            if clash:
                raise PlatformError(40071, f"tag name exists in the group: {clash[0]}")
        total = corp["corp_tag_count"] + len(corp["tag_index"]) + len(new_tags)
        if total > CORP_TAG_LIMIT:
            raise PlatformError(
                40058,
                f"too many tags: corp tags plus strategy tags may not exceed {CORP_TAG_LIMIT} "
                f"per corp ({total} after this call)",
            )

        now = int(self._now())
        if group is None:
            new_group_id = self._new_et_id()
            group = corp["groups"][new_group_id] = {
                "group_id": new_group_id,
                "group_name": group_name,
                "create_time": now,
                "order": group_order,
                "strategy_id": strategy_id,
                "tags": {},
            }
        created = []
        for name, order in new_tags.items():
            tag = {"id": self._new_et_id(), "name": name, "create_time": now, "order": order}
            group["tags"][tag["id"]] = tag
            corp["tag_index"][tag["id"]] = group["group_id"]
            created.append(dict(tag))
        self._changed()
        tag_group = {
            "group_id": group["group_id"],
            "group_name": group["group_name"],
            "create_time": group["create_time"],
            "order": group["order"],
            "tag": created,
        }
        return {**_OK, "tag_group": tag_group}

    def wecom_edit_strategy_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        item_id = body.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise PlatformError(40058, "invalid id: a tag id or group id is required")
        name = body.get("name")
        order = body.get("order")
        with self.lock:
            corp = self._corp(corp_id)
            group = corp["groups"].get(item_id)
            tag = None
            if group is None:
                group_id = corp["tag_index"].get(item_id)
                if group_id is None:
                    raise PlatformError(40068, "invalid tag id")
                group = corp["groups"][group_id]
                tag = group["tags"][item_id]
            if name is not None:
                name = _wecom_name(name, "name")
            if order is not None:
                order = _wecom_order(order, "order")
            if name is not None and tag is None:
                for other in corp["groups"].values():
                    if (
                        other is not group
                        and other["strategy_id"] == group["strategy_id"]
                        and other["group_name"] == name
                    ):
                        raise PlatformError(40071, "tag group name exists in this strategy")
            if name is not None and tag is not None:
                for sibling in group["tags"].values():
                    if sibling is not tag and sibling["name"] == name:
                        raise PlatformError(40071, "tag name exists in the group")
            target = tag if tag is not None else group
            if name is not None:
                target["name" if tag is not None else "group_name"] = name
            if order is not None:
                target["order"] = order
            self._changed()
            return dict(_OK)

    def wecom_del_strategy_tag(self, corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        tag_ids = _id_list(body.get("tag_id"), "tag_id")
        group_ids = _id_list(body.get("group_id"), "group_id")
        if not tag_ids and not group_ids:
            raise PlatformError(40058, "tag_id and group_id may not both be empty")
        with self.lock:
            corp = self._corp(corp_id)
            for group_id in group_ids:
                if group_id not in corp["groups"]:
                    raise PlatformError(40068, f"invalid group id: {group_id}")
            for tag_id in tag_ids:
                if tag_id not in corp["tag_index"]:
                    raise PlatformError(40068, f"invalid tag id: {tag_id}")
            for group_id in group_ids:
                group = corp["groups"].pop(group_id, None)
                if group:
                    for tag_id in group["tags"]:
                        corp["tag_index"].pop(tag_id, None)
            for tag_id in tag_ids:
                group_id = corp["tag_index"].pop(tag_id, None)
                if group_id is None:
                    continue  # its group went above
                group = corp["groups"][group_id]
                del group["tags"][tag_id]
                if not group["tags"]:
                    del corp["groups"][group_id]  # no empty groups
            self._changed()
            return dict(_OK)

    # ================================================================ Official Account

    @staticmethod
    def _new_oa_tag(tag_id: int, name: str) -> dict[str, Any]:
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
        account = self._oa.get(appid)
        if account is None:
            raise ValueError(f"unknown official account {appid}")
        return account

    def oa_auth(self, token: str | None) -> str:
        with self.lock:
            appid, _kind = self._check_token(WECHAT, token)
            return appid

    @staticmethod
    def _fan_count(tag: dict[str, Any]) -> int:
        override = tag["count_override"]
        return len(tag["fans"]) if override is None else override

    def oa_tags_get(self, appid: str) -> dict[str, Any]:
        with self.lock:
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

    def oa_tags_create(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._oa_create(appid, body)

    def _oa_create(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        account = self._account(appid)
        name = _oa_tag_name(self._tag_body(body).get("name"))
        tags = account["tags"]
        if any(t["name"] == name for t in tags.values()):
            raise PlatformError(45157, "invalid tag name: a tag with this name exists")
        if sum(1 for t in tags if t not in OA_RESERVED_TAG_IDS) >= OA_MAX_TAGS:
            raise PlatformError(45056, f"too many tags: at most {OA_MAX_TAGS} per account")
        tag_id = account["next_tag_id"]
        account["next_tag_id"] += 1
        tags[tag_id] = self._new_oa_tag(tag_id, name)
        self._changed()
        return {"tag": {"id": tag_id, "name": name}}

    def _existing_tag(self, account: dict[str, Any], tag_id: object, *, edit: bool) -> dict:
        if edit and tag_id in OA_RESERVED_TAG_IDS:
            raise PlatformError(45058, "can't modify sys tag: 0/1/2 are reserved")
        tag = account["tags"].get(tag_id) if _is_int(tag_id) else None
        if tag is None:
            raise PlatformError(45159, "invalid tag id")
        return tag

    def oa_tags_update(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        tag_body = self._tag_body(body)
        with self.lock:
            account = self._account(appid)
            tag = self._existing_tag(account, tag_body.get("id"), edit=True)
            name = _oa_tag_name(tag_body.get("name"))
            if any(t is not tag and t["name"] == name for t in account["tags"].values()):
                raise PlatformError(45157, "invalid tag name: a tag with this name exists")
            tag["name"] = name
            self._changed()
            return dict(_OK)

    def oa_tags_delete(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        tag_body = self._tag_body(body)
        with self.lock:
            account = self._account(appid)
            tag = self._existing_tag(account, tag_body.get("id"), edit=True)
            if self._fan_count(tag) > OA_UNDELETABLE_FANS:
                raise PlatformError(
                    45057,
                    f"can't delete the tag that has more than {OA_UNDELETABLE_FANS} fans; "
                    "untag them first",
                )
            del account["tags"][tag["id"]]
            self._changed()
            return dict(_OK)

    def _check_openid(self, account: dict[str, Any], openid: object) -> str:
        if not isinstance(openid, str) or not _OPENID.fullmatch(openid):
            raise PlatformError(40003, "invalid openid")
        if not openid.startswith(account["openid_prefix"]):
            raise PlatformError(49003, "not match openid with appid")
        return openid

    def _oa_apply_tagging(
        self, account: dict[str, Any], tag_id: object, openids: list, *, tagging: bool
    ) -> None:
        checked = [self._check_openid(account, o) for o in openids]
        tags = account["tags"]
        if not _is_int(tag_id) or tag_id not in tags:
            raise PlatformError(45159, "invalid tag id")
        tag = tags[tag_id]
        fans: set[str] = tag["fans"]
        unique = dict.fromkeys(checked)
        if tagging:
            new = [o for o in unique if o not in fans]
            # Only an account with more than 20 tags can push a user over 20.
            if new and len(tags) > OA_MAX_TAGS_PER_USER:
                others = [t["fans"] for t in tags.values() if t is not tag]
                for openid in new:
                    if sum(1 for f in others if openid in f) >= OA_MAX_TAGS_PER_USER:
                        raise PlatformError(
                            45059,
                            f"can not tagging one user too much: a user may have at most "
                            f"{OA_MAX_TAGS_PER_USER} tags",
                        )
            if new:
                fans.update(new)
                self._note_fan_changes(tag, new, present=True)
                self._changed()
        else:
            gone = [o for o in unique if o in fans]
            if gone:
                fans.difference_update(gone)
                self._note_fan_changes(tag, gone, present=False)
                self._changed()

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

    def oa_batch_tagging(self, appid: str, body: dict[str, Any], *, tagging: bool) -> dict:
        openids = body.get("openid_list")
        if openids is not None and not isinstance(openids, list):
            raise PlatformError(47001, "data format error: openid_list must be a list")
        if not openids or len(openids) > OA_MAX_BATCH:
            raise PlatformError(
                40032, f"invalid openid list size: 1..{OA_MAX_BATCH} openids per call"
            )
        with self.lock:
            self._oa_apply_tagging(
                self._account(appid), body.get("tagid"), openids, tagging=tagging
            )
            return dict(_OK)

    def oa_getidlist(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            account = self._account(appid)
            openid = self._check_openid(account, body.get("openid"))
            return {
                "tagid_list": [t["id"] for t in account["tags"].values() if openid in t["fans"]]
            }

    def oa_user_tag_get(self, appid: str, body: dict[str, Any]) -> dict[str, Any]:
        next_openid = body.get("next_openid") or ""
        if not isinstance(next_openid, str):
            raise PlatformError(47001, "data format error: next_openid must be a string")
        with self.lock:
            account = self._account(appid)
            tag_id = body.get("tagid")
            tag = account["tags"].get(tag_id) if _is_int(tag_id) else None
            if tag is None:
                raise PlatformError(45159, "invalid tag id")
            ordered = self._sorted_fans(tag)
            start = bisect.bisect_right(ordered, next_openid) if next_openid else 0
            page = ordered[start : start + OA_PAGE_SIZE]
        if not page:
            # As the real one does when a listing is exhausted: nothing, no "data".
            return {"count": 0, "next_openid": ""}
        return {"count": len(page), "data": {"openid": page}, "next_openid": page[-1]}

    # ================================================================ chatbot

    def chatbot_bot(self, token: str) -> dict[str, Any]:
        """The bot owning TOKEN (appid, encoding_aes_key, review_passed); 1001/1002 otherwise."""
        with self.lock:
            appid = self._bot_by_token.get(token) if token else None
            if appid is None:
                raise PlatformError(1001, "TOKEN is not valid")
            bot = self._bots[appid]
            if not bot["review_passed"]:
                raise PlatformError(1002, "the robot failed the review")
            return {
                "appid": appid,
                "token": bot["token"],
                "encoding_aes_key": bot["encoding_aes_key"],
            }

    def chatbot_bot_credentials(self, token: str) -> dict[str, Any] | None:
        """The bot's credentials regardless of its review state (for recording), or None."""
        with self.lock:
            appid = self._bot_by_token.get(token) if token else None
            if appid is None:
                return None
            bot = self._bots[appid]
            return {"appid": appid, "encoding_aes_key": bot["encoding_aes_key"]}

    def _chatbot_note_ignored(self, token: str, fields: dict[str, Any]) -> list[str]:
        """Count the elements the platform did not read, per path; their paths."""
        paths = [path for path, _text in fields.get(IGNORED_ELEMENTS, [])]
        if paths:
            with self.lock:
                bot = self._bots[self.chatbot_bot(token)["appid"]]
                counts = bot.setdefault("ignored_elements", {})
                for path in paths:
                    counts[path] = counts.get(path, 0) + 1
        return paths

    def chatbot_batchset(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        ignored = self._chatbot_note_ignored(token, fields)
        values = {name: _field(fields, name) for name in ("appid", "category", "label", "desc")}
        empty = [name for name, value in values.items() if not value.strip()]
        if empty:
            raise PlatformError(
                1007, f"appid, category, label, desc field cannot be empty (missing: {empty})"
            )
        openids = _field_list(fields, "openid")  # from <list> only
        with self.lock:
            # The appid field names the Official Account or Mini Program the openids belong to
            # (seed 000), not the bot: any non-empty one is accepted.
            bot = self._bots[self.chatbot_bot(token)["appid"]]
            if not openids:
                if any(path.endswith("/openid") for path in ignored):
                    # Openids outside <list> pass the emptiness check but label nobody, and the
                    # platform answers success (PLATFORM.md section 4).
                    return {"errcode": 0, "msg": "Success"}
                raise PlatformError(1008, "appid, openid, msg field cannot be empty (no openid)")
            key = (values["category"], values["label"])
            label = bot["labels"].setdefault(key, {"desc": values["desc"], "openids": set()})
            label["desc"] = values["desc"]
            label["openids"].update(openids)
            self._changed()
        return {"errcode": 0, "msg": "Success"}

    def chatbot_setautoreply(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._chatbot_note_ignored(token, fields)
        names = ("managerid", "skillname", "title", "content")
        values = {name: _field(fields, name) for name in names}
        empty = [name for name, value in values.items() if not value.strip()]
        if empty:
            raise PlatformError(1008, f"field cannot be empty: {empty}")
        problem = validate_reply_content(values["content"])
        if problem:
            raise PlatformError(1008, f"invalid content: {problem}")
        questions = _field_list(fields, "question")  # from <list> only
        with self.lock:
            bot = self._bots[self.chatbot_bot(token)["appid"]]
            bot["skills"][(values["skillname"], values["title"])] = {
                "content": values["content"],
                "questions": list(dict.fromkeys(questions)),
                "managerid": values["managerid"],
            }
            self._changed()
        return {"code": 0, "msg": "Success"}

    def _behaviour(self, bot: dict[str, Any]) -> dict[str, Any]:
        return bot.get("behaviour") or {
            "seconds": PUBLISH_SECONDS,
            "fail_at": None,
            "stuck_at": None,
            "envelope": "top",
        }

    def _publish_state(self, bot: dict[str, Any]) -> tuple[int, int]:
        """(progress, status) of the bot's last publish, copying debug to online on success."""
        publish = bot.get("publish")
        if publish is None:
            return 100, 1
        if publish["status"] != 0:
            return publish["progress"], publish["status"]
        behaviour = publish["behaviour"]
        elapsed = self._now() - publish["started_at"]
        seconds = behaviour["seconds"]
        progress = 100 if seconds <= 0 else min(100, int(elapsed * 100 / seconds))
        status = 0
        if behaviour["fail_at"] is not None and progress >= behaviour["fail_at"]:
            progress, status = behaviour["fail_at"], 2
        elif behaviour["stuck_at"] is not None and progress >= behaviour["stuck_at"]:
            progress = behaviour["stuck_at"]
        elif progress >= 100:
            status = 1
            bot["online_skills"] = publish["snapshot"]
        publish["progress"] = progress
        publish["status"] = status
        if status:
            self._changed()
        return progress, status

    def _managerid(self, fields: dict[str, Any]) -> str:
        managerid = _field(fields, "managerid")
        if not managerid.strip():
            raise PlatformError(1015, "managerid check failed")
        return managerid

    def chatbot_publish(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Copy debug to online, over the behaviour's seconds; a publish still running goes on
        (a second one is not started)."""
        self._managerid(fields)
        with self.lock:
            bot = self._bots[self.chatbot_bot(token)["appid"]]
            _progress, status = self._publish_state(bot)
            if bot.get("publish") is None or status != 0:
                bot["publish"] = {
                    "started_at": self._now(),
                    "snapshot": copy.deepcopy(bot["skills"]),
                    "behaviour": dict(self._behaviour(bot)),
                    "progress": 0,
                    "status": 0,
                }
                bot["publish_count"] = bot.get("publish_count", 0) + 1
                self._changed()
        return {"code": 0, "errcode": 0, "msg": "success"}

    def chatbot_publish_progress(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._managerid(fields)
        with self.lock:
            bot = self._bots[self.chatbot_bot(token)["appid"]]
            progress, status = self._publish_state(bot)
        return {"code": 0, "data": {"progress": progress, "status": status}, "msg": "success"}

    def bot_publish_count(self, appid: str) -> int:
        """How many publishes were started (a follow-up of a running one is not one)."""
        with self.lock:
            return int(self._bots[appid].get("publish_count", 0))

    def chatbot_aibot(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer ``query`` from the chosen environment by exact standard or similar question;
        a query that is part of some questions gets recommendations; NOMATCH otherwise."""
        from chatbot.signature import SignatureError, signature_read

        with self.lock:
            bot = self._bots[self.chatbot_bot(token)["appid"]]
            signature = body.get("signature")
            if not isinstance(signature, str) or not signature:
                raise PlatformError(1003, "signature is empty")
            try:
                signature_read(signature, key=bot["encoding_aes_key"], now=self._now())
            except SignatureError as error:
                raise PlatformError(1006, f"signature check failed: {error}") from None
            query = body.get("query")
            if not isinstance(query, str) or not query.strip():
                raise PlatformError(1008, "query cannot be empty")
            env = body.get("env", "online")
            if env not in ("debug", "online"):
                raise PlatformError(1008, "env must be debug or online")
            if env == "online":
                self._publish_state(bot)
            skills = bot["skills"] if env == "debug" else bot.get("online_skills", {})
            envelope = self._behaviour(bot)["envelope"]
            fields: dict[str, Any] = {
                "answer": "",
                "answer_type": "text",
                "skill_name": "",
                "intent_name": "",
                "msg_id": "".join(self._rng.choices(string.hexdigits.lower(), k=16)),
                "status": "NOMATCH",
                "options": [],
            }
            wanted = query.strip()
            for (skill_name, title), data in skills.items():
                if wanted == title or wanted in data["questions"]:
                    content = data["content"]
                    fields.update(
                        answer=content,
                        answer_type="text" if not content.startswith("{") else "json",
                        skill_name=skill_name,
                        intent_name=title,
                        status="FAQ",
                    )
                    break
            else:
                options = [
                    {
                        "ans_node_name": skill_name,
                        "title": title,
                        "answer": data["content"],
                        "confidence": round(len(wanted) / max(len(title), 1), 2),
                    }
                    for (skill_name, title), data in skills.items()
                    if len(wanted) >= 2 and wanted in title
                ][:3]
                if options:
                    fields.update(status="FAQ_RECOMMEND", options=options)
        if envelope == "data":
            return {"code": 0, "msg": "success", "data": fields}
        return fields

    # ================================================================ snapshots

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-able data (sets as sorted lists)."""
        with self.lock:
            wecom = {}
            for corp_id, corp in self._corps.items():
                wecom[corp_id] = {
                    "apps": [{"secret": s, **app} for s, app in corp["apps"].items()],
                    "corp_tag_count": corp["corp_tag_count"],
                    "strategies": [copy.deepcopy(s) for s in corp["strategies"].values()],
                    "groups": [
                        {
                            **{k: v for k, v in g.items() if k != "tags"},
                            "tag": [dict(t) for t in g["tags"].values()],
                        }
                        for g in corp["groups"].values()
                    ],
                }
            wechat = {}
            for appid, account in self._oa.items():
                wechat[appid] = {
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
            chatbot = {}
            for appid, bot in self._bots.items():
                chatbot[appid] = {
                    "token": bot["token"],
                    "encoding_aes_key": bot["encoding_aes_key"],
                    "review_passed": bot["review_passed"],
                    "labels": [
                        {
                            "category": category,
                            "label": label,
                            "desc": data["desc"],
                            "openids": sorted(data["openids"]),
                        }
                        for (category, label), data in bot["labels"].items()
                    ],
                    "skills": [
                        {"skillname": skill, "title": title, **copy.deepcopy(data)}
                        for (skill, title), data in bot["skills"].items()
                    ],
                    "online_skills": [
                        {"skillname": skill, "title": title, **copy.deepcopy(data)}
                        for (skill, title), data in bot.get("online_skills", {}).items()
                    ],
                }
            current = set(self._current.values())
            tokens = [
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
            return {
                "format": 1,
                "wecom": wecom,
                "wechat": wechat,
                "chatbot": chatbot,
                "tokens": tokens,
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

    def reset(self) -> None:
        """Forget everything (tokens included)."""
        with self.lock:
            self._clear()
            self._changed()

    def restore(self, data: dict[str, Any]) -> None:
        """Replace everything with a snapshot's content (in place: servers keep this object)."""
        if data.get("format") != 1:
            raise ValueError("not a sandbox snapshot (format 1)")
        with self.lock:
            self._clear()
            for corp_id, c in data.get("wecom", {}).items():
                corp = self._corp(corp_id, create=True)
                for app in c.get("apps", []):
                    corp["apps"][app["secret"]] = {
                        "agent_id": app.get("agent_id"),
                        "customer_contact": app.get("customer_contact", True),
                    }
                corp["corp_tag_count"] = c.get("corp_tag_count", 0)
                for s in c.get("strategies", []):
                    corp["strategies"][s["strategy_id"]] = dict(s)
                for g in c.get("groups", []):
                    group = {k: v for k, v in g.items() if k != "tag"}
                    group["tags"] = {t["id"]: dict(t) for t in g.get("tag", [])}
                    corp["groups"][group["group_id"]] = group
                    self._ids.add(group["group_id"])
                    for tag_id in group["tags"]:
                        corp["tag_index"][tag_id] = group["group_id"]
                        self._ids.add(tag_id)
            for appid, a in data.get("wechat", {}).items():
                tags = {}
                for t in a.get("tags", []):
                    tag = self._new_oa_tag(t["id"], t["name"])
                    tag["fans"] = set(t.get("fans", []))
                    tag["count_override"] = t.get("count_override")
                    tags[t["id"]] = tag
                self._oa[appid] = {
                    "secret": a["secret"],
                    "openid_prefix": a["openid_prefix"],
                    "next_tag_id": a.get("next_tag_id", OA_FIRST_TAG_ID),
                    "tags": tags,
                }
            for appid, b in data.get("chatbot", {}).items():
                self._bots[appid] = {
                    "appid": appid,
                    "token": b["token"],
                    "encoding_aes_key": b["encoding_aes_key"],
                    "review_passed": b.get("review_passed", True),
                    "labels": {
                        (x["category"], x["label"]): {
                            "desc": x["desc"],
                            "openids": set(x.get("openids", [])),
                        }
                        for x in b.get("labels", [])
                    },
                    "skills": {
                        (x["skillname"], x["title"]): {
                            "content": x["content"],
                            "questions": list(x.get("questions", [])),
                            "managerid": x.get("managerid", ""),
                        }
                        for x in b.get("skills", [])
                    },
                    "online_skills": {
                        (x["skillname"], x["title"]): {
                            "content": x["content"],
                            "questions": list(x.get("questions", [])),
                            "managerid": x.get("managerid", ""),
                        }
                        for x in b.get("online_skills", [])
                    },
                }
                self._bot_by_token[b["token"]] = appid
            for t in data.get("tokens", []):
                key = tuple(t["key"])
                self._tokens[t["token"]] = {
                    "platform": t["platform"],
                    "key": key,
                    "expires_at": t["expires_at"],
                    "revoked": t["revoked"],
                }
                if t.get("current"):
                    self._current[(t["platform"], *key)] = t["token"]
            self._changed()
