"""``manage.py runconsole``: what `make run` starts (see `console.launcher`)."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import translation

from console.cli import terminal_language
from console.launcher import STOP_GRACE_SECONDS, ConsoleRunner, RunOptions


class Command(BaseCommand):
    help = (
        "Run the web server, the task worker and, with SANDBOX=true, the platform sandbox; "
        "Ctrl-C stops them all."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--port", type=int, default=settings.CONSOLE_PORT, help="web port (default: PORT)"
        )
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--sandbox-port",
            type=int,
            default=settings.SANDBOX_PORT,
            help="sandbox port (default: SANDBOX_PORT)",
        )
        parser.add_argument(
            "--no-sandbox", action="store_true", help="do not start the sandbox even if SANDBOX"
        )
        parser.add_argument(
            "--sandbox-state",
            default=str(settings.VAR_DIR / "sandbox-state.json"),
            metavar="FILE",
            help="where the sandbox keeps its state",
        )
        parser.add_argument(
            "--reload", action="store_true", help="restart the web server when the code changes"
        )
        parser.add_argument(
            "--check-ports",
            action="store_true",
            help="only check that the ports are free (what `make run` does before bootstrap)",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=STOP_GRACE_SECONDS,
            help="seconds the children get to stop before they are killed",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        runner = ConsoleRunner(
            RunOptions(
                host=options["host"],
                port=options["port"],
                sandbox=settings.SANDBOX_ENABLED and not options["no_sandbox"],
                sandbox_port=options["sandbox_port"],
                sandbox_state=options["sandbox_state"],
                reload=options["reload"],
                grace=options["grace"],
            ),
            stdout=self.stdout,
            stderr=self.stderr,
            style=self.style,
        )
        with translation.override(terminal_language()):
            status = runner.check_ports() if options["check_ports"] else runner.run()
        if status:
            sys.exit(status)
