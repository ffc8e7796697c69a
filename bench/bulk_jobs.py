"""Bulk user-tag jobs: peak memory at 1,000,000 vs 100,000 OpenIDs, and throughput against a
bare keep-alive requests loop posting the same batches to the same sandbox.

Run from the project root:

    .venv/bin/python bench/bulk_jobs.py memory [--sizes 100000 1000000]
    .venv/bin/python bench/bulk_jobs.py throughput [--openids 20000] [--rounds 3]
    .venv/bin/python bench/bulk_jobs.py chaos [--openids 20000]      # the chaos test, full size
    .venv/bin/python bench/bulk_jobs.py chaos --kind customers [--pairs 20000]  # WeCom pairs

Each measured part runs in a fresh process of its own (peak RSS is per process), on a
temporary SQLite database, against ``manage.py sandbox --demo`` in another process, with the
credential's rate limit lifted (1,000,000 calls/s) and the project's logging (INFO line per
call, to a file).

memory      upload   audience_from_file over a CSV of N OpenIDs (header, CRLF), peak RSS
            worker   every shard of a job over that audience (batch 50), in one process
            purge    the daily purge deleting that audience once it is old (chunks of rows)
            goal     peak at 1,000,000 <= 1.2 x peak at 100,000, for each

throughput  bare     requests.Session posting {"openid_list": batch, "tagid": T} with a token
                     fetched once, one process
            one      one worker process running the job's shards (job_run_shard: lease, client,
                     rate limiter, checkpoint per batch)
            two      two such processes sharing the job's shards
            goal     one / bare >= 0.9; two > one
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.client_overhead import sandbox_process  # noqa: E402

PREFIX = "oW3Kq_"
OA_APPID = "wx0118deba10ef81d4"
OA_SECRET = "71e8c3dd8fa2d111f78059039c0c842b"  # noqa: S105 - the sandbox's fake demo secret


def openid(n: int) -> str:
    return f"{PREFIX}{n:022d}"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


DATABASE = {"url": ""}  # --database: a PostgreSQL server to use instead of SQLite files


def child_env(db: Path, wechat_base: str) -> dict[str, str]:
    database_url = f"sqlite:///{db}"
    if DATABASE["url"]:
        from tests.harness import postgres_database

        # Beside the named database (its name as a prefix), so parallel runs do not collide.
        database_url = postgres_database(DATABASE["url"], "bench_" + db.stem.replace("-", "_"))
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.tagging.bulk.chaos_settings",  # short timeouts, env base
        "DATABASE_URL": database_url,
        "CHAOS_API_BASE": wechat_base.removesuffix("/wechat"),
        "Q_CLUSTER_NAME": "bench-" + secrets.token_hex(3),
        "CHAOS_SHARD_SIZE": "5000",  # the production default (BULK_SHARD_SIZE)
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": "",
        "LOG_LEVEL": "INFO",
    }


def run_child(args: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    with log.open("a") as stderr:
        done = subprocess.run(
            [sys.executable, __file__, *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- children --------------------------------------------------------------------------------


def _django() -> None:
    import django

    django.setup()


def child_prepare(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    from console.audit import Actor
    from tagging.official_account.models import OfficialAccountTag
    from tagging.official_account.services import oa_tags_pull
    from wecom.models import OfficialAccount

    account = OfficialAccount.objects.create(
        name="bench", appid=OA_APPID, secret=OA_SECRET, rate_limit=1_000_000
    )
    account = OfficialAccount.objects.get(pk=account.pk)
    oa_tags_pull(account=account, actor=Actor.command_line(command="bench"))
    tag = OfficialAccountTag.objects.filter(account=account).exclude(tag_id=2).first()
    return {"tag_pk": tag.pk, "tag_id": tag.tag_id}


def child_upload(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from console.audit import system_user
    from tagging.bulk.audience import audience_from_file

    path = Path(options.file)
    before = peak_mb()
    started = time.perf_counter()
    with path.open("rb") as stream:
        audience = audience_from_file(
            stream=stream, name=path.name, size=path.stat().st_size, user=system_user()
        )
    return {
        "audience": audience.pk,
        "accepted": audience.accepted,
        "seconds": time.perf_counter() - started,
        "baseline_mb": before,
        "peak_mb": peak_mb(),
    }


def child_start(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from console.audit import Actor
    from tagging.bulk.models import BulkAudience
    from tagging.bulk.services import bulk_job_start
    from tagging.official_account.models import OfficialAccountTag

    job = bulk_job_start(
        audience=BulkAudience.objects.get(pk=options.audience),
        target=OfficialAccountTag.objects.get(pk=options.tag),
        batch_size=options.batch,
        actor=Actor.command_line(command="bench"),
    )
    return {"job": job.pk, "shards": job.shards.count()}


def child_worker(options: argparse.Namespace) -> dict[str, Any]:
    """Run the job's shards until none is left to claim; what a queue worker would do."""
    _django()
    from console.jobs.services import job_run_shard
    from console.models import JobShard, ShardStatus

    before = peak_mb()
    began = time.time()
    started = time.perf_counter()
    cpu = time.process_time()
    slices = 0
    while True:
        open_shards = list(
            JobShard.objects.filter(
                job_id=options.job, status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)
            ).values_list("pk", flat=True)
        )
        if not open_shards:
            break
        claimed = 0
        for shard_id in open_shards:
            outcome = job_run_shard(shard_id=shard_id)
            claimed += outcome.claimed
            slices += 1
        if not claimed:
            time.sleep(0.05)  # the other worker holds the rest
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "began": began,
        "ended": time.time(),
        "slices": slices,
        "baseline_mb": before,
        "peak_mb": peak_mb(),
    }


