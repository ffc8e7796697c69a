"""`manage.py qcluster`: django-q2's cluster, under the console's supervision.

The supervisor (console/jobs/supervisor.py) restarts a cluster that stopped taking tasks (a
worker killed while it waited for work blocks all the others: django-q #394) or that ended, runs
the jobs watchdog every few seconds, and publishes the heartbeat /healthz reads.
``--unsupervised`` runs django-q2's cluster alone: what the supervisor starts.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.core.management.base import CommandParser
from django_q.management.commands.qcluster import Command as ClusterCommand

from console.jobs.supervisor import ClusterSupervisor


class Command(ClusterCommand):
    help = "Starts the task cluster under the console's supervision."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--unsupervised",
            action="store_true",
            help="Run django-q2's cluster alone, without the supervisor.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["unsupervised"] or options.get("run_once"):
            super().handle(*args, **options)
            return
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]  # the cluster inherits it
        logging.getLogger(__name__).info("task cluster supervisor starting")
        ClusterSupervisor().run()
