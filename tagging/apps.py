from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = _("Customer tags")

    def ready(self) -> None:
        # Issue 7: the bulk user-tag job kind.
        from tagging import bulk_jobs

        bulk_jobs.register()
