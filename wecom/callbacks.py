"""The receiver of WeCom's tag-change callbacks (PLATFORM.md, section 2, "Tag-change callbacks").

WeCom calls an app's callback URL when a person changes customer tags in WeCom's own admin;
changes made through the API produce none, so each event is an outside change. The receiver
answers within WeCom's limits by doing little: check, decrypt, record the event once, and leave
the targeted pull to a background job (``tagging.strategy.callbacks``).

Anyone can reach the URL (no login, no CSRF token), so every check here refuses with a
:class:`CallbackRefused` carrying a reason and a 4xx status; nothing a caller sends may raise
anything else. The reasons are counted per app and shown on its page. Every failed decryption
maps to the one reason "undecryptable": the crypto's detailed messages would be a padding oracle.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException
from django.conf import settings
from django.core.cache import caches
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chatbot.crypto import CryptoError, WXBizMsgCrypt
from console.encryption import CredentialDecryptError
from wecom.models import CallbackRefusal, WeComApp, WeComCallbackEvent, WeComCallbackStatus

# Tag events are a few hundred bytes; WeCom's largest events stay well under this.
MAX_BODY_BYTES = 16 * 1024
# How far a request's timestamp may be from our clock; older requests are replays.
TIMESTAMP_TOLERANCE_SECONDS = 300
TAG_EVENT = "change_external_tag"
CHANGE_TYPES = frozenset({"create", "update", "delete", "shuffle"})
TAG_TYPES = frozenset({"tag", "tag_group", ""})
_MAX_PARAM_LENGTH = 1024
# Requests per app and minute; WeCom sends one per change, a person makes a few a minute.
DEFAULT_RATE_PER_MINUTE = 600

_STATUS_BY_REASON = {
    CallbackRefusal.TOO_LARGE: 413,
    CallbackRefusal.BAD_REQUEST: 400,
    CallbackRefusal.BAD_SIGNATURE: 403,
    CallbackRefusal.UNDECRYPTABLE: 400,
    CallbackRefusal.WRONG_CORP: 403,
    CallbackRefusal.STALE: 403,
    CallbackRefusal.REPLAYED: 409,
    CallbackRefusal.NOT_CONFIGURED: 404,
    CallbackRefusal.RATE_LIMITED: 429,
}
# What the caller reads: one sentence per reason, never the crypto's detail.
REFUSAL_SENTENCES = {
    CallbackRefusal.TOO_LARGE: _("The request body is too large."),
    CallbackRefusal.BAD_REQUEST: _("The request is not a WeCom callback."),
    CallbackRefusal.BAD_SIGNATURE: _("The signature does not match."),
    CallbackRefusal.UNDECRYPTABLE: _("The message cannot be decrypted."),
    CallbackRefusal.WRONG_CORP: _("The message is meant for another corp."),
    CallbackRefusal.STALE: _("The timestamp is too old or in the future."),
    CallbackRefusal.REPLAYED: _("This request was received before."),
    CallbackRefusal.NOT_CONFIGURED: _("No WeCom app receives callbacks at this address."),
    CallbackRefusal.RATE_LIMITED: _("Too many requests; try again later."),
}


# The receiver's clock, one name for tests to hold still.
_clock = time.time


class CallbackRefused(Exception):
    def __init__(self, reason: CallbackRefusal, *, counted: bool = False) -> None:
        super().__init__(reason.value)
        self.reason = reason
        # Already in the app's counts (or deliberately not: a flood is counted once a minute).
        self.counted = counted

    @property
    def status(self) -> int:
        return _STATUS_BY_REASON[self.reason]

    @property
    def sentence(self) -> str:
        return str(REFUSAL_SENTENCES[self.reason])


@dataclass(frozen=True)
class TagChange:
    """A ``change_external_tag`` event, as WeCom's XML says it."""

    corp_id: str
    create_time: int
    change_type: str
    tag_type: str
    item_id: str
    strategy_id: int | None

    def dedup_key(self, app_id: int) -> str:
        # Tag events carry no MsgId: these fields are the event's identity (PLATFORM.md).
        text = "\x1f".join(
            (
                str(app_id),
                self.corp_id,
                str(self.create_time),
                TAG_EVENT,
                self.change_type,
                self.tag_type,
                self.item_id,
                str(self.strategy_id or ""),
            )
        )
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def summary(self) -> str:
        parts = [self.change_type, self.tag_type, self.item_id]
        if self.strategy_id:
            parts.append(f"strategy {self.strategy_id}")
        return " ".join(part for part in parts if part)[:200]


# --- finding the app, the rate limit --------------------------------------------------------


def callback_app_get(app_id: int) -> WeComApp:
    """The app whose callback URL this is; unknown apps are refused like unconfigured ones."""
    app = WeComApp.objects.filter(pk=app_id).first()
    if app is None:
        _unknown_app_count()
        raise CallbackRefused(CallbackRefusal.NOT_CONFIGURED)
    return app


