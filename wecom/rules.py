"""The platforms' limits on what the console sends, written once.

Forms, services and the platform clients all call these validators, so a name or an order is
refused with the same sentence wherever it is typed, and nothing the platform would refuse is
ever sent. Each raises Django's ``ValidationError`` with a translated message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _, ngettext_lazy

# WeCom strategy tags (seed 003, PLATFORM.md 2).
TAG_NAME_MAX_LENGTH = 30
ORDER_MIN = 0
ORDER_MAX = 2**32 - 1
CORP_TAG_LIMIT = 10_000

# Official Account user tags (seed 001, PLATFORM.md 3).
OA_TAG_NAME_MAX_LENGTH = 30
OA_MAX_TAGS_PER_ACCOUNT = 100
OA_MAX_TAGS_PER_USER = 20
OA_RESERVED_TAG_IDS = frozenset({0, 1, 2})
OA_BATCH_SIZE_DEFAULT = 20
OA_BATCH_SIZE_MAX = 50
OPENID_LENGTH = 28
# fullmatch, never match with "$": "$" also matches before a final newline.
_OPENID = re.compile(r"o[A-Za-z0-9_-]{27}")
# A tag with more followers than this cannot be deleted (45057).
OA_UNDELETABLE_FOLLOWERS = 100_000

# Dialogue platform user labels (seed 000): the platform states no cap per call.
CHATBOT_BATCH_SIZE_DEFAULT = 50
CHATBOT_BATCH_SIZE_MAX = 1000


# --- the characters nothing the console sends may hold -----------------------------------------

# Control characters (C0, DEL, C1), invisible format characters (bidirectional overrides,
# zero-width spaces, soft hyphens, byte-order marks, tag characters), surrogates, private-use and
# unassigned code points. XML 1.0, which carries the dialogue platform's requests, cannot hold
# most C0 controls, surrogates, U+FFFE or U+FFFF even in CDATA, and its parsers turn a carriage
# return into a newline; the rest make names that look like others and text that reads
# differently from what it holds, or cannot be shown (PLATFORM.md says nothing more precise:
# the platforms document no character set).
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# The zero-width joiner composes emoji (👩‍💻); newline and tab make the lines of an answer.
_ALLOWED = frozenset("\u200d")
_ALLOWED_MULTILINE = frozenset("\u200d\n\t")


def has_forbidden_character(value: str, *, multiline: bool = False) -> bool:
    """Whether ``value`` holds a character no name, label or text sent to a platform may hold.

    The one rule: tag names, chatbot labels and texts (forms and services) and the platform
    clients all ask it. ``multiline`` lets newline and tab through (an answer's text).
    """
    flat = value.replace("\n", "").replace("\t", "") if multiline else value
    if flat.isprintable():  # no category C (or Z but the space) at all: the common case, fast
        return False
    allowed = _ALLOWED_MULTILINE if multiline else _ALLOWED
    return any(
        unicodedata.category(char) in _FORBIDDEN_CATEGORIES and char not in allowed
        for char in value
    )


def validate_tag_name(value: str, *, max_length: int = TAG_NAME_MAX_LENGTH) -> None:
    """A WeCom tag or tag-group name, or an Official Account tag name."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(_("A name cannot be empty."), code="name_empty")
    if value != value.strip():
        raise ValidationError(_("A name cannot begin or end with a space."), code="name_spaces")
    if len(value) > max_length:
        raise ValidationError(
            ngettext_lazy(
                "A name has at most %(limit)d character; this one has %(length)d.",
                "A name has at most %(limit)d characters; this one has %(length)d.",
                "limit",
            ),
            code="name_too_long",
            params={"limit": max_length, "length": len(value)},
        )
    if has_forbidden_character(value):
        raise ValidationError(
            _("A name cannot contain control or invisible formatting characters."),
            code="name_control",
        )


def validate_order(value: object) -> None:
    """An order value: a whole number in [0, 2^32); larger sorts first."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(_("An order is a whole number."), code="order_type")
    if not ORDER_MIN <= value <= ORDER_MAX:
        raise ValidationError(
            _("An order is between %(min)d and %(max)d."),
            code="order_range",
            params={"min": ORDER_MIN, "max": ORDER_MAX},
        )


def is_openid(value: object) -> bool:
    """Whether ``value`` has the form of an OpenID (the bulk parsers' fast path)."""
    return isinstance(value, str) and _OPENID.fullmatch(value) is not None


def validate_openid(value: str) -> None:
    if not is_openid(value):
        raise ValidationError(
            _("“%(value)s” is not an OpenID: 28 letters, digits, “-” or “_”, starting with “o”."),
            code="openid",
            params={"value": str(value)[:40]},
        )


def validate_openid_batch(openids: Sequence[str], *, batch_size: int = OA_BATCH_SIZE_MAX) -> None:
    if not 1 <= len(openids) <= min(batch_size, OA_BATCH_SIZE_MAX):
        raise ValidationError(
            _("A batch has 1 to %(limit)d OpenIDs; this one has %(count)d."),
            code="batch_size",
            params={"limit": min(batch_size, OA_BATCH_SIZE_MAX), "count": len(openids)},
        )
    for openid in openids:
        validate_openid(openid)


def validate_oa_tag_id(value: int, *, changing: bool = True) -> None:
    if changing and value in OA_RESERVED_TAG_IDS:
        raise ValidationError(
            _("Tags 0, 1 and 2 are reserved by the platform and cannot change."),
            code="reserved_tag",
        )


# --- WeCom strategy tags: rules over several values (seed 003, PLATFORM.md 2) ----------------


def validate_name_free(value: str, *, taken: Mapping[str, str], what: str | Promise) -> None:
    """``value`` must not be the name of a sibling: ``taken`` maps each sibling's name to a link
    to it ("" for none), and the message names the clash and links to it."""
    if value not in taken:
        return
    url = taken[value]
    if url:
        message = format_html(
            str(_('{what} “{name}” exists already here: <a href="{url}">open it</a>.')),
            what=what,
            name=value,
            url=url,
        )
    else:
        message = format_html(str(_("{what} “{name}” exists already here.")), what=what, name=value)
    raise ValidationError(message, code="name_taken")


def validate_distinct_names(names: Sequence[str]) -> None:
    """WeCom silently keeps one of several equal names sent together: refuse them instead."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValidationError(
                _("“%(name)s” is given twice: each tag of a group needs its own name."),
                code="name_twice",
                params={"name": name},
            )
        seen.add(name)


def validate_group_not_empty(tag_count: int) -> None:
    if tag_count < 1:
        raise ValidationError(
            _("A tag group cannot be empty: add at least one tag."), code="group_empty"
        )


def validate_first_level_strategy(*, is_first_level: bool) -> None:
    if not is_first_level:
        raise ValidationError(
            _("Tags can only be added under a first-level strategy, not under a child one."),
            code="strategy_child",
        )


def validate_corp_tag_limit(*, existing: int, adding: int, limit: int = CORP_TAG_LIMIT) -> None:
    """Corporate tags plus strategy tags: at most ``limit`` per corp, as far as the console
    knows (``existing``: both kinds, ``tagging.strategy.services.corp_tag_count``)."""
    if existing + adding > limit:
        raise ValidationError(
            _(
                "The corp may have at most %(limit)d tags, strategy tags and corporate tags "
                "together; it has %(existing)d and this adds %(adding)d. Delete some tags first."
            ),
            code="corp_tag_limit",
            params={"limit": limit, "existing": existing, "adding": adding},
        )


def validate_oa_tag_deletable(*, tag_id: int, follower_count: int) -> None:
    """A tag the platform would refuse to delete: reserved, or more than 100,000 followers."""
    validate_oa_tag_id(tag_id)
    if follower_count > OA_UNDELETABLE_FOLLOWERS:
        raise ValidationError(
            _(
                "This tag has %(count)s followers; the platform does not delete a tag with more "
                "than %(limit)s. Untag followers first (a bulk job can do it)."
            ),
            code="tag_too_many_followers",
            params={"count": f"{follower_count:,}", "limit": f"{OA_UNDELETABLE_FOLLOWERS:,}"},
        )


def validate_bulk_batch_size(value: object, *, platform: str) -> None:
    """OpenIDs per call of a bulk job: Official Account at most 50 (40032), chatbot 1000."""
    limit = OA_BATCH_SIZE_MAX if platform == "wechat" else CHATBOT_BATCH_SIZE_MAX
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ValidationError(
            _("A batch has 1 to %(limit)d OpenIDs."),
            code="batch_size",
            params={"limit": limit},
        )


def validate_bulk_operation(operation: str, *, platform: str) -> None:
    """Untagging exists for Official Account tags only: label/batchset has no unset call."""
    if platform != "wechat" and operation != "tag":
        raise ValidationError(
            _("The dialogue platform has no call to take a label away: only tagging is possible."),
            code="no_untag",
        )


def validate_chatbot_label_text(value: object) -> None:
    """category, label or desc of label/batchset: required (the platform answers 1007), and
    sendable inside the encrypted XML."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            _("This field is required: the platform refuses an empty one."), code="required"
        )
    if has_forbidden_character(value):
        raise ValidationError(
            _("This text contains a control character that cannot be sent."), code="control"
        )


# Dialogue-platform auto-replies (seed 002, PLATFORM.md 4). The platform documents no lengths;
# these are the console's own bounds, chosen from WeChat's message limits (a text bubble holds
# about 2,000 characters, a news card a 64-character title and a 120-character digest, links up
# to 1,024 characters) so that nothing we send is cut or refused, and documented in the README.
SKILL_NAME_MAX_LENGTH = 50
QUESTION_MAX_LENGTH = 200
SIMILAR_QUESTIONS_MAX = 200
MANAGER_ID_MAX_LENGTH = 64
ANSWER_TEXT_MAX_LENGTH = 2000
LINK_LABEL_MAX_LENGTH = 64
MENU_ID_MAX_LENGTH = 64
NEWS_ARTICLES_MAX = 8
ARTICLE_TITLE_MAX_LENGTH = 64
ARTICLE_DESCRIPTION_MAX_LENGTH = 120
URL_MAX_LENGTH = 1024
MEDIA_ID_MAX_LENGTH = 128
MINI_PROGRAM_TITLE_MAX_LENGTH = 64
PAGEPATH_MAX_LENGTH = 256
MULTIMSG_MAX_ITEMS = 10
_MINI_PROGRAM_APPID = re.compile(r"^wx[0-9a-f]{16}$")
_MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_PAGEPATH = re.compile(r"^[A-Za-z0-9_\-./?=&%]+$")
_WEB_URL = re.compile(r"^https?://[^\s\"'<>\\^`{|}]+$", re.IGNORECASE)


def validate_chatbot_text(
    value: object,
    *,
    label: str,
    max_length: int,
    required: bool = True,
    multiline: bool = False,
) -> None:
    """A text the dialogue platform shows or matches: a question, a title, an answer text.

    ``label`` names the field in the message ("the standard question", "article 2's title").
    """
    if not isinstance(value, str):
        raise ValidationError(
            _("%(field)s must be text."), code="text_type", params={"field": label}
        )
    if required and not value.strip():
        raise ValidationError(
            _("%(field)s cannot be empty."), code="text_empty", params={"field": label}
        )
    if len(value) > max_length:
        raise ValidationError(
            ngettext_lazy(
                "%(field)s has at most %(limit)d character; this one has %(length)d.",
                "%(field)s has at most %(limit)d characters; this one has %(length)d.",
                "limit",
            ),
            code="text_too_long",
            params={"field": label, "limit": max_length, "length": len(value)},
        )
    if has_forbidden_character(value, multiline=multiline):
        raise ValidationError(
            _(
                "%(field)s contains a control or invisible character that cannot be sent. "
                "Remove it (it often comes with text pasted from other programs)."
            ),
            code="text_control",
            params={"field": label},
        )


def _given_text(value: object, *, label: str, required: bool) -> str | None:
    """``value`` as text to check further, or None for an optional field left empty."""
    if not isinstance(value, str):
        raise ValidationError(
            _("%(field)s must be text."), code="text_type", params={"field": label}
        )
    if not value:
        if required:
            raise ValidationError(
                _("%(field)s cannot be empty."), code="text_empty", params={"field": label}
            )
        return None
    return value


def validate_web_url(value: object, *, label: str, required: bool = True) -> None:
    """A link or picture address: http:// or https:// only (never javascript:, data:, …)."""
    value = _given_text(value, label=label, required=required)
    if value is None:
        return
    if len(value) > URL_MAX_LENGTH:
        raise ValidationError(
            _("%(field)s has at most %(limit)d characters; this one has %(length)d."),
            code="url_too_long",
            params={"field": label, "limit": URL_MAX_LENGTH, "length": len(value)},
        )
    if not _WEB_URL.match(value) or has_forbidden_character(value):
        raise ValidationError(
            _(
                "%(field)s must be a web address starting with http:// or https://, without "
                "spaces or quotes."
            ),
            code="url",
            params={"field": label},
        )


def validate_mini_program_appid(value: object, *, label: str) -> None:
    if not isinstance(value, str) or not _MINI_PROGRAM_APPID.match(value):
        raise ValidationError(
            _("%(field)s is “wx” followed by 16 hexadecimal digits, e.g. wx8c631f7e9f2465e1."),
            code="mini_program_appid",
            params={"field": label},
        )


def validate_media_id(value: object, *, label: str, required: bool = True) -> None:
    """An Official Account material id: letters, digits, “-” and “_”."""
    value = _given_text(value, label=label, required=required)
    if value is None:
        return
    if len(value) > MEDIA_ID_MAX_LENGTH or not _MEDIA_ID.match(value):
        raise ValidationError(
            _("%(field)s has 1 to %(limit)d letters, digits, “-” or “_”."),
            code="media_id",
            params={"field": label, "limit": MEDIA_ID_MAX_LENGTH},
        )


def validate_pagepath(value: object, *, label: str) -> None:
    """A mini-program page path such as ``pages/index/index?id=1``."""
    if not isinstance(value, str) or not value:
        raise ValidationError(
            _("%(field)s cannot be empty."), code="text_empty", params={"field": label}
        )
    if len(value) > PAGEPATH_MAX_LENGTH or not _PAGEPATH.match(value) or value.startswith("/"):
        raise ValidationError(
            _(
                "%(field)s is a page path such as pages/index/index, at most %(limit)d "
                "characters, without spaces and not starting with “/”."
            ),
            code="pagepath",
            params={"field": label, "limit": PAGEPATH_MAX_LENGTH},
        )


# ---- WeCom customers (PLATFORM.md 2, "Corporate tags and tagging customers") ----------------

# A member may hold at most this many tags on one customer; tags are per (member, customer).
WECOM_TAGS_PER_CUSTOMER_MAX = 3000
# batch/get_by_user: members per call and customers per page.
WECOM_BY_USER_MEMBERS_MAX = 100
WECOM_BY_USER_PAGE_MAX = 100
EXTERNAL_USERID_MAX_LENGTH = 64
USERID_MAX_LENGTH = 64
# External userids start "wm" (or "wo" for older contacts); letters, digits, "-" and "_".
_EXTERNAL_USERID = re.compile(r"w[mo][A-Za-z0-9_-]{20,62}")
# A member's userid: letters, digits and "_", "-", "@", "." (WeCom's account rule).
_USERID = re.compile(r"[A-Za-z0-9_@.-]{1,64}")
_WECOM_TAG_ID = re.compile(r"et[A-Za-z0-9_-]{1,62}")


def is_external_userid(value: object) -> bool:
    """Whether ``value`` has the form of a customer's external_userid (the parsers' fast path)."""
    return isinstance(value, str) and _EXTERNAL_USERID.fullmatch(value) is not None


def is_member_userid(value: object) -> bool:
    return isinstance(value, str) and _USERID.fullmatch(value) is not None


def validate_external_userid(value: str) -> None:
    if not is_external_userid(value):
        raise ValidationError(
            _(
                "“%(value)s” is not a customer's external_userid: 22 to 64 letters, digits, "
                "“-” or “_”, starting with “wm” or “wo”."
            ),
            code="external_userid",
            params={"value": str(value)[:40]},
        )


def validate_member_userid(value: str) -> None:
    if not is_member_userid(value):
        raise ValidationError(
            _(
                "“%(value)s” is not a WeCom member's userid: 1 to 64 letters, digits, “_”, "
                "“-”, “@” or “.”."
            ),
            code="userid",
            params={"value": str(value)[:40]},
        )


def validate_wecom_tag_ids(value: Sequence[str]) -> None:
    """Tag ids to put on or take off customers: WeCom's ``et…`` ids (corporate or strategy)."""
    for tag_id in value:
        if not isinstance(tag_id, str) or not _WECOM_TAG_ID.fullmatch(tag_id):
            raise ValidationError(
                _("“%(value)s” is not a WeCom tag id (they start with “et”)."),
                code="wecom_tag_id",
                params={"value": str(tag_id)[:40]},
            )
