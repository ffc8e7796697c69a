"""Auto-reply answers (seed 002) as typed values, with one validator and one serializer.

An answer is one of :class:`TextAnswer`, :class:`NewsAnswer`, :class:`ImageAnswer`,
:class:`MiniProgramAnswer` or :class:`MultiAnswer` (an ordered list of the others). Two ways in,
both ending in the same :func:`validate_answer`:

* :func:`answer_from_content` reads the platform's own format (a string, or an object with one
  of ``news``, ``image``, ``miniprogrampage``, ``multimsg``): imports, the CLI, the stored field;
* :func:`answer_from_editor` reads what the admin editor posts (the same answers, with a text
  broken into segments so that links are edited as fields, never typed as HTML).

One way out: :meth:`Answer.content` gives exactly the seed's format, which the client sends as
UTF-8 JSON text; :func:`answer_to_editor` gives the editor's form back.

Text with links. The platform reads ``<a href="…">label</a>`` inside a text answer; the console
writes exactly two link shapes and reads back only those:

* a recommended question: ``<a href="weixin://bizmsgmenu?msgmenucontent=Q&msgmenuid=ID">L</a>``
  (Q and ID raw, as the platform's examples write them, so they may not hold ``&``, ``"``,
  ``<`` or ``>``);
* a hyperlink: ``<a href="https://…">L</a>``.

The text around them may hold any character but the start of another ``<a`` tag, so that what is
read back is what was written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy as _

from wecom import rules

__all__ = [
    "Answer",
    "AnswerError",
    "HyperLink",
    "ImageAnswer",
    "MenuLink",
    "MiniProgramAnswer",
    "MultiAnswer",
    "NewsAnswer",
    "NewsArticle",
    "TextAnswer",
    "answer_from_content",
    "answer_from_editor",
    "answer_kind",
    "answer_to_editor",
    "validate_answer",
]


@dataclass(frozen=True)
class MenuLink:
    """A recommended question: tapping it sends ``question`` to the bot."""

    label: str
    question: str
    menuid: str

    def markup(self) -> str:
        return (
            f'<a href="weixin://bizmsgmenu?msgmenucontent={self.question}'
            f'&msgmenuid={self.menuid}">{self.label}</a>'
        )


@dataclass(frozen=True)
class HyperLink:
    label: str
    url: str

    def markup(self) -> str:
        return f'<a href="{self.url}">{self.label}</a>'


Segment = str | MenuLink | HyperLink


@dataclass(frozen=True)
class TextAnswer:
    segments: tuple[Segment, ...]
    kind: Literal["text"] = field(default="text", init=False)

    @property
    def text(self) -> str:
        return "".join(s if isinstance(s, str) else s.markup() for s in self.segments)

    def content(self) -> str:
        return self.text


@dataclass(frozen=True)
class NewsArticle:
    title: str
    url: str
    description: str = ""
    picurl: str = ""
    type: str = "h5"

    def content(self) -> dict[str, str]:
        # The seed's key order.
        return {
            "title": self.title,
            "description": self.description,
            "url": self.url,
            "picurl": self.picurl,
            "type": self.type,
        }


@dataclass(frozen=True)
class NewsAnswer:
    articles: tuple[NewsArticle, ...]
    kind: Literal["news"] = field(default="news", init=False)

    def content(self) -> dict[str, Any]:
        return {"news": {"articles": [article.content() for article in self.articles]}}


@dataclass(frozen=True)
class ImageAnswer:
    media_id: str
    url: str = ""
    kind: Literal["image"] = field(default="image", init=False)

    def content(self) -> dict[str, Any]:
        return {"image": {"media_id": self.media_id, "url": self.url}}


@dataclass(frozen=True)
class MiniProgramAnswer:
    title: str
    appid: str
    pagepath: str
    thumb_media_id: str
    thumb_url: str = ""
    kind: Literal["miniprogrampage"] = field(default="miniprogrampage", init=False)

    def content(self) -> dict[str, Any]:
        return {
            "miniprogrampage": {
                "title": self.title,
                "appid": self.appid,
                "pagepath": self.pagepath,
                "thumb_media_id": self.thumb_media_id,
                "thumb_url": self.thumb_url,
            }
        }


SingleAnswer = TextAnswer | NewsAnswer | ImageAnswer | MiniProgramAnswer


@dataclass(frozen=True)
class MultiAnswer:
    items: tuple[SingleAnswer, ...]
    kind: Literal["multimsg"] = field(default="multimsg", init=False)

    def content(self) -> dict[str, Any]:
        return {"multimsg": [item.content() for item in self.items]}


Answer = SingleAnswer | MultiAnswer
SINGLE_KINDS = ("text", "news", "image", "miniprogrampage")
KINDS = (*SINGLE_KINDS, "multimsg")
KIND_LABELS = {
    "text": _("Text"),
    "news": _("News articles"),
    "image": _("Official Account image"),
    "miniprogrampage": _("Mini-program page"),
    "multimsg": _("Combined answer"),
}


def answer_kind(answer: Answer) -> str:
    return answer.kind


# ---- errors with a place ----------------------------------------------------------------


class AnswerError(ValidationError):
    """Every problem of an answer, each as one sentence saying where it is."""


class _Problems:
    """Collects problems while walking an answer, with the path as words and as keys."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.keys: list[str] = []
        self.errors: list[ValidationError] = []
        self.paths: list[str] = []

    @contextmanager
    def at(self, words: str, key: str) -> Iterator[None]:
        self.where.append(words)
        self.keys.append(key)
        try:
            yield
        finally:
            self.where.pop()
            self.keys.pop()

    def add(self, error: ValidationError) -> None:
        for message in error.messages:
            if self.where:
                message = gettext("%(where)s: %(problem)s") % {
                    "where": " › ".join(self.where),
                    "problem": message,
                }
            self.errors.append(ValidationError(message, code=getattr(error, "code", None)))
            self.paths.append(".".join(self.keys))

    def check(self, validator: Any, value: Any, **kwargs: Any) -> None:
        try:
            validator(value, **kwargs)
        except ValidationError as error:
            self.add(error)

    def refuse(self, message: str, code: str = "answer") -> None:
        self.add(ValidationError(message, code=code))

    def raise_if_any(self) -> None:
        if self.errors:
            error = AnswerError(self.errors)
            error.paths = self.paths  # type: ignore[attr-defined]
            raise error


