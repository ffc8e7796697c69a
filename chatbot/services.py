"""Services for chatbot skills and auto-replies: create, change, delete, push.

Edits only mark a reply as changed; a push sends it (one ``setautoreply`` call) and records
what the platform said, as a sentence, on the reply and in its history. The network call is
made with no transaction open (docs/write-path.md); the result is written after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _, ngettext

from chatbot.answers import (
    Answer,
    TextAnswer,
    answer_in_words,
    validate_answer,
    validate_questions,
)
from chatbot.models import AutoReply, ReplySyncState, Skill
from chatbot.selectors import (
    QuestionClash,
    leftover_warning,
    reply_clashes,
    skill_pushed_reply_count,
)
from console.audit import Actor, AuditAction, audit_record
from console.transactions import require_no_transaction
from console.versioning import check_version
from wecom import rules
from wecom.clients import ChatbotClient, PlatformCredentialError, PlatformError
from wecom.connections import client_for
from wecom.models import ChatbotBot

if TYPE_CHECKING:
    from console.models import Job

# ---- skills -------------------------------------------------------------------------------


def validate_skill_name(name: str) -> None:
    rules.validate_chatbot_text(
        name, label=gettext("The skill name"), max_length=rules.SKILL_NAME_MAX_LENGTH
    )


@transaction.atomic
def skill_create(*, bot: ChatbotBot, name: str, actor: Actor) -> Skill:
    name = name.strip()
    validate_skill_name(name)
    if Skill.objects.filter(bot=bot, name=name).exists():
        raise ValidationError(
            gettext("The chatbot has a skill named “%(name)s” already.") % {"name": name},
            code="skill_exists",
        )
    skill = Skill.objects.create(bot=bot, name=name, updated_by=actor.user)
    audit_record(actor=actor, obj=skill, action=AuditAction.ADD)
    return skill


@transaction.atomic
def skill_rename(
    *,
    skill: Skill,
    name: str,
    actor: Actor,
    leftover_confirmed: bool = False,
    expected_version: int | None = None,
) -> Skill:
    """Rename a skill; its replies need a push again (the platform keys them by skill name),
    and the entries already pushed under the old name stay there: the caller must say it knows.
    A form opened before someone else's change (``expected_version``) is refused.
    """
    name = name.strip()
    validate_skill_name(name)
    skill = (
        Skill.objects.select_for_update(of=("self",)).select_related("updated_by").get(pk=skill.pk)
    )
    check_version(skill, expected_version, {"name": name})
    if name == skill.name:
        return skill
    if Skill.objects.filter(bot_id=skill.bot_id, name=name).exclude(pk=skill.pk).exists():
        raise ValidationError(
            gettext("The chatbot has a skill named “%(name)s” already.") % {"name": name},
            code="skill_exists",
        )
    pushed = skill_pushed_reply_count(skill)
    if pushed and not leftover_confirmed:
        raise LeftoverNotConfirmed(
            skill_leftover_sentence(skill=skill, pushed=pushed), code="leftover"
        )
    old = skill.name
    skill.name = name
    skill.version += 1
    skill.updated_by = actor.user
    skill.save(update_fields=["name", "updated_at", "version", "updated_by"])
    skill.replies.update(sync_state=ReplySyncState.CHANGED)
    audit_record(actor=actor, obj=skill, action=AuditAction.CHANGE, changes={"name": (old, name)})
    return skill


def skill_leftover_sentence(*, skill: Skill, pushed: int) -> str:
    return ngettext(
        "One reply of this skill is on the dialogue platform under the name “%(name)s”. The "
        "platform has no delete call: after renaming, that entry stays there and goes on "
        "answering until you remove it in the platform yourself.",
        "%(count)d replies of this skill are on the dialogue platform under the name "
        "“%(name)s”. The platform has no delete call: after renaming, those entries stay there "
        "and go on answering until you remove them in the platform yourself.",
        pushed,
    ) % {"count": pushed, "name": skill.name}


@transaction.atomic
def skill_delete(*, skill: Skill, actor: Actor, leftover_confirmed: bool) -> None:
    """Delete a skill with its replies, each in the history; pushed ones stay on the platform,
    which the caller confirms (the delete page says so)."""
    for reply in skill.replies.all():
        reply_delete(reply=reply, actor=actor, leftover_confirmed=leftover_confirmed)
    audit_record(actor=actor, obj=skill, action=AuditAction.DELETE)
    skill.delete()


# ---- replies ------------------------------------------------------------------------------


def _clean_reply(
    *,
    skill: Skill,
    title: str,
    questions: Sequence[str],
    answer: Answer,
    managerid: str,
    exclude_pk: int | None = None,
) -> tuple[str, list[str], str]:
    title = title.strip()
    errors: list[ValidationError] = []
    try:
        cleaned_questions = validate_questions(title, questions)
    except ValidationError as error:
        errors.append(error)
        cleaned_questions = []
    try:
        validate_answer(answer)
    except ValidationError as error:
        errors.append(error)
    managerid = managerid.strip()
    if managerid:
        from wecom.validators import validate_manager_id

        try:
            validate_manager_id(managerid)
        except ValidationError as error:
            errors.append(error)
    clash = AutoReply.objects.filter(skill=skill, title=title)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if title and clash.exists():
        errors.append(
            ValidationError(
                gettext("The skill “%(skill)s” has a reply to “%(title)s” already.")
                % {"skill": skill.name, "title": title},
                code="title_exists",
            )
        )
    if errors:
        raise ValidationError(errors)
    return title, cleaned_questions, managerid


@transaction.atomic
def reply_create(
    *,
    skill: Skill,
    title: str,
    questions: Sequence[str],
    answer: Answer,
    managerid: str = "",
    actor: Actor,
) -> AutoReply:
    title, cleaned, managerid = _clean_reply(
        skill=skill, title=title, questions=questions, answer=answer, managerid=managerid
    )
    reply = AutoReply.objects.create(
        skill=skill,
        title=title,
        questions=cleaned,
        content=answer.content(),
        managerid=managerid,
        sync_state=ReplySyncState.CHANGED,
        updated_by=actor.user,
    )
    audit_record(actor=actor, obj=reply, action=AuditAction.ADD)
    return reply


def reply_value_in_words(name: str, value: Any) -> str:
    """A reply's field as people read it: the answer as its text, the questions one by one."""
    if value is None or value == "":
        return "—"
    if name == "content":
        return answer_in_words(value)
    if name == "questions":
        return gettext("; ").join(str(question) for question in value) or "—"
    return str(value)


