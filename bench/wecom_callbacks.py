"""From a change in WeCom's admin to the console showing it: a callback vs the scheduled pull.

The corp holds 10,000 strategy tags (bench/strategy_tags.py's corp: 500 groups over 20
strategies). Each round renames one tag "in WeCom's admin" through the sandbox's control API,
which POSTs the signed, encrypted event to the console's receiver (a WSGI server in a thread of
this process) the way WeCom does; the targeted pull job then runs in this process (a worker's
part). Against it: the full pull the schedule makes, which finds the same change.

    .venv/bin/python bench/wecom_callbacks.py [--rounds 5] [--database URL]

Printed per round: the receiver's answer time (what WeCom waits for), the time from the change
to the new name in the console's database, and the platform calls each took. Not included: the
coalescing window (WECOM_CALLBACK_COALESCE_SECONDS, 3 s by default, here 0) and the worker's
queue pick-up (django-q polls the database broker every 0.5 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))

from strategy_tags import CORP, SECRET, configure_django, seed_sandbox  # noqa: E402

TOKEN = "BenchCallbackToken1"  # noqa: S105 - fake, sandbox-only
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", help="a DATABASE_URL (default: temporary SQLite)")
    options = parser.parse_args()
    configure_django(options.database, Path(tempfile.mkdtemp(prefix="bench-callback-")))

    import requests
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.wsgi import get_wsgi_application
    from django.urls import reverse

    from console.audit import Actor, AuditSource
    from console.jobs.services import job_run_shard
    from console.models import Job
    from tagging.strategy.callbacks import CALLBACK_PULL_KIND
    from tagging.strategy.models import Strategy, Tag
    from tagging.strategy.pull_apply import pull_and_apply
    from wecom.models import WeComApp
    from wecom.sandbox import SandboxServer, SandboxState

    settings.WECOM_CALLBACK_COALESCE_SECONDS = 0
    settings.WECOM_CALLBACK_RATE_PER_MINUTE = 10**6
    state = SandboxState(seed=1)
    seed_sandbox(state)
    web = make_server("127.0.0.1", 0, get_wsgi_application(), _ThreadingWSGIServer, _Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    with SandboxServer(state=state, seed=1) as sandbox:
        settings.WECOM_API_BASE = sandbox.wecom_base
        Strategy.objects.all().delete()
        WeComApp.objects.filter(name="bench").delete()
        app = WeComApp.objects.create(
            name="bench",
            corp_id=CORP,
            secret=SECRET,
            rate_limit=1e6,
            callback_token=TOKEN,
            callback_encoding_aes_key=AES_KEY,
        )
        app.refresh_from_db()
        user, _ = User.objects.get_or_create(username="bench")
        actor = Actor(user=user, source=AuditSource.CLI)
        pull_and_apply(app=app, actor=actor)
        url = f"http://127.0.0.1:{web.server_port}" + reverse("wecom_callback", args=[app.pk])
        control = f"{sandbox.url}/__sandbox__/wecom/"
        verified = requests.post(
            control + "callback",
            json={"corp_id": CORP, "url": url, "token": TOKEN, "encoding_aes_key": AES_KEY},
            timeout=10,
        ).json()
        assert verified["verified"], verified
        rows = []
        tags = list(Tag.objects.filter(app=app).order_by("pk")[: options.rounds])
        for number, tag in enumerate(tags):
            new_name = f"改名{number:03d}"
            sandbox.reset_stats()
            began = time.perf_counter()
            answer = requests.post(
                control + "admin_change",
                json={
                    "corp_id": CORP,
                    "change": "edit_strategy_tag",
                    "body": {"id": tag.wecom_id, "name": new_name},
                },
                timeout=10,
            ).json()
            delivered = time.perf_counter()
            assert answer["deliveries"] == [[200]], answer
            for job in Job.objects.filter(kind=CALLBACK_PULL_KIND, status="queued"):
                for shard in job.shards.all():
                    job_run_shard(shard_id=shard.pk, worker="bench")
            assert Tag.objects.get(pk=tag.pk).name == new_name
            shown = time.perf_counter()
            callback_calls = sandbox.total_calls()

            # The same kind of change found by the schedule's full pull instead.
            state.wecom.edit_strategy_tag(CORP, {"id": tag.wecom_id, "name": new_name + "b"})
            sandbox.reset_stats()
            began_full = time.perf_counter()
            pull_and_apply(app=app, actor=actor)
            full = time.perf_counter() - began_full
            assert Tag.objects.get(pk=tag.pk).name == new_name + "b"
            rows.append(
                (delivered - began, shown - began, callback_calls, full, sandbox.total_calls())
            )
    web.shutdown()
    print(
        f"{'round':>5} {'receiver+delivery s':>20} {'change→console s':>17} {'calls':>6}"
        f" {'full pull s':>12} {'calls':>6}"
    )
    for number, (delivery, shown, calls, full, full_calls) in enumerate(rows, 1):
        print(
            f"{number:>5} {delivery:>20.3f} {shown:>17.3f} {calls:>6} {full:>12.3f} {full_calls:>6}"
        )
    print(
        f"median: change→console {statistics.median(r[1] for r in rows):.3f} s with "
        f"{statistics.median(r[2] for r in rows):.0f} calls; full pull "
        f"{statistics.median(r[3] for r in rows):.3f} s with "
        f"{statistics.median(r[4] for r in rows):.0f} calls"
    )


if __name__ == "__main__":
    main()