# ---- validation: the one place -----------------------------------------------------------

_MENU_VALUE = re.compile(r"^[^&\"<>\r\n]*$")
_LINK_LABEL = re.compile(r"^[^<>\r\n]*$")
# The start of any <a ...> or </a> tag: not allowed in plain text, where it would be read back
# as a link (or as a broken one).
_TAG_START = re.compile(r"<\s*/?\s*a(?:[\s>]|$)", re.IGNORECASE)


def _validate_text(answer: TextAnswer, problems: _Problems) -> None:
    if not answer.segments or not answer.text.strip():
        problems.refuse(gettext("The text cannot be empty."), "text_empty")
        return
    problems.check(
        rules.validate_chatbot_text,
        answer.text,
        label=gettext("The text"),
        max_length=rules.ANSWER_TEXT_MAX_LENGTH,
        multiline=True,
    )
    for number, segment in enumerate(answer.segments, start=1):
        if isinstance(segment, str):
            if _TAG_START.search(segment):
                with problems.at(gettext("Text part %(n)d") % {"n": number}, str(number - 1)):
                    problems.refuse(
                        gettext(
                            "Plain text cannot hold “<a” or “</a”: insert links with the "
                            "“recommended question” and “link” buttons."
                        ),
                        "text_tag",
                    )
            continue
        with problems.at(gettext("Link %(n)d") % {"n": number}, str(number - 1)):
            problems.check(
                rules.validate_chatbot_text,
                segment.label,
                label=gettext("The link text"),
                max_length=rules.LINK_LABEL_MAX_LENGTH,
            )
            if not _LINK_LABEL.match(segment.label):
                problems.refuse(gettext("The link text cannot hold “<” or “>”."), "link_label")
            if isinstance(segment, HyperLink):
                problems.check(rules.validate_web_url, segment.url, label=gettext("The address"))
                continue
            for value, label, limit in (
                (segment.question, gettext("The question sent"), rules.QUESTION_MAX_LENGTH),
                (segment.menuid, gettext("The menu ID"), rules.MENU_ID_MAX_LENGTH),
            ):
                problems.check(rules.validate_chatbot_text, value, label=label, max_length=limit)
                if not _MENU_VALUE.match(value):
                    problems.refuse(
                        gettext('%(field)s cannot hold “&”, “"”, “<” or “>”.') % {"field": label},
                        "menu_value",
                    )


