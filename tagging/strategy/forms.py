"""Admin forms for strategy tags. Each form validates with the services' own checks; once
valid, the admin base saves it through the service (``push``), and WeCom's refusal lands beside
the field it concerns."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from console.service_admin import ServiceForm
from tagging.strategy.models import Strategy, Tag, TagGroup
from tagging.strategy.services import (
    tag_create,
    tag_group_create,
    tag_group_update,
    tag_update,
)
from wecom.rules import ORDER_MAX, ORDER_MIN

ORDER_HELP = _("Larger first, as WeCom sorts: 0 to 4294967295. Empty: on top.")


class _PushingForm(ServiceForm, forms.ModelForm):
    """Saved through a service by the admin base (``console.service_admin``) once valid."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "order" in self.fields:
            order = self.fields["order"]
            order.required = False
            order.help_text = ORDER_HELP
            order.min_value = ORDER_MIN
            order.max_value = ORDER_MAX
        if not self.instance.pk and "order" in self.fields:
            # Empty means "on top"; the model's default 0 would put it at the bottom.
            self.fields["order"].initial = None

    def _post_clean(self) -> None:
        # The service validates with the same rules; the model's own checks would only repeat
        # them, and an edit form must not change its instance before the service has it.
        if self.instance.pk is None:
            super()._post_clean()


class TagGroupAddForm(_PushingForm):
    tags = forms.CharField(
        label=_("tags"),
        widget=forms.Textarea(attrs={"rows": 6, "cols": 40}),
        help_text=_(
            "One tag per line, top first. WeCom has no empty groups: give at least one tag."
        ),
        required=False,
    )

    class Meta:
        model = TagGroup
        fields = ["strategy", "name", "order"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["strategy"].queryset = Strategy.objects.filter(
            parent_wecom_id=0
        ).select_related("app")
        self.fields["strategy"].help_text = _(
            "Tags can only be added under first-level strategies."
        )
        self.fields["order"].help_text = ORDER_HELP

    def clean_tags(self) -> list[str]:
        return [line.rstrip("\r") for line in self.cleaned_data["tags"].split("\n") if line.strip()]

    def push(self, cleaned: dict[str, Any]) -> TagGroup:
        return tag_group_create(
            strategy=cleaned["strategy"],
            name=cleaned["name"],
            order=cleaned.get("order"),
            tags=[(name, None) for name in cleaned.get("tags") or []],
            actor=self.actor(),
        )


class TagGroupChangeForm(_PushingForm):
    class Meta:
        model = TagGroup
        fields = ["name", "order"]

    def push(self, cleaned: dict[str, Any]) -> TagGroup:
        return tag_group_update(
            group=self.instance,
            name=cleaned["name"],
            order=cleaned.get("order"),
            expected_version=cleaned.get("expected_version"),
            actor=self.actor(),
        )


class TagAddForm(_PushingForm):
    class Meta:
        model = Tag
        fields = ["group", "name", "order"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = TagGroup.objects.filter(
            strategy__parent_wecom_id=0
        ).select_related("strategy")

    def push(self, cleaned: dict[str, Any]) -> Tag:
        return tag_create(
            group=cleaned["group"],
            name=cleaned["name"],
            order=cleaned.get("order"),
            actor=self.actor(),
        )


class TagChangeForm(_PushingForm):
    class Meta:
        model = Tag
        fields = ["name", "order"]

    def push(self, cleaned: dict[str, Any]) -> Tag:
        return tag_update(
            tag=self.instance,
            name=cleaned["name"],
            order=cleaned.get("order"),
            expected_version=cleaned.get("expected_version"),
            actor=self.actor(),
        )
