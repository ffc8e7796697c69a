"""Runs the console: web server, task worker and (when SANDBOX is on) the platform sandbox.

Ctrl-C (or SIGTERM) stops all of them; if one of them stops on its own, the others are stopped
too, so the console never runs half-alive.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from django.utils.translation import gettext as _

from console.cli import terminal_language

_STOP_GRACE_SECONDS = 10
_READY_TIMEOUT_SECONDS = 120


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


class Command(BaseCommand):
    help = "Run the web server, the task worker and, with SANDBOX=true, the platform sandbox."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=settings.CONSOLE_PORT)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--no-sandbox", action="store_true", help="do not start the sandbox even if SANDBOX"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with translation.override(terminal_language()):
            self._run(options)

    def _run(self, options: dict[str, Any]) -> None:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        address = f"{options['host']}:{options['port']}"
        children = [
            Child("web", [*manage, "runserver", address, "--noreload"]),
            Child("worker", [*manage, "qcluster"]),
        ]
        if settings.SANDBOX_ENABLED and not options["no_sandbox"]:
            # The demo data's credentials, so that the console works out of the box.
            call_command("credential", "demo")
            children.append(
                Child(
                    "sandbox",
                    [
                        *manage,
                        "sandbox",
                        "--port",
                        str(settings.SANDBOX_PORT),
                        "--demo",
                        "--state",
                        str(settings.VAR_DIR / "sandbox-state.json"),
                    ],
                )
            )
        previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in children:
                # Own process group: Ctrl-C reaches only this command, which stops the
                # children in order.
                child.process = subprocess.Popen(child.argv, start_new_session=True)  # noqa: S603
            self._wait_until_ready(children, f"http://{address}/healthz")
            self._announce(address, children)
            self._supervise(children)
        except _Stop:
            self.stdout.write("\n" + _("Stopping…"))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop(children)

    def _wait_until_ready(self, children: list[Child], health_url: str) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self._check_alive(children)
            try:
                with urllib.request.urlopen(health_url, timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise CommandError(
            f"The web server did not become healthy within {_READY_TIMEOUT_SECONDS}s."
        )

    def _announce(self, address: str, children: list[Child]) -> None:
        names = ", ".join(child.name for child in children)
        bar = "-" * 64
        lines = [
            bar,
            _("The console is running (%(parts)s).") % {"parts": names},
            "",
            "    " + _("Open http://%(address)s/admin/") % {"address": address},
            "",
            _("Press Ctrl-C to stop."),
            bar,
        ]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))

    def _supervise(self, children: list[Child]) -> None:
        while True:
            self._check_alive(children)
            time.sleep(0.5)

    def _check_alive(self, children: list[Child]) -> None:
        for child in children:
            assert child.process is not None
            code = child.process.poll()
            if code is not None:
                raise CommandError(
                    _("The %(name)s process stopped (exit code %(code)s).")
                    % {"name": child.name, "code": code}
                )

    def _stop(self, children: list[Child]) -> None:
        running = [c for c in children if c.process is not None and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for child in running:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                child.process.kill()  # type: ignore[union-attr]
                child.process.wait()  # type: ignore[union-attr]