def _validate_single(answer: SingleAnswer, problems: _Problems) -> None:
    if isinstance(answer, TextAnswer):
        _validate_text(answer, problems)
    elif isinstance(answer, NewsAnswer):
        if not 1 <= len(answer.articles) <= rules.NEWS_ARTICLES_MAX:
            problems.refuse(
                gettext("A news answer has 1 to %(limit)d articles; this one has %(count)d.")
                % {"limit": rules.NEWS_ARTICLES_MAX, "count": len(answer.articles)},
                "news_count",
            )
        for number, article in enumerate(answer.articles, start=1):
            with problems.at(gettext("Article %(n)d") % {"n": number}, f"articles.{number - 1}"):
                problems.check(
                    rules.validate_chatbot_text,
                    article.title,
                    label=gettext("The title"),
                    max_length=rules.ARTICLE_TITLE_MAX_LENGTH,
                )
                problems.check(
                    rules.validate_chatbot_text,
                    article.description,
                    label=gettext("The description"),
                    max_length=rules.ARTICLE_DESCRIPTION_MAX_LENGTH,
                    required=False,
                    multiline=True,
                )
                problems.check(rules.validate_web_url, article.url, label=gettext("The link"))
                problems.check(
                    rules.validate_web_url,
                    article.picurl,
                    label=gettext("The picture address"),
                    required=False,
                )
                if article.type not in ("h5", "mp"):
                    problems.refuse(
                        gettext(
                            "The article type is “h5” (a web page) or “mp” (an Official "
                            "Account article)."
                        ),
                        "article_type",
                    )
    elif isinstance(answer, ImageAnswer):
        problems.check(rules.validate_media_id, answer.media_id, label=gettext("The media ID"))
        problems.check(
            rules.validate_web_url, answer.url, label=gettext("The image address"), required=False
        )
    elif isinstance(answer, MiniProgramAnswer):
        problems.check(
            rules.validate_chatbot_text,
            answer.title,
            label=gettext("The title"),
            max_length=rules.MINI_PROGRAM_TITLE_MAX_LENGTH,
        )
        problems.check(rules.validate_mini_program_appid, answer.appid, label=gettext("The AppID"))
        problems.check(rules.validate_pagepath, answer.pagepath, label=gettext("The page path"))
        problems.check(
            rules.validate_media_id, answer.thumb_media_id, label=gettext("The cover media ID")
        )
        problems.check(
            rules.validate_web_url,
            answer.thumb_url,
            label=gettext("The cover image address"),
            required=False,
        )


def _check(answer: Answer, problems: _Problems) -> None:
    if isinstance(answer, MultiAnswer):
        if not 1 <= len(answer.items) <= rules.MULTIMSG_MAX_ITEMS:
            problems.refuse(
                gettext("A combined answer has 1 to %(limit)d parts; this one has %(count)d.")
                % {"limit": rules.MULTIMSG_MAX_ITEMS, "count": len(answer.items)},
                "multimsg_count",
            )
        for number, item in enumerate(answer.items, start=1):
            with problems.at(gettext("Part %(n)d") % {"n": number}, f"items.{number - 1}"):
                if isinstance(item, MultiAnswer):
                    problems.refuse(
                        gettext("A combined answer cannot hold another combined answer."),
                        "multimsg_nested",
                    )
                else:
                    _validate_single(item, problems)
    else:
        _validate_single(answer, problems)
        if isinstance(answer, TextAnswer) and answer.text.lstrip().startswith("{"):
            # Alone, a text answer travels as the content itself, and the platform reads
            # content that starts with "{" as a rich answer's JSON (inside a combined answer
            # it is a JSON string, and may).
            problems.refuse(
                gettext(
                    "A text answer cannot start with “{”: the platform would read it as a rich "
                    "answer. Start it with another character."
                ),
                "text_brace",
            )


