"""Admin for chatbot skills and auto-replies: the structured answer editor with its phone preview,
save or save and push, checks across replies, and the platform's leftovers said before they
happen. Saving, deleting and pushing go through chatbot.services (which record the history)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, gettext_lazy as _, ngettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from chatbot.answers import KIND_LABELS, answer_to_editor
from chatbot.forms import AutoReplyForm, ImportForm, SkillForm
from chatbot.models import AutoReply, ReplySyncState, Skill
from chatbot.publish_admin import ReplyPublishMixin
from chatbot.selectors import (
    leftover_warning,
    question_clashes,
    reply_clashes,
    skill_pushed_reply_count,
)
from chatbot.services import (
    replies_push_changed,
    reply_delete,
    reply_push,
    skill_delete,
)
from chatbot.transfer import (
    CSV_COLUMNS,
    MAX_IMPORT_BYTES,
    export_json,
    export_rows,
    import_draft_keep,
    import_draft_take,
    import_plan,
    read_file,
    replies_import,
)
from console.audit import Actor, AuditSource
from console.csp import allow_for_this_page
from console.ids import object_pk_or_404
from console.service_admin import ServiceBackedAdmin, refusal_text
from console.spreadsheets import csv_download
from tagging.bulk.audience import UploadSizeLimit, upload_size_refusal
from wecom.models import ChatbotBot

PUSH_AT_ONCE_LIMIT = 50

_SYNC_ICONS = {
    ReplySyncState.IN_SYNC: "admin/img/icon-yes.svg",
    ReplySyncState.CHANGED: "admin/img/icon-alert.svg",
    ReplySyncState.FAILED: "admin/img/icon-no.svg",
}


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, source=AuditSource.ADMIN)


def sync_badge(reply: AutoReply) -> str:
    from django.templatetags.static import static

    return format_html(
        '<span class="chatbot-sync chatbot-sync-{}" title="{}"><img src="{}" alt=""> {}</span>',
        reply.sync_state,
        reply.sync_message,
        static(_SYNC_ICONS.get(reply.sync_state, "admin/img/icon-unknown.svg")),
        reply.get_sync_state_display(),
    )


class ServiceSavedAdmin(ServiceBackedAdmin):
    """Skills and replies: saved through their services (the form's ``push``), which record
    every change in the History."""


@admin.register(Skill)
class SkillAdmin(ServiceSavedAdmin):
    form = SkillForm
    list_display = (
        "name",
        "bot",
        "reply_count",
        "in_sync_count",
        "changed_count",
        "failed_count",
        "last_pushed",
    )
    list_filter = ("bot",)
    search_fields = ("name",)
    list_select_related = ("bot",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                reply_total=Count("replies"),
                in_sync_total=Count(
                    "replies", filter=Q(replies__sync_state=ReplySyncState.IN_SYNC)
                ),
                changed_total=Count(
                    "replies", filter=Q(replies__sync_state=ReplySyncState.CHANGED)
                ),
                failed_total=Count("replies", filter=Q(replies__sync_state=ReplySyncState.FAILED)),
                last_push=Max("replies__last_pushed_at"),
            )
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["bot", "name"]
        if (
            obj is not None
            and self.has_change_permission(request, obj)
            and obj.replies.exclude(pushed_title="").exists()
        ):
            fields.append("leftover_confirmed")
        if obj is not None and self.has_change_permission(request, obj):
            fields.append("expected_version")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The bot of a skill never changes: its replies live on that bot's platform account.
        return ("bot",) if obj is not None else ()

    @admin.display(description=_("replies"), ordering="reply_total")
    def reply_count(self, skill: Skill) -> int:
        return skill.reply_total  # type: ignore[attr-defined]

    @admin.display(description=_("in sync"), ordering="in_sync_total")
    def in_sync_count(self, skill: Skill) -> int:
        return skill.in_sync_total  # type: ignore[attr-defined]

    @admin.display(description=_("changed, not pushed"), ordering="changed_total")
    def changed_count(self, skill: Skill) -> int:
        return skill.changed_total  # type: ignore[attr-defined]

    @admin.display(description=_("push failed"), ordering="failed_total")
    def failed_count(self, skill: Skill) -> int:
        return skill.failed_total  # type: ignore[attr-defined]

    @admin.display(description=_("last pushed"), ordering="last_push")
    def last_pushed(self, skill: Skill) -> Any:
        return skill.last_push or "—"  # type: ignore[attr-defined]

    def delete_model(self, request: HttpRequest, obj: Skill) -> None:
        # The delete page said what stays on the platform before the user confirmed.
        skill_delete(skill=obj, actor=_actor(request), leftover_confirmed=True)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
        skill = context.get("object")
        if skill is not None:
            pushed = skill_pushed_reply_count(skill)
            if pushed:
                context["leftover_warning"] = ngettext(
                    "%(count)d reply of this skill is on the dialogue platform. The platform has "
                    "no delete call: it stays there and goes on answering until you remove it "
                    "in the platform yourself.",
                    "%(count)d replies of this skill are on the dialogue platform. The platform "
                    "has no delete call: they stay there and go on answering until you remove "
                    "them in the platform yourself.",
                    pushed,
                ) % {"count": pushed}
        return super().render_delete_form(request, context)

    delete_confirmation_template = "admin/chatbot/delete_confirmation.html"


class ReplyChangeList(ChangeList):
    """Marks each reply of the page with its clashes: one query for the whole page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        bot_ids = {reply.skill.bot_id for reply in self.result_list}
        clashes = question_clashes(bot_ids=bot_ids) if bot_ids else {}
        for reply in self.result_list:
            reply.clashes = clashes.get(reply.pk, [])


@admin.register(AutoReply)
class AutoReplyAdmin(ReplyPublishMixin, ServiceSavedAdmin):
    form = AutoReplyForm
    change_form_template = "admin/chatbot/autoreply/change_form.html"
    delete_confirmation_template = "admin/chatbot/delete_confirmation.html"
    list_display = (
        "title",
        "skill",
        "bot_name",
        "answer_kind",
        "question_count",
        "sync",
        "last_pushed_at",
        "clash_flag",
    )
    list_filter = ("sync_state", "skill__bot", "skill")
    list_select_related = ("skill__bot",)
    search_fields = ("title", "skill__name")
    list_per_page = 100
    actions = ["push_selected"]

    class Media:
        # The preview of the read-only page uses the same script.
        css = {"all": ("chatbot/answer_editor.css",)}
        js = ("console/console.js", "chatbot/answer_editor.js")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ReplyChangeList

    change_list_template = "admin/chatbot/autoreply/change_list.html"

    def get_urls(self) -> list:
        def view(function: Any) -> Any:
            return self.admin_site.admin_view(function)

        return [
            path(
                "push-changed/", view(self.push_changed_view), name="chatbot_autoreply_push_changed"
            ),
            path(
                "import/",
                view(csrf_exempt(self.import_with_upload_limit)),
                name="chatbot_autoreply_import",
            ),
            path("export/", view(self.export_view), name="chatbot_autoreply_export"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        bots = ChatbotBot.objects.annotate(
            changed=Count(
                "skills__replies", filter=~Q(skills__replies__sync_state=ReplySyncState.IN_SYNC)
            )
        ).order_by("name")
        context = {
            "push_bots": list(bots),
            "can_push": self.has_push_permission(request),
            "can_import": self.has_add_permission(request) and self.has_change_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def _bot_from(self, request: HttpRequest, data: Any) -> ChatbotBot:
        bot = ChatbotBot.objects.filter(pk=object_pk_or_404(data.get("bot", ""))).first()
        if bot is None:
            raise Http404
        return bot

    def push_changed_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_push_permission(request):
            raise PermissionDenied
        bot = self._bot_from(request, request.POST)
        try:
            job = replies_push_changed(bot=bot, actor=_actor(request))
        except ValidationError as error:
            self.message_user(request, refusal_text(error), level=messages.INFO)
            return HttpResponseRedirect(reverse("admin:chatbot_autoreply_changelist"))
        return HttpResponseRedirect(reverse("admin:console_job_change", args=[job.pk]))

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        bot = self._bot_from(request, request.GET)
        filename = f"replies-{bot.pk}-{timezone.localtime().strftime('%Y%m%d-%H%M')}"
        if request.GET.get("format") == "csv":
            return csv_download(CSV_COLUMNS, export_rows(bot=bot), filename=f"{filename}.csv")
        response = HttpResponse(
            export_json(bot=bot), content_type="application/json; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}.json"'
        return response

    def import_with_upload_limit(self, request: HttpRequest) -> HttpResponse:
        """The import page, its file refused over the limit while it arrives, as the bulk
        upload's (the CSRF check reads the body: it comes after the upload handler)."""
        request.upload_handlers.insert(0, UploadSizeLimit(request, limit=MAX_IMPORT_BYTES))
        return csrf_protect(self.import_view)(request)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        refusal = upload_size_refusal(request) if request.method == "POST" else None
        if refusal is not None and "confirm" not in request.POST:
            form.is_valid()
            form.errors["file"] = form.error_class([str(refusal)])
        plan = None
        if request.method == "POST" and "confirm" in request.POST:
            stored = import_draft_take(user_id=request.user.pk, token=request.POST.get("token", ""))
            if stored is None:
                self.message_user(
                    request,
                    gettext("The preview has expired. Choose the file again."),
                    level=messages.WARNING,
                )
                return HttpResponseRedirect(reverse("admin:chatbot_autoreply_import"))
            bot = self._bot_from(request, stored)
            plan = replies_import(
                bot=bot,
                records=stored["records"],
                actor=Actor.from_request(request, source=AuditSource.IMPORT),
            )
            self.message_user(
                request,
                gettext("Imported into %(bot)s: %(summary)s")
                % {"bot": bot.name, "summary": plan.summary()},
                level=messages.WARNING if plan.count("refused") else messages.SUCCESS,
            )
            return HttpResponseRedirect(
                reverse("admin:chatbot_autoreply_changelist") + f"?skill__bot__id__exact={bot.pk}"
            )
        token = ""
        if request.method == "POST" and form.is_valid():
            bot = form.cleaned_data["bot"]
            upload = form.cleaned_data["file"]
            try:
                records = read_file(upload.name, upload.read())
            except ValidationError as error:
                form.add_error("file", error)
            else:
                plan = import_plan(bot=bot, records=records)
                token = import_draft_keep(user_id=request.user.pk, bot_id=bot.pk, records=records)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Import replies"),
            "form": form,
            "plan": plan,
            "token": token,
            "accepted": plan.count("created") + plan.count("changed") if plan else 0,
        }
        return TemplateResponse(request, "admin/chatbot/autoreply/import.html", context)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Deleting one at a time shows what stays on the platform before confirming.
        actions.pop("delete_selected", None)
        return actions

    # ---- list columns

    @admin.display(description=_("chatbot"), ordering="skill__bot__name")
    def bot_name(self, reply: AutoReply) -> str:
        return reply.skill.bot.name

    @admin.display(description=_("answer type"))
    def answer_kind(self, reply: AutoReply) -> str:
        content = reply.content
        kind = "text" if isinstance(content, str) else next(iter(content or {"?": 0}), "?")
        return str(KIND_LABELS.get(kind, kind))

    @admin.display(description=_("similar questions"))
    def question_count(self, reply: AutoReply) -> int:
        return len(reply.questions or [])

    @admin.display(description=_("sync state"), ordering="sync_state")
    def sync(self, reply: AutoReply) -> str:
        return sync_badge(reply)

    @admin.display(description=_("checks"))
    def clash_flag(self, reply: AutoReply) -> str:
        clashes = getattr(reply, "clashes", None)
        if not clashes:
            return ""
        return format_html(
            '<span class="chatbot-clash" title="{}">⚠ {}</span>',
            "; ".join(f"{c.question} → {c.other_title}" for c in clashes),
            ngettext(
                "%(count)d question also in another reply",
                "%(count)d questions also in other replies",
                len({c.question for c in clashes}),
            )
            % {"count": len({c.question for c in clashes})},
        )

    # ---- the form

    def has_push_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("chatbot.push_autoreply")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        if not self.has_change_permission(request, obj) and obj is not None:
            return [
                (None, {"fields": ("skill", "title", "questions_list", "managerid")}),
                (_("answer"), {"fields": ("answer_preview", "raw_content")}),
                (_("platform"), {"fields": ("sync_status", "last_pushed_at", "platform_key")}),
            ]
        main = ["skill", "title", "questions", "managerid", "answer"]
        if obj is not None and obj.on_platform:
            main.append("leftover_confirmed")
        if obj is not None:
            main.append("expected_version")
        fieldsets: list = [(None, {"fields": main})]
        if obj is not None:
            fieldsets.append(
                (
                    _("platform"),
                    {"fields": ("sync_status", "last_pushed_at", "platform_key", "raw_content")},
                )
            )
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = ("sync_status", "last_pushed_at", "platform_key", "raw_content")
        if not self.has_change_permission(request, obj):
            fields += ("skill", "title", "questions_list", "managerid", "answer_preview")
        return fields

    @admin.display(description=_("similar questions"))
    def questions_list(self, reply: AutoReply) -> str:
        if not reply.questions:
            return "—"
        return format_html(
            "<ol class='chatbot-questions'>{}</ol>",
            format_html_join("", "<li>{}</li>", ((q,) for q in reply.questions)),
        )

    @admin.display(description=_("preview"))
    def answer_preview(self, reply: AutoReply) -> str:
        try:
            data = answer_to_editor(reply.answer)
        except Exception:
            return "—"
        return render_to_string(
            "chatbot/readonly_preview.html",
            {
                "answer_json": json.dumps(data, ensure_ascii=False),
                "title": reply.title,
                "kinds": [(kind, str(label)) for kind, label in KIND_LABELS.items()],
            },
        )

    @admin.display(description=_("as sent (for experts)"))
    def raw_content(self, reply: AutoReply) -> str:
        return format_html(
            '<pre class="chatbot-raw">{}</pre>',
            json.dumps(reply.export_row(), ensure_ascii=False, indent=2),
        )

    @admin.display(description=_("sync state"))
    def sync_status(self, reply: AutoReply) -> str:
        if not reply.sync_message:
            return sync_badge(reply)
        return format_html(
            '{}<p class="chatbot-sync-message">{}</p>', sync_badge(reply), reply.sync_message
        )

    @admin.display(description=_("on the platform as"))
    def platform_key(self, reply: AutoReply) -> str:
        key = reply.pushed_key()
        if key is None:
            return gettext("not pushed yet")
        return gettext("skill “%(skill)s”, question “%(title)s”") % {
            "skill": key[0],
            "title": key[1],
        }

    def delete_model(self, request: HttpRequest, obj: AutoReply) -> None:
        reply_delete(reply=obj, actor=_actor(request), leftover_confirmed=True)

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
        reply = context.get("object")
        if reply is not None:
            context["leftover_warning"] = leftover_warning(reply, deleting=True)
        return super().render_delete_form(request, context)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, obj: Any = None, **kw: Any
    ) -> HttpResponse:
        context["can_push"] = self.has_push_permission(request) and (
            self.has_change_permission(request, obj)
            if obj is not None
            else self.has_add_permission(request)
        )
        if obj is not None:
            context["clashes"] = [
                (
                    clash,
                    reverse("admin:chatbot_autoreply_change", args=[clash.other_id]),
                )
                for clash in reply_clashes(obj)
            ]
        return super().render_change_form(request, context, *args, obj=obj, **kw)

    def _stay(self, request: HttpRequest, obj: AutoReply) -> HttpResponse | None:
        if "_saveandpush" in request.POST:
            return HttpResponseRedirect(reverse("admin:chatbot_autoreply_change", args=[obj.pk]))
        return None

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        return self._stay(request, obj) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Any) -> Any:
        return self._stay(request, obj) or super().response_change(request, obj)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The phone preview shows the answer's pictures, which live on the platform's image
        # servers (mmbiz.qpic.cn…); it loads them without a referrer and runs nothing.
        allow_for_this_page(request, "img-src", "https:", "http:")
        response = super().changeform_view(request, object_id, form_url, extra_context)
        # After the save's transaction: the platform call never holds a database transaction.
        saved = getattr(request, "_chatbot_saved_reply", None)
        pushing = saved is not None and "_saveandpush" in request.POST
        if pushing and self.has_push_permission(request):
            self._push_and_tell(request, AutoReply.objects.filter(pk=saved))
        return response

    def _push_and_tell(self, request: HttpRequest, replies: QuerySet) -> None:
        actor = _actor(request)
        for reply in replies.select_related("skill"):
            outcome = reply_push(reply=reply, actor=actor)
            self.message_user(
                request,
                gettext("“%(title)s”: %(result)s")
                % {"title": reply.title, "result": outcome.message},
                level=messages.SUCCESS if outcome.ok else messages.ERROR,
            )

    @admin.action(description=_("Push the selected replies now"), permissions=["push"])
    def push_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.count()
        if count > PUSH_AT_ONCE_LIMIT:
            self.message_user(
                request,
                gettext(
                    "%(count)d replies selected: push at most %(limit)d at once here, or use "
                    "“Push all changed”, which runs in the background."
                )
                % {"count": count, "limit": PUSH_AT_ONCE_LIMIT},
                level=messages.WARNING,
            )
            return
        self._push_and_tell(request, queryset)
