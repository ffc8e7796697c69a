"""Importing 2,000 auto-replies: the bulk import vs the same rows saved one by one.

Run from the project root (it configures Django itself, with tests.settings, on a temporary
SQLite database unless DATABASE_URL is set):

    .venv/bin/python bench/chatbot_import.py [--rows 2000] [--rounds 3]

    baseline  ``reply_create`` per row (validation, one INSERT and one history entry per reply,
              one transaction each): what a loop over the service would cost;
    ours      ``replies_import``: the row-by-row plan (two queries), then bulk INSERTs of the
              skills, replies and history entries in one transaction.

Both import the same rows into a fresh bot each round, alternating which goes first. Reported:
seconds per import, queries per import, and the ratio baseline/ours (how many times faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
_TMP = tempfile.mkdtemp(prefix="bench-chatbot-")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_TMP}/bench.sqlite3")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from chatbot.answers import answer_from_content  # noqa: E402
from chatbot.models import Skill  # noqa: E402
from chatbot.services import reply_create  # noqa: E402
from chatbot.transfer import replies_import  # noqa: E402
from console.audit import Actor  # noqa: E402
from wecom.models import ChatbotBot  # noqa: E402


def records(count: int) -> list[dict]:
    rich = {
        "multimsg": [
            '您好，请看<a href="https://example.com/x">说明</a>',
            {
                "news": {
                    "articles": [{"title": "标题", "url": "https://example.com/a", "type": "h5"}]
                }
            },
        ]
    }
    return [
        {
            "skillname": f"技能 {n % 20}",
            "title": f"问题 {n}",
            "questions": [f"问法 {n} 甲", f"问法 {n} 乙"],
            "content": rich if n % 2 else f"回答 {n}",
            "managerid": "",
        }
        for n in range(count)
    ]


_bots = 0


def fresh_bot() -> ChatbotBot:
    global _bots
    _bots += 1
    return ChatbotBot.objects.create(
        name=f"bench {_bots}",
        appid="benchappid",
        token=f"BenchToken{_bots:06d}xx",
        encoding_aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    )


class QueryCount:
    """Counts statements without keeping them (CaptureQueriesContext stops at 9,000)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):  # noqa: ANN001
        self.count += 1
        return execute(sql, params, many, context)

    def __len__(self) -> int:
        return self.count


class counting:
    def __enter__(self) -> QueryCount:
        self.counter = QueryCount()
        self._wrapper = connection.execute_wrapper(self.counter)
        self._wrapper.__enter__()
        return self.counter

    def __exit__(self, *exc: object) -> None:
        self._wrapper.__exit__(*exc)


def ours(rows: list[dict], actor: Actor) -> tuple[float, int]:
    bot = fresh_bot()
    with counting() as queries:
        start = time.perf_counter()
        plan = replies_import(bot=bot, records=rows, actor=actor)
        elapsed = time.perf_counter() - start
    assert plan.count("created") == len(rows)
    return elapsed, len(queries)


def baseline(rows: list[dict], actor: Actor) -> tuple[float, int]:
    bot = fresh_bot()
    with counting() as queries:
        start = time.perf_counter()
        skills: dict[str, Skill] = {}
        for row in rows:
            skill = skills.get(row["skillname"])
            if skill is None:
                skill = skills[row["skillname"]] = Skill.objects.create(
                    bot=bot, name=row["skillname"]
                )
            reply_create(
                skill=skill,
                title=row["title"],
                questions=row["questions"],
                answer=answer_from_content(row["content"]),
                actor=actor,
            )
        elapsed = time.perf_counter() - start
    return elapsed, len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    actor = Actor.command_line(command="bench")
    rows = records(args.rows)
    results: dict[str, list[tuple[float, int]]] = {"ours": [], "baseline": []}
    for round_number in range(args.rounds):
        order = [("ours", ours), ("baseline", baseline)]
        if round_number % 2:
            order.reverse()
        for name, function in order:
            results[name].append(function(rows, actor))
    print(f"{args.rows} replies, {args.rounds} rounds, {connection.vendor}")
    for name in ("baseline", "ours"):
        seconds = [r[0] for r in results[name]]
        print(
            f"  {name:8}  median {statistics.median(seconds):7.2f} s"
            f"  ({min(seconds):.2f}..{max(seconds):.2f})  queries {results[name][0][1]}"
        )
    ratios = [b[0] / o[0] for b, o in zip(results["baseline"], results["ours"], strict=True)]
    print(f"  ratio     baseline/ours median {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