class LeftoverNotConfirmed(ValidationError):
    """The change would leave the reply's old entry on the platform and nobody said so."""


@transaction.atomic
def reply_update(
    *,
    reply: AutoReply,
    skill: Skill | None = None,
    title: str,
    questions: Sequence[str],
    answer: Answer,
    managerid: str = "",
    actor: Actor,
    leftover_confirmed: bool = False,
    expected_version: int | None = None,
) -> AutoReply:
    """Change a reply. Changing the skill or standard question of a pushed reply leaves its old
    entry on the platform: that takes ``leftover_confirmed`` (the user saw the warning). A form
    opened before someone else's change (``expected_version``) is refused with who, when and
    both values."""
    reply = (
        AutoReply.objects.select_for_update(of=("self",))
        .select_related("skill", "updated_by")
        .get(pk=reply.pk)
    )
    check_version(
        reply,
        expected_version,
        {
            "skill": skill,
            "title": title.strip(),
            "questions": list(questions),
            "content": answer.content(),
            "managerid": managerid.strip(),
        },
        describe=reply_value_in_words,
    )
    skill = skill or reply.skill
    title, cleaned, managerid = _clean_reply(
        skill=skill,
        title=title,
        questions=questions,
        answer=answer,
        managerid=managerid,
        exclude_pk=reply.pk,
    )
    warning = leftover_warning(reply, skill=skill, title=title)
    if warning and not leftover_confirmed:
        raise LeftoverNotConfirmed(warning, code="leftover")
    new_values: dict[str, Any] = {
        "skill": skill,
        "title": title,
        "questions": cleaned,
        "content": answer.content(),
        "managerid": managerid,
    }
    changes = {
        name: (reply_value_in_words(name, getattr(reply, name)), reply_value_in_words(name, value))
        for name, value in new_values.items()
        if getattr(reply, name) != value
    }
    if not changes:
        return reply
    for name, value in new_values.items():
        setattr(reply, name, value)
    reply.sync_state = ReplySyncState.CHANGED
    reply.version += 1
    reply.updated_by = actor.user
    reply.save()
    reply.__dict__.pop("answer", None)
    audit_record(
        actor=actor,
        obj=reply,
        action=AuditAction.CHANGE,
        changes=changes,
        note=_("The old entry stays on the platform: %(warning)s") if warning else "",
        note_params={"warning": warning} if warning else None,
    )
    return reply


