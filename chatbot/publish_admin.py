"""The admin side of going live: the “pushed / live” column and filter of the reply list, the
“发布上线” page per bot, and the read-only history of publishes.

A mixin for the reply admin (not a change of it) so that the reply admin's own code stays as
it is; it adds its URLs, list column, filter and the list's per-bot publish buttons.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from chatbot.models import AutoReply, BotPublish, LiveState
from chatbot.publishing import (
    PUBLISH_KIND,
    bot_publish,
    bots_not_live_counts,
    replies_with_live_state,
)
from chatbot.selectors import bot_open_job
from console.admin import AuditedModelAdmin, ReadOnlyAdminMixin
from console.audit import Actor, AuditSource
from console.ids import object_pk_or_404
from console.service_admin import refusal_text
from wecom.models import ChatbotBot

PUBLISH_PERMISSION = "chatbot.publish_bot"


def _ask_strings() -> dict[str, Any]:
    from chatbot.answers import KIND_LABELS

    return {"kinds": [(kind, str(label)) for kind, label in KIND_LABELS.items()]}


class LiveStateFilter(admin.SimpleListFilter):
    title = _("live")
    parameter_name = "live_state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(LiveState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value in LiveState.values:
            return queryset.filter(live_state=value)
        return queryset


class ReplyPublishMixin:
    """For the reply admin: where each reply stands, and publishing per bot."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return replies_with_live_state(super().get_queryset(request))  # type: ignore[misc]

    def get_list_display(self, request: HttpRequest) -> Any:
        display = list(super().get_list_display(request))  # type: ignore[misc]
        if "live" not in display:
            at = display.index("sync") + 1 if "sync" in display else len(display)
            display.insert(at, "live")
        return display

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))  # type: ignore[misc]
        return [filters[0], LiveStateFilter, *filters[1:]] if filters else [LiveStateFilter]

    @admin.display(description=_("live"), ordering="live_state")
    def live(self, reply: AutoReply) -> str:
        state = LiveState(getattr(reply, "live_state", LiveState.CHANGED))
        return format_html(
            '<span class="chatbot-live chatbot-live-{}">{}</span>', state.value, state.label
        )

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PUBLISH_PERMISSION)

    def get_urls(self) -> list:
        site = self.admin_site  # type: ignore[attr-defined]
        return [
            path("ask/", site.admin_view(self.ask_view), name="chatbot_autoreply_ask"),
            path("check/", site.admin_view(self.check_view), name="chatbot_autoreply_check"),
            path(
                "publish/",
                site.admin_view(self.publish_view),
                name="chatbot_autoreply_publish",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        context = {
            "can_publish": self.has_publish_permission(request),
            "can_check": self.has_check_permission(request),
            "ask_strings": _ask_strings(),
            **(extra_context or {}),
        }
        response = super().changelist_view(request, extra_context=context)  # type: ignore[misc]
        bots = getattr(response, "context_data", None) and response.context_data.get("push_bots")
        if bots:
            counts = bots_not_live_counts()
            for bot in bots:
                bot.not_live = counts.get(bot.pk, 0)
        return response

    def ask_view(self, request: HttpRequest) -> HttpResponse:
        """Ask the bot a question in debug, online or both; JSON for the “试一试” panel."""
        from chatbot.asking import bot_ask

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        bot = ChatbotBot.objects.filter(pk=object_pk_or_404(request.POST.get("bot", ""))).first()
        if bot is None:
            raise Http404
        env = request.POST.get("env", "")
        envs = ["debug", "online"] if env == "both" else [env]
        results = []
        try:
            for one in envs:
                outcome = bot_ask(
                    bot=bot,
                    query=request.POST.get("query", ""),
                    env=one,
                    userid=f"console-{request.user.pk}",
                )
                data = outcome.as_json()
                if outcome.reply_id is not None:
                    data["reply_url"] = reverse(
                        "admin:chatbot_autoreply_change", args=[outcome.reply_id]
                    )
                results.append(data)
        except ValidationError as error:
            return JsonResponse({"error": refusal_text(error)}, status=400)
        return JsonResponse({"results": results})

    def check_view(self, request: HttpRequest) -> HttpResponse:
        """Start the regression run of a bot (“检查所有问题”) and show its job."""
        from chatbot.checking import bot_check

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_check_permission(request):
            raise PermissionDenied
        bot = ChatbotBot.objects.filter(pk=object_pk_or_404(request.POST.get("bot", ""))).first()
        if bot is None:
            raise Http404
        try:
            job = bot_check(
                bot=bot,
                env=request.POST.get("env", ""),
                actor=Actor.from_request(request, source=AuditSource.ADMIN),
            )
        except ValidationError as error:
            self.message_user(  # type: ignore[attr-defined]
                request, refusal_text(error), level=messages.ERROR
            )
            return HttpResponseRedirect(reverse("admin:chatbot_autoreply_changelist"))
        return HttpResponseRedirect(reverse("admin:console_job_change", args=[job.pk]))

    def has_check_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("chatbot.push_autoreply")

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context["can_publish"] = self.has_publish_permission(request)
        context["ask_strings"] = _ask_strings()
        return super().render_change_form(request, context, *args, **kwargs)  # type: ignore[misc]

    def publish_view(self, request: HttpRequest) -> HttpResponse:
        """GET: what publishing the bot would make live, and the button; POST: publish."""
        if not self.has_publish_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        bot = ChatbotBot.objects.filter(pk=object_pk_or_404(data.get("bot", ""))).first()
        if bot is None:
            raise Http404
        if request.method == "POST":
            try:
                job = bot_publish(
                    bot=bot, actor=Actor.from_request(request, source=AuditSource.ADMIN)
                )
            except ValidationError as error:
                self.message_user(  # type: ignore[attr-defined]
                    request, refusal_text(error), level=messages.ERROR
                )
                return HttpResponseRedirect(request.path + f"?bot={bot.pk}")
            return HttpResponseRedirect(reverse("admin:console_job_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": _("Publish %(bot)s") % {"bot": bot.name},
            "bot": bot,
            "not_live": bots_not_live_counts().get(bot.pk, 0),
            "open_job": bot_open_job(kind=PUBLISH_KIND, bot=bot),
            "last_publish": BotPublish.objects.filter(bot=bot).first(),
            "opts": AutoReply._meta,
        }
        return TemplateResponse(request, "admin/chatbot/autoreply/publish.html", context)


@admin.register(BotPublish)
class BotPublishAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    """Every publish, as it went: read-only."""

    list_display = (
        "created_at",
        "bot",
        "status",
        "progress",
        "started_at",
        "finished_at",
        "message",
    )
    list_filter = ("status", "bot")
    list_select_related = ("bot",)
    readonly_fields = (
        "bot",
        "job",
        "status",
        "progress",
        "message",
        "started_at",
        "finished_at",
        "created_at",
    )
