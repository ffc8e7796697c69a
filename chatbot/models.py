"""Chatbot skills and their auto-replies, as the console keeps them before and after a push.

The platform has no read call for auto-replies: the console is where they are written, and each
reply remembers whether what it holds is what the platform was last sent (its sync state) and
under which key (skill name and standard question) it was sent, since the platform has no
delete call and a changed key leaves the old entry behind.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from chatbot.answers import Answer, answer_from_content
from console.versioning import Versioned
from wecom.models import ChatbotBot
from wecom.rules import MANAGER_ID_MAX_LENGTH, QUESTION_MAX_LENGTH, SKILL_NAME_MAX_LENGTH
from wecom.validators import validate_manager_id


class ReplySyncState(models.TextChoices):
    """Where an auto-reply stands against the dialogue platform (a strategy tag has its own
    ``tagging.strategy.models.SyncState``, with other values)."""

    CHANGED = "changed", _("changed, not pushed")
    IN_SYNC = "in_sync", _("in sync")
    FAILED = "failed", _("push failed")


class Skill(Versioned, models.Model):
    bot = models.ForeignKey(
        ChatbotBot, on_delete=models.PROTECT, related_name="skills", verbose_name=_("chatbot")
    )
    name = models.CharField(_("skill name"), max_length=SKILL_NAME_MAX_LENGTH)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("skill")
        verbose_name_plural = _("skills")
        ordering = ["bot__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["bot", "name"], name="chatbot_skill_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class AutoReply(Versioned, models.Model):
    skill = models.ForeignKey(
        Skill, on_delete=models.CASCADE, related_name="replies", verbose_name=_("skill")
    )
    title = models.CharField(_("standard question"), max_length=QUESTION_MAX_LENGTH)
    questions = models.JSONField(_("similar questions"), default=list, blank=True)
    content = models.JSONField(_("answer"))
    managerid = models.CharField(
        _("manager ID"),
        max_length=MANAGER_ID_MAX_LENGTH,
        blank=True,
        validators=[validate_manager_id],
        help_text=_("Empty: the chatbot's default manager ID."),
    )
    sync_state = models.CharField(
        _("sync state"),
        max_length=16,
        choices=ReplySyncState.choices,
        default=ReplySyncState.CHANGED,
    )
    sync_message = models.CharField(_("last push result"), max_length=500, blank=True)
    last_pushed_at = models.DateTimeField(_("last pushed"), null=True, blank=True)
    # The key the platform holds this reply under since its last accepted push: "" if never.
    pushed_skillname = models.CharField(
        _("pushed skill name"), max_length=SKILL_NAME_MAX_LENGTH, blank=True
    )
    pushed_title = models.CharField(
        _("pushed standard question"), max_length=QUESTION_MAX_LENGTH, blank=True
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("auto-reply")
        verbose_name_plural = _("auto-replies")
        ordering = ["skill__name", "title"]
        constraints = [
            models.UniqueConstraint(fields=["skill", "title"], name="chatbot_reply_unique_title")
        ]
        indexes = [models.Index(fields=["sync_state"], name="chatbot_reply_sync_state")]
        permissions = [("push_autoreply", _("Can push auto-replies to the dialogue platform"))]

    def __str__(self) -> str:
        return self.title

    @cached_property
    def answer(self) -> Answer:
        return answer_from_content(self.content)

    def effective_managerid(self) -> str:
        return self.managerid or self.skill.bot.default_manager_id

    @property
    def on_platform(self) -> bool:
        """The platform holds an entry sent from this reply (perhaps under an older key)."""
        return bool(self.pushed_title)

    def platform_key(self) -> tuple[str, str]:
        return (self.skill.name, self.title)

    def pushed_key(self) -> tuple[str, str] | None:
        return (self.pushed_skillname, self.pushed_title) if self.pushed_title else None

    def canonical_content(self) -> Any:
        """The answer in the seed's format and key order (the database may reorder keys)."""
        try:
            return self.answer.content()
        except ValidationError:
            return self.content

    def export_row(self) -> dict[str, Any]:
        """The reply in the import/export format (``skills export``)."""
        return {
            "skillname": self.skill.name,
            "title": self.title,
            "questions": list(self.questions),
            "content": self.canonical_content(),
            "managerid": self.managerid,
        }


class PublishStatus(models.TextChoices):
    RUNNING = "running", _("publishing")
    SUCCEEDED = "succeeded", _("published")
    FAILED = "failed", _("publish failed")


class LiveState(models.TextChoices):
    """Where a reply's current content is: only here, in the bot's debug environment, or
    online (pushed before a publish that succeeded). Computed, never stored."""

    CHANGED = "changed", _("changed here")
    PUSHED = "pushed", _("pushed, not yet live")
    LIVE = "live", _("live")


class BotPublish(models.Model):
    """One publish of a bot (debug copied to online), as the console started or followed it.

    ``started_at`` is when the console called ``publish``: a reply pushed before it is live once
    the publish succeeded. A publish that was already running when the console came (started
    in the platform's own pages) is followed to its end but makes nothing live here: nobody
    knows when it started, so ``started_at`` stays empty.
    """

    bot = models.ForeignKey(
        ChatbotBot,
        on_delete=models.CASCADE,
        related_name="chatbot_publishes",
        verbose_name=_("chatbot"),
    )
    job = models.ForeignKey(
        "console.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("background job"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=PublishStatus.choices, default=PublishStatus.RUNNING
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    message = models.CharField(_("result"), max_length=500, blank=True)
    started_at = models.DateTimeField(_("publish started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("chatbot publish")
        verbose_name_plural = _("chatbot publishes")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["bot", "status", "started_at"], name="chatbot_publish_bot_status")
        ]
        permissions = [("publish_bot", _("Can publish a chatbot's replies online"))]

    def __str__(self) -> str:
        return f"{self.bot} · {self.get_status_display()}"