@transaction.atomic
def reply_delete(*, reply: AutoReply, actor: Actor, leftover_confirmed: bool = False) -> None:
    warning = leftover_warning(reply, deleting=True)
    if warning and not leftover_confirmed:
        raise LeftoverNotConfirmed(warning, code="leftover")
    audit_record(
        actor=actor,
        obj=reply,
        action=AuditAction.DELETE,
        note=_("The entry stays on the platform: %(warning)s") if warning else "",
        note_params={"warning": warning} if warning else None,
    )
    reply.delete()


# ---- push ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOutcome:
    reply_id: int
    ok: bool
    # The sentence for people: what the platform said, or why nothing was sent.
    message: str
    # A platform errcode, or "" (e.g. "1001", "transport", "clash").
    reason_code: str = ""
    retryable: bool = False


_RICH_NOTE = _(
    "The platform accepted it. Rich answers (articles, images, mini-programs) have been "
    "reported not to show in some bots although accepted: check it in the platform's test "
    "window."
)


def _refusal(reply: AutoReply, clashes: list[QuestionClash] | None) -> PushOutcome | None:
    """Why the reply cannot be sent as it is, or None."""
    if clashes is None:
        clashes = reply_clashes(reply)
    if clashes:
        first = clashes[0]
        return PushOutcome(
            reply_id=reply.pk,
            ok=False,
            message=gettext(
                "Not pushed: the question “%(question)s” is also in the reply “%(other)s” of "
                "skill “%(skill)s”. Keep it in one reply only, then push again."
            )
            % {"question": first.question, "other": first.other_title, "skill": first.other_skill},
            reason_code="clash",
        )
    if not reply.effective_managerid():
        return PushOutcome(
            reply_id=reply.pk,
            ok=False,
            message=gettext(
                "Not pushed: no manager ID. Give the reply one, or ask a credential admin to "
                "set the chatbot's default manager ID."
            ),
            reason_code="managerid",
        )
    try:
        validate_answer(reply.answer)
    except ValidationError as error:
        return PushOutcome(
            reply_id=reply.pk,
            ok=False,
            message=gettext("Not pushed: %(problem)s") % {"problem": " ".join(error.messages)},
            reason_code="answer",
        )
    return None


def _not_sent(reply_id: int, error: PlatformError) -> PushOutcome:
    if isinstance(error, PlatformCredentialError):
        # The bot's stored secrets: every reply would fail alike until a credential admin acts.
        return PushOutcome(
            reply_id=reply_id, ok=False, message=error.explanation, reason_code="credential"
        )
    return PushOutcome(
        reply_id=reply_id,
        ok=False,
        message=error.explanation,
        reason_code=str(error.errcode) if error.errcode is not None else "transport",
        retryable=error.retryable or error.errcode is None,
    )


def _send(reply: AutoReply, client: ChatbotClient) -> PushOutcome:
    try:
        client.set_autoreply(
            managerid=reply.effective_managerid(),
            skillname=reply.skill.name,
            title=reply.title,
            # From the typed answer, not the stored JSON: the database may reorder an object's
            # keys (PostgreSQL's jsonb does), and the platform gets the seed's order.
            content=reply.answer.content(),
            questions=list(reply.questions),
        )
    except PlatformError as error:
        return _not_sent(reply.pk, error)
    if isinstance(reply.answer, TextAnswer):
        return PushOutcome(reply_id=reply.pk, ok=True, message=gettext("The platform accepted it."))
    return PushOutcome(reply_id=reply.pk, ok=True, message=str(_RICH_NOTE))


