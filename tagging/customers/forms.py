"""Forms of the WeCom customer-tagging pages: which tags (added, removed) and whom."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from wecom.models import WeComApp
from wecom.rules import validate_member_userid, validate_wecom_tag_ids

FILE, MEMBERS = "file", "members"
_SEPARATORS = re.compile(r"[\s,;，；、]+")


def split_ids(text: str) -> list[str]:
    return list(dict.fromkeys(token for token in _SEPARATORS.split(text or "") if token))


class TagIdsField(forms.CharField):
    """Tag ids (``et…``, corporate or strategy) separated by spaces, commas or new lines."""

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return split_ids(super().to_python(value))

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
        validate_wecom_tag_ids(value)

    def prepare_value(self, value: Any) -> Any:
        return " ".join(value) if isinstance(value, list) else value


class CustomerTagsForm(forms.Form):
    """The tags of a job; also carried, hidden, from the preview to the start."""

    add = TagIdsField(
        label=_("Tags to add"),
        required=False,
        help_text=_("WeCom tag ids (et…), corporate or strategy tags, separated by spaces."),
    )
    remove = TagIdsField(label=_("Tags to remove"), required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        add, remove = cleaned.get("add") or [], cleaned.get("remove") or []
        if "add" in cleaned and "remove" in cleaned and not add and not remove:
            raise ValidationError(_("Choose at least one tag to add or to remove."))
        both = sorted(set(add) & set(remove))
        if both:
            raise ValidationError(
                _("A tag cannot be both added and removed: %(tags)s."),
                params={"tags": ", ".join(both)},
            )
        return cleaned

    def tag_data(self) -> dict[str, str]:
        return {name: " ".join(self.cleaned_data.get(name) or []) for name in ("add", "remove")}


class CustomerJobForm(CustomerTagsForm):
    """The first page: the app, the tags, and the customers from a file or chosen members."""

    app = forms.ModelChoiceField(label=_("WeCom app"), queryset=WeComApp.objects.all())
    source = forms.ChoiceField(
        label=_("Customers from"),
        choices=[
            (FILE, _("a file (CSV, TXT or Excel .xlsx)")),
            (MEMBERS, _("the customers of chosen members")),
        ],
        initial=FILE,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=_("file"),
        required=False,
        help_text=_(
            "A column “external_userid” (the customers) and optionally “userid” (the member "
            "whose tags change); a line without a member stands for every member following "
            "that customer."
        ),
    )
    members = forms.CharField(
        label=_("members (userid)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "zhangsan lisi"}),
        help_text=_("Every customer of each of these members; separated by spaces or commas."),
    )

    field_order = ("app", "add", "remove", "source", "file", "members")

    def __init__(self, *args: Any, upload_refusal: Exception | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upload_refusal = upload_refusal

    def clean_members(self) -> list[str]:
        userids = split_ids(self.cleaned_data.get("members") or "")
        for userid in userids:
            validate_member_userid(userid)
        return userids

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        source = cleaned.get("source")
        if source == FILE and self.upload_refusal is not None:
            self.add_error(None, str(self.upload_refusal))
        elif source == FILE and not cleaned.get("file"):
            self.add_error("file", _("Choose a file."))
        if source == MEMBERS and not cleaned.get("members") and "members" not in self.errors:
            self.add_error("members", _("Give at least one member's userid."))
        return cleaned
