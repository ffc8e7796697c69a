"""Admin forms for skills and replies: structured fields, the rules of chatbot.answers."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy as _

from chatbot.answers import (
    KIND_LABELS,
    Answer,
    answer_from_editor,
    answer_to_editor,
)
from chatbot.models import AutoReply, Skill
from chatbot.selectors import leftover_warning, skill_pushed_reply_count
from chatbot.services import (
    reply_create,
    reply_update,
    skill_create,
    skill_leftover_sentence,
    skill_rename,
    validate_skill_name,
)
from console.bounded_json import JsonRefused, JsonSyntaxRefused, json_loads_bounded
from console.service_admin import ServiceForm
from wecom import rules
from wecom.models import ChatbotBot

# The editor's answer: a combined answer's parts, a part's articles or segments, one of them.
ANSWER_JSON_DEPTH = 8
_EMPTY_ANSWER = {"type": "text", "segments": [{"kind": "text", "text": ""}]}


class AnswerEditorWidget(forms.Widget):
    """The answer as structured fields built by ``answer_editor.js``, with a phone preview.

    What travels is the editor's JSON in one hidden input; nobody types it. The labels of every
    field come from ``<template>`` elements rendered here, in the user's language.
    """

    template_name = "chatbot/widgets/answer_editor.html"

    class Media:
        css = {"all": ("chatbot/answer_editor.css",)}
        js = (
            "vendor/sortablejs-1.15.7/Sortable.min.js",
            "console/console.js",
            "chatbot/answer_editor.js",
        )

    def format_value(self, value: Any) -> str:
        if value in (None, ""):
            return json.dumps(_EMPTY_ANSWER, ensure_ascii=False)
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["kinds"] = [(kind, str(label)) for kind, label in KIND_LABELS.items()]
        context["single_kinds"] = [
            (kind, str(label)) for kind, label in KIND_LABELS.items() if kind != "multimsg"
        ]
        return context


class AnswerField(forms.Field):
    widget = AnswerEditorWidget

    def to_python(self, value: Any) -> Answer | None:
        if value in (None, ""):
            return None
        if isinstance(value, str):
            try:
                value = json_loads_bounded(value, max_depth=ANSWER_JSON_DEPTH)
            except JsonSyntaxRefused:
                raise ValidationError(
                    gettext("The answer could not be read. Reload the page and try again."),
                    code="json",
                ) from None
            except JsonRefused as refusal:
                raise ValidationError(str(refusal), code="json") from None
        return answer_from_editor(value)

    def validate(self, value: Any) -> None:
        if value is None:
            raise ValidationError(gettext("Write the answer."), code="required")


class QuestionsField(forms.CharField):
    """Similar questions, one per line, in order."""

    widget = forms.Textarea(attrs={"rows": 5, "class": "vLargeTextField"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(value)
        return value

    def to_python(self, value: Any) -> list[str]:
        text = super().to_python(value) or ""
        return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


class AutoReplyForm(ServiceForm, forms.ModelForm):
    questions = QuestionsField(
        label=_("similar questions"),
        required=False,
        help_text=_("One per line, in the order they should be sent. Empty lines are ignored."),
    )
    answer = AnswerField(label=_("answer"))
    leftover_confirmed = forms.BooleanField(
        label=_("I understand that the old entry stays on the platform"),
        required=False,
    )

    class Meta:
        model = AutoReply
        fields = ("skill", "title", "questions", "managerid")
        widgets = {"title": forms.TextInput(attrs={"class": "vTextField", "autocomplete": "off"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "skill" in self.fields:
            field = self.fields["skill"]
            field.queryset = Skill.objects.select_related("bot")
            # Skills of several bots may share a name: say whose.
            field.label_from_instance = lambda skill: f"{skill.name} ({skill.bot.name})"
        if self.instance.pk and "answer" in self.fields:
            try:
                self.initial["answer"] = answer_to_editor(self.instance.answer)
            except ValidationError:
                # Stored content the rules now refuse: show it as plain text to be fixed.
                self.initial["answer"] = {
                    "type": "text",
                    "segments": [{"kind": "text", "text": json.dumps(self.instance.content)}],
                }
        if "title" in self.fields:
            self.fields["title"].help_text = gettext(
                "What a user asks. The platform keys the reply by skill and this question."
            )
        self.leftover_warning = ""

    def clean_title(self) -> str:
        title = (self.cleaned_data.get("title") or "").strip()
        rules.validate_chatbot_text(
            title, label=gettext("The standard question"), max_length=rules.QUESTION_MAX_LENGTH
        )
        return title

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        from chatbot.answers import validate_questions

        title = cleaned.get("title")
        if title is not None and "questions" in cleaned:
            try:
                cleaned["questions"] = validate_questions(title, cleaned["questions"])
            except ValidationError as error:
                self.add_error("questions", error)
        skill = cleaned.get("skill")
        if self.instance.pk and skill is not None and title is not None:
            self.leftover_warning = leftover_warning(self.instance, skill=skill, title=title)
            if self.leftover_warning and not cleaned.get("leftover_confirmed"):
                self.add_error("leftover_confirmed", self.leftover_warning)
        return cleaned

    def push(self, cleaned: dict[str, Any]) -> AutoReply:
        values = {
            "title": cleaned["title"],
            "questions": cleaned.get("questions") or [],
            "answer": cleaned["answer"],
            "managerid": cleaned.get("managerid") or "",
            "actor": self.actor(),
        }
        if self.instance.pk:
            reply = reply_update(
                reply=self.instance,
                skill=cleaned["skill"],
                leftover_confirmed=bool(cleaned.get("leftover_confirmed")),
                expected_version=cleaned.get("expected_version"),
                **values,
            )
        else:
            reply = reply_create(skill=cleaned["skill"], **values)
        assert self.request is not None
        self.request._chatbot_saved_reply = reply.pk  # type: ignore[attr-defined]
        return reply


class SkillForm(ServiceForm, forms.ModelForm):
    leftover_confirmed = forms.BooleanField(
        label=_("I understand that the old entries stay on the platform"), required=False
    )

    class Meta:
        model = Skill
        fields = ("bot", "name")

    def clean_name(self) -> str:
        name = (self.cleaned_data.get("name") or "").strip()
        validate_skill_name(name)
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        name = cleaned.get("name")
        if self.instance.pk and name and name != self.instance.name:
            pushed = skill_pushed_reply_count(self.instance)
            if pushed and not cleaned.get("leftover_confirmed"):
                self.add_error(
                    "leftover_confirmed",
                    skill_leftover_sentence(skill=self.instance, pushed=pushed),
                )
        return cleaned

    def push(self, cleaned: dict[str, Any]) -> Skill:
        if self.instance.pk:
            return skill_rename(
                skill=self.instance,
                name=cleaned["name"],
                actor=self.actor(),
                leftover_confirmed=bool(cleaned.get("leftover_confirmed")),
                expected_version=cleaned.get("expected_version"),
            )
        return skill_create(bot=cleaned["bot"], name=cleaned["name"], actor=self.actor())


class ImportForm(forms.Form):
    bot = forms.ModelChoiceField(
        label=_("chatbot"), queryset=ChatbotBot.objects.order_by("name"), empty_label=None
    )
    file = forms.FileField(
        label=_("file"),
        help_text=_("JSON (a list of replies) or CSV (one row per reply), as exported."),
    )