def validate_answer(answer: Answer) -> Answer:
    """Raise :class:`AnswerError` listing every problem, or return ``answer`` unchanged."""
    problems = _Problems()
    _check(answer, problems)
    problems.raise_if_any()
    # The JSON text travels inside the XML: nothing in it may break the document.
    return answer


# ---- the platform's format in -------------------------------------------------------------

_LINK = re.compile(
    r'<a href="(?P<href>[^"<>]*)">(?P<label>[^<>]*)</a>',
)
_MENU_HREF = re.compile(
    r"^weixin://bizmsgmenu\?msgmenucontent=(?P<question>[^&\"<>]*)&msgmenuid=(?P<menuid>[^&\"<>]*)$"
)


def text_segments(text: str) -> tuple[Segment, ...]:
    """A text answer's string as plain text and links (the inverse of ``TextAnswer.text``)."""
    segments: list[Segment] = []
    position = 0
    for match in _LINK.finditer(text):
        if match.start() > position:
            segments.append(text[position : match.start()])
        href, label = match["href"], match["label"]
        menu = _MENU_HREF.match(href)
        if menu:
            segments.append(MenuLink(label=label, question=menu["question"], menuid=menu["menuid"]))
        else:
            segments.append(HyperLink(label=label, url=href))
        position = match.end()
    if position < len(text):
        segments.append(text[position:])
    return tuple(segments)


_ALLOWED_KEYS = {
    "article": {"title", "description", "url", "picurl", "type"},
    "image": {"media_id", "url"},
    "miniprogrampage": {"title", "appid", "pagepath", "thumb_media_id", "thumb_url"},
}


def _strings(data: Any, kind: str, problems: _Problems) -> dict[str, str] | None:
    if not isinstance(data, Mapping):
        problems.refuse(gettext("This part is not an object with fields."), "shape")
        return None
    unknown = sorted(str(key) for key in set(data) - _ALLOWED_KEYS[kind])
    if unknown:
        problems.refuse(
            gettext("Unknown field(s): %(fields)s.") % {"fields": ", ".join(unknown)}, "shape"
        )
    values = {}
    for key in _ALLOWED_KEYS[kind]:
        value = data.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            problems.refuse(
                gettext("The field “%(field)s” must be text.") % {"field": key}, "shape"
            )
            value = ""
        values[key] = value
    return values


def _single_from_content(data: Any, problems: _Problems) -> SingleAnswer | MultiAnswer | None:
    if isinstance(data, str):
        return TextAnswer(segments=text_segments(data))
    if not isinstance(data, Mapping) or len(data) != 1:
        problems.refuse(
            gettext(
                "An answer is a text, or an object with exactly one of “news”, “image”, "
                "“miniprogrampage” or “multimsg”."
            ),
            "shape",
        )
        return None
    ((kind, payload),) = data.items()
    if kind == "news":
        articles = payload.get("articles") if isinstance(payload, Mapping) else None
        if not isinstance(articles, list):
            problems.refuse(gettext("“news” must hold a list “articles”."), "shape")
            return None
        result = []
        for number, article in enumerate(articles, start=1):
            with problems.at(gettext("Article %(n)d") % {"n": number}, f"articles.{number - 1}"):
                values = _strings(article, "article", problems)
                if values is not None:
                    result.append(NewsArticle(**{**values, "type": values["type"] or "h5"}))
        return NewsAnswer(articles=tuple(result))
    if kind == "image":
        values = _strings(payload, "image", problems)
        return ImageAnswer(**values) if values is not None else None
    if kind == "miniprogrampage":
        values = _strings(payload, "miniprogrampage", problems)
        return MiniProgramAnswer(**values) if values is not None else None
    if kind == "multimsg":
        if not isinstance(payload, list):
            problems.refuse(gettext("“multimsg” must be a list."), "shape")
            return None
        items: list[Any] = []
        for number, item in enumerate(payload, start=1):
            with problems.at(gettext("Part %(n)d") % {"n": number}, f"items.{number - 1}"):
                parsed = _single_from_content(item, problems)
                if parsed is not None:
                    items.append(parsed)
        return MultiAnswer(items=tuple(items))
    problems.refuse(
        gettext(
            "Unknown answer type “%(kind)s”: use “news”, “image”, “miniprogrampage” or “multimsg”."
        )
        % {"kind": str(kind)[:40]},
        "shape",
    )
    return None