def child_purge(options: argparse.Namespace) -> dict[str, Any]:
    """Delete the audience as the daily schedule would once it is old: rows, chunks, History."""
    _django()
    from datetime import timedelta

    from django.utils import timezone

    from console.audit import Actor
    from tagging.bulk.models import BulkAudience
    from tagging.bulk.retention import audience_purge_expired

    BulkAudience.objects.filter(pk=options.audience).update(
        created_at=timezone.now() - timedelta(days=365)
    )
    before = peak_mb()
    started = time.perf_counter()
    report = audience_purge_expired(actor=Actor.command_line(command="bench"))
    return {
        "seconds": time.perf_counter() - started,
        "members": report.members,
        "baseline_mb": before,
        "peak_mb": peak_mb(),
    }


def child_bare(options: argparse.Namespace) -> dict[str, Any]:
    import requests

    base = options.wechat
    session = requests.Session()
    token = session.post(
        f"{base}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": OA_APPID, "secret": OA_SECRET},
        timeout=5,
    ).json()["access_token"]
    started = time.perf_counter()
    cpu = time.process_time()
    calls = 0
    for start in range(0, options.openids, options.batch):
        batch = [openid(n) for n in range(start, min(start + options.batch, options.openids))]
        answer = session.post(
            f"{base}/cgi-bin/tags/members/batchtagging",
            params={"access_token": token},
            json={"openid_list": batch, "tagid": options.tag_id},
            timeout=5,
        ).json()
        if answer.get("errcode"):
            raise SystemExit(f"bare loop: {answer}")
        calls += 1
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "calls": calls,
    }


# ---- parents --------------------------------------------------------------------------------


def write_csv(path: Path, count: int) -> None:
    with path.open("w", newline="") as out:
        out.write("openid\r\n")
        for n in range(count):
            out.write(openid(n) + "\r\n")


