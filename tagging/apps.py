from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save
from django.utils.translation import gettext_lazy as _


def _ensure_pull_schedules(**kwargs: Any) -> None:
    from tagging.strategy.jobs import strategy_pull_schedules_ensure

    strategy_pull_schedules_ensure()


def _ensure_purge_schedule(**kwargs: Any) -> None:
    from tagging.bulk.retention import audiences_purge_schedule_ensure

    audiences_purge_schedule_ensure()


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = _("Customer tags")

    def ready(self) -> None:
        from console.jobs import register_job_kind
        from tagging.bulk.jobs import BULK_JOB
        from tagging.bulk.reading import READ_JOB
        from tagging.customers.audience import CUSTOMER_READ_JOB, MEMBERS_READ_JOB
        from tagging.customers.jobs import CUSTOMERS_JOB
        from tagging.strategy import dashboard  # noqa: F401  (registers the panel)
        from tagging.strategy.callbacks import CALLBACK_PULL_JOB
        from tagging.strategy.jobs import PULL_JOB
        from tagging.strategy.respacing import RESPACE_JOB
        from wecom.models import WeComApp

        for kind in (
            PULL_JOB,
            CALLBACK_PULL_JOB,
            RESPACE_JOB,
            BULK_JOB,
            READ_JOB,
            CUSTOMERS_JOB,
            CUSTOMER_READ_JOB,
            MEMBERS_READ_JOB,
        ):
            register_job_kind(kind)

        post_migrate.connect(_ensure_pull_schedules, sender=self)
        post_migrate.connect(_ensure_purge_schedule, sender=self)
        post_save.connect(
            _ensure_pull_schedules, sender=WeComApp, dispatch_uid="tagging-pull-schedules"
        )
        post_delete.connect(
            _ensure_pull_schedules, sender=WeComApp, dispatch_uid="tagging-pull-schedules-delete"
        )
