from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatbotConfig(AppConfig):
    name = "chatbot"
    verbose_name = _("Chatbot")

    def ready(self) -> None:
        from chatbot import dashboard  # noqa: F401  (registers the panel)
        from chatbot.checking import CHECK_JOB
        from chatbot.jobs import PUSH_JOB
        from chatbot.publish_jobs import PUBLISH_JOB
        from console.jobs import register_job_kind

        for kind in (PUSH_JOB, PUBLISH_JOB, CHECK_JOB):
            register_job_kind(kind)
