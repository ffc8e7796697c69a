"""The whole path a user runs, from a file of OpenIDs to the last batch, against the loop a user
without the console would write.

    .venv/bin/python bench/bulk_whole_path.py [--sizes 100000] [--rounds 3] [--workers 1 2]
    .venv/bin/python bench/bulk_whole_path.py --databases sqlite postgres \\
        --database postgres://postgres@127.0.0.1:5432/NAME --redis redis://127.0.0.1:6379/N
    .venv/bin/python bench/bulk_whole_path.py --sizes 1000000 --rounds 1 --databases sqlite

A file of N random OpenIDs of the sandbox's demo Official Account (header ``openid``, CRLF,
``--duplicates`` of the lines, 3% by default, repeat an earlier line), then, in interleaved
rounds (the order reversed every other round), on each database:

ours      ``manage.py qcluster`` (the console's supervised cluster, ``Q_WORKERS`` of 1 and of 2)
          already running and idle, then ``manage.py tag_users --oa … --tagid … --file F
          --wait``, timed from its start to its exit: Python and Django start-up, reading the
          list, the job's start, the queue, every shard, and ``--wait`` seeing the end. Both run
          with ``console.settings`` (DEBUG off, the production defaults: shards of 5,000, the
          log line per call at INFO, to a file), the credential's rate limit lifted, the
          project's bytecode compiled first as ``make run`` does.
          sqlite:   a SQLite file, django-q2's ORM broker, the shared cache in the database.
          postgres: ``NAME_whole_path`` beside ``--database`` (created, dropped at the end),
                    Redis (``--redis``) as broker and cache, under a prefix of the run's own.
wechatpy  wechatpy's ``tag.tag_user`` loop, and
lean      a keep-alive ``requests.Session`` loop: bench/reference_loops.py, a script of its own
          that imports only what a user's script would, run as a process and timed from its
          start to its exit, as ``tag_users`` is.

Every variant runs in a fresh process against one ``manage.py sandbox --demo`` (a process of
its own), with the same tag; a first lean pass has tagged every OpenID of the file, so that
each measured pass finds the sandbox in the same state. Per round and database it prints the
times, the speed ratios (``ours/wechatpy`` = wechatpy's process time / ours: above 1, ours is
faster; ``ours/wechatpy loop``, stricter, counts only their loop from opening the file, not
their interpreter and imports), ``two/one`` and the load average, and where our time went (from
the job's and the list's timestamps): start-up (to the list's row), reading the list's first
part (to the job, which sends it while the rest is read; the whole list's read is printed
beside it), the job's queueing (to its start by a worker), the work (the rest of the read
included), and ``--wait``'s lag after the job's end; then
min / median / max over the rounds. Goals (issue 18): ours/wechatpy >= 1.0 with one worker,
>= 1.5 with two. ``--json FILE`` appends every round as a JSON line.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import re
import secrets
import signal
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

OA_APPID = "wx0118deba10ef81d4"
OA_SECRET = "71e8c3dd8fa2d111f78059039c0c842b"  # noqa: S105 - the sandbox's fake demo secret
PREFIX = "oW3Kq_"  # the demo account's OpenIDs
ACCOUNT = "bench"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
CLUSTER_READY_SECONDS = 120.0


# ---- the file ----------------------------------------------------------------------------------


def write_openids(path: Path, count: int, *, duplicates: float, seed: int) -> int:
    """``count`` lines after the header, about ``duplicates`` of them repeating an earlier line;
    the number of distinct OpenIDs."""
    rng = random.Random(seed)
    seen: list[str] = []
    with path.open("w", newline="") as out:
        out.write("openid\r\n")
        for _n in range(count):
            if seen and rng.random() < duplicates:
                out.write(rng.choice(seen) + "\r\n")
                continue
            openid = PREFIX + "".join(rng.choices(ALPHABET, k=22))
            seen.append(openid)
            out.write(openid + "\r\n")
    return len(set(seen))


# ---- Django children ------------------------------------------------------------------------


def child_prepare(options: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    from console.audit import Actor
    from tagging.official_account.models import OfficialAccountTag
    from tagging.official_account.services import oa_tags_pull
    from wecom.models import OfficialAccount

    account = OfficialAccount.objects.create(
        name=ACCOUNT, appid=OA_APPID, secret=OA_SECRET, rate_limit=1_000_000
    )
    account = OfficialAccount.objects.get(pk=account.pk)
    oa_tags_pull(account=account, actor=Actor.command_line(command="bench"))
    tag = OfficialAccountTag.objects.filter(account=account).exclude(tag_id=2).order_by("pk")[0]
    return {"tag_id": tag.tag_id}


def child_phases(options: argparse.Namespace) -> dict[str, Any]:
    """The job's and its list's timestamps (epoch seconds); then the list is purged, outside any
    measured time, so that every round reads into a database of the same size."""
    import django

    django.setup()
    from datetime import timedelta

    from django.contrib.admin.models import LogEntry
    from django.utils import timezone

    from console.audit import Actor
    from console.models import Job
    from tagging.bulk.models import BulkAudience
    from tagging.bulk.retention import audience_purge_expired

    job = Job.objects.get(pk=options.job)
    progress = job.progress()
    audience = BulkAudience.objects.get(pk=job.params["audience_id"])
    # tag_users sends the first parts while it reads the rest: the job's History says when the
    # whole list was read.
    read = (
        LogEntry.objects.filter(object_id=str(job.pk), change_message__contains="List read")
        .values_list("action_time", flat=True)
        .first()
    )
    phases = {
        "status": job.status,
        "list_at": audience.created_at.timestamp(),
        "accepted": audience.accepted,
        "duplicates": audience.duplicates,
        "job_at": job.created_at.timestamp(),
        "read_at": read.timestamp() if read else job.created_at.timestamp(),
        "started_at": job.started_at.timestamp() if job.started_at else None,
        "finished_at": job.finished_at.timestamp() if job.finished_at else None,
        "done": progress.done,
        "failed": progress.failed,
    }
    BulkAudience.objects.filter(pk=audience.pk).update(
        created_at=timezone.now() - timedelta(days=3650)
    )
    purge_started = time.perf_counter()
    audience_purge_expired(actor=Actor.command_line(command="bench"))
    phases["purge"] = time.perf_counter() - purge_started
    return phases


# ---- running things -------------------------------------------------------------------------


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


class Database:
    """One database of the bench: its environment, its tag, its worker."""

    def __init__(self, kind: str, *, work: Path, wechat: str, options: argparse.Namespace) -> None:
        self.kind = kind
        self.work = work
        self.log = work / f"{kind}.log"
        run_id = secrets.token_hex(3)
        if kind == "sqlite":
            url, redis = f"sqlite:///{work / 'whole-path.sqlite3'}", ""
        else:
            from tests.harness import postgres_database

            url, redis = postgres_database(options.database, "whole_path"), options.redis
        self.url = url
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "CONSOLE_READ_DOTENV": "0",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "CREDENTIALS_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "DATABASE_URL": url,
            "REDIS_URL": redis,
            "CACHE_KEY_PREFIX": f"bench-{run_id}",
            "Q_CLUSTER_NAME": f"bench-{run_id}",
            "WECHAT_API_BASE": wechat,
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
        self.tag_id = run_child(["_prepare"], self.env, self.log)["tag_id"]

    def drop(self) -> None:
        if self.url.startswith("postgres"):
            from tests.harness import drop_postgres_database

            drop_postgres_database(self.url)

    @contextlib.contextmanager
    def cluster(self, workers: int) -> Iterator[int]:
        """``manage.py qcluster`` with ``workers`` workers, until every worker is ready."""
        log = self.work / f"{self.kind}-qcluster-{workers}-{time.time():.0f}.log"
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env={**self.env, "Q_WORKERS": str(workers)},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + CLUSTER_READY_SECONDS
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SystemExit(f"qcluster ended:\n{log.read_text()}")
                if _cluster_ready(log.read_text(errors="replace"), workers):
                    break
                time.sleep(0.2)
            else:
                raise SystemExit(f"qcluster not ready:\n{log.read_text()}")
            yield process.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def tag_users(self, path: Path, *, cluster: int) -> dict[str, Any]:
        # The peak RSS from GNU time, which starts tag_users itself: a child's own ru_maxrss would
        # include this process's (the parent's) memory, copied into it before its exec.
        peak_file = self.work / "tag_users.peak"
        args = [
            "/usr/bin/time",
            "--format=%M",
            f"--output={peak_file}",
            sys.executable,
            "manage.py",
            "tag_users",
            "--oa",
            ACCOUNT,
            "--tagid",
            str(self.tag_id),
            "--file",
            str(path),
            "--wait",
        ]
        cluster_cpu = tree_cpu(cluster)
        with self.log.open("a") as stderr:
            began = time.time()
            started = time.perf_counter()
            process = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
            lines: list[tuple[float, str]] = [
                (time.time(), line)
                for line in process.stdout  # type: ignore[union-attr]
            ]
            out = "".join(line for _at, line in lines)
            _pid, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            ended = time.time()
            process.returncode = os.waitstatus_to_exitcode(status)
        cluster_cpu = tree_cpu(cluster) - cluster_cpu
        if process.returncode:
            raise SystemExit(f"tag_users exited with {process.returncode}:\n{out}")
        job = int(re.search(r"(?:Job|作业)\s*(\d+)", out).group(1))  # type: ignore[union-attr]
        phases = run_child(["_phases", "--job", str(job)], self.env, self.log)
        seen = next((at for at, line in lines if "100%" in line), ended)
        if phases["status"] != "done" or phases["failed"]:
            raise SystemExit(f"job {job}: {phases}")
        return {
            "seconds": seconds,
            # tag_users, and the cluster's processes (supervisor, sentinel, workers, …)
            "cpu": usage.ru_utime + usage.ru_stime + cluster_cpu,
            "cluster_cpu": cluster_cpu,
            "peak_mb": int(peak_file.read_text().split()[-1]) / 1024,
            "startup": phases["list_at"] - began,
            # To the job, with its first part; the whole list, read while parts are sent.
            "read": phases["job_at"] - phases["list_at"],
            "read_all": phases["read_at"] - phases["list_at"],
            "queue": phases["started_at"] - phases["job_at"],
            "work": phases["finished_at"] - phases["started_at"],
            "wait_lag": ended - phases["finished_at"],
            # --wait's own bar at 100% (written and flushed when it saw the end): its lag
            # behind the job's end, and the process's exit after that.
            "seen": seen - phases["finished_at"],
            "exit": ended - seen,
            "purge": phases["purge"],
            "accepted": phases["accepted"],
        }


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and every process under it, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def _cluster_ready(text: str, workers: int) -> bool:
    """django-q2 logs a line per worker ready, then that the cluster runs (in English or, with
    the console's default language, in Chinese)."""
    ready = len(re.findall(r"ready for work|已准备好.*工作", text))
    return ready >= workers and bool(re.search(r"Q Cluster \S+ \[.*\] running|正在运行", text))


def reference(kind: str, path: Path, *, wechat: str, tag_id: int, batch: int, log: Path) -> dict:
    """One reference loop (bench/reference_loops.py) in a process of its own: ``process`` is
    its whole run, interpreter start and imports included, as ``tag_users`` is timed."""
    args = [sys.executable, str(ROOT / "bench" / "reference_loops.py"), kind, "--file", str(path)]
    args += ["--wechat", wechat, "--tag-id", str(tag_id), "--batch", str(batch)]
    with log.open("a") as stderr:
        started = time.perf_counter()
        done = subprocess.run(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, check=True
        )
        process = time.perf_counter() - started
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process"] = process
    return result


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.3f} / {statistics.median(ordered):.3f} / {ordered[-1]:.3f}"


