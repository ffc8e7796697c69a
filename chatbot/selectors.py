"""Reads about skills and replies: checks across replies, what a change leaves on the platform."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils.translation import gettext

from chatbot.models import AutoReply, ReplySyncState, Skill
from console.models import OPEN_JOB_STATUSES, Job
from wecom.models import ChatbotBot


@dataclass(frozen=True)
class QuestionClash:
    """``question`` is also asked in another reply of the same bot."""

    question: str
    other_id: int
    other_title: str
    other_skill: str


def question_clashes(*, bot_ids: Iterable[int]) -> dict[int, list[QuestionClash]]:
    """Replies whose similar question (or standard question) another reply of the same bot also
    has, by reply id. One query, whatever the number of replies."""
    rows = AutoReply.objects.filter(skill__bot_id__in=list(bot_ids)).values_list(
        "id", "skill__bot_id", "skill__name", "title", "questions"
    )
    askers: dict[tuple[int, str], list[tuple[int, str, str]]] = defaultdict(list)
    for reply_id, bot_id, skill_name, title, questions in rows:
        for text in {title, *(questions or [])}:
            askers[(bot_id, text)].append((reply_id, title, skill_name))
    clashes: dict[int, list[QuestionClash]] = defaultdict(list)
    for (_bot_id, text), replies in askers.items():
        if len(replies) < 2:
            continue
        for reply_id, _title, _skill in replies:
            for other_id, other_title, other_skill in replies:
                if other_id != reply_id:
                    clashes[reply_id].append(
                        QuestionClash(
                            question=text,
                            other_id=other_id,
                            other_title=other_title,
                            other_skill=other_skill,
                        )
                    )
    return dict(clashes)


def reply_clashes(reply: AutoReply) -> list[QuestionClash]:
    return question_clashes(bot_ids=[reply.skill.bot_id]).get(reply.pk, [])


def leftover_warning(
    reply: AutoReply,
    *,
    skill: Skill | None = None,
    title: str | None = None,
    deleting: bool = False,
) -> str:
    """What the platform keeps after this change, as a sentence; "" when it keeps nothing stale.

    The platform has no delete call and keeps replies by skill name and standard question, so
    deleting a pushed reply or changing either leaves the entry last pushed in place.
    """
    pushed = reply.pushed_key()
    if pushed is None:
        return ""
    if deleting:
        return gettext(
            "“%(title)s” is on the dialogue platform (skill “%(skill)s”). The platform has no "
            "delete call: after deleting it here, the entry stays on the platform and the bot "
            "goes on answering it until you remove it in the platform yourself."
        ) % {"title": pushed[1], "skill": pushed[0]}
    new_key = ((skill or reply.skill).name, title if title is not None else reply.title)
    if new_key == pushed:
        return ""
    return gettext(
        "This reply is on the dialogue platform as “%(title)s” in skill “%(skill)s”. The platform "
        "keeps replies by skill and standard question and has no delete call: after this change "
        "the old entry stays there and goes on answering until you remove it in the platform "
        "yourself."
    ) % {"title": pushed[1], "skill": pushed[0]}


def replies_to_push(*, bot_id: int) -> QuerySet[AutoReply]:
    """The bot's replies that are not in sync, in a stable order."""
    return (
        AutoReply.objects.filter(skill__bot_id=bot_id)
        .exclude(sync_state=ReplySyncState.IN_SYNC)
        .order_by("pk")
    )


def skill_pushed_reply_count(skill: Skill) -> int:
    """Replies of the skill that are on the platform under its name: renaming or deleting the
    skill leaves them there (the platform has no delete call)."""
    return skill.replies.exclude(pushed_title="").count()


def bot_open_job(*, bot: ChatbotBot, kind: str) -> Job | None:
    """The bot's latest job of ``kind`` that has not ended: a second one is not started."""
    return (
        Job.objects.filter(kind=kind, params__bot_id=bot.pk, status__in=OPEN_JOB_STATUSES)
        .order_by("-pk")
        .first()
    )
