"""``manage.py sandbox``: serve the platform sandbox until Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve a local emulator of WeCom, the Official Account API and the dialogue platform "
        "(wecom/sandbox) until Ctrl-C or SIGTERM."
    )
    # The sandbox needs neither the database nor the system checks.
    requires_system_checks = ()

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port",
            type=int,
            default=settings.SANDBOX_PORT,
            help=f"0 picks a free port (default SANDBOX_PORT, {settings.SANDBOX_PORT})",
        )
        parser.add_argument("--demo", action="store_true", help="start with the demo data")
        parser.add_argument(
            "--state",
            type=Path,
            metavar="FILE",
            help="load the state from FILE if it exists; save it there (atomically) when it "
            "changes, at most once a second, and at exit",
        )
        parser.add_argument("--token-ttl", type=int, default=7200, metavar="SECONDS")
        parser.add_argument(
            "--fault",
            action="append",
            default=[],
            metavar="SPEC",
            help="a fault rule, e.g. errcode=-1,rate=0.1,platform=wechat,"
            "endpoint=/cgi-bin/tags/members/batchtagging or latency_ms=500 or drop=true,rate=0.05",
        )
        parser.add_argument("--seed", type=int, default=None, help="seed ids and fault sampling")
        parser.add_argument("--verbose", action="store_true", help="log every request")

    def handle(self, *args: Any, **options: Any) -> None:
        from wecom.sandbox import FaultRule, SandboxServer, SandboxState, seed_demo
        from wecom.sandbox.demo import seed_demo_customers
        from wecom.sandbox.persist import StateSaver, load_state

        try:
            faults = [FaultRule.from_spec(spec) for spec in options["fault"]]
        except ValueError as exc:
            raise CommandError(f"--fault: {exc}") from None

        path: Path | None = options["state"]
        state = None
        if path is not None:
            try:
                state = load_state(path, seed=options["seed"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CommandError(f"cannot load the sandbox state from {path}: {exc}") from None
        if state is None:
            state = SandboxState(seed=options["seed"])
            if options["demo"]:
                seed_demo(state)
        elif options["demo"]:
            # A state file saved before the sandbox had WeCom customers gets the demo's.
            seed_demo_customers(state)

        try:
            server = SandboxServer(
                options["host"],
                options["port"],
                state,
                token_ttl=options["token_ttl"],
                seed=options["seed"],
                verbose=options["verbose"],
            )
        except ValueError as exc:
            raise CommandError(f"{exc}.") from None
        for rule in faults:
            server.faults.add(rule)
        try:
            server.start()
        except (OSError, OverflowError) as exc:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from None

        stop = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        saver = StateSaver(state, path).start() if path is not None else None
        try:
            self.stdout.write(
                f"Sandbox ready at {server.url} - WeCom {server.wecom_base} - "
                f"Official Account {server.wechat_base} - chatbot {server.chatbot_base}"
                + (f" - faults {json.dumps([r.to_dict() for r in faults])}" if faults else "")
            )
            self.stdout.flush()
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
            if saver is not None:
                saver.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("Sandbox stopped.")
