"""Models of the tagging app.

Part 1, WeCom strategy tags (issue 6): strategies (规则组) → tag groups → tags, mirrored from
WeCom per app credential; the corporate tags (企业客户标签, issue 21) are the groups and tags of
one more strategy row per app, of kind corporate. ``name`` and ``order`` always hold what WeCom
has (as of the last push or pull); a local edit that has not reached WeCom yet waits in
``pending_*`` with the item's sync state saying why. The services in
``tagging/strategy/services.py`` are the only writers.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from console.versioning import Versioned
from wecom.models import WeComApp

# =============================================================================================
# WeCom strategy tags
# =============================================================================================


class SyncState(models.TextChoices):
    IN_SYNC = "in_sync", _("in sync")
    PENDING = "pending", _("local change pending")
    FAILED = "failed", _("push failed")
    CONFLICT = "conflict", _("changed in WeCom")


class SyncedItem(Versioned):  # optimistic locking: console/versioning.py
    """What strategies, groups and tags share: their place in WeCom and their sync state."""

    app = models.ForeignKey(WeComApp, on_delete=models.CASCADE, verbose_name=_("WeCom app"))
    name = models.CharField(_("name"), max_length=64)
    sync_state = models.CharField(
        _("sync state"), max_length=16, choices=SyncState.choices, default=SyncState.IN_SYNC
    )
    # Why the last push failed, or what WeCom changed: a sentence, in the language of whoever
    # caused it.
    sync_message = models.CharField(_("sync message"), max_length=500, blank=True)
    last_synced_at = models.DateTimeField(_("last sync"), null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


class StrategyKind(models.TextChoices):
    STRATEGY = "strategy", _("strategy")
    CORPORATE = "corporate", _("corporate tags")


# The corporate tag library (企业客户标签) hangs under one row per app with this WeCom id, which
# no WeCom strategy has (theirs start at 1): its groups and tags are then the strategy tags'
# models, services, pulls and pages, with only the endpoints told apart.
CORPORATE_WECOM_ID = 0
# What the corporate root is called in the database (the pages show it translated).
CORPORATE_ROOT_NAME = "企业标签"


class Strategy(SyncedItem):
    """A WeCom customer strategy (规则组), managed in WeCom (the console only reads it); or,
    with ``kind`` corporate, the app's corporate tag library (no strategy: WeCom's corp-wide
    tags), made by the console (``corporate_root``)."""

    kind = models.CharField(
        _("kind"), max_length=16, choices=StrategyKind.choices, default=StrategyKind.STRATEGY
    )
    wecom_id = models.PositiveBigIntegerField(_("WeCom strategy ID"))
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        verbose_name=_("parent strategy"),
    )
    parent_wecom_id = models.PositiveBigIntegerField(_("parent strategy ID"), default=0)

    class Meta:
        verbose_name = _("strategy")
        verbose_name_plural = _("strategies")
        ordering = ["app", "wecom_id"]
        constraints = [
            models.UniqueConstraint(fields=["app", "wecom_id"], name="strategy_unique_per_app")
        ]

    @property
    def is_first_level(self) -> bool:
        return self.parent_wecom_id == 0

    @property
    def is_corporate(self) -> bool:
        return self.kind == StrategyKind.CORPORATE

    @property
    def display_name(self) -> str:
        """The name a page shows: the corporate root's in the reader's language."""
        return str(_("Corporate tags")) if self.is_corporate else self.name

    def __str__(self) -> str:
        return self.display_name


class OrderedItem(SyncedItem):
    """A tag group or a tag: named, ordered (larger first, as WeCom sorts), pushed on save."""

    wecom_id = models.CharField(_("WeCom ID"), max_length=64)
    order = models.PositiveBigIntegerField(_("order"), default=0)
    pending_name = models.CharField(_("name to push"), max_length=64, blank=True)
    pending_order = models.PositiveBigIntegerField(_("order to push"), null=True, blank=True)
    pending_delete = models.BooleanField(_("delete to push"), default=False)

    class Meta:
        abstract = True

    @property
    def has_pending(self) -> bool:
        return bool(self.pending_name) or self.pending_order is not None or self.pending_delete

    def last_sync(self, pulled_at: datetime | None) -> datetime | None:
        """When the console last knew this item to match WeCom: its own last push or change,
        or the app's last pull (``pulled_at``) if it is in step."""
        in_step = self.sync_state == SyncState.IN_SYNC and pulled_at is not None
        if in_step and (self.last_synced_at is None or pulled_at > self.last_synced_at):
            return pulled_at
        return self.last_synced_at


class TagGroup(OrderedItem):
    strategy = models.ForeignKey(
        Strategy, on_delete=models.CASCADE, related_name="groups", verbose_name=_("strategy")
    )

    class Meta:
        verbose_name = _("tag group")
        verbose_name_plural = _("tag groups")
        # WeCom's order: larger first; equal orders keep WeCom's listing order (import order).
        ordering = ["-order", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["app", "wecom_id"], name="taggroup_unique_per_app")
        ]
        indexes = [models.Index(fields=["strategy", "name"]), models.Index(fields=["sync_state"])]


class Tag(OrderedItem):
    group = models.ForeignKey(
        TagGroup, on_delete=models.CASCADE, related_name="tags", verbose_name=_("tag group")
    )

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["-order", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["app", "wecom_id"], name="tag_unique_per_app")
        ]
        indexes = [
            models.Index(fields=["group", "name"]),
            models.Index(fields=["sync_state"]),
            # The tag list's order (group by group, WeCom's order within): read, not sorted.
            models.Index(fields=["group", "-order", "id"], name="tag_group_order_idx"),
        ]


# A week: longer, and "automatic" stops meaning anything; 0 turns it off instead.
PULL_MINUTES_MAX = 7 * 24 * 60


class StrategyPull(Versioned, models.Model):
    """The last pull of an app: when, what it found, and what waits for a person."""

    app = models.OneToOneField(
        WeComApp,
        on_delete=models.CASCADE,
        related_name="strategy_pull",
        verbose_name=_("WeCom app"),
    )
    pulled_at = models.DateTimeField(_("last pull"), null=True, blank=True)
    ok = models.BooleanField(_("last pull succeeded"), null=True)
    message = models.CharField(_("last pull result"), max_length=500, blank=True)
    # The plan last shown to a person, by its fingerprint: applying checks WeCom still matches.
    plan_fingerprint = models.CharField(max_length=64, blank=True)
    # Per app: empty follows the console's STRATEGY_PULL_MINUTES, 0 turns the schedule off.
    every_minutes = models.PositiveIntegerField(
        _("automatic pull every (minutes)"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(PULL_MINUTES_MAX)],
        help_text=_(
            "Minutes between two automatic pulls of this app's strategy tags from WeCom. "
            "Empty: the console's default. 0: no automatic pull."
        ),
    )

    class Meta:
        verbose_name = _("strategy tag pull")
        verbose_name_plural = _("strategy tag pulls")

    def __str__(self) -> str:
        return str(self.app)

    @property
    def effective_minutes(self) -> int:
        """Minutes between automatic pulls (0: none): the app's own, or the console's."""
        if self.every_minutes is None:
            return max(settings.STRATEGY_PULL_MINUTES, 0)
        return self.every_minutes