def reply_push(
    *,
    reply: AutoReply,
    actor: Actor,
    client: ChatbotClient | None = None,
    clashes: list[QuestionClash] | None = None,
) -> PushOutcome:
    """Send one reply (one ``setautoreply`` call) and record the result on it and its history.

    Returns the outcome; never raises for platform or transport failures, which leave the reply
    marked as failed with the reason as a sentence. A caller pushing many replies passes the
    ``client`` and the reply's ``clashes`` (from one :func:`question_clashes` per batch).
    """
    reply, outcome = reply_send(reply=reply, client=client, clashes=clashes)
    push_record(reply=reply, outcome=outcome, actor=actor)
    return outcome


def reply_send(
    *,
    reply: AutoReply,
    client: ChatbotClient | None = None,
    clashes: list[QuestionClash] | None = None,
) -> tuple[AutoReply, PushOutcome]:
    """:func:`reply_push` without recording: the reply as sent, and the outcome for
    :func:`push_record`. The push job records a batch's outcomes in its checkpoint."""
    require_no_transaction("reply_send")
    reply = AutoReply.objects.select_related("skill__bot").get(pk=reply.pk)
    outcome = _refusal(reply, clashes)
    if outcome is None:
        try:
            outcome = _send(reply, client or client_for(reply.skill.bot))
        except PlatformCredentialError as error:
            outcome = _not_sent(reply.pk, error)
    return reply, outcome


@transaction.atomic
def push_record(*, reply: AutoReply, outcome: PushOutcome, actor: Actor) -> None:
    """Write a push's result, unless the reply was edited while it travelled (then it stays
    changed: what was sent is not what it holds)."""
    current = (
        AutoReply.objects.select_for_update().select_related("skill").filter(pk=reply.pk).first()
    )
    if current is None:
        return
    same = (
        current.skill.name == reply.skill.name
        and current.title == reply.title
        and current.questions == reply.questions
        and current.content == reply.content
        and current.managerid == reply.managerid
    )
    now = timezone.now()
    fields = ["sync_state", "sync_message", "updated_at"]
    if outcome.ok:
        current.last_pushed_at = now
        current.pushed_skillname = reply.skill.name
        current.pushed_title = reply.title
        current.sync_state = ReplySyncState.IN_SYNC if same else ReplySyncState.CHANGED
        fields += ["last_pushed_at", "pushed_skillname", "pushed_title"]
    else:
        current.sync_state = ReplySyncState.FAILED
    current.sync_message = outcome.message[:500]
    current.save(update_fields=fields)
    audit_record(
        actor=actor,
        obj=current,
        action=AuditAction.CHANGE,
        note=_("Pushed to the dialogue platform: %(result)s")
        if outcome.ok
        else _("Push failed: %(result)s"),
        note_params={"result": outcome.message},
    )


# ---- push all changed, in the background -------------------------------------------------------


def replies_push_changed(*, bot: ChatbotBot, actor: Actor) -> Job:
    """Submit a background job that pushes every reply of ``bot`` not in sync.

    A push job of the bot that is still open is returned instead of a second one. Raises
    ValidationError when every reply is in sync.
    """
    from chatbot.jobs import KIND, SHARD_SIZE, bot_job_submit
    from chatbot.selectors import replies_to_push
    from console.jobs.services import job_create, shard_ranges

    def create() -> Job:
        ids = list(replies_to_push(bot_id=bot.pk).values_list("pk", flat=True))
        if not ids:
            raise ValidationError(
                gettext("Nothing to push: every reply of %(bot)s is in sync.") % {"bot": bot.name},
                code="nothing",
            )
        return job_create(
            kind=KIND,
            title=ngettext(
                "Push %(count)d changed reply of %(bot)s",
                "Push %(count)d changed replies of %(bot)s",
                len(ids),
            )
            % {"count": len(ids), "bot": bot.name},
            total=len(ids),
            shards=shard_ranges(total=len(ids), shard_size=SHARD_SIZE),
            params={"bot_id": bot.pk, "reply_ids": ids},
            actor=actor,
            target=bot,
        )

    return bot_job_submit(kind=KIND, bot=bot, create=create)
