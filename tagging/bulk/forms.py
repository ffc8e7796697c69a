"""Forms of the bulk-job pages: what to tag (target) and whom (audience)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from tagging.bulk.jobs import TAG, UNTAG
from tagging.bulk.services import BotLabel, Target
from tagging.official_account.models import OfficialAccountTag
from wecom.models import ChatbotBot
from wecom.rules import (
    OA_BATCH_SIZE_MAX,
    validate_bulk_batch_size,
    validate_bulk_operation,
    validate_chatbot_label_text,
)

OA, BOT = "oa", "bot"
FILE, PASTE, FOLLOWERS = "file", "paste", "tag"


class BulkTargetForm(forms.Form):
    """The target and options of a job; also carried, hidden, from the preview to the start."""

    target_kind = forms.ChoiceField(
        label=_("What to set"),
        choices=[(OA, _("an Official Account tag")), (BOT, _("a chatbot user label"))],
        initial=OA,
        widget=forms.RadioSelect,
    )
    oa_tag = forms.ModelChoiceField(
        label=_("Official Account tag"),
        queryset=OfficialAccountTag.objects.select_related("account"),
        required=False,
    )
    operation = forms.ChoiceField(
        label=_("Operation"),
        choices=[(TAG, _("tag")), (UNTAG, _("untag (Official Account tags only)"))],
        initial=TAG,
        widget=forms.RadioSelect,
    )
    bot = forms.ModelChoiceField(
        label=_("chatbot"), queryset=ChatbotBot.objects.all(), required=False
    )
    category = forms.CharField(label=_("category"), max_length=100, required=False)
    label = forms.CharField(label=_("label"), max_length=100, required=False)
    desc = forms.CharField(label=_("description"), max_length=200, required=False)
    appid = forms.CharField(
        label=_("AppID of the OpenIDs"),
        max_length=64,
        required=False,
        help_text=_(
            "The Official Account or mini program the OpenIDs belong to; empty: the bot's own."
        ),
    )
    batch_size = forms.IntegerField(label=_("OpenIDs per call"), required=False, min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["batch_size"].help_text = _(
            "Empty: %(oa)s for Official Account tags (at most %(oa_max)s), %(bot)s for chatbot "
            "labels."
        ) % {
            "oa": settings.BULK_OA_BATCH_SIZE,
            "oa_max": OA_BATCH_SIZE_MAX,
            "bot": settings.BULK_CHATBOT_BATCH_SIZE,
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("target_kind")
        if kind == OA and not cleaned.get("oa_tag"):
            self.add_error("oa_tag", _("Choose the tag."))
        if kind == BOT:
            if not cleaned.get("bot"):
                self.add_error("bot", _("Choose the chatbot."))
            for name in ("category", "label", "desc"):
                self._check(name, validate_chatbot_label_text, cleaned.get(name) or "")
        platform = "wechat" if kind == OA else "chatbot"
        if cleaned.get("operation"):
            self._check(
                "operation",
                lambda op: validate_bulk_operation(op, platform=platform),
                cleaned["operation"],
            )
        if cleaned.get("batch_size") is not None:
            self._check(
                "batch_size",
                lambda size: validate_bulk_batch_size(size, platform=platform),
                cleaned["batch_size"],
            )
        return cleaned

    def _check(self, name: str, rule: Any, value: Any) -> None:
        """The platform rule of wecom/rules.py, its message beside the field."""
        try:
            rule(value)
        except ValidationError as error:
            self.add_error(name, error)

    def target(self) -> Target:
        data = self.cleaned_data
        if data["target_kind"] == OA:
            return data["oa_tag"]
        return BotLabel(
            bot=data["bot"],
            category=data["category"].strip(),
            label=data["label"].strip(),
            desc=data["desc"].strip(),
            appid=data["appid"].strip(),
        )


class BulkJobForm(BulkTargetForm):
    """The first page: the target, and the audience from a file, a pasted list or a tag."""

    source = forms.ChoiceField(
        label=_("OpenIDs from"),
        choices=[
            (FILE, _("a file (CSV, TXT or Excel .xlsx)")),
            (PASTE, _("a pasted list")),
            (FOLLOWERS, _("the followers of another Official Account tag")),
        ],
        initial=FILE,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(label=_("file"), required=False)
    column = forms.CharField(
        label=_("column"),
        max_length=100,
        required=False,
        help_text=_(
            "The header of the column holding the OpenIDs; empty: the “openid” column, or the "
            "only one."
        ),
    )
    text = forms.CharField(
        label=_("OpenIDs"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": "oAbC…\noDeF…"}),
        help_text=_("One per line, or separated by spaces or commas."),
    )
    source_tag = forms.ModelChoiceField(
        label=_("copy the followers of"),
        queryset=OfficialAccountTag.objects.select_related("account"),
        required=False,
    )

    def __init__(self, *args: Any, upload_refusal: Exception | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The file was refused while it arrived (UploadSizeLimit): why, instead of "choose one".
        self.upload_refusal = upload_refusal

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        source = cleaned.get("source")
        if source == FILE and self.upload_refusal is not None:
            self.add_error(None, str(self.upload_refusal))
        elif source == FILE and not cleaned.get("file"):
            self.add_error("file", _("Choose a file."))
        if source == PASTE and not (cleaned.get("text") or "").strip():
            self.add_error("text", _("Paste the OpenIDs."))
        if source == FOLLOWERS and not cleaned.get("source_tag"):
            self.add_error("source_tag", _("Choose the tag."))
        return cleaned

    def target_data(self) -> dict[str, str]:
        """The target fields as the preview page carries them on."""
        return {
            name: ""
            if self.cleaned_data.get(name) is None
            else str(getattr(self.cleaned_data[name], "pk", self.cleaned_data[name]))
            for name in BulkTargetForm.base_fields
        }
