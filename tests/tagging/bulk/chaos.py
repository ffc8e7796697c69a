"""A tagging job under chaos: worker processes killed, platform errors, tokens revoked, drops.

Two job kinds share it (``--kind``): ``bulk`` (Official Account OpenIDs, ``batchtagging``, the
default) and ``customers`` (WeCom (member, customer) pairs, one ``mark_tag`` each). Run as a
module (tests/tagging/bulk/test_bulk_chaos.py and tests/tagging/customers/test_customers_chaos.py
do; ``bench/bulk_jobs.py chaos [--kind customers]`` at full size):

    python -m tests.tagging.bulk.chaos --openids 6000 --bad 12 --workers 2
    python -m tests.tagging.bulk.chaos --kind customers --pairs 20000 --bad 12 --members 5

It sets up a database of its own (a temporary SQLite file, or ``<name>_chaos`` next to the
PostgreSQL database of DATABASE_URL), migrates it, starts the sandbox in this process with 10%
errcode -1 and 2% dropped connections on the kind's endpoint, starts ``manage.py qcluster``
worker processes (django-q2 on the database broker, or Redis with REDIS_URL), starts one job,
and then, until the job ends: kills a random worker's whole process group with SIGKILL at
random moments and as the job passes 1/4 and 1/2 of its items, and starts it again, revokes
every token now and then, and runs the job watchdog as its schedule would (more often). The
sandbox notes every item (OpenID, or pair) in flight: a call sent while an item of it is still
being handled for another call counts as an overlap.

The ``bad`` items are ones the platform refuses for good: OpenIDs of another account, or pairs
whose customer is not that member's (84061); each must end as a failed item with its sentence.

It prints one JSON object with what happened: counts, kills, overlaps, calls, seconds.

bench/job_faults.py runs a bulk job through other faults with the same pieces (``InFlight``,
``watched_sandbox``, ``bulk_run_start``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.harness import ROOT, django_setup, run_database, run_database_drop

if TYPE_CHECKING:
    from console.models import Job
    from wecom.sandbox import SandboxServer

PREFIX = "oW3Kq_"
# The corp's members the customers run adds (userid prefix), and its customers' numbers (far
# from the demo's own customers, demo_external_userid(0..)).
MEMBER_PREFIX = "chaos_"
CUSTOMER_BASE = 1_000_000


@dataclass(frozen=True)
class Watch:
    """A sandbox platform method whose calls the recorder notes: ``keys`` names the items one
    call handles (from the method's arguments)."""

    module: str
    cls: str
    method: str
    keys: Callable[..., list[str]]

    def target(self) -> type:
        import importlib

        return getattr(importlib.import_module(self.module), self.cls)


def _openids(appid: str, body: dict, **_: Any) -> list[str]:
    return [o for o in body.get("openid_list") or [] if isinstance(o, str)]


def _pair(corp_id: str, body: dict, **_: Any) -> list[str]:
    return [f"{body.get('userid')}/{body.get('external_userid')}"]


BATCH_TAGGING = Watch(
    "wecom.sandbox.official_account", "OfficialAccountPlatform", "batch_tagging", _openids
)
MARK_TAG = Watch("wecom.sandbox.customers", "CustomersPlatform", "mark_tag", _pair)


class InFlight:
    """Which items (OpenIDs, or (member, customer) pairs) the sandbox is handling right now;
    overlaps between calls.

    Each overlap notes how long the earlier call of its item had been in the sandbox. One
    older than the client's read timeout (``PLATFORM_READ_TIMEOUT``) is a call the console had
    given up on when it sent the item again (its one worker retrying after the timeout, the
    platform still busy with the first): counted apart, as ``overlaps_after_timeout``. The age
    is taken from the sandbox's side, which starts after the client's, so the split errs
    towards ``overlaps_while_open``: two calls of one item the console was waiting for at once.
    """

    def __init__(self, latency: float, watch: Watch = BATCH_TAGGING) -> None:
        self.latency = latency
        self.watch = watch
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        # Per item in flight: when each of its calls reached the platform (monotonic seconds).
        self.since: dict[str, list[float]] = {}
        # One entry per call that found an item of it in flight already (three of its items).
        self.overlaps: list[list[str]] = []
        # The same calls: the youngest earlier call's age, and whether the client had given up.
        self.ages: list[float] = []
        self.after_timeout = 0
        # Per item: how many times it was sent while in flight already.
        self.per_item: Counter[str] = Counter()

    def install(self) -> None:
        target = self.watch.target()
        original = getattr(target, self.watch.method)
        recorder = self

        def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
            items = recorder.watch.keys(*args, **kwargs)
            started = time.monotonic()
            with recorder.lock:
                clash = [item for item in items if recorder.now[item]]
                if clash:
                    recorder.note_overlap(clash, started)
                recorder.now.update(items)
                for item in items:
                    recorder.since.setdefault(item, []).append(started)
            try:
                time.sleep(recorder.latency)  # a platform takes its time: widens the window
                return original(self, *args, **kwargs)
            finally:
                with recorder.lock:
                    recorder.now.subtract(items)
                    for item in items:
                        starts = recorder.since[item]
                        starts.remove(started)
                        if not starts:
                            del recorder.since[item]

        setattr(target, self.watch.method, recording)
        self._original = original

    def note_overlap(self, clash: list[str], started: float) -> None:
        """(Under the lock.) A call whose ``clash`` items are in flight already."""
        from django.conf import settings

        age = min(started - max(self.since[item]) for item in clash)
        self.overlaps.append(clash[:3])
        self.ages.append(round(age, 3))
        self.per_item.update(clash)
        if age > settings.PLATFORM_READ_TIMEOUT:
            self.after_timeout += 1

    def uninstall(self) -> None:
        setattr(self.watch.target(), self.watch.method, self._original)

    def report(self) -> dict[str, Any]:
        return {
            "overlaps": len(self.overlaps),
            "overlaps_while_open": len(self.overlaps) - self.after_timeout,
            "overlaps_after_timeout": self.after_timeout,
            "overlapping_items": len(self.per_item),
            "overlaps_per_item_max": max(self.per_item.values(), default=0),
            "overlap_examples": [
                {"items": items, "earlier_call_age_s": age}
                for items, age in zip(self.overlaps[:3], self.ages[:3], strict=True)
            ],
        }


def watched_sandbox(
    *, latency_ms: float, seed: int | None, watch: Watch = BATCH_TAGGING
) -> tuple[SandboxServer, InFlight]:
    """The demo platforms in this process, answering each watched call after ``latency_ms``
    and noting the items in flight."""
    from wecom.sandbox import SandboxServer, SandboxState, seed_demo

    in_flight = InFlight(latency_ms / 1000, watch)
    in_flight.install()
    state = SandboxState(seed=seed)
    seed_demo(state)
    return SandboxServer(state=state, seed=seed).start(), in_flight


def job_tally(job: Job, *, valid: int, bad: list[str]) -> dict[str, Any]:
    """How ``job`` ended by its own counts and failed items, ``bad`` being the items the
    platform refuses for good: the part of the report both kinds share."""
    from django.db import connection

    from console.models import JobItemFailure

    job.refresh_from_db()
    progress = job.progress()
    failures = list(
        JobItemFailure.objects.filter(job=job).values_list("item", "reason_code", "reason")
    )
    items = [item for item, _code, _reason in failures]
    return {
        "database": connection.vendor,
        "broker": "redis" if os.environ.get("REDIS_URL") else "orm",
        "status": str(job.status),
        "status_message": job.status_message,
        "total": progress.total,
        "done": progress.done,
        "failed": progress.failed,
        "valid": valid,
        "bad": len(bad),
        "failure_items": len(items),
        "failure_items_unique": len(set(items)),
        "failures_are_the_bad_ones": sorted(items) == sorted(bad),
        "failure_codes": dict(Counter(code for _item, code, _reason in failures)),
        "failure_reasons": dict(Counter(reason for _item, _code, reason in failures)),
    }


def mixed(rng: random.Random) -> Callable[[list[str], list[str]], list[str]]:
    """Places the bad items at random among the valid ones, the first bad one first."""

    def mix(valid: list[str], bad: list[str]) -> list[str]:
        items = list(valid)
        for number, item in enumerate(bad):
            items.insert(rng.randrange(len(items) + 1) if number else 0, item)
        return items

    return mix


@dataclass
class BulkRun:
    """A bulk job tagging ``valid`` OpenIDs of the demo account and ``bad`` ones of another
    (each refused by the platform) with a tag made for the run."""

    job: Job
    tag_id: int
    valid: list[str]
    bad: list[str]

    def tally(self, sandbox: SandboxServer) -> dict[str, Any]:
        """How the job ended, against what the platform holds."""
        from wecom.sandbox import DEMO

        fans = sandbox.state.official_account.tag_fans(DEMO.oa_appid, self.tag_id)
        return {
            **job_tally(self.job, valid=len(self.valid), bad=self.bad),
            "valid_missing_in_sandbox": len(set(self.valid) - fans),
            "bad_in_sandbox": len(set(self.bad) & fans),
        }


def demo_tag_pulled(state: Any, *, name: str, tag_name: str, rate_limit: int) -> tuple[Any, Any]:
    """The sandbox's demo Official Account as the credential ``name``, and a new tag of it,
    ``tag_name``, made on the platform and pulled in: (the tag, the command-line actor)."""
    from console.audit import Actor
    from tagging.official_account.models import OfficialAccountTag
    from tagging.official_account.services import oa_tags_pull
    from wecom.models import OfficialAccount
    from wecom.sandbox import DEMO

    actor = Actor.command_line(command=name)
    account = OfficialAccount.objects.create(
        name=name, appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=rate_limit
    )
    account = OfficialAccount.objects.get(pk=account.pk)
    tag_id = state.official_account.add_tag(DEMO.oa_appid, tag_name)
    oa_tags_pull(account=account, actor=actor)
    return OfficialAccountTag.objects.get(account=account, tag_id=tag_id), actor


def bulk_run_start(
    sandbox: SandboxServer,
    *,
    name: str,
    tag_name: str,
    valid: int,
    bad: int,
    mix: Callable[[list[str], list[str]], list[str]],
    batch_size: int | None = None,
) -> BulkRun:
    """Register the demo account, make the tag ``tag_name`` on the platform and pull it, and
    start tagging ``valid`` OpenIDs and ``bad`` ones, ``mix`` placing the bad among the valid.
    The platform's call counters start from zero here."""
    from django.db import connection, transaction

    from tagging.bulk.audience import audience_from_openids
    from tagging.bulk.services import bulk_job_start
    from wecom.sandbox.demo import demo_openid

    tag, actor = demo_tag_pulled(sandbox.state, name=name, tag_name=tag_name, rate_limit=10_000)
    valid_openids = [demo_openid(PREFIX, n) for n in range(100_000, 100_000 + valid)]
    bad_openids = [demo_openid("oZZZZZ", n) for n in range(bad)]
    openids = mix(valid_openids, bad_openids)
    with transaction.atomic():
        audience = audience_from_openids(openids=openids, label=name, user=actor.user)
        job = bulk_job_start(audience=audience, target=tag, batch_size=batch_size, actor=actor)
    connection.close()
    sandbox.reset_stats()
    return BulkRun(job=job, tag_id=tag.tag_id, valid=valid_openids, bad=bad_openids)


@dataclass
class CustomersRun:
    """A WeCom customer-tagging job putting a corporate tag made for the run on ``valid``
    (member, customer) pairs and on ``bad`` ones WeCom refuses for good (the customer is not
    that member's: 84061). Items are "userid/external_userid"."""

    job: Job
    tag_id: str
    valid: list[str]
    bad: list[str]

    def tally(self, sandbox: SandboxServer) -> dict[str, Any]:
        """How the job ended, against the tags each pair holds on the platform."""
        from tagging.customers.audience import pair_from_item
        from wecom.sandbox import DEMO

        customers = sandbox.state.customers

        def held(item: str) -> int:
            userid, external_userid = pair_from_item(item)
            return customers.tags_of(DEMO.wecom_corp_id, userid, external_userid).count(self.tag_id)

        valid_held = Counter(held(item) for item in self.valid)
        return {
            **job_tally(self.job, valid=len(self.valid), bad=self.bad),
            "members": len({pair_from_item(item)[0] for item in self.valid}),
            "customers": len({pair_from_item(item)[1] for item in self.valid}),
            "valid_missing_in_sandbox": valid_held[0],
            "valid_tagged_once": valid_held[1],
            "bad_in_sandbox": sum(held(item) for item in self.bad),
        }


def customers_run_start(
    sandbox: SandboxServer,
    *,
    name: str,
    tag_name: str,
    valid: int,
    bad: int,
    members: int,
    mix: Callable[[list[str], list[str]], list[str]],
) -> CustomersRun:
    """Add ``members`` members to the demo corp and customers over them until there are
    ``valid`` pairs (one customer in five followed by two members: a customer is tagged per
    member), make a corporate tag ``tag_name``, register the demo WeCom app, and start tagging
    the valid pairs and ``bad`` ones (a customer with a member that does not follow it), ``mix``
    placing the bad among the valid. The platform's call counters start from zero here."""
    from django.db import connection

    from console.audit import Actor
    from tagging.customers.audience import customer_audience_from_pairs, pair_item
    from tagging.customers.models import CustomerAudienceSource
    from tagging.customers.services import customers_job_start
    from wecom.models import WeComApp
    from wecom.sandbox import DEMO
    from wecom.sandbox.demo import demo_external_userid

    if members < 3:
        raise ValueError("a customers run needs three members at least (bad pairs need a third)")
    corp = DEMO.wecom_corp_id
    platform = sandbox.state.customers
    userids = [f"{MEMBER_PREFIX}{n}" for n in range(members)]
    for userid in userids:
        platform.add_member(corp, userid, name=userid)
    valid_pairs: list[str] = []
    bad_pairs: list[str] = []
    number = 0
    while len(valid_pairs) < valid:
        first = userids[number % members]
        followers = [first]
        if number % 5 == 0 and len(valid_pairs) + 1 < valid:
            followers.append(userids[(number + 1) % members])
        ext = platform.add_customer(
            corp, demo_external_userid(CUSTOMER_BASE + number), followers=followers
        )
        valid_pairs.extend(pair_item(userid, ext) for userid in followers)
        if len(bad_pairs) < bad and len(followers) == 1:
            # Two members on: never a follower of this customer.
            bad_pairs.append(pair_item(userids[(number + 2) % members], ext))
        number += 1
    if len(bad_pairs) < bad:
        raise ValueError(f"{valid} pairs leave room for {len(bad_pairs)} refused ones, not {bad}")
    answer = sandbox.state.wecom.add_corp_tag(
        corp, {"group_name": name, "tag": [{"name": tag_name}]}
    )
    tag_id = answer["tag_group"]["tag"][0]["id"]

    actor = Actor.command_line(command=name)
    app = WeComApp.objects.create(
        name=name,
        corp_id=corp,
        secret=DEMO.wecom_secret,
        agent_id=DEMO.wecom_agent_id,
        rate_limit=10_000,
    )
    audience = customer_audience_from_pairs(
        app=app,
        items=mix(valid_pairs, bad_pairs),
        label=name,
        user=actor.user,
        source=CustomerAudienceSource.FILE,
    )
    job = customers_job_start(audience=audience, add=[tag_id], actor=actor)
    connection.close()
    sandbox.reset_stats()
    return CustomersRun(job=job, tag_id=tag_id, valid=valid_pairs, bad=bad_pairs)


@dataclass(frozen=True)
class Kind:
    """What differs between the job kinds under chaos: the endpoint faults go on, what the
    recorder watches, how the run starts, the platform's latency per call (a bulk call carries
    50 OpenIDs, a customers call one pair), how often a worker is killed (a customers job
    makes 50 times the calls, and a worker killed every second or two would spend the run
    starting; the kill lines below guarantee two kills at any size), the items per shard and
    how long the run may take. A killed worker's shard waits out its lease (8 s) before
    another worker takes it: shards of 100 pairs let the other worker go on meanwhile, where
    one of 400 would hold the run up (``CHAOS_SHARD_SIZE`` in the environment wins)."""

    platform: str
    endpoint: str
    watch: Watch
    latency_ms: float
    kill_every: tuple[float, float]
    shard_size: int
    timeout: float


KINDS = {
    "bulk": Kind(
        "wechat", "/cgi-bin/tags/members/batchtagging", BATCH_TAGGING, 25.0, (0.8, 2.5), 400, 240
    ),
    "customers": Kind(
        "wecom", "/cgi-bin/externalcontact/mark_tag", MARK_TAG, 2.0, (2.5, 7.0), 100, 900
    ),
}
# Besides the random moments, a worker is killed as the job passes each of these shares of its
# items: two kills at least, whatever the size and the machine's speed.
KILL_LINES = (0.25, 0.5)


class Workers:
    def __init__(self, count: int, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen | None] = [None] * count
        self.kills = 0
        self.starts = 0

    def start(self, index: int) -> None:
        log = (self.log_dir / f"worker-{index}-{self.starts}.log").open("w")
        self.starts += 1
        self.processes[index] = subprocess.Popen(
            # django-q2's cluster alone: a worker is killed every second or two here, and the
            # supervisor's own start (console/jobs/supervisor.py, tested in test_worker_liveness
            # and bench/job_faults.py) would double the time each new worker needs to begin.
            [sys.executable, "manage.py", "qcluster", "--unsupervised"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes its workers too
        )

    def start_all(self) -> None:
        for index in range(len(self.processes)):
            self.start(index)

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.kills += 1

    def stop_all(self) -> None:
        for index, process in enumerate(self.processes):
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            self.processes[index] = None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=sorted(KINDS), default="bulk")
    parser.add_argument(
        "--openids", "--pairs", dest="items", type=int, default=6000, help="valid items"
    )
    parser.add_argument(
        "--bad",
        type=int,
        default=12,
        help="items refused for good (another account's, not that member's customer)",
    )
    parser.add_argument("--members", type=int, default=5, help="customers: members they follow")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--kill-every", type=float, nargs=2, default=None, help="seconds; the kind's by default"
    )
    parser.add_argument("--latency-ms", type=float, default=None, help="the kind's by default")
    parser.add_argument("--timeout", type=float, default=None, help="the kind's by default")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    kind = KINDS[args.kind]
    latency_ms = kind.latency_ms if args.latency_ms is None else args.latency_ms
    kill_every = kind.kill_every if args.kill_every is None else tuple(args.kill_every)
    timeout = kind.timeout if args.timeout is None else args.timeout

    work = Path(tempfile.mkdtemp(prefix=f"{args.kind}-chaos-"))
    run_id = secrets.token_hex(4)
    database_url = run_database(work, "chaos")
    sandbox, in_flight = watched_sandbox(latency_ms=latency_ms, seed=args.seed, watch=kind.watch)

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.tagging.bulk.chaos_settings",
        "DATABASE_URL": database_url,
        "CHAOS_API_BASE": sandbox.url,
        "Q_CLUSTER_NAME": f"chaos-{run_id}",
        "CACHE_KEY_PREFIX": f"chaos-{run_id}",
        "CHAOS_SHARD_SIZE": os.environ.get("CHAOS_SHARD_SIZE", str(kind.shard_size)),
        "PYTHONPATH": str(ROOT),
    }
    django_setup(env)
    from console.jobs.services import jobs_watchdog
    from console.models import Job, JobStatus
    from wecom.sandbox.faults import FaultRule

    run: BulkRun | CustomersRun
    if args.kind == "customers":
        run = customers_run_start(
            sandbox,
            name="chaos",
            tag_name="混沌测试",
            valid=args.items,
            bad=args.bad,
            members=args.members,
            mix=mixed(rng),
        )
    else:
        run = bulk_run_start(
            sandbox,
            name="chaos",
            tag_name="混沌测试",
            valid=args.items,
            bad=args.bad,
            mix=mixed(rng),
        )
    job = run.job
    where = {"platform": kind.platform, "endpoint": kind.endpoint}
    sandbox.faults.add(FaultRule(**where, errcode=-1, rate=0.1))
    sandbox.faults.add(FaultRule(**where, drop=True, rate=0.02))
    # Two drops for certain, whatever the draws: a short run still meets a lost connection.
    sandbox.faults.add(FaultRule(**where, drop=True, times=2))

    workers = Workers(args.workers, env, work)
    started = time.monotonic()
    workers.start_all()
    next_kill = started + rng.uniform(*kill_every)
    next_revoke = started + 1.5
    next_watchdog = started + 1.0
    invalidations = 0
    kill_lines = [round(share * job.total) for share in KILL_LINES]
    status = ""
    try:
        while time.monotonic() - started < timeout:
            now = time.monotonic()
            status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()
            if status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                break
            crossed = False
            if kill_lines:
                progress = job.progress()
                done = progress.done + progress.failed
                while kill_lines and done >= kill_lines[0]:
                    kill_lines.pop(0)
                    crossed = True
            if now >= next_kill or crossed:
                index = rng.randrange(args.workers)
                workers.kill(index)
                workers.start(index)
                next_kill = now + rng.uniform(*kill_every)
            if now >= next_revoke:
                sandbox.invalidate_tokens(kind.platform)
                invalidations += 1
                next_revoke = now + rng.uniform(1.0, 3.0)
            if now >= next_watchdog:
                jobs_watchdog()  # the schedule, every second instead of every minute
                next_watchdog = now + 1.0
            time.sleep(0.1)
        seconds = time.monotonic() - started
    finally:
        workers.stop_all()
        sandbox.stop()

    result = {
        "kind": args.kind,
        **run.tally(sandbox),
        "seconds": round(seconds, 1),
        **in_flight.report(),
        "kills": workers.kills,
        "token_invalidations": invalidations,
        "calls": sandbox.stats(),
        "faults": sandbox.faults.describe(),
        "logs": str(work),
    }
    run_database_drop(database_url)
    return result


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(), ensure_ascii=False, indent=1) + "\n")
