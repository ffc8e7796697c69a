from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WecomConfig(AppConfig):
    name = "wecom"
    verbose_name = _("Platform credentials")

    def ready(self) -> None:
        from wecom import dashboard  # noqa: F401  (registers the dashboard panel)
