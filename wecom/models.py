"""Platform credentials: WeCom apps, Official Accounts and dialogue-platform bots.

Secrets are encrypted at rest (:class:`console.fields.EncryptedSecretField`) and shown only by
their last four characters. Only the credential admin role can open these; other roles pick a
credential by name where a feature needs one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.validators import ProhibitNullCharactersValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from console.fields import EncryptedSecretField
from console.versioning import Versioned
from wecom.validators import (
    NAME_BLANK,
    RATE_LIMIT_MESSAGE,
    clean_display_name,
    validate_bot_appid,
    validate_bot_encoding_aes_key,
    validate_bot_token,
    validate_callback_token,
    validate_corp_id,
    validate_display_name,
    validate_manager_id,
    validate_oa_appid,
    validate_platform_secret,
    validate_rate_limit,
)


class DisplayNameField(models.CharField):
    """A name people read: trimmed, never blank, no control characters, wherever it is set.

    The rule is in the model field, so the admin, `manage.py credential set` and every service
    (all of which run ``full_clean``) trim and refuse alike, with the same words.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [validate_display_name])
        kwargs.setdefault("error_messages", {"blank": NAME_BLANK})
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> Any:
        return clean_display_name(super().to_python(value))

    def formfield(self, **kwargs: Any) -> Any:
        field = super().formfield(**{"error_messages": {"required": NAME_BLANK}, **kwargs})
        # The form's own NUL check would answer in other words than the model's rule.
        field.validators = [
            validator
            for validator in field.validators
            if not isinstance(validator, ProhibitNullCharactersValidator)
        ]
        return field