def memory(options: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    results = {}
    with sandbox_process(work) as (wechat_base, where):
        print(f"sandbox: {where}")
        for size in options.sizes:
            db = work / f"memory-{size}.sqlite3"
            env = child_env(db, wechat_base)
            log = work / f"memory-{size}.log"
            prepared = run_child(["_prepare"], env, log)
            csv_path = work / f"audience-{size}.csv"
            write_csv(csv_path, size)
            upload = run_child(["_upload", "--file", str(csv_path)], env, log)
            started = run_child(
                [
                    "_start",
                    "--audience",
                    str(upload["audience"]),
                    "--tag",
                    str(prepared["tag_pk"]),
                    "--batch",
                    "50",
                ],
                env,
                log,
            )
            worker = run_child(["_worker", "--job", str(started["job"])], env, log)
            purge = run_child(["_purge", "--audience", str(upload["audience"])], env, log)
            results[size] = {"upload": upload, "worker": worker, "purge": purge}
            print(
                f"{size:>9,} OpenIDs  upload peak {upload['peak_mb']:7.1f} MB "
                f"(baseline {upload['baseline_mb']:.1f}, {upload['seconds']:.1f} s)   "
                f"worker peak {worker['peak_mb']:7.1f} MB "
                f"(baseline {worker['baseline_mb']:.1f}, {worker['seconds']:.1f} s, "
                f"{size / worker['seconds']:,.0f} OpenIDs/s)   "
                f"purge peak {purge['peak_mb']:7.1f} MB ({purge['seconds']:.1f} s, "
                f"{purge['members']:,} rows)"
            )
    small, large = min(options.sizes), max(options.sizes)
    for part in ("upload", "worker", "purge"):
        ratio = results[large][part]["peak_mb"] / results[small][part]["peak_mb"]
        verdict = "ok" if ratio <= 1.2 else "ABOVE GOAL"
        print(f"{part:7} peak ratio {large:,} / {small:,} = {ratio:.3f}  (goal <= 1.2: {verdict})")


def throughput(options: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    rates: dict[str, list[float]] = {"bare": [], "one": [], "two": []}
    cpu_us: dict[str, list[float]] = {"bare": [], "one": [], "two": []}
    calls = options.openids // options.batch
    with sandbox_process(work) as (wechat_base, where):
        print(f"sandbox: {where}")
        db = work / "throughput.sqlite3"
        env = child_env(db, wechat_base)
        log = work / "throughput.log"
        prepared = run_child(["_prepare"], env, log)
        csv_path = work / "audience.csv"
        write_csv(csv_path, options.openids)
        upload = run_child(["_upload", "--file", str(csv_path)], env, log)
        bare_args = [
            "_bare",
            "--wechat",
            wechat_base,
            "--openids",
            str(options.openids),
            "--batch",
            str(options.batch),
            "--tag-id",
            str(prepared["tag_id"]),
        ]
        run_child(bare_args, env, log)  # warm-up: the sandbox has every OpenID tagged once
        for round_number in range(options.rounds):
            order = ["bare", "one", "two"] if round_number % 2 == 0 else ["two", "one", "bare"]
            for what in order:
                if what == "bare":
                    report = run_child(bare_args, env, log)
                    seconds, cpu = report["seconds"], report["cpu"]
                else:
                    job = run_child(
                        [
                            "_start",
                            "--audience",
                            str(upload["audience"]),
                            "--tag",
                            str(prepared["tag_pk"]),
                            "--batch",
                            str(options.batch),
                        ],
                        env,
                        log,
                    )["job"]
                    count = 1 if what == "one" else 2
                    processes = [
                        subprocess.Popen(
                            [sys.executable, __file__, "_worker", "--job", str(job)],
                            env=env,
                            cwd=ROOT,
                            stdout=subprocess.PIPE,
                            stderr=log.open("a"),
                            text=True,
                        )
                        for _ in range(count)
                    ]
                    reports = [
                        json.loads(process.communicate()[0].strip().splitlines()[-1])
                        for process in processes
                    ]
                    # From the first worker's first claim to the last worker's end: process
                    # start-up (Django set-up) is not the job's time.
                    seconds = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
                    cpu = sum(r["cpu"] for r in reports)
                rates[what].append(calls / seconds)
                cpu_us[what].append(cpu / calls * 1e6)
                print(
                    f"round {round_number + 1} {what:4} {rates[what][-1]:8.0f} calls/s  "
                    f"{cpu_us[what][-1]:6.0f} µs CPU per call (worker processes)"
                )
    median = {what: statistics.median(values) for what, values in rates.items()}
    print(
        f"median calls/s: bare {median['bare']:.0f}, one worker {median['one']:.0f}, "
        f"two workers {median['two']:.0f}"
    )
    cpu = {what: statistics.median(values) for what, values in cpu_us.items()}
    print(
        f"median CPU per call: bare {cpu['bare']:.0f} µs, one worker {cpu['one']:.0f} µs, "
        f"two workers {cpu['two']:.0f} µs"
    )
    print(f"one / bare = {median['one'] / median['bare']:.3f} (goal >= 0.9)")
    print(f"two / one  = {median['two'] / median['one']:.3f} (goal > 1)")


def chaos(options: argparse.Namespace) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.tagging.bulk.chaos",
            "--kind",
            options.kind,
            "--openids",
            str(options.openids),
            "--workers",
            str(options.workers),
        ],
        cwd=ROOT,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    memory_parser = commands.add_parser("memory")
    memory_parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000])
    throughput_parser = commands.add_parser("throughput")
    throughput_parser.add_argument("--openids", type=int, default=20_000)
    throughput_parser.add_argument("--batch", type=int, default=20)
    throughput_parser.add_argument("--rounds", type=int, default=3)
    chaos_parser = commands.add_parser("chaos")
    chaos_parser.add_argument(
        "--kind", choices=("bulk", "customers"), default="bulk", help="the job kind under chaos"
    )
    chaos_parser.add_argument(
        "--openids",
        "--pairs",
        type=int,
        default=20_000,
        help="OpenIDs, or (member, customer) pairs",
    )
    chaos_parser.add_argument("--workers", type=int, default=2)
    for name in ("_prepare", "_upload", "_start", "_worker", "_bare", "_purge"):
        child = commands.add_parser(name)
        child.add_argument("--file")
        child.add_argument("--audience", type=int)
        child.add_argument("--tag", type=int)
        child.add_argument("--tag-id", type=int)
        child.add_argument("--batch", type=int, default=20)
        child.add_argument("--job", type=int)
        child.add_argument("--wechat")
        child.add_argument("--openids", type=int)
    for sub in (memory_parser, throughput_parser):
        sub.add_argument(
            "--database",
            default="",
            help="postgres://… server (a bench_* database is created there); default SQLite",
        )
    options = parser.parse_args()
    DATABASE["url"] = getattr(options, "database", "")
    if options.command.startswith("_"):
        result = globals()["child" + options.command](options)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    {"memory": memory, "throughput": throughput, "chaos": chaos}[options.command](options)


if __name__ == "__main__":
    main()
