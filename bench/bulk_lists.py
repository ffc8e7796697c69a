"""Reading a bulk list as the console does, and purging it, at 100,000 and 1,000,000 random
OpenIDs, on SQLite and PostgreSQL, against an in-process read and the database's floor.

Run from the project root:

    .venv/bin/python bench/bulk_lists.py [--sizes 100000 1000000] [--rounds 3]
    .venv/bin/python bench/bulk_lists.py --database postgres://postgres@127.0.0.1:5432/NAME

``--database`` creates ``NAME_bench_lists`` beside NAME (dropped at the end); without it, a
temporary SQLite file. Each measurement runs in a fresh process of its own (peak RSS is per
process); variants are interleaved, their order reversed every other round.

ours     upload: a multipart POST of the CSV file to the admin's "new bulk job" page (the view,
         its streaming upload handlers, CSRF, session, the form, the file kept in the database
         in parts), streamed from disk as a browser sends it, until the 302 to the page that
         follows the read; read: the ``tagging.bulk.read`` job's shard run as a worker's task
         runs it (``job_run_shards``), from the parts in the database to the audience ready;
         then the daily purge deleting that list.
inproc   the same file read in process by the same reader (``audience_from_file``): no parts,
         no checkpoints, one transaction. (``tag_users --file`` reads with that reader too, part
         by part while the job sends: bench/bulk_whole_path.py measures it.)
floor    what the database takes at best: the file's lines into a bare temporary table, COPY
         streaming the file on PostgreSQL, executemany on SQLite; no parsing, no checks.

The file: a header, then N random OpenIDs (1% of them appearing twice), CRLF, as Excel saves it.
Printed per figure: min / median / max over the rounds, and per round ours / inproc and
ours / floor; wall time and CPU time (the bench's process and, on PostgreSQL, its server
process: less sensitive than wall time to what else the machine runs). Goals (issue 18): no web
request over ~20 s at 1,000,000 lines; reading 1,000,000 lines <= 10 s on PostgreSQL, <= 15 s on
SQLite; peak memory 1,000,000 / 100,000 <= 1.2; purge 1,000,000 / 100,000 <= 12.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

USERNAME = "bench"
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway database's user
BOUNDARY = "----benchbulklists7MA4YWxkTrZu0gW"
_ALPHABET = string.ascii_letters + string.digits + "-_"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CpuClock:
    """CPU seconds of this process and of its PostgreSQL server process (same machine): on a
    busy machine the wall time says how many others ran too, the CPU time less so."""

    def __init__(self) -> None:
        from django.db import connection

        self.backend = 0
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.backend = cursor.fetchone()[0]
        self.started = self._now()

    def _now(self) -> float:
        seconds = time.process_time()
        if self.backend:
            stat = Path(f"/proc/{self.backend}/stat").read_text().rsplit(")", 1)[1].split()
            seconds += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        return seconds

    def seconds(self) -> float:
        return self._now() - self.started


# ---- children --------------------------------------------------------------------------------


def _django() -> None:
    import django

    django.setup()


def child_prepare(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from tagging.official_account.models import OfficialAccountTag
    from wecom.models import OfficialAccount

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    get_user_model().objects.create_superuser(USERNAME, "bench@example.com", PASSWORD)
    account = OfficialAccount.objects.create(
        name="bench", appid="wx0118deba10ef81d4", secret="x" * 32
    )
    tag = OfficialAccountTag.objects.create(account=account, tag_id=100, name="bench")
    return {"tag": tag.pk}


class _MultipartBody:
    """The body a browser sends for the form: fields, then the file streamed from disk."""

    def __init__(self, fields: dict[str, str], path: Path) -> None:
        head = "".join(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        )
        head += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: text/csv\r\n\r\n'
        )
        self.parts: list[Any] = [head.encode(), path.open("rb"), f"\r\n--{BOUNDARY}--\r\n".encode()]
        self.length = len(self.parts[0]) + path.stat().st_size + len(self.parts[2])

    def _chunks(self) -> Iterator[bytes]:
        yield self.parts[0]
        while chunk := self.parts[1].read(64 * 1024):
            yield chunk
        yield self.parts[2]

    def read(self, size: int = -1) -> bytes:
        if not hasattr(self, "_iterator"):
            self._iterator = self._chunks()
            self._pending = b""
        while size < 0 or len(self._pending) < size:
            chunk = next(self._iterator, None)
            if chunk is None:
                break
            self._pending += chunk
        if size < 0:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def readline(self, size: int = -1) -> bytes:  # the WSGI spec's; the parser does not use it
        return self.read(size)


def _upload(path: Path, tag: int) -> tuple[int, float]:
    """POST the file to the admin's add page as a logged-in browser; (audience id, seconds)."""
    from django.test import Client
    from django.urls import reverse

    client = Client(HTTP_HOST="localhost")
    assert client.login(username=USERNAME, password=PASSWORD)
    body = _MultipartBody(
        {"target_kind": "oa", "oa_tag": str(tag), "operation": "tag", "source": "file"}, path
    )
    environ = client._base_environ(
        PATH_INFO=reverse("admin:tagging_bulkaudience_add"),
        HTTP_HOST="localhost",
        REQUEST_METHOD="POST",
        CONTENT_TYPE=f"multipart/form-data; boundary={BOUNDARY}",
        CONTENT_LENGTH=str(body.length),
        **{"wsgi.input": body},
    )
    started = time.perf_counter()
    response = client.handler(environ)
    seconds = time.perf_counter() - started
    if response.status_code != 302:
        raise SystemExit(f"upload answered {response.status_code}: {response.content[:2000]!r}")
    # /admin/tagging/bulkaudience/<id>/start/?<the target>
    return int(urlparse(response["Location"]).path.rstrip("/").split("/")[-2]), seconds