class RateLimitField(models.FloatField):
    """Calls per second: finite, from 0.1 to 10,000, or empty; one message for every refusal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [validate_rate_limit])
        kwargs.setdefault("error_messages", {"invalid": RATE_LIMIT_MESSAGE})
        super().__init__(*args, **kwargs)

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(
            **{
                "form_class": forms.FloatField,
                "error_messages": {"invalid": RATE_LIMIT_MESSAGE},
                **kwargs,
            }
        )


class Platform(models.TextChoices):
    WECOM = "wecom", _("WeCom")
    OFFICIAL_ACCOUNT = "wechat", _("Official Account")
    CHATBOT = "chatbot", _("Dialogue platform")


class PlatformCredential(Versioned, models.Model):
    name = DisplayNameField(
        _("name"),
        max_length=64,
        unique=True,
        help_text=_("How the console and its users refer to this credential."),
    )
    rate_limit = RateLimitField(
        _("calls per second"),
        null=True,
        blank=True,
        help_text=_(
            "Most calls per second to the platform with this credential, across all workers. "
            "Empty: the console's default."
        ),
    )
    last_checked_at = models.DateTimeField(_("last connection test"), null=True, editable=False)
    last_check_ok = models.BooleanField(_("last test passed"), null=True, editable=False)
    last_check_message = models.CharField(
        _("last test result"), max_length=500, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    platform: Platform
    # The fields a connection test depends on: changing one makes the last result meaningless.
    connection_fields: tuple[str, ...] = ()

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def forget_connection_check(self, *, changed: Iterable[str]) -> bool:
        """Clear the last test result if ``changed`` touches what it tested; say if it did."""
        if not set(changed) & set(self.connection_fields) or self.last_check_ok is None:
            return False
        self.last_checked_at = None
        self.last_check_ok = None
        self.last_check_message = ""
        return True


class WeComApp(PlatformCredential):
    platform = Platform.WECOM
    connection_fields = ("corp_id", "secret")

    corp_id = models.CharField(_("corp ID"), max_length=18, validators=[validate_corp_id])
    secret = EncryptedSecretField(
        _("app secret"),
        validators=[validate_platform_secret],
        help_text=_(
            "Secret of a self-built app listed under Customer Contact → “apps that may call the "
            "API”; system-app secrets are refused since 2023-12-01."
        ),
    )
    agent_id = models.PositiveIntegerField(_("agent ID"), null=True, blank=True)
    # The app's callback ("接收事件服务器") settings in WeCom's admin: its own Token and
    # EncodingAESKey, not the secret. Empty: WeCom sends this app no callbacks.
    callback_token = EncryptedSecretField(
        _("callback Token"),
        blank=True,
        validators=[validate_callback_token],
        help_text=_(
            "The Token of the app's “receive events” settings in WeCom's admin (API receiving). "
            "Leave empty if the app sends no callbacks."
        ),
    )
    callback_encoding_aes_key = EncryptedSecretField(
        _("callback EncodingAESKey"),
        blank=True,
        validators=[validate_bot_encoding_aes_key],
        help_text=_("The EncodingAESKey of the same settings: 43 characters."),
    )

    class Meta(PlatformCredential.Meta):
        verbose_name = _("WeCom app")
        verbose_name_plural = _("WeCom apps")
        permissions = [("test_connection_wecomapp", _("Can test the connection of a WeCom app"))]


class OfficialAccount(PlatformCredential):
    platform = Platform.OFFICIAL_ACCOUNT
    connection_fields = ("appid", "secret")

    appid = models.CharField(_("AppID"), max_length=18, unique=True, validators=[validate_oa_appid])
    secret = EncryptedSecretField(_("AppSecret"), validators=[validate_platform_secret])

    class Meta(PlatformCredential.Meta):
        verbose_name = _("Official Account")
        verbose_name_plural = _("Official Accounts")
        permissions = [
            ("test_connection_officialaccount", _("Can test the connection of an Official Account"))
        ]


class ChatbotBot(PlatformCredential):
    platform = Platform.CHATBOT
    connection_fields = ("appid", "token", "encoding_aes_key")

    appid = models.CharField(_("AppID"), max_length=64, validators=[validate_bot_appid])
    token = EncryptedSecretField(_("TOKEN"), validators=[validate_bot_token])
    encoding_aes_key = EncryptedSecretField(
        _("EncodingAESKey"), validators=[validate_bot_encoding_aes_key]
    )
    default_manager_id = models.CharField(
        _("default manager ID"),
        max_length=64,
        blank=True,
        validators=[validate_manager_id],
        help_text=_("The administrator that auto-reply skills are set up as, unless a skill says."),
    )

    class Meta(PlatformCredential.Meta):
        verbose_name = _("chatbot")
        verbose_name_plural = _("chatbots")
        permissions = [("test_connection_chatbotbot", _("Can test the connection of a chatbot"))]


class CallbackRefusal(models.TextChoices):
    TOO_LARGE = "too_large", _("body too large")
    BAD_REQUEST = "bad_request", _("malformed request")
    BAD_SIGNATURE = "bad_signature", _("signature does not match")
    UNDECRYPTABLE = "undecryptable", _("cannot be decrypted with the app's key")
    WRONG_CORP = "wrong_corp", _("meant for another corp")
    STALE = "stale", _("timestamp too old or in the future")
    REPLAYED = "replayed", _("replayed")
    NOT_CONFIGURED = "not_configured", _("callbacks not configured for this app")
    RATE_LIMITED = "rate_limited", _("too many requests")


class WeComCallbackStatus(models.Model):
    """What a WeCom app's callback receiver has seen: counts and the latest of each."""

    app = models.OneToOneField(
        WeComApp, on_delete=models.CASCADE, related_name="callback_status", verbose_name=_("app")
    )
    verified_at = models.DateTimeField(_("URL verified"), null=True)
    events_received = models.PositiveIntegerField(_("events received"), default=0)
    events_duplicate = models.PositiveIntegerField(_("duplicate deliveries"), default=0)
    events_refused = models.PositiveIntegerField(_("requests refused"), default=0)
    last_event_at = models.DateTimeField(_("last event received"), null=True)
    last_event_summary = models.CharField(_("last event"), max_length=200, blank=True)
    last_refused_at = models.DateTimeField(_("last refusal"), null=True)
    last_refusal = models.CharField(
        _("last refusal reason"), max_length=20, blank=True, choices=CallbackRefusal.choices
    )

    class Meta:
        verbose_name = _("WeCom callback status")
        verbose_name_plural = _("WeCom callback statuses")

    def __str__(self) -> str:
        return str(self.app)


class WeComCallbackEvent(models.Model):
    """One tag-change event WeCom sent, once: deliveries of the same event share ``dedup_key``.

    ``claimed_by`` is the targeted-pull job that takes it; events nobody claimed yet wait for
    the next job (and the scheduled full pull catches anything lost).
    """

    app = models.ForeignKey(
        WeComApp, on_delete=models.CASCADE, related_name="callback_events", verbose_name=_("app")
    )
    dedup_key = models.CharField(max_length=64, unique=True, editable=False)
    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)
    create_time = models.BigIntegerField(_("WeCom time"), default=0)
    change_type = models.CharField(_("change"), max_length=16)
    tag_type = models.CharField(_("kind"), max_length=16, blank=True)
    item_id = models.CharField(_("tag or group ID"), max_length=64, blank=True)
    strategy_id = models.BigIntegerField(_("strategy ID"), null=True, blank=True)
    claimed_by = models.ForeignKey(
        "console.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    processed_at = models.DateTimeField(_("applied"), null=True, blank=True)

    class Meta:
        verbose_name = _("WeCom callback event")
        verbose_name_plural = _("WeCom callback events")
        ordering = ["received_at", "pk"]
        indexes = [models.Index(fields=["app", "claimed_by"], name="wecom_cb_event_unclaimed")]

    def __str__(self) -> str:
        return f"{self.change_type} {self.tag_type} {self.item_id}".strip()
