"""Forms of the WeCom customer-tagging pages: which tags (added, removed) and whom."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from console.ids import object_pk
from wecom.models import WeComApp
from wecom.rules import has_forbidden_character, validate_member_userid, validate_wecom_tag_ids

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


class TagPickerWidget(forms.TextInput):
    """The tag ids' text box, and a search of the chosen app's tags by name above it: picked
    tags show as chips and their ids go into the box (tagging/static/tagging/tag_picker.js).
    Without the script the box alone is shown; pasted ids are taken either way."""

    template_name = "tagging/widgets/tag_picker.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"class": "vTextField", "autocomplete": "off", **(attrs or {})})

    def id_for_label(self, id_: str) -> str:
        # The field's label names the search box: that is where a person picks tags.
        return f"{id_}_search" if id_ else id_

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["search_url"] = reverse("admin:tagging_customeraudience_tags")
        return context


class CustomerTagsForm(forms.Form):
    """The tags of a job; also carried, hidden, from the preview to the start."""

    add = TagIdsField(
        label=_("Tags to add"),
        required=False,
        widget=TagPickerWidget,
        help_text=_(
            "Search the app's strategy and corporate tags by name and pick them; or paste "
            "WeCom tag ids (et…) separated by spaces."
        ),
    )
    remove = TagIdsField(label=_("Tags to remove"), required=False, widget=TagPickerWidget)

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
        help_text=_(
            "Every customer of each of these members; separated by spaces or commas. Leave it "
            "empty to take every member with customer contact (with a tag condition below)."
        ),
    )
    having = TagIdsField(
        label=_("only customers who have"),
        required=False,
        widget=TagPickerWidget,
        help_text=_("Keep the (member, customer) pairs that carry every one of these tags."),
    )
    lacking = TagIdsField(
        label=_("only customers who lack"),
        required=False,
        widget=TagPickerWidget,
        help_text=_("Keep the pairs that carry none of these tags."),
    )

    field_order = ("app", "add", "remove", "source", "file", "members", "having", "lacking")

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
        condition = cleaned.get("having") or cleaned.get("lacking")
        if (
            source == MEMBERS
            and not cleaned.get("members")
            and not condition
            and "members" not in self.errors
        ):
            self.add_error(
                "members",
                _("Give at least one member's userid, or a tag the customers have or lack."),
            )
        both = sorted(set(cleaned.get("having") or []) & set(cleaned.get("lacking") or []))
        if source == MEMBERS and both:
            self.add_error(
                "lacking",
                ValidationError(
                    _("A customer cannot both have and lack %(tags)s."),
                    params={"tags": ", ".join(both)},
                ),
            )
        return cleaned


# Ids the picker asks names for at once: two fields' worth of pasted ids, and a bound.
LOOKUP_IDS_MAX = 200
# Names in the console's tables are at most 64 characters: a longer search matches nothing.
QUERY_MAX = 64


class TagSearchForm(forms.Form):
    """The query string of the tag picker's search (``?app=…&q=…`` or ``&ids=…``): refused
    with a sentence when it is not one the page sends."""

    app = forms.CharField(
        error_messages={"required": _("Choose the WeCom app first.")}, strip=False
    )
    q = forms.CharField(required=False, max_length=QUERY_MAX)
    ids = TagIdsField(required=False)

    def clean_app(self) -> int:
        app_id = object_pk(self.cleaned_data["app"])
        if app_id is None:
            raise ValidationError(_("The WeCom app was not understood."), code="app")
        return app_id

    def clean_q(self) -> str:
        query = self.cleaned_data["q"]
        if has_forbidden_character(query):
            raise ValidationError(
                _("The search holds a character no tag name has."), code="character"
            )
        return query

    def clean_ids(self) -> list[str]:
        ids = self.cleaned_data["ids"]
        if len(ids) > LOOKUP_IDS_MAX:
            raise ValidationError(
                _("At most %(max)s tag ids at once."), code="ids", params={"max": LOOKUP_IDS_MAX}
            )
        return ids

    def refusal(self) -> str:
        return " ".join(str(error) for errors in self.errors.values() for error in errors)
