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
    tree      the tree page in Chromium with all 10,000 tags in one strategy (500 groups of 20,
              orders as a pull leaves them: 0, 1, 2…), served over HTTP by this process, per
              round: the HTML's size and elements, the load (navigation start to the load
              event), a search for one tag (Enter to the result shown), a ▲ move where a gap
              exists (the second group to the top: one call) and a ▲ move where none does (the
              last group up one: the list must be re-spaced); goal: < 500 KB and < 1 s.
              ``--tree-only`` runs just this part.

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
# The tree part: a second corp whose one strategy holds all its tags.
TREE_CORP = "ww00000000000tree1"
TREE_GROUPS = 500
TREE_SEARCH = "标签250-07"


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
    state.wecom.add_app(CORP, SECRET)  # type: ignore[attr-defined]
    for number in range(1, STRATEGIES + 1):
        state.wecom.add_strategy(CORP, number, f"规则组{number:02d}")  # type: ignore[attr-defined]
    for group in range(GROUPS):
        state.wecom.add_strategy_group(  # type: ignore[attr-defined]
            CORP,
            1 + group % STRATEGIES,
            f"标签组{group:03d}",
            order=group,
            tags=[(f"标签{group:03d}-{tag:02d}", tag) for tag in range(TAGS_PER_GROUP)],
        )


def seed_tree_corp(state: object) -> None:
    state.wecom.add_app(TREE_CORP, SECRET)  # type: ignore[attr-defined]
    state.wecom.add_strategy(TREE_CORP, 1, "大规则组")  # type: ignore[attr-defined]
    for group in range(TREE_GROUPS):
        state.wecom.add_strategy_group(  # type: ignore[attr-defined]
            TREE_CORP,
            1,
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


def serve_http() -> str:
    """The console over HTTP from a thread of this process (static files through WhiteNoise's
    finders); returns its base URL."""
    import threading

    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=True)
    server.set_app(WSGIHandler())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def tight_orders(strategy: object, state: object) -> None:
    """The orders a pull leaves (0, 1, 2…: no gap anywhere), in the console and in WeCom,
    with nothing pending and no job left over from the last round."""
    from console.models import Job
    from tagging.strategy.models import SyncState, TagGroup

    Job.objects.all().delete()
    groups = list(TagGroup.objects.filter(strategy=strategy).order_by("wecom_id"))
    for order, group in enumerate(sorted(groups, key=lambda group: group.name)):
        group.order = order
        group.pending_order = None
        group.sync_state = SyncState.IN_SYNC
        group.sync_message = ""
    TagGroup.objects.bulk_update(groups, ["order", "pending_order", "sync_state", "sync_message"])
    remote = state.wecom._corps[TREE_CORP]["groups"]  # type: ignore[attr-defined]
    for group in groups:
        remote[group.wecom_id]["order"] = group.order


def bench_tree(rounds: int, user: object, state: object) -> None:
    """The tree page with 10,000 tags in one strategy, in Chromium (see the docstring)."""
    from django.conf import settings
    from django.test import Client
    from playwright.sync_api import sync_playwright

    from console.audit import Actor, AuditSource
    from tagging.strategy.models import Strategy, Tag
    from tagging.strategy.pull_apply import pull_and_apply
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
    from wecom.models import WeComApp

    app = WeComApp.objects.create(name="tree", corp_id=TREE_CORP, secret=SECRET, rate_limit=1e6)
    app.refresh_from_db()
    pull_and_apply(app=app, actor=Actor(user=user, source=AuditSource.CLI))  # type: ignore[arg-type]
    strategy = Strategy.objects.get(app=app)
    assert Tag.objects.filter(group__strategy=strategy).count() == TREE_GROUPS * TAGS_PER_GROUP
    base = serve_http()
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    url = f"{base}/admin/tagging/strategy/tree/{app.pk}/?strategy={strategy.pk}"
    samples: dict[str, list[float]] = {
        "html_kb": [], "elements": [], "load_ms": [], "search_ms": [], "move_ms": [],
        "respace_ms": [],
    }  # fmt: skip
    groups = "ol.strategy-groups > li.strategy-group"
    up = ":scope > .strategy-group-head button[data-step=up]"
    # The tree's script stamps the list when it has shown the server's answer to a move.
    saved = "document.querySelector('ol.strategy-groups').getAttribute('data-saved')"
    answered = f"before => {saved} !== before"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(120_000)
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base}])
        page = context.new_page()
        page.goto(url)  # warm: templates, static files, the browser's caches
        for round_number in range(rounds):
            tight_orders(strategy, state)
            gc.collect()
            response = page.goto(url, wait_until="load")
            assert response is not None and response.ok, url
            samples["html_kb"].append(len(response.body()) / 1024)
            samples["elements"].append(page.evaluate("document.getElementsByTagName('*').length"))
            samples["load_ms"].append(
                page.evaluate("performance.getEntriesByType('navigation')[0].duration")
            )
            page.wait_for_selector("html[data-strategy-tree-ready]")

            # ▲ where a gap exists: the second group goes to the top, one edit call.
            before = page.evaluate(saved)
            began = time.perf_counter()
            page.locator(groups).nth(1).locator(up).click()
            page.wait_for_function(answered, arg=before)
            samples["move_ms"].append((time.perf_counter() - began) * 1000)

            # ▲ where none does: the last group up one, between two orders that touch.
            before = page.evaluate(saved)
            began = time.perf_counter()
            page.locator(groups).last.locator(up).click()
            page.wait_for_function(answered, arg=before, timeout=600_000)
            samples["respace_ms"].append((time.perf_counter() - began) * 1000)

            # A search for one tag: Enter to the result on screen.
            page.goto(url, wait_until="load")
            page.locator("#strategy-q").fill(TREE_SEARCH)
            began = time.perf_counter()
            page.locator("#strategy-q").press("Enter")
            page.locator(".strategy-results", has_text=TREE_SEARCH).first.wait_for()
            samples["search_ms"].append((time.perf_counter() - began) * 1000)
            print(
                f"  round {round_number + 1}: "
                + ", ".join(f"{name} {values[-1]:.0f}" for name, values in samples.items()),
                flush=True,
            )
        browser.close()
    print(
        f"\nTree page in Chromium: {TREE_GROUPS * TAGS_PER_GROUP} tags in {TREE_GROUPS} groups of "
        "one strategy (goal: < 500 KB, < 1000 ms)"
    )
    for name, values in samples.items():
        print(
            f"  {name:<11} min {min(values):9.0f}  median {statistics.median(values):9.0f}  "
            f"max {max(values):9.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", help="a DATABASE_URL (default: temporary SQLite)")
    parser.add_argument("--tree-only", action="store_true", help="only the tree in Chromium")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-strategy-"))
    configure_django(options.database, workdir)
    bench_urls()

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from console.audit import Actor, AuditSource
    from tagging.strategy.models import Strategy, StrategyPull, Tag
    from tagging.strategy.pull_apply import pull_and_apply
    from wecom.models import WeComApp
    from wecom.sandbox import SandboxServer, SandboxState

    state = SandboxState(seed=1)
    seed_sandbox(state)
    seed_tree_corp(state)
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
        WeComApp.objects.filter(name="tree").delete()
        if options.tree_only:
            bench_tree(options.rounds, user, state)
            return

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
        bench_tree(options.rounds, user, state)


if __name__ == "__main__":
    main()
