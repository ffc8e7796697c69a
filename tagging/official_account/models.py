"""Official Account user tags, as pulled from each account (issue 7).

The platform is the source of truth: rows are refreshed by
:func:`tagging.official_account.services.oa_tags_pull` and changed only
through the services, which call the platform first.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from console.versioning import Versioned
from wecom.models import OfficialAccount
from wecom.rules import OA_RESERVED_TAG_IDS, OA_UNDELETABLE_FOLLOWERS


class OfficialAccountTag(Versioned, models.Model):
    account = models.ForeignKey(
        OfficialAccount,
        on_delete=models.CASCADE,
        related_name="user_tags",
        verbose_name=_("Official Account"),
    )
    tag_id = models.PositiveIntegerField(_("tag ID"))
    name = models.CharField(_("name"), max_length=30)
    follower_count = models.PositiveIntegerField(_("followers"), default=0)
    pulled_at = models.DateTimeField(_("last pulled"), null=True, blank=True)

    class Meta:
        verbose_name = _("Official Account tag")
        verbose_name_plural = _("Official Account tags")
        ordering = ("account__name", "tag_id")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "tag_id"], name="tagging_oatag_unique_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.account.name} #{self.tag_id})"

    @property
    def is_reserved(self) -> bool:
        return self.tag_id in OA_RESERVED_TAG_IDS

    @property
    def is_deletable(self) -> bool:
        return not self.is_reserved and self.follower_count <= OA_UNDELETABLE_FOLLOWERS
