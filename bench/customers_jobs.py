"""WeCom customer-tagging jobs (``tagging.customers``, issue 21 item 5): one worker against a
bare keep-alive requests loop posting the same ``mark_tag`` bodies, and peak memory at
1,000,000 vs 100,000 (member, customer) pairs.

Run from the project root:

    .venv/bin/python bench/customers_jobs.py throughput [--pairs 100000] [--rounds 3]
    .venv/bin/python bench/customers_jobs.py memory [--sizes 100000 1000000]
    .venv/bin/python bench/customers_jobs.py memory --read-only     # (a) alone, no calls
    … --database postgres://postgres@127.0.0.1:5432/NAME          # creates NAME_bench_*

Each measured part runs in a fresh process of its own, on a temporary SQLite database (or a
``bench_*`` database beside ``--database``), against ``manage.py sandbox --demo`` in another
process, its demo corp given a handful of bench members (``bench01``…) and enough customers,
each followed by every bench member (``POST /__sandbox__/wecom/customers``; the demo data is
left as it is). The app's rate limit is lifted (1,000,000 calls/s); the project's logging is
kept (an INFO line per call, to a file). The job adds one of the demo's corporate tags.

throughput  bare     requests.Session posting {"userid", "external_userid", "add_tag": [T]}
                     for each pair, in the audience's order, with a token fetched once
            one      one worker process running the job's shards (job_run_shard: lease, the
                     WeCom client, rate limiter, checkpoints), from its first claim to its end
            goal     one / bare >= 0.9, per round (bare and one alternate in order)

memory      read     the upload of a CSV of N pairs (header userid, external_userid; CRLF),
                     customer_audience_upload, then its reading job run to its end in the
                     same process (job_run_shard, as a worker): peak RSS of the process
            worker   every shard of a job over that audience, in one process: peak RSS
            goal     peak at 1,000,000 <= 1.2 x peak at 100,000, for each
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.client_overhead import sandbox_process  # noqa: E402

MEMBERS = 5
# Customers added per control call (a JSON body of a few MB).
SEED_CHUNK = 20_000


def member(n: int) -> str:
    return f"bench{n + 1:02d}"


def customer(n: int) -> str:
    return f"wmbench{n:025d}"


def pairs(count: int) -> Iterator[tuple[str, str]]:
    """The audience's pairs in order: customer by customer, each with every bench member."""
    return ((member(n % MEMBERS), customer(n // MEMBERS)) for n in range(count))


def peak_mb() -> float:
    """This process's peak RSS since its exec (VmHWM). Not ``ru_maxrss``: Linux carries that
    over an exec from the forked image, so a child would report the bench parent's peak."""
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


DATABASE = {"url": ""}


def child_env(db: Path, wechat_base: str) -> dict[str, str]:
    database_url = f"sqlite:///{db}"
    if DATABASE["url"]:
        from tests.harness import postgres_database

        database_url = postgres_database(DATABASE["url"], "bench_" + db.stem.replace("-", "_"))
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.tagging.bulk.chaos_settings",  # env bases, short lease
        "DATABASE_URL": database_url,
        "CHAOS_API_BASE": wechat_base.removesuffix("/wechat"),
        "Q_CLUSTER_NAME": "bench-" + secrets.token_hex(3),
        "CHAOS_SHARD_SIZE": "5000",  # the production default (BULK_SHARD_SIZE)
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": "",
        "LOG_LEVEL": "INFO",
        # A CSV of 1,000,000 pairs is 46 MB, near the default upload limit (50 MB).
        "BULK_UPLOAD_MAX_MB": "500",
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


def seed(wechat_base: str, customers: int) -> None:
    """The bench members and ``customers`` customers, each followed by every bench member."""
    import requests

    from wecom.sandbox import DEMO

    control = wechat_base.removesuffix("/wechat") + "/__sandbox__/wecom/customers"
    followers = [member(n) for n in range(MEMBERS)]
    with requests.Session() as session:
        answer = session.post(
            control,
            json={"corp_id": DEMO.wecom_corp_id, "members": [{"userid": u} for u in followers]},
            timeout=60,
        )
        answer.raise_for_status()
        for start in range(0, customers, SEED_CHUNK):
            body = {
                "corp_id": DEMO.wecom_corp_id,
                "customers": [
                    {"external_userid": customer(n), "followers": followers}
                    for n in range(start, min(start + SEED_CHUNK, customers))
                ],
            }
            session.post(control, json=body, timeout=300).raise_for_status()


def write_csv(path: Path, count: int) -> None:
    with path.open("w", newline="") as out:
        out.write("userid,external_userid\r\n")
        for userid, external_userid in pairs(count):
            out.write(f"{userid},{external_userid}\r\n")


# ---- children --------------------------------------------------------------------------------


def _django() -> None:
    import django

    django.setup()


def child_prepare(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    from wecom.connections import client_for
    from wecom.models import WeComApp
    from wecom.sandbox import DEMO

    app = WeComApp.objects.create(
        name="bench",
        corp_id=DEMO.wecom_corp_id,
        secret=DEMO.wecom_secret,
        agent_id=DEMO.wecom_agent_id,
        rate_limit=1_000_000,
    )
    app = WeComApp.objects.get(pk=app.pk)
    tag_id = client_for(app).corp_tag_list()[0].tags[0].id
    return {"app": app.pk, "tag_id": tag_id}


def child_read(options: argparse.Namespace) -> dict[str, Any]:
    """The upload (the file kept in parts, the read job started) and the reading job run to its
    end by this process, as a worker would (job_run_shard), with the production slice (120 s:
    a read must end within 80% of it)."""
    _django()
    from django.conf import settings

    from console.audit import Actor
    from console.jobs.services import job_run_shard
    from console.models import JobShard, ShardStatus
    from tagging.customers.audience import customer_audience_upload, customer_read_job
    from wecom.models import WeComApp

    settings.JOBS_SLICE_SECONDS = 120
    path = Path(options.file)
    app = WeComApp.objects.get(pk=options.app)
    before = peak_mb()
    started = time.perf_counter()
    cpu = time.process_time()
    with path.open("rb") as stream:
        audience = customer_audience_upload(
            app=app,
            stream=stream,
            name=path.name,
            size=path.stat().st_size,
            actor=Actor.command_line(command="bench"),
        )
    uploaded = time.perf_counter() - started
    job = customer_read_job(audience)
    slices = 0
    while True:
        open_shards = list(
            JobShard.objects.filter(
                job=job, status__in=(ShardStatus.PENDING, ShardStatus.RUNNING)
            ).values_list("pk", flat=True)
        )
        if not open_shards:
            break
        for shard_id in open_shards:
            job_run_shard(shard_id=shard_id)
            slices += 1
    audience.refresh_from_db()
    job.refresh_from_db()
    return {
        "audience": audience.pk,
        "status": audience.status,
        "job_status": job.status,
        "accepted": audience.accepted,
        "slices": slices,
        "upload_seconds": uploaded,
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "baseline_mb": before,
        "peak_mb": peak_mb(),
    }


def child_start(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from console.audit import Actor
    from tagging.customers.models import CustomerAudience
    from tagging.customers.services import customers_job_start

    job = customers_job_start(
        audience=CustomerAudience.objects.get(pk=options.audience),
        add=[options.tag_id],
        actor=Actor.command_line(command="bench"),
    )
    return {"job": job.pk, "shards": job.shards.count()}


def child_worker(options: argparse.Namespace) -> dict[str, Any]:
    """Run the job's shards until none is left; what a queue worker would do."""
    _django()
    from console.jobs.services import job_run_shard
    from console.models import Job, JobShard, ShardStatus

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
        for shard_id in open_shards:
            job_run_shard(shard_id=shard_id)
            slices += 1
    job = Job.objects.get(pk=options.job)
    progress = job.progress()
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "began": began,
        "ended": time.time(),
        "slices": slices,
        "status": job.status,
        "processed": progress.processed,
        "failed": progress.failed,
        "baseline_mb": before,
        "peak_mb": peak_mb(),
    }


def child_bare(options: argparse.Namespace) -> dict[str, Any]:
    import requests

    from wecom.sandbox import DEMO

    base = options.wecom
    session = requests.Session()
    token = session.get(
        f"{base}/cgi-bin/gettoken",
        params={"corpid": DEMO.wecom_corp_id, "corpsecret": DEMO.wecom_secret},
        timeout=5,
    ).json()["access_token"]
    work = list(pairs(options.pairs))
    url = f"{base}/cgi-bin/externalcontact/mark_tag"
    began = time.time()
    started = time.perf_counter()
    cpu = time.process_time()
    for userid, external_userid in work:
        answer = session.post(
            url,
            params={"access_token": token},
            json={
                "userid": userid,
                "external_userid": external_userid,
                "add_tag": [options.tag_id],
            },
            timeout=5,
        ).json()
        if answer.get("errcode"):
            raise SystemExit(f"bare loop: {answer}")
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "began": began,
        "ended": time.time(),
        "calls": len(work),
    }


# ---- parents --------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 3) -> str:
    return " / ".join(
        f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values))
    )


def throughput(options: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-customers-"))
    rates: dict[str, list[float]] = {"bare": [], "one": []}
    cpu_us: dict[str, list[float]] = {"bare": [], "one": []}
    ratios: list[float] = []
    loads: list[str] = [load()]
    with sandbox_process(work) as (wechat_base, where):
        print(f"sandbox: {where}")
        wecom_base = wechat_base.removesuffix("/wechat") + "/wecom"
        seed(wechat_base, -(-options.pairs // MEMBERS))
        env = child_env(work / "throughput.sqlite3", wechat_base)
        log = work / "throughput.log"
        prepared = run_child(["_prepare"], env, log)
        csv_path = work / "audience.csv"
        write_csv(csv_path, options.pairs)
        read = run_child(
            ["_read", "--file", str(csv_path), "--app", str(prepared["app"])], env, log
        )
        assert read["accepted"] == options.pairs, read
        bare_args = [
            "_bare",
            "--wecom",
            wecom_base,
            "--pairs",
            str(options.pairs),
            "--tag-id",
            prepared["tag_id"],
        ]
        run_child(bare_args, env, log)  # warm-up: every pair holds the tag once
        for round_number in range(options.rounds):
            order = ["bare", "one"] if round_number % 2 == 0 else ["one", "bare"]
            for what in order:
                if what == "bare":
                    report = run_child(bare_args, env, log)
                else:
                    job = run_child(
                        [
                            "_start",
                            "--audience",
                            str(read["audience"]),
                            "--tag-id",
                            prepared["tag_id"],
                        ],
                        env,
                        log,
                    )["job"]
                    report = run_child(["_worker", "--job", str(job)], env, log)
                    if report["status"] != "done" or report["processed"] != options.pairs:
                        raise SystemExit(f"the job did not tag every pair: {report}")
                    # From the first claim to the end: Django's start-up is not the job's time.
                    report["seconds"] = report["ended"] - report["began"]
                rates[what].append(options.pairs / report["seconds"])
                cpu_us[what].append(report["cpu"] / options.pairs * 1e6)
                loads.append(load())
                print(
                    f"round {round_number + 1} {what:4} {rates[what][-1]:7.0f} calls/s  "
                    f"{cpu_us[what][-1]:5.0f} µs CPU per call  (load {loads[-1]})",
                    flush=True,
                )
            ratios.append(rates["one"][-1] / rates["bare"][-1])
            print(f"round {round_number + 1} one / bare = {ratios[-1]:.3f}", flush=True)
    print(f"calls/s bare  min/median/max {spread(rates['bare'], 0)}")
    print(f"calls/s one   min/median/max {spread(rates['one'], 0)}")
    print(f"µs CPU/call bare {spread(cpu_us['bare'], 0)}; one {spread(cpu_us['one'], 0)}")
    print(
        f"one / bare per round {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"min/median/max {spread(ratios)} (goal >= 0.9)"
    )
    print(f"load averages (1/5/15 min) before and after each run: {' | '.join(loads)}")


def memory(options: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-customers-"))
    results: dict[int, dict[str, Any]] = {}
    print(f"load {load()}")
    with sandbox_process(work) as (wechat_base, where):
        print(f"sandbox: {where}")
        seed(wechat_base, -(-max(options.sizes) // MEMBERS))
        for size in dict.fromkeys(options.sizes):  # --sizes N N: one size alone
            env = child_env(work / f"memory-{size}.sqlite3", wechat_base)
            log = work / f"memory-{size}.log"
            prepared = run_child(["_prepare"], env, log)
            csv_path = work / f"audience-{size}.csv"
            write_csv(csv_path, size)
            read = run_child(
                ["_read", "--file", str(csv_path), "--app", str(prepared["app"])], env, log
            )
            results[size] = {"read": read}
            if read["status"] != "ready" or read["accepted"] != size:
                raise SystemExit(f"the list was not read whole: {read}")
            line = (
                f"{size:>9,} pairs  read peak {read['peak_mb']:7.1f} MB "
                f"(baseline {read['baseline_mb']:.1f}, upload {read['upload_seconds']:.1f} s, "
                f"upload and read {read['seconds']:.1f} s, CPU {read['cpu']:.1f} s, "
                f"{read['slices']} slice(s))"
            )
            print(f"{line}  (load {load()})", flush=True)
            line = f"{size:>9,} pairs"
            if not options.read_only:
                job = run_child(
                    [
                        "_start",
                        "--audience",
                        str(read["audience"]),
                        "--tag-id",
                        prepared["tag_id"],
                    ],
                    env,
                    log,
                )["job"]
                worker = run_child(["_worker", "--job", str(job)], env, log)
                results[size]["worker"] = worker
                line += (
                    f"  worker peak {worker['peak_mb']:7.1f} MB "
                    f"(baseline {worker['baseline_mb']:.1f}, {worker['seconds']:.1f} s, "
                    f"{size / worker['seconds']:,.0f} pairs/s, {worker['status']}, "
                    f"{worker['processed']:,} processed, {worker['failed']:,} failed)"
                )
            print(f"{line}  (load {load()})", flush=True)
    small, large = min(options.sizes), max(options.sizes)
    for part in ("read", "worker"):
        if part not in results[small]:
            continue
        ratio = results[large][part]["peak_mb"] / results[small][part]["peak_mb"]
        verdict = "ok" if ratio <= 1.2 else "ABOVE GOAL"
        print(f"{part:7} peak ratio {large:,} / {small:,} = {ratio:.3f}  (goal <= 1.2: {verdict})")
    print(f"load {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    throughput_parser = commands.add_parser("throughput")
    throughput_parser.add_argument("--pairs", type=int, default=100_000)
    throughput_parser.add_argument("--rounds", type=int, default=3)
    memory_parser = commands.add_parser("memory")
    memory_parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000])
    memory_parser.add_argument(
        "--read-only", action="store_true", help="(a) alone: no job, no mark_tag calls"
    )
    for sub in (memory_parser, throughput_parser):
        sub.add_argument(
            "--database",
            default="",
            help="postgres://… server (a bench_* database is created there); default SQLite",
        )
    for name in ("_prepare", "_read", "_start", "_worker", "_bare"):
        child = commands.add_parser(name)
        child.add_argument("--file")
        child.add_argument("--app", type=int)
        child.add_argument("--audience", type=int)
        child.add_argument("--tag-id")
        child.add_argument("--job", type=int)
        child.add_argument("--wecom")
        child.add_argument("--pairs", type=int)
    options = parser.parse_args()
    DATABASE["url"] = getattr(options, "database", "")
    if options.command.startswith("_"):
        result = globals()["child" + options.command](options)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    {"throughput": throughput, "memory": memory}[options.command](options)


if __name__ == "__main__":
    main()
