from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save
from django.utils.translation import gettext_lazy as _


def _ensure_pull_schedules(**kwargs: Any) -> None:
    from tagging.strategy_jobs import strategy_pull_schedules_ensure

    strategy_pull_schedules_ensure()


def _ensure_purge_schedule(**kwargs: Any) -> None:
    from tagging.bulk_retention import audiences_purge_schedule_ensure

    audiences_purge_schedule_ensure()


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = _("Customer tags")

    def ready(self) -> None:
        from tagging import (  # noqa: F401  (panel, job kinds)
            strategy_callbacks,
            strategy_dashboard,
            strategy_jobs,
        )
        from wecom.models import WeComApp

        post_migrate.connect(_ensure_pull_schedules, sender=self)
        post_migrate.connect(_ensure_purge_schedule, sender=self)
        post_save.connect(
            _ensure_pull_schedules, sender=WeComApp, dispatch_uid="tagging-pull-schedules"
        )
        post_delete.connect(
            _ensure_pull_schedules, sender=WeComApp, dispatch_uid="tagging-pull-schedules-delete"
        )

        # Issue 7: the bulk user-tag job kind.
        from tagging import bulk_jobs

        bulk_jobs.register()
