"""Asking the real bot (“试一试”): what it answers in debug or online, next to what the console
holds for that question.

The signature is made on the server (``ChatbotClient.ask``): nothing of the bot's secrets
reaches the browser, which only gets the outcome below as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy as _

from chatbot.answers import answer_from_content, answer_to_editor
from chatbot.models import AutoReply, LiveState, ReplySyncState
from chatbot.publishing import replies_with_live_state
from wecom import rules
from wecom.clients import PlatformError
from wecom.clients.chatbot import ENV_DEBUG, ENV_ONLINE, ENVIRONMENTS, BotAnswer
from wecom.connections import client_for
from wecom.models import ChatbotBot

QUERY_MAX_LENGTH = 200
ENV_LABELS = {ENV_DEBUG: _("debug (测试环境)"), ENV_ONLINE: _("online (线上环境)")}
STATUS_LABELS = {
    "FAQ": _("Matched"),
    "CONTEXT_FAQ": _("Matched (in the conversation's context)"),
    "GENERAL_FAQ": _("Matched a general question"),
    "FAQ_RECOMMEND": _("Not sure: it recommends questions"),
    "NOMATCH": _("No match"),
}


@dataclass
class AskOutcome:
    env: str
    ok: bool
    error: str = ""
    status: str = ""
    status_label: str = ""
    # The answer for the phone preview (the editor's format), from what the bot sent.
    preview: dict[str, Any] | None = None
    skill_name: str = ""
    standard_question: str = ""
    reply_id: int | None = None
    # The console's reply that has the question (standard or similar), if any.
    expected_id: int | None = None
    same_content: bool = False
    options: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "env_label": str(ENV_LABELS.get(self.env, self.env)),
            "ok": self.ok,
            "error": self.error,
            "status": self.status,
            "status_label": self.status_label,
            "preview": self.preview,
            "skill_name": self.skill_name,
            "standard_question": self.standard_question,
            "reply_id": self.reply_id,
            "options": self.options,
            "warnings": self.warnings,
        }


def validate_query(query: str) -> str:
    query = query.strip()
    if not query:
        raise ValidationError(gettext("Type a question to ask the bot."), code="empty")
    rules.validate_chatbot_text(query, label=gettext("The question"), max_length=QUERY_MAX_LENGTH)
    return query


def parse_bot_content(text: str) -> Any:
    """The bot's answer as seed 002 content: a rich answer's JSON text as an object."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _preview(text: str) -> dict[str, Any]:
    try:
        return answer_to_editor(answer_from_content(parse_bot_content(text)))
    except (ValidationError, TypeError, ValueError):
        # Not an answer the console could have written: shown as the text it is.
        return {"type": "text", "segments": [{"kind": "text", "text": text}]}


def _same_content(reply: AutoReply, text: str) -> bool:
    try:
        return reply.answer.content() == parse_bot_content(text)
    except ValidationError:
        return reply.content == parse_bot_content(text)


def bot_ask(*, bot: ChatbotBot, query: str, env: str, userid: str) -> AskOutcome:
    """Ask ``bot`` the question in ``env`` and compare the answer with the console's replies.

    Raises ValidationError for a question that cannot be sent; platform failures come back as
    an outcome with the sentence in ``error``.
    """
    query = validate_query(query)
    if env not in ENVIRONMENTS:
        raise ValidationError(gettext("Choose debug or online."), code="env")
    try:
        answer = client_for(bot).ask(query=query, env=env, userid=userid)
    except PlatformError as error:
        return AskOutcome(env=env, ok=False, error=error.explanation)
    return compare_with_console(bot=bot, query=query, env=env, answer=answer)


def console_replies(bot: ChatbotBot) -> list[AutoReply]:
    """The bot's replies with their live state, for comparing answers (one query)."""
    return list(
        replies_with_live_state(AutoReply.objects.filter(skill__bot=bot)).select_related("skill")
    )


def compare_with_console(
    *,
    bot: ChatbotBot,
    query: str,
    env: str,
    answer: BotAnswer,
    replies: list[AutoReply] | None = None,
) -> AskOutcome:
    """The outcome of one answer; ``replies`` (from :func:`console_replies`) when comparing
    many answers at once."""
    if replies is None:
        replies = console_replies(bot)
    expected = next(
        (reply for reply in replies if query == reply.title or query in (reply.questions or [])),
        None,
    )
    matched = None
    if answer.standard_question:
        matched = next(
            (
                reply
                for reply in replies
                if reply.title == answer.standard_question
                and (not answer.skill_name or reply.skill.name == answer.skill_name)
            ),
            None,
        )
    outcome = AskOutcome(
        env=env,
        ok=True,
        status=answer.status,
        status_label=str(
            STATUS_LABELS.get(answer.status)
            or gettext("Status %(status)s") % {"status": answer.status}
        ),
        preview=_preview(answer.answer) if answer.answer else None,
        skill_name=answer.skill_name,
        standard_question=answer.standard_question,
        reply_id=matched.pk if matched else None,
        options=[
            {
                "title": option.title,
                "confidence": f"{option.confidence:.0%}",
            }
            for option in answer.options
        ],
    )
    warnings = outcome.warnings
    outcome.expected_id = expected.pk if expected else None
    if answer.standard_question and matched is None:
        warnings.append(
            gettext(
                "The bot answered with “%(question)s” (skill “%(skill)s”), which the console "
                "does not know: it was made in the platform's own pages, or left there by a "
                "reply that was renamed or deleted."
            )
            % {"question": answer.standard_question, "skill": answer.skill_name}
        )
    if expected is not None and matched is not None and expected.pk != matched.pk:
        warnings.append(
            gettext(
                "The console expects the reply “%(expected)s” to answer this question, but the "
                "bot answered with “%(got)s”."
            )
            % {"expected": expected.title, "got": matched.title}
        )
    elif expected is not None and not answer.standard_question:
        warnings.append(
            gettext(
                "The console's reply “%(expected)s” has this question, but the bot found no "
                "answer. %(why)s"
            )
            % {"expected": expected.title, "why": _why_not_there(expected, env)}
        )
    outcome.same_content = matched is not None and _same_content(matched, answer.answer)
    if matched is not None and not outcome.same_content:
        warnings.append(_why_different(matched, env))
    return outcome


def _why_not_there(reply: AutoReply, env: str) -> str:
    if reply.sync_state != ReplySyncState.IN_SYNC:
        return gettext("It is not pushed yet.")
    if env == ENV_ONLINE and getattr(reply, "live_state", "") != LiveState.LIVE:
        return gettext("It is pushed but not live yet: publish the chatbot.")
    return ""


def _why_different(reply: AutoReply, env: str) -> str:
    if reply.sync_state != ReplySyncState.IN_SYNC:
        return gettext(
            "The bot answers with other content than the console's reply, which was changed "
            "and not pushed yet."
        )
    if env == ENV_ONLINE and getattr(reply, "live_state", "") != LiveState.LIVE:
        return gettext(
            "Online answers with other content than the console's reply, which is pushed but "
            "not live yet: publish the chatbot."
        )
    return gettext(
        "The bot answers with other content than the console's reply: it was changed on the "
        "platform, or another push overwrote it."
    )
