from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ConsoleAdminConfig(AdminConfig):
    default_site = "console.admin_site.ConsoleAdminSite"


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = _("Console")

    def ready(self) -> None:
        from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

        from console import checks  # noqa: F401  (registers system checks)
        from console.jobs import dashboard  # noqa: F401  (registers the jobs panel)
        from console.jobs.signals import watchdog_at_worker_start
        from console.roles import ensure_roles_after_migrate

        post_migrate.connect(ensure_roles_after_migrate, sender=self)
        post_spawn.connect(watchdog_at_worker_start, dispatch_uid="console-jobs-watchdog")
        from console.jobs.supervisor import on_task_end, on_task_start

        pre_execute.connect(on_task_start, dispatch_uid="console-worker-activity-start")
        post_execute_in_worker.connect(on_task_end, dispatch_uid="console-worker-activity-end")