def answer_from_content(content: Any) -> Answer:
    """The answer in the platform's format (seed 002), checked; :class:`AnswerError` if not."""
    problems = _Problems()
    answer = _single_from_content(content, problems)
    problems.raise_if_any()
    assert answer is not None
    return validate_answer(answer)


# ---- the editor's format ----------------------------------------------------------------
# {"type": "text", "segments": [{"kind": "text", "text": …} | {"kind": "menu", "label", "question",
#  "menuid"} | {"kind": "link", "label", "url"}]}
# {"type": "news", "articles": [{title, description, url, picurl, type}]}
# {"type": "image", media_id, url}, {"type": "miniprogrampage", title, appid, pagepath,
#  thumb_media_id, thumb_url}, {"type": "multimsg", "items": [one of the above]}


def _editor_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    return value if isinstance(value, str) else ""


def _editor_single(data: Any, problems: _Problems, *, nested: bool) -> Answer | None:
    if not isinstance(data, Mapping):
        problems.refuse(gettext("This part of the answer could not be read."), "shape")
        return None
    kind = data.get("type")
    if kind == "text":
        segments: list[Segment] = []
        raw = data.get("segments")
        for segment in raw if isinstance(raw, list) else []:
            if not isinstance(segment, Mapping):
                continue
            if segment.get("kind") == "menu":
                label = _editor_str(segment, "label")
                question = _editor_str(segment, "question") or label
                menuid = _editor_str(segment, "menuid") or question
                segments.append(MenuLink(label=label, question=question, menuid=menuid))
            elif segment.get("kind") == "link":
                segments.append(
                    HyperLink(label=_editor_str(segment, "label"), url=_editor_str(segment, "url"))
                )
            else:
                text = _editor_str(segment, "text")
                if text:
                    if segments and isinstance(segments[-1], str):
                        segments[-1] += text
                    else:
                        segments.append(text)
        return TextAnswer(segments=tuple(segments))
    if kind == "news":
        raw = data.get("articles")
        articles = [
            NewsArticle(
                title=_editor_str(article, "title"),
                description=_editor_str(article, "description"),
                url=_editor_str(article, "url"),
                picurl=_editor_str(article, "picurl"),
                type=_editor_str(article, "type") or "h5",
            )
            for article in (raw if isinstance(raw, list) else [])
            if isinstance(article, Mapping)
        ]
        return NewsAnswer(articles=tuple(articles))
    if kind == "image":
        return ImageAnswer(media_id=_editor_str(data, "media_id"), url=_editor_str(data, "url"))
    if kind == "miniprogrampage":
        return MiniProgramAnswer(
            **{key: _editor_str(data, key) for key in _ALLOWED_KEYS["miniprogrampage"]}
        )
    if kind == "multimsg" and not nested:
        raw = data.get("items")
        items = []
        for number, item in enumerate(raw if isinstance(raw, list) else [], start=1):
            with problems.at(gettext("Part %(n)d") % {"n": number}, f"items.{number - 1}"):
                parsed = _editor_single(item, problems, nested=True)
                if parsed is not None:
                    items.append(parsed)
        return MultiAnswer(items=tuple(items))  # type: ignore[arg-type]
    problems.refuse(gettext("Choose the type of the answer."), "type")
    return None


