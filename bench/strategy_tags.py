"""Strategy tags at the corp limit: 10,000 tags in 500 groups over 20 strategies.

Run from the project root (it configures Django itself, with tests.settings and a temporary
SQLite database, or the database of ``--database URL``):

    .venv/bin/python bench/strategy_tags.py                 # 5 rounds
    .venv/bin/python bench/strategy_tags.py --rounds 3 --database postgres://postgres@127.0.0.1:5432/bench

What is compared, side by side in interleaved rounds (the machine is shared and noisy):

    pull      fetch alone: the WeCom client's calls a pull makes (strategy list, each strategy,
              then all groups and tags in one call, parsed by the client) - the baseline;
              steady: ``pull_and_apply`` when the console is in step (fetch, plan, apply nothing);
              import: ``pull_and_apply`` into an empty console (bulk inserts and 10,520 history
              entries); goal: pull and reconcile <= 1.5 x fetch alone.
    pages     bare: a plain ``ModelAdmin`` for Tag (100 rows a page) on a second admin site;
              ours: the Tag changelist (filters, sync badges, strategy column) and the tree page of
              one strategy (25 groups, 500 tags); goal: <= 1.2 x bare.

Query counts are printed beside each; the sandbox serves from a thread of this process.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

STRATEGIES = 20
GROUPS = 500
TAGS_PER_GROUP = 20
CORP = "ww0123456789abcdef"
SECRET = "BenchSecret-0123456789abcdefghijklmnopqrstu"  # noqa: S105 - fake, sandbox-only


def configure_django(database: str | None, workdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DATABASE_URL"] = database or f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.pop("REDIS_URL", None)
    os.environ["DEBUG"] = "false"
    import django
    from django.conf import settings

    settings.CACHES = {
        **settings.CACHES,
        "shared": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.ALLOWED_HOSTS = ["*"]
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    logging.getLogger("wecom.platform").setLevel(logging.WARNING)


def bench_urls() -> None:
    """The project's URLs plus a second admin site with a bare ModelAdmin for Tag."""
    from django.conf import settings
    from django.contrib import admin
    from django.urls import include, path

    from tagging.strategy.models import Tag

    bare = admin.AdminSite(name="bare")
    bare.register(Tag)
    module = types.ModuleType("bench_strategy_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("bare/", bare.urls),
        path("", include(settings.ROOT_URLCONF)),
    ]
    sys.modules["bench_strategy_urls"] = module
    settings.ROOT_URLCONF = "bench_strategy_urls"


def seed_sandbox(state: object) -> None:
    state.add_wecom_app(CORP, SECRET)  # type: ignore[attr-defined]
    for number in range(1, STRATEGIES + 1):
        state.add_strategy(CORP, number, f"规则组{number:02d}")  # type: ignore[attr-defined]
    for group in range(GROUPS):
        state.add_strategy_group(  # type: ignore[attr-defined]
            CORP,
            1 + group % STRATEGIES,
            f"标签组{group:03d}",
            order=group,
            tags=[(f"标签{group:03d}-{tag:02d}", tag) for tag in range(TAGS_PER_GROUP)],
        )


def fetch_alone(app: object) -> None:
    from wecom.connections import client_for

    client = client_for(app)  # type: ignore[call-overload]
    for strategy_id in client.strategy_ids():
        client.strategy_get(strategy_id)
    client.strategy_tag_list()


def timed(function: Callable[[], object]) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    gc.collect()  # each measurement starts without the previous one's garbage
    with CaptureQueriesContext(connection) as queries:
        began = time.perf_counter()
        function()
        elapsed = time.perf_counter() - began
    return elapsed, len(queries)


def report(name: str, samples: dict[str, list[float]], queries: dict[str, int], base: str) -> None:
    base_median = statistics.median(samples[base])
    print(f"\n{name}")
    for label, values in samples.items():
        median = statistics.median(values)
        ratios = [value / reference for value, reference in zip(values, samples[base], strict=True)]
        print(
            f"  {label:<10} median {median * 1000:8.1f} ms  ({min(values) * 1000:.1f}.."
            f"{max(values) * 1000:.1f})  queries {queries[label]:>5}  "
            f"ratio {median / base_median:5.2f} (per round {min(ratios):.2f}..{max(ratios):.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", help="a DATABASE_URL (default: temporary SQLite)")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-strategy-"))
    configure_django(options.database, workdir)
    bench_urls()

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from console.audit import Actor, AuditSource
    from tagging.strategy.models import Strategy, StrategyPull, Tag
    from tagging.strategy.pull import pull_and_apply
    from wecom.models import WeComApp
    from wecom.sandbox import SandboxServer, SandboxState

    state = SandboxState(seed=1)
    seed_sandbox(state)
    with SandboxServer(state=state, seed=1) as server:
        settings.WECOM_API_BASE = server.wecom_base
        Strategy.objects.all().delete()
        WeComApp.objects.filter(name="bench").delete()
        app = WeComApp.objects.create(name="bench", corp_id=CORP, secret=SECRET, rate_limit=1e6)
        app.refresh_from_db()
        user, _ = User.objects.get_or_create(
            username="bench", defaults={"is_staff": True, "is_superuser": True}
        )
        actor = Actor(user=user, source=AuditSource.CLI)

        def empty() -> None:
            Strategy.objects.filter(app=app).delete()
            StrategyPull.objects.filter(app=app).delete()

        pull_samples: dict[str, list[float]] = {"fetch": [], "steady": [], "import": []}
        pull_queries: dict[str, int] = {}
        empty()
        pull_and_apply(app=app, actor=actor)  # warm: token, connections, caches
        assert Tag.objects.filter(app=app).count() == GROUPS * TAGS_PER_GROUP
        for round_number in range(options.rounds):
            order = ["fetch", "steady", "import"]
            if round_number % 2:
                order.reverse()
            for label in order:
                if label == "fetch":
                    elapsed, count = timed(lambda: fetch_alone(app))
                elif label == "steady":
                    elapsed, count = timed(lambda: pull_and_apply(app=app, actor=actor))
                else:
                    empty()
                    elapsed, count = timed(lambda: pull_and_apply(app=app, actor=actor))
                pull_samples[label].append(elapsed)
                pull_queries[label] = count
        report(
            f"Pull of {GROUPS * TAGS_PER_GROUP} tags in {GROUPS} groups over {STRATEGIES} "
            "strategies (goal: <= 1.5 x fetch)",
            pull_samples,
            pull_queries,
            "fetch",
        )

        client = Client()
        client.force_login(user)
        strategy = Strategy.objects.get(app=app, wecom_id=1)
        pages = {
            "bare": "/bare/tagging/tag/",
            "changelist": "/admin/tagging/tag/",
            "tree": f"/admin/tagging/strategy/tree/{app.pk}/?strategy={strategy.pk}",
        }
        page_samples: dict[str, list[float]] = {label: [] for label in pages}
        page_queries: dict[str, int] = {}
        for url in pages.values():  # warm templates
            assert client.get(url).status_code == 200, url
        for round_number in range(options.rounds * 2):
            labels = list(pages)
            if round_number % 2:
                labels.reverse()
            for label in labels:
                elapsed, count = timed(lambda label=label: client.get(pages[label]))
                page_samples[label].append(elapsed)
                page_queries[label] = count
        report(
            "Admin pages with 10,000 tags (goal: <= 1.2 x bare ModelAdmin)",
            page_samples,
            page_queries,
            "bare",
        )


if __name__ == "__main__":
    main()