def main_bench(options: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-whole-path-"))
    print(f"work directory: {work}", flush=True)
    # The project's bytecode compiled ahead, as `make run` does (the Makefile): with
    # PYTHONDONTWRITEBYTECODE set, each tag_users would compile it again at its start, while the
    # references import only installed packages, compiled at their install.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "console", "tagging", "chatbot", "wecom"],
        cwd=ROOT,
        check=True,
    )
    variants = ["wechatpy", "lean", *(f"ours{n}" for n in options.workers)]
    rows: list[dict[str, Any]] = []
    with sandbox_process(work) as (wechat, where):
        print(f"sandbox: {where}", flush=True)
        sandbox_pid = int(re.search(r"pid (\d+)", where).group(1))  # type: ignore[union-attr]
        databases = [
            Database(kind, work=work, wechat=wechat, options=options) for kind in options.databases
        ]
        try:
            for size in options.sizes:
                path = work / f"openids-{size}.csv"
                distinct = write_openids(path, size, duplicates=options.duplicates, seed=size)
                print(f"{size:,} lines, {distinct:,} distinct random OpenIDs: {path}", flush=True)
                # Every OpenID tagged once: each measured pass then finds the same state.
                reference(
                    "lean",
                    path,
                    wechat=wechat,
                    tag_id=databases[0].tag_id,
                    batch=options.batch,
                    log=work / "references.log",
                )
                for round_number in range(options.rounds):
                    for database in databases:
                        order = variants if round_number % 2 == 0 else variants[::-1]
                        row: dict[str, Any] = {
                            "size": size,
                            "database": database.kind,
                            "round": round_number + 1,
                            "order": order,
                        }
                        for variant in order:
                            if variant.startswith("ours"):
                                with database.cluster(int(variant[4:])) as cluster:
                                    before = tree_cpu(sandbox_pid)
                                    row[variant] = database.tag_users(path, cluster=cluster)
                            else:
                                before = tree_cpu(sandbox_pid)
                                row[variant] = reference(
                                    variant,
                                    path,
                                    wechat=wechat,
                                    tag_id=database.tag_id,
                                    batch=options.batch,
                                    log=work / "references.log",
                                )
                            row[variant]["sandbox_cpu"] = tree_cpu(sandbox_pid) - before
                            row.setdefault("load", []).append(round(os.getloadavg()[0], 2))
                        report(row, options.workers)
                        rows.append(row)
                        if options.json:
                            with Path(options.json).open("a") as out:
                                out.write(json.dumps(row) + "\n")
        finally:
            for database in databases:
                database.drop()
    summary(rows, options)