def callback_rate_check(*, app: WeComApp, now: float | None = None) -> None:
    """Refuse beyond WECOM_CALLBACK_RATE_PER_MINUTE requests per app and minute, across all web
    processes (the shared cache)."""
    limit = getattr(settings, "WECOM_CALLBACK_RATE_PER_MINUTE", DEFAULT_RATE_PER_MINUTE)
    minute = int((now if now is not None else _clock()) // 60)
    cache = caches[settings.SHARED_CACHE_ALIAS]
    key = f"wecom-callback-rate:{app.pk}:{minute}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:
        # Evicted between add and incr: count this request as the first.
        cache.set(key, 1, timeout=120)
        count = 1
    if count > limit:
        # One database write per app and minute, not one per request of the flood.
        if count == limit + 1:
            callback_refusal_record(app=app, reason=CallbackRefusal.RATE_LIMITED)
        raise CallbackRefused(CallbackRefusal.RATE_LIMITED, counted=True)


def _unknown_app_count() -> None:
    cache = caches[settings.SHARED_CACHE_ALIAS]
    cache.add("wecom-callback-unknown-app", 0, timeout=None)
    with contextlib.suppress(ValueError):
        cache.incr("wecom-callback-unknown-app")


def callback_unknown_app_refusals() -> int:
    return int(caches[settings.SHARED_CACHE_ALIAS].get("wecom-callback-unknown-app") or 0)


# --- checks ------------------------------------------------------------------------------------


def _crypt(app: WeComApp) -> WXBizMsgCrypt:
    try:
        token = app.callback_token.reveal() if app.callback_token else ""
        key = app.callback_encoding_aes_key.reveal() if app.callback_encoding_aes_key else ""
    except CredentialDecryptError:
        raise CallbackRefused(CallbackRefusal.NOT_CONFIGURED) from None
    if not token or not key:
        raise CallbackRefused(CallbackRefusal.NOT_CONFIGURED)
    try:
        return WXBizMsgCrypt(token, key, app.corp_id)
    except CryptoError:
        raise CallbackRefused(CallbackRefusal.NOT_CONFIGURED) from None


def _param(query: Mapping[str, Any], name: str) -> str:
    value = query.get(name)
    if not isinstance(value, str) or not value or len(value) > _MAX_PARAM_LENGTH:
        raise CallbackRefused(CallbackRefusal.BAD_REQUEST)
    return value


def _checked(crypt: WXBizMsgCrypt, query: Mapping[str, Any], encrypted: str, now: float) -> str:
    """Signature and timestamp checked, ``encrypted`` decrypted (receive id = the corp ID)."""
    signature = _param(query, "msg_signature")
    timestamp = _param(query, "timestamp")
    nonce = _param(query, "nonce")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise CallbackRefused(CallbackRefusal.BAD_REQUEST)
    try:
        valid = crypt.verify_signature(signature, timestamp, nonce, encrypted)
    except CryptoError:
        valid = False
    if not valid:
        raise CallbackRefused(CallbackRefusal.BAD_SIGNATURE)
    # After the signature, so that only WeCom (or whoever holds the Token) learns about clocks.
    if abs(now - int(timestamp)) > TIMESTAMP_TOLERANCE_SECONDS:
        raise CallbackRefused(CallbackRefusal.STALE)
    try:
        return crypt.decrypt(encrypted)
    except CryptoError:
        raise CallbackRefused(CallbackRefusal.UNDECRYPTABLE) from None


def _first_use(app: WeComApp, query: Mapping[str, Any]) -> None:
    """Refuse a signed request seen before (a replay within the timestamp tolerance)."""
    cache = caches[settings.SHARED_CACHE_ALIAS]
    seen = hashlib.sha256(
        f"{query.get('msg_signature')}\x1f{query.get('nonce')}".encode("utf-8", "surrogatepass")
    ).hexdigest()
    if not cache.add(
        f"wecom-callback-seen:{app.pk}:{seen}", 1, timeout=2 * TIMESTAMP_TOLERANCE_SECONDS
    ):
        raise CallbackRefused(CallbackRefusal.REPLAYED)


def _parse_xml(text: str | bytes) -> Element:
    try:
        root = SafeElementTree.fromstring(text, forbid_dtd=True)
    except (SafeElementTree.ParseError, DefusedXmlException, ValueError, TypeError):
        raise CallbackRefused(CallbackRefusal.BAD_REQUEST) from None
    if root.tag != "xml":
        raise CallbackRefused(CallbackRefusal.BAD_REQUEST)
    return root


def _text(root: Element, name: str) -> str:
    element = root.find(name)
    return (element.text or "").strip() if element is not None else ""


def _tag_change(root: Element) -> TagChange | None:
    """The tag-change event in the decrypted XML; None for other events (answered, ignored)."""
    if _text(root, "Event") != TAG_EVENT:
        return None
    change_type = _text(root, "ChangeType")
    tag_type = _text(root, "TagType")
    item_id = _text(root, "Id")
    create_time = _text(root, "CreateTime")
    strategy = _text(root, "StrategyId")
    if (
        change_type not in CHANGE_TYPES
        or tag_type not in TAG_TYPES
        or len(item_id) > 64
        or not (create_time.isascii() and create_time.isdigit() and len(create_time) <= 12)
        or (strategy and not (strategy.isascii() and strategy.isdigit() and len(strategy) <= 12))
    ):
        raise CallbackRefused(CallbackRefusal.BAD_REQUEST)
    return TagChange(
        corp_id=_text(root, "ToUserName"),
        create_time=int(create_time),
        change_type=change_type,
        tag_type=tag_type,
        item_id=item_id,
        strategy_id=int(strategy) if strategy else None,
    )


# --- the two requests ---------------------------------------------------------------------------


def callback_url_verify(
    *, app: WeComApp, query: Mapping[str, Any], now: float | None = None
) -> str:
    """WeCom's URL verification (GET): the decrypted ``echostr``, to answer as plain text."""
    try:
        crypt = _crypt(app)
        echostr = _param(query, "echostr")
        plain = _checked(crypt, query, echostr, _clock() if now is None else now)
    except CallbackRefused as refused:
        callback_refusal_record(app=app, reason=refused.reason)
        raise
    _status_update(app, verified_at=timezone.now())
    return plain


def callback_event_receive(
    *, app: WeComApp, query: Mapping[str, Any], body: bytes, now: float | None = None
) -> WeComCallbackEvent | None:
    """Check, decrypt and record one POSTed event; the targeted pull follows on commit.

    Returns the new event, or None for a duplicate delivery or an event that is not a tag
    change (both are answered as received, so WeCom does not retry them).
    """
    try:
        if len(body) > MAX_BODY_BYTES:
            raise CallbackRefused(CallbackRefusal.TOO_LARGE)
        crypt = _crypt(app)
        envelope = _parse_xml(body)
        encrypted = _text(envelope, "Encrypt")
        if not encrypted:
            raise CallbackRefused(CallbackRefusal.BAD_REQUEST)
        to_user = _text(envelope, "ToUserName")
        plain = _checked(crypt, query, encrypted, _clock() if now is None else now)
        if to_user and to_user != app.corp_id:
            raise CallbackRefused(CallbackRefusal.WRONG_CORP)
        change = _tag_change(_parse_xml(plain))
        if change is not None and change.corp_id and change.corp_id != app.corp_id:
            raise CallbackRefused(CallbackRefusal.WRONG_CORP)
        _first_use(app, query)
    except CallbackRefused as refused:
        callback_refusal_record(app=app, reason=refused.reason)
        raise
    if change is None:
        return None
    return _event_record(app=app, change=change)


def _event_record(*, app: WeComApp, change: TagChange) -> WeComCallbackEvent | None:
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = WeComCallbackEvent.objects.create(
                    app=app,
                    dedup_key=change.dedup_key(app.pk),
                    create_time=change.create_time,
                    change_type=change.change_type,
                    tag_type=change.tag_type,
                    item_id=change.item_id,
                    strategy_id=change.strategy_id,
                )
        except IntegrityError:
            _status_update(app, events_duplicate=F("events_duplicate") + 1)
            return None
        _status_update(
            app,
            events_received=F("events_received") + 1,
            last_event_at=now,
            last_event_summary=change.summary(),
        )
        transaction.on_commit(lambda: _targeted_pull_enqueue(app.pk))
    return event


def _targeted_pull_enqueue(app_id: int) -> None:
    # The pull is the tagging app's; imported here so that wecom does not depend on it at import.
    from tagging.strategy.callbacks import callback_pull_ensure

    callback_pull_ensure(app_id=app_id)


# --- counting -----------------------------------------------------------------------------------


def callback_refusal_record(*, app: WeComApp, reason: CallbackRefusal) -> None:
    _status_update(
        app,
        events_refused=F("events_refused") + 1,
        last_refused_at=timezone.now(),
        last_refusal=reason.value,
    )


def _status_update(app: WeComApp, **values: Any) -> None:
    """One UPDATE (a row is made the first time): counters stay right under concurrency."""
    if WeComCallbackStatus.objects.filter(app=app).update(**values):
        return
    try:
        with transaction.atomic():
            WeComCallbackStatus.objects.create(app=app)
    except IntegrityError:
        pass  # another request made it meanwhile
    WeComCallbackStatus.objects.filter(app=app).update(**values)
