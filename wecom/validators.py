"""Formats of platform credentials: the one place that knows them.

Model fields use these validators, so the admin forms, `manage.py credential set` (which runs
``full_clean``) and every service check the same rules. Messages never repeat the value: it may
be a secret.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from chatbot.crypto import CryptoError, validate_encoding_aes_key
from wecom.rules import has_forbidden_character

# Corp ids are "ww" + 16 hex digits; corps registered before WeCom's rename kept "wx".
_CORP_ID = re.compile(r"^w[wx][0-9a-f]{16}$")
_OA_APPID = re.compile(r"^wx[0-9a-f]{16}$")
_BOT_APPID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BOT_TOKEN = re.compile(r"^[A-Za-z0-9]{3,64}$")
# Secrets are printable ASCII without spaces; the platforms' exact alphabets are not documented.
_SECRET = re.compile(r"^[\x21-\x7e]{16,128}$")
_MANAGER_ID = re.compile(r"^[\x21-\x7e]{1,64}$")


def validate_corp_id(value: str) -> None:
    if not _CORP_ID.match(value or ""):
        raise ValidationError(
            _(
                "A corp ID is “ww” (or “wx” for corps registered before WeCom's rename) followed "
                "by 16 hexadecimal digits, e.g. ww1a2b3c4d5e6f7a8b."
            ),
            code="corp_id",
        )


def validate_oa_appid(value: str) -> None:
    if not _OA_APPID.match(value or ""):
        raise ValidationError(
            _("An Official Account AppID is “wx” followed by 16 hexadecimal digits."),
            code="oa_appid",
        )


def validate_bot_appid(value: str) -> None:
    if not _BOT_APPID.match(value or ""):
        raise ValidationError(
            _("A bot AppID has 1 to 64 letters, digits, “-” or “_”."), code="bot_appid"
        )


def validate_platform_secret(value: str) -> None:
    if not _SECRET.match(value or ""):
        raise ValidationError(
            _("A secret has 16 to 128 characters: letters, digits and punctuation, no spaces."),
            code="secret",
        )


def validate_bot_token(value: str) -> None:
    if not _BOT_TOKEN.match(value or ""):
        raise ValidationError(_("A bot TOKEN has 3 to 64 letters or digits."), code="bot_token")


def validate_bot_encoding_aes_key(value: str) -> None:
    try:
        validate_encoding_aes_key(value or "")
    except CryptoError:
        raise ValidationError(
            _("An EncodingAESKey is exactly 43 characters of letters, digits, “+” and “/”."),
            code="encoding_aes_key",
        ) from None


_CALLBACK_TOKEN = re.compile(r"^[A-Za-z0-9]{1,32}$")


def validate_callback_token(value: str) -> None:
    # WeCom's admin generates or accepts up to 32 letters and digits.
    if value and not _CALLBACK_TOKEN.match(value):
        raise ValidationError(
            _("A callback Token has 1 to 32 letters or digits."), code="callback_token"
        )


def validate_manager_id(value: str) -> None:
    if value and not _MANAGER_ID.match(value):
        raise ValidationError(
            _("A manager ID has 1 to 64 characters without spaces."), code="manager_id"
        )


NAME_BLANK = _("A name cannot be empty or only spaces.")
NAME_CONTROL = _(
    "A name cannot hold line breaks, tabs, terminal escape codes, unusual spaces or other "
    "invisible characters."
)
# Besides what no text sent to a platform may hold (wecom.rules), a name printed in lists,
# terminals and logs holds no line or paragraph separator and no space but the plain and the
# ideographic one: the others make look-alike names.
_SEPARATORS = {"Zl", "Zp", "Zs"}
_SPACES = {" ", "\u3000"}


def clean_display_name(value: Any) -> str:
    """The one normal form of a name people read: without surrounding whitespace."""
    return value.strip() if isinstance(value, str) else value


def validate_display_name(value: str) -> None:
    """A name shown in lists, pickers, history and terminals: printable and not blank."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(NAME_BLANK, code="blank")
    if has_forbidden_character(value) or any(
        unicodedata.category(char) in _SEPARATORS and char not in _SPACES for char in value
    ):
        raise ValidationError(NAME_CONTROL, code="control")


RATE_LIMIT_MIN = 0.1
RATE_LIMIT_MAX = 10_000
RATE_LIMIT_MESSAGE = _(
    "Calls per second is a number from 0.1 to 10,000; leave it empty for the console's default."
)


def validate_rate_limit(value: float | None) -> None:
    if value is None:
        return
    if (
        not isinstance(value, int | float)
        or not math.isfinite(value)
        or not RATE_LIMIT_MIN <= value <= RATE_LIMIT_MAX
    ):
        raise ValidationError(RATE_LIMIT_MESSAGE, code="rate_limit")