def child_read(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from console.jobs.services import job_run_shards
    from tagging.bulk.models import AudienceStatus, BulkAudience, BulkAudienceMember
    from tagging.bulk.reading import audience_read_job

    before = peak_mb()
    clock = CpuClock()
    audience_id, upload_seconds = _upload(Path(options.file), options.tag)
    upload_cpu = clock.seconds()
    if BulkAudienceMember.objects.filter(audience_id=audience_id).exists():
        raise SystemExit("the upload request read the list")
    audience = BulkAudience.objects.get(pk=audience_id)
    shard = audience_read_job(audience).shards.get()
    clock = CpuClock()
    started = time.perf_counter()
    outcomes = job_run_shards(shard_id=shard.pk)
    seconds = time.perf_counter() - started
    cpu = clock.seconds()
    audience.refresh_from_db()
    if audience.status != AudienceStatus.READY or len(outcomes) != 1:
        raise SystemExit(f"the read did not finish in one slice: {audience.status} {outcomes}")
    return {
        "upload": upload_seconds,
        "upload cpu": upload_cpu,
        "cpu": cpu,
        "audience": audience_id,
        "accepted": audience.accepted,
        "duplicates": audience.duplicates,
        "seconds": seconds,
        "baseline_mb": before,
        "peak_mb": peak_mb(),
    }


def child_inproc(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from django.contrib.auth import get_user_model

    from tagging.bulk.audience import audience_from_file

    user = get_user_model().objects.get(username=USERNAME)
    path = Path(options.file)
    before = peak_mb()
    clock = CpuClock()
    started = time.perf_counter()
    with path.open("rb") as stream:
        audience = audience_from_file(
            stream=stream, name=path.name, size=path.stat().st_size, user=user
        )
    seconds = time.perf_counter() - started
    return {
        "cpu": clock.seconds(),
        "audience": audience.pk,
        "accepted": audience.accepted,
        "duplicates": audience.duplicates,
        "seconds": seconds,
        "baseline_mb": before,
        "peak_mb": peak_mb(),
    }


def child_floor(options: argparse.Namespace) -> dict[str, Any]:
    _django()
    from django.db import connection, transaction

    before = peak_mb()
    clock = CpuClock()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bench_floor (openid text)")
        with Path(options.file).open("rb") as stream:
            stream.readline()  # the header
            if connection.vendor == "postgresql":
                with cursor.cursor.copy("COPY bench_floor (openid) FROM STDIN") as copy:
                    while chunk := stream.read(64 * 1024):
                        copy.write(chunk.replace(b"\r", b""))
            else:
                while lines := stream.readlines(256 * 1024):
                    cursor.executemany(
                        "INSERT INTO bench_floor (openid) VALUES (%s)",
                        [(line.rstrip(b"\r\n").decode(),) for line in lines],
                    )
        cursor.execute("DROP TABLE bench_floor")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu": clock.seconds(), "baseline_mb": before, "peak_mb": peak_mb()}


def child_purge(options: argparse.Namespace) -> dict[str, Any]:
    """Delete the list as the daily schedule does once it is old: chunks, History."""
    _django()
    from datetime import timedelta

    from django.utils import timezone

    from console.audit import Actor
    from tagging.bulk import retention as bulk_retention
    from tagging.bulk.models import BulkAudience

    BulkAudience.objects.filter(pk=options.audience).update(
        created_at=timezone.now() - timedelta(days=365)
    )
    before = peak_mb()
    clock = CpuClock()
    started = time.perf_counter()
    report = bulk_retention.audience_purge_expired(actor=Actor.command_line(command="bench"))
    seconds = time.perf_counter() - started
    cpu = clock.seconds()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "members": report.members,
        "baseline_mb": before,
        "peak_mb": peak_mb(),
    }


# ---- parent ---------------------------------------------------------------------------------


def write_csv(path: Path, count: int, seed: int) -> None:
    """A header, ``count`` random OpenIDs, one in a hundred of them read a second time."""
    rng = random.Random(seed)
    recent: list[str] = []
    with path.open("w", newline="") as out:
        out.write("openid\r\n")
        for number in range(count):
            if number % 100 == 99:
                value = rng.choice(recent)
            else:
                value = "o" + "".join(rng.choices(_ALPHABET, k=27))
                recent = [*recent[-999:], value]
            out.write(value + "\r\n")


def run_child(args: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    with log.open("a") as stderr:
        done = subprocess.run(
            [sys.executable, __file__, *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            check=False,
        )
    if done.returncode:
        raise SystemExit(f"{args[0]} failed ({done.returncode}); see {log}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _database(options: argparse.Namespace, work: Path) -> tuple[str, str]:
    """(label, DATABASE_URL) of a fresh database for the run."""
    if not options.database:
        return "SQLite", f"sqlite:///{work / 'lists.sqlite3'}"
    from tests.harness import postgres_database

    return "PostgreSQL", postgres_database(options.database, "bench_lists")


def _spread(values: list[float], unit: str, digits: int = 2) -> str:
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low:.{digits}f} / {middle:.{digits}f} / {high:.{digits}f} {unit}"


def main_run(options: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-lists-"))
    label, database_url = _database(options, work)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": "",
        "PYTHONPATH": str(ROOT),
    }
    log = work / "bench.log"
    print(f"{label}, work in {work}, load average {os.getloadavg()[0]:.2f}", flush=True)
    tag = run_child(["_prepare"], env, log)["tag"]
    files = {}
    for size in options.sizes:
        files[size] = work / f"list-{size}.csv"
        write_csv(files[size], size, seed=size)
    results: dict[tuple[str, int, str], list[float]] = {}

    def note(variant: str, size: int, figure: str, value: float) -> None:
        results.setdefault((variant, size, figure), []).append(value)

    for round_number in range(options.rounds):
        order = list(options.variants)
        if round_number % 2:
            order.reverse()
        for size in options.sizes:
            for variant in order:
                file = str(files[size])
                if variant == "floor":
                    read = run_child(["_floor", "--file", file], env, log)
                    note(variant, size, "read", read["seconds"])
                    note(variant, size, "read cpu", read["cpu"])
                    note(variant, size, "peak", read["peak_mb"])
                    print(
                        f"round {round_number + 1} {size:>9,} {variant:6} read "
                        f"{read['seconds']:6.2f} s (CPU {read['cpu']:6.2f} s)  "
                        f"peak {read['peak_mb']:6.1f} MB",
                        flush=True,
                    )
                    continue
                args = ["--variant", variant, "--file", file, "--tag", str(tag)]
                read = run_child(["_read" if variant == "ours" else "_inproc", *args], env, log)
                purge = run_child(
                    ["_purge", "--variant", variant, "--audience", str(read["audience"])],
                    env,
                    log,
                )
                if purge["members"] != read["accepted"]:
                    raise SystemExit(f"purge deleted {purge['members']} of {read['accepted']}")
                upload = ""
                if "upload" in read:
                    note(variant, size, "upload", read["upload"])
                    note(variant, size, "upload cpu", read["upload cpu"])
                    upload = f"upload {read['upload']:6.2f} s (CPU {read['upload cpu']:5.2f} s)  "
                note(variant, size, "read", read["seconds"])
                note(variant, size, "read cpu", read["cpu"])
                note(variant, size, "peak", read["peak_mb"])
                note(variant, size, "purge", purge["seconds"])
                note(variant, size, "purge cpu", purge["cpu"])
                print(
                    f"round {round_number + 1} {size:>9,} {variant:6} {upload}read "
                    f"{read['seconds']:6.2f} s (CPU {read['cpu']:6.2f} s)  "
                    f"peak {read['peak_mb']:6.1f} MB  "
                    f"({read['accepted']:,} kept, {read['duplicates']:,} duplicates)  "
                    f"purge {purge['seconds']:6.2f} s (CPU {purge['cpu']:5.2f} s)  "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            for figure in ("read", "read cpu"):
                ours = results.get(("ours", size, figure), [])
                for other in ("inproc", "floor"):
                    theirs = results.get((other, size, figure), [])
                    if ours and len(theirs) == len(ours):
                        ratio = ours[-1] / theirs[-1]
                        print(f"    {figure}: ours / {other} = {ratio:.3f}", flush=True)

    print(f"\n{label}: min / median / max over {options.rounds} round(s)")
    for (variant, size, figure), values in sorted(results.items()):
        unit = "MB" if figure == "peak" else "s"
        print(f"  {variant:6} {size:>9,} {figure:9} {_spread(values, unit)}")
    small, large = min(options.sizes), max(options.sizes)
    for variant in options.variants:
        for figure, goal in (
            ("peak", 1.2),
            ("purge", 12.0),
            ("purge cpu", 12.0),
            ("upload", None),
            ("read", None),
            ("read cpu", None),
        ):
            low = results.get((variant, small, figure))
            high = results.get((variant, large, figure))
            if not low or not high:
                continue
            ratios = [h / lo for h, lo in zip(high, low, strict=True)]
            verdict = "" if goal is None else f"  (goal <= {goal})"
            print(
                f"  {variant:6} {figure:5} {large:,} / {small:,}: {_spread(ratios, '', 3)}{verdict}"
            )
    if options.database:
        from tests.harness import drop_postgres_database

        drop_postgres_database(database_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", default="run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["ours", "floor", "inproc"],
        choices=["ours", "floor", "inproc"],
    )
    parser.add_argument("--database", default="", help="postgres://… (default: SQLite)")
    parser.add_argument("--variant", default="ours")
    parser.add_argument("--file")
    parser.add_argument("--tag", type=int)
    parser.add_argument("--audience", type=int)
    options = parser.parse_args()
    if options.command.startswith("_"):
        result = globals()["child" + options.command](options)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    main_run(options)


if __name__ == "__main__":
    main()