def ratios(row: dict[str, Any], workers: list[int]) -> dict[str, float]:
    out = {}
    for n in workers:
        ours = row[f"ours{n}"]["seconds"]
        # Process to process: each side from its start to its exit (interpreter and imports
        # included on both), what a user waits for. Rounds of older runs lack "process".
        if "process" in row["wechatpy"]:
            out[f"ours{n}/wechatpy"] = row["wechatpy"]["process"] / ours
            out[f"ours{n}/lean"] = row["lean"]["process"] / ours
        # Stricter: the references' loops alone (from opening the file), ours still whole.
        out[f"ours{n}/wechatpy loop"] = row["wechatpy"]["seconds"] / ours
    if 1 in workers and 2 in workers:
        out["two/one"] = row["ours1"]["seconds"] / row["ours2"]["seconds"]
    # CPU spent (ours: tag_users and the cluster), which a busy machine disturbs less than
    # time: above 1, ours spends less.
    for n in workers:
        if "cpu" in row[f"ours{n}"]:
            out[f"cpu ours{n}/wechatpy"] = row["wechatpy"]["cpu"] / row[f"ours{n}"]["cpu"]
    return out


def report(row: dict[str, Any], workers: list[int]) -> None:
    times = "  ".join(
        f"{variant} {row[variant]['seconds']:.2f} s"
        for variant in ("wechatpy", "lean", *(f"ours{n}" for n in workers))
    )
    shown = "  ".join(f"{name} {value:.3f}" for name, value in ratios(row, workers).items())
    print(
        f"{row['size']:>9,} {row['database']:8} round {row['round']}: {times}\n"
        f"    speed: {shown}   load {row['load']}",
        flush=True,
    )
    cpu = "  ".join(
        f"{variant} {row[variant]['cpu']:.2f} + {row[variant]['sandbox_cpu']:.2f}"
        for variant in ("wechatpy", "lean", *(f"ours{n}" for n in workers))
    )
    print(f"    CPU s (ours: tag_users and the cluster; + the sandbox): {cpu}", flush=True)
    for n in workers:
        ours = row[f"ours{n}"]
        print(
            f"    ours{n}: start-up {ours['startup']:.2f} s, first part {ours['read']:.2f} s "
            f"(whole list read {ours.get('read_all', ours['read']):.2f} s, while sending), "
            f"queue {ours['queue']:.2f} s, work {ours['work']:.2f} s, "
            f"wait lag {ours['wait_lag']:.2f} s (seen {ours['seen']:.2f} s, exit "
            f"{ours['exit']:.2f} s); tag_users peak {ours['peak_mb']:.0f} MB; "
            f"purge {ours['purge']:.2f} s",
            flush=True,
        )


