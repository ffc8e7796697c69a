"""``manage.py sandbox_ctl``: talk to a running sandbox's control API."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _default_url() -> str:
    # The sandbox `make run` starts, on SANDBOX_PORT, unless SANDBOX_URL names another.
    return os.environ.get("SANDBOX_URL") or f"http://127.0.0.1:{settings.SANDBOX_PORT}"


class Command(BaseCommand):
    help = "Inspect and steer a running sandbox (stats, faults, tokens, reset)."
    requires_system_checks = ()

    def add_arguments(self, parser: Any) -> None:
        default = _default_url()
        parser.add_argument("--url", default=default, help=f"the sandbox (default {default})")
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        actions.add_parser("stats", help="calls per endpoint")
        actions.add_parser("faults", help="the active fault rules")
        add = actions.add_parser("add-fault", help="add fault rules")
        add.add_argument("specs", nargs="+", metavar="SPEC", help="e.g. errcode=-1,rate=0.1")
        add.add_argument("--replace", action="store_true", help="replace the current rules")
        actions.add_parser("clear-faults", help="remove every fault rule")
        invalidate = actions.add_parser("invalidate-tokens", help="make issued tokens fail")
        invalidate.add_argument("--platform", choices=["wecom", "wechat", "chatbot"])
        reset = actions.add_parser("reset", help="empty the state (demo data again by default)")
        reset.add_argument("--empty", action="store_true", help="no demo data")
        actions.add_parser("state", help="print the whole state as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        from wecom.sandbox.faults import FaultRule

        base = options["url"].rstrip("/") + "/__sandbox__/"
        action = options["action"]
        if action == "stats":
            answer = self._call(base, "GET", "stats")
            width = max((len(k) for k in answer["calls"]), default=0)
            for key, count in answer["calls"].items():
                self.stdout.write(f"{key:<{width}}  {count}")
            self.stdout.write(f"total: {answer['total']}")
        elif action == "faults":
            self._print_rules(self._call(base, "GET", "faults")["rules"])
        elif action == "add-fault":
            try:
                rules = [FaultRule.from_spec(spec).to_dict() for spec in options["specs"]]
            except ValueError as exc:
                raise CommandError(f"bad fault spec: {exc}") from None
            answer = self._call(
                base, "POST", "faults", {"rules": rules, "replace": options["replace"]}
            )
            self._print_rules(answer["rules"])
        elif action == "clear-faults":
            self._call(base, "DELETE", "faults")
            self.stdout.write("No fault rules.")
        elif action == "invalidate-tokens":
            answer = self._call(
                base, "POST", "tokens/invalidate", {"platform": options["platform"]}
            )
            self.stdout.write(f"Invalidated {answer['invalidated']} token(s).")
        elif action == "reset":
            self._call(base, "POST", "reset", {"demo": not options["empty"]})
            what = "an empty state." if options["empty"] else "demo data."
            self.stdout.write(f"Reset to {what}")
        elif action == "state":
            state = self._call(base, "GET", "state")
            self.stdout.write(json.dumps(state, ensure_ascii=False, indent=2))

    def _print_rules(self, rules: list[dict[str, Any]]) -> None:
        if not rules:
            self.stdout.write("No fault rules.")
        for index, rule in enumerate(rules):
            self.stdout.write(f"{index}: {json.dumps(rule, ensure_ascii=False)}")

    def _call(
        self, base: str, method: str, name: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if not base.startswith(("http://", "https://")):
            raise CommandError(f"--url must be an http(s) URL, not {base!r}")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            base + name,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", "")
            except ValueError:
                detail = ""
            raise CommandError(
                f"the sandbox refused {method} {name}: {exc.code} {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(
                f"the sandbox at {base[: -len('/__sandbox__/')]} is not reachable ({reason}). "
                "Start it with `python manage.py sandbox --demo` or pass --url."
            ) from None