def answer_from_editor(data: Any) -> Answer:
    """The answer as the admin editor posts it, checked; :class:`AnswerError` if not."""
    problems = _Problems()
    answer = _editor_single(data, problems, nested=False)
    problems.raise_if_any()
    assert answer is not None
    return validate_answer(answer)


def _segment_to_editor(segment: Segment) -> dict[str, str]:
    if isinstance(segment, MenuLink):
        return {
            "kind": "menu",
            "label": segment.label,
            "question": segment.question,
            "menuid": segment.menuid,
        }
    if isinstance(segment, HyperLink):
        return {"kind": "link", "label": segment.label, "url": segment.url}
    return {"kind": "text", "text": segment}


def answer_to_editor(answer: Answer) -> dict[str, Any]:
    if isinstance(answer, TextAnswer):
        return {"type": "text", "segments": [_segment_to_editor(s) for s in answer.segments]}
    if isinstance(answer, NewsAnswer):
        return {"type": "news", "articles": [a.content() for a in answer.articles]}
    if isinstance(answer, MultiAnswer):
        return {"type": "multimsg", "items": [answer_to_editor(item) for item in answer.items]}
    ((kind, payload),) = answer.content().items()
    return {"type": kind, **payload}


def validate_questions(title: str, questions: Iterable[str]) -> list[str]:
    """The standard question and its similar questions, checked; the questions, trimmed.

    Raises ValidationError listing every problem.
    """
    errors: list[ValidationError] = []
    try:
        rules.validate_chatbot_text(
            title, label=gettext("The standard question"), max_length=rules.QUESTION_MAX_LENGTH
        )
    except ValidationError as error:
        errors.append(error)
    cleaned: list[str] = []
    seen: set[str] = set()
    for number, question in enumerate(questions, start=1):
        question = question.strip() if isinstance(question, str) else question
        if question == "":
            continue
        try:
            rules.validate_chatbot_text(
                question,
                label=gettext("Similar question %(n)d") % {"n": number},
                max_length=rules.QUESTION_MAX_LENGTH,
            )
        except ValidationError as error:
            errors.append(error)
            continue
        if question == title.strip():
            errors.append(
                ValidationError(
                    gettext("The similar question “%(question)s” repeats the standard question.")
                    % {"question": question},
                    code="question_is_title",
                )
            )
        elif question in seen:
            errors.append(
                ValidationError(
                    gettext("The similar question “%(question)s” is listed twice.")
                    % {"question": question},
                    code="question_twice",
                )
            )
        seen.add(question)
        cleaned.append(question)
    if len(cleaned) > rules.SIMILAR_QUESTIONS_MAX:
        errors.append(
            ValidationError(
                gettext("A reply has at most %(limit)d similar questions; this one has %(count)d.")
                % {"limit": rules.SIMILAR_QUESTIONS_MAX, "count": len(cleaned)},
                code="questions_count",
            )
        )
    if errors:
        raise ValidationError(errors)
    return cleaned


def answer_in_words(content: Any) -> str:
    """An answer as people read it (the History, a stale-edit message): its text, or
    “News: title…”; never its JSON."""
    try:
        answer = answer_from_content(content)
    except ValidationError:
        return content if isinstance(content, str) else gettext("an answer the console cannot read")
    return _in_words(answer)


def _in_words(answer: Answer) -> str:
    if isinstance(answer, TextAnswer):
        return answer.text
    if isinstance(answer, NewsAnswer):
        return gettext("News: %(titles)s") % {
            "titles": gettext("; ").join(article.title for article in answer.articles)
        }
    if isinstance(answer, ImageAnswer):
        return gettext("Image: %(media_id)s") % {"media_id": answer.media_id}
    if isinstance(answer, MiniProgramAnswer):
        return gettext("Mini-program: %(title)s") % {"title": answer.title}
    assert isinstance(answer, MultiAnswer)
    return gettext("Combined: %(parts)s") % {
        "parts": " / ".join(_in_words(part) for part in answer.items)
    }