def summary(rows: list[dict[str, Any]], options: argparse.Namespace) -> None:
    print("\nmin / median / max over rounds", flush=True)
    for size in options.sizes:
        for kind in options.databases:
            mine = [r for r in rows if r["size"] == size and r["database"] == kind]
            if not mine:
                continue
            print(f"{size:,} OpenIDs, {kind}, {len(mine)} rounds:")
            for variant in ("wechatpy", "lean", *(f"ours{n}" for n in options.workers)):
                if "process" in mine[0][variant]:
                    values = [r[variant]["process"] for r in mine]
                    print(f"  {variant:9} process {spread(values)} (interpreter and imports too)")
                print(f"  {variant:9} seconds {spread([r[variant]['seconds'] for r in mine])}")
                print(f"  {variant:9} CPU s   {spread([r[variant]['cpu'] for r in mine])}")
            for name in ratios(mine[0], options.workers):
                values = [ratios(r, options.workers)[name] for r in mine]
                print(f"  speed {name:15} {spread(values)}")
            for n in options.workers:
                phases = (
                    "startup",
                    "read",
                    "read_all",
                    "queue",
                    "work",
                    "wait_lag",
                    "seen",
                    "exit",
                    "purge",
                )
                for phase in phases:
                    # Rows of earlier versions have no read_all.
                    values = [r[f"ours{n}"][phase] for r in mine if phase in r[f"ours{n}"]]
                    if values:
                        print(f"  ours{n} {phase:9} {spread(values)} s")
            loads = [load for r in mine for load in r["load"]]
            print(f"  load average (1 min) {spread(loads)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    for name in ("_prepare", "_phases"):
        child = commands.add_parser(name)
        child.add_argument("--file")
        child.add_argument("--wechat")
        child.add_argument("--tag-id", type=int)
        child.add_argument("--batch", type=int, default=20)
        child.add_argument("--job", type=int)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--duplicates", type=float, default=0.03)
    parser.add_argument(
        "--databases", nargs="+", choices=("sqlite", "postgres"), default=["sqlite"]
    )
    parser.add_argument(
        "--database",
        default="postgres://postgres@127.0.0.1:5432/console",
        help="a PostgreSQL URL; NAME_whole_path is created beside it",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--json", default="", help="append each round as a JSON line here")
    parser.add_argument(
        "--summary", nargs="+", default=[], metavar="FILE", help="only summarise --json files"
    )
    options = parser.parse_args()
    if options.command:
        result = globals()["child" + options.command](options)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    if options.summary:
        rows = [
            json.loads(line)
            for name in options.summary
            for line in Path(name).read_text().splitlines()
            if line
        ]
        options.sizes = sorted({row["size"] for row in rows})
        options.databases = [
            d for d in ("sqlite", "postgres") if any(r["database"] == d for r in rows)
        ]
        summary(rows, options)
        return
    main_bench(options)


if __name__ == "__main__":
    main()
