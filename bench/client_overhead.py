"""Overhead of our platform client over a bare keep-alive ``requests`` loop, same sandbox call.

Run from the project root (it configures Django itself, with tests.settings):

    .venv/bin/python bench/client_overhead.py                     # locmem shared cache, 7 x 2 s
    .venv/bin/python bench/client_overhead.py --cache db          # DatabaseCache on temp SQLite
    .venv/bin/python bench/client_overhead.py --cache redis       # redis://127.0.0.1:6379/14
    .venv/bin/python bench/client_overhead.py --seconds 4 --rounds 9 --sandbox both

What is compared, both against the Official Account sandbox (wecom.sandbox, demo data):

    baseline  a bare ``requests.Session`` (keep-alive) doing ``GET {wechat}/cgi-bin/tags/get
              ?access_token=<token fetched once>`` and parsing the JSON;
    ours      ``OfficialAccountClient(...).tags()``: the real code path - token from the
              TokenStore (cached), the shared-cache rate limiter (limit 1e6/s, so it counts but
              never waits), retries wrapper, request building, JSON and errcode check, UserTag
              objects, and the INFO log line per call on "wecom.platform".

The sandbox runs by default in a separate process (``manage.py sandbox --demo``), so that its
request handling does not compete with the measured loop for this process's GIL; ``--sandbox
thread`` serves it from a thread of this process instead, ``--sandbox both`` measures both.

Logging stays configured as the project does it (tests.settings -> console.settings LOGGING: the
root "console" StreamHandler with the redact filter and the plain formatter, level INFO); only
that handler's stream is pointed at /dev/null instead of stderr, so every record is still
filtered, formatted and written (one write per line), but a terminal never is the bottleneck.

How to read it: the machine is shared and noisy, so the two loops run side by side in short
interleaved rounds, alternating which goes first; within a round they also take turns every
--slice seconds (0.1 by default), so that a ratio taken within one round compares the two under
the same conditions.

    ratio     = ours / baseline in calls per second (1.0 = no overhead); goal >= 0.9.
    overhead  = 1/ours - 1/baseline, the time our client adds per call, in microseconds.
    cpu       = CPU time of the measuring thread per call (time.thread_time): what the client
                itself costs, less disturbed by other processes than wall-clock rates.
    median    = median of the per-round figures; min..max shows how noisy the rounds were.

The verdict line judges the median ratio of the sandbox in a separate process (or of the only
sandbox mode measured).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, sys.path[0] is bench/; the project root holds the packages.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

GOAL = 0.9
RATE_LIMIT = 1e6
REDIS_LOCATION = "redis://127.0.0.1:6379/14"
SHARED_CACHES: dict[str, dict[str, Any]] = {
    "locmem": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "bench-client-overhead",
    },
    # The project's own default for the shared alias (console.settings without REDIS_URL).
    "db": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "console_shared_cache",
    },
    "redis": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_LOCATION,
        # A prefix of its own per run: no token of an earlier sandbox is found, nothing of
        # anyone else's is touched.
        "KEY_PREFIX": f"bench-client-overhead-{os.getpid()}",
    },
}
SANDBOX_START_SECONDS = 60.0


# ---- Django ------------------------------------------------------------------------------


def configure_django(cache: str, workdir: Path) -> str:
    """Set up Django with tests.settings and the chosen shared cache; say what logging does."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    # Hermetic, whatever the caller's environment says: a temporary SQLite database (only the
    # db cache uses it), no Redis unless asked, production's DEBUG off and INFO logging.
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.pop("REDIS_URL", None)
    os.environ["DEBUG"] = "false"
    os.environ["LOG_LEVEL"] = "INFO"

    from django.conf import settings

    # Before django.setup(): no cache or connection has been opened from the settings yet.
    settings.CACHES = {**settings.CACHES, settings.SHARED_CACHE_ALIAS: SHARED_CACHES[cache]}

    import django

    django.setup()

    if cache == "db":
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
    return _silence_log_stream()


def _silence_log_stream() -> str:
    """Point the project's stderr log handlers at /dev/null; describe the result."""
    devnull = Path(os.devnull).open("w", encoding="utf-8")  # noqa: SIM115 - lives as long as we do
    redirected = []
    seen: set[int] = set()
    loggers = [logging.getLogger(), *map(logging.getLogger, logging.root.manager.loggerDict)]
    for log in loggers:
        for handler in getattr(log, "handlers", []):
            if id(handler) in seen or not isinstance(handler, logging.StreamHandler):
                continue
            seen.add(id(handler))
            if handler.stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__):
                handler.setStream(devnull)
                redirected.append(handler)
    platform_log = logging.getLogger("wecom.platform")
    if not platform_log.isEnabledFor(logging.INFO):
        raise SystemExit("logger wecom.platform does not log INFO: not the project's logging")
    names = ", ".join(
        f"{h.name or type(h).__name__} ({type(h).__name__}"
        f"{', filters ' + '+'.join(type(f).__name__ for f in h.filters) if h.filters else ''})"
        for h in redirected
    )
    return (
        f"project LOGGING kept (wecom.platform at INFO -> {names or 'no stream handler'}); "
        "handler stream pointed at /dev/null instead of stderr"
    )


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    """Collect what the project's handlers write meanwhile (to check the INFO line exists)."""
    import io

    lines: list[str] = []
    buffers: list[tuple[logging.StreamHandler[Any], Any, io.StringIO]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            buffer = io.StringIO()
            buffers.append((handler, handler.setStream(buffer), buffer))
    try:
        yield lines
    finally:
        for handler, previous, buffer in buffers:
            handler.setStream(previous)
            lines.extend(buffer.getvalue().splitlines())


# ---- the sandbox -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _health(port: int) -> dict[str, Any] | None:
    url = f"http://127.0.0.1:{port}/__sandbox__/health"
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return json.loads(answer.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None


@contextlib.contextmanager
def sandbox_process(workdir: Path) -> Iterator[tuple[str, str]]:
    """``manage.py sandbox --demo`` on a free port, in a process of its own."""
    env = {**os.environ, "DEBUG": "true", "CONSOLE_READ_DOTENV": "0"}
    # manage.py's own default (console.settings), as `make run` starts it.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for _attempt in range(3):
        port = _free_port()
        log_path = workdir / f"sandbox-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "sandbox", "--port", str(port), "--demo"],
                cwd=_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + SANDBOX_START_SECONDS
            health = None
            while process.poll() is None and time.monotonic() < deadline:
                health = _health(port)
                if health is not None:
                    break
                time.sleep(0.1)
            if health is None or not health.get("ok"):
                output = log_path.read_text(errors="replace")
                if process.poll() is not None and "cannot listen" in output:
                    continue  # someone took the port meanwhile: another one
                raise SystemExit(f"the sandbox did not start:\n{output}")
            yield (
                str(health["wechat_base"]),
                f"separate process (manage.py sandbox --demo, pid {process.pid}) at "
                f"{health['url']}",
            )
            return
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    raise SystemExit("the sandbox found no free port")


@contextlib.contextmanager
def sandbox_thread() -> Iterator[tuple[str, str]]:
    """The sandbox served from a thread of this process (it then shares our GIL)."""
    from wecom.sandbox import SandboxServer, SandboxState, seed_demo

    state = SandboxState()
    seed_demo(state)
    with SandboxServer(state=state) as server:
        yield server.wechat_base, f"thread of the measuring process at {server.url}"


# ---- measuring ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What one loop did in one round: calls, wall seconds, CPU seconds of this thread."""

    calls: int = 0
    wall: float = 0.0
    cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.calls / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.calls * 1e6


@dataclass
class Result:
    sandbox: str
    baseline: list[Tally] = field(default_factory=list)
    ours: list[Tally] = field(default_factory=list)
    first: list[str] = field(default_factory=list)

    def _pairs(self) -> zip[tuple[Tally, Tally]]:
        return zip(self.ours, self.baseline, strict=True)

    @property
    def ratios(self) -> list[float]:
        return [o.rate / b.rate for o, b in self._pairs()]

    @property
    def overheads_us(self) -> list[float]:
        return [(1 / o.rate - 1 / b.rate) * 1e6 for o, b in self._pairs()]

    @property
    def cpu_overheads_us(self) -> list[float]:
        return [o.cpu_us - b.cpu_us for o, b in self._pairs()]


def _run(fn: Callable[[], object], seconds: float, tally: Tally) -> None:
    """Call fn for at least `seconds` (a call takes about a millisecond); add to tally."""
    done = 0
    cpu = time.thread_time()
    start = now = time.perf_counter()
    deadline = start + seconds
    while now < deadline:
        fn()
        done += 1
        now = time.perf_counter()
    tally.cpu += time.thread_time() - cpu
    tally.wall += now - start
    tally.calls += done


def run_round(
    baseline: Callable[[], object],
    ours: Callable[[], object],
    args: argparse.Namespace,
    *,
    ours_first: bool,
) -> tuple[Tally, Tally]:
    """Both loops, taking turns every --slice seconds until each has run --seconds."""
    gc.collect()
    b, o = Tally(), Tally()
    turns = [(ours, o), (baseline, b)] if ours_first else [(baseline, b), (ours, o)]
    while b.wall < args.seconds or o.wall < args.seconds:
        for fn, tally in turns:
            _run(fn, min(args.slice, args.seconds), tally)
    return b, o


def measure(wechat_base: str, label: str, args: argparse.Namespace) -> Result:
    import requests
    from django.conf import settings

    from wecom.clients import OfficialAccountClient
    from wecom.sandbox import DEMO

    timeout = (settings.PLATFORM_CONNECT_TIMEOUT, settings.PLATFORM_READ_TIMEOUT)

    # Baseline: the same HTTP call, on a keep-alive session, token fetched once.
    session = requests.Session()
    answer = session.post(
        f"{wechat_base}/cgi-bin/stable_token",
        json={
            "grant_type": "client_credential",
            "appid": DEMO.oa_appid,
            "secret": DEMO.oa_secret,
            "force_refresh": False,
        },
        timeout=timeout,
    ).json()
    url = f"{wechat_base}/cgi-bin/tags/get?access_token={answer['access_token']}"

    def baseline() -> list[dict[str, Any]]:
        return session.get(url, timeout=timeout).json()["tags"]

    client = OfficialAccountClient(
        appid=DEMO.oa_appid, secret=DEMO.oa_secret, rate_limit=RATE_LIMIT, base_url=wechat_base
    )
    ours = client.tags

    # Both must get the same answer, and ours must log its line, or the comparison is off.
    with captured_log() as lines:
        mine = ours()  # the first call also fetches the token
    theirs = baseline()
    if [(t.id, t.name) for t in mine] != [(t["id"], t["name"]) for t in theirs]:
        raise SystemExit("the client and the baseline disagree on the tags; not benchmarking")
    if not any("endpoint=/cgi-bin/tags/get" in line and " INFO " in line for line in lines):
        raise SystemExit("the client logged no INFO line for its call; not benchmarking")

    # Warm both up (connections, allocator, first rate-limit window) before timing.
    warm = min(0.5, args.seconds / 2)
    _run(baseline, warm, Tally())
    _run(ours, warm, Tally())

    result = Result(sandbox=label)
    for i in range(args.rounds):
        # Alternate who goes first so that a drift within a round favours neither.
        b, o = run_round(baseline, ours, args, ours_first=i % 2 == 1)
        result.baseline.append(b)
        result.ours.append(o)
        result.first.append("ours" if i % 2 else "baseline")

    session.close()
    if args.cache == "redis":
        from django.core.cache import caches

        # The token's key; the rate-limit counters expire within two seconds by themselves.
        caches[settings.SHARED_CACHE_ALIAS].delete(f"platform-token:{client.credential_key}")
    return result


# ---- report ------------------------------------------------------------------------------


def report(result: Result) -> None:
    print(f"sandbox: {result.sandbox}")
    header = (
        f"{'round':>5}  {'first':<8}  {'baseline/s':>10}  {'ours/s':>8}  {'ratio':>6}  "
        f"{'overhead us':>11}  {'cpu base us':>11}  {'cpu ours us':>11}"
    )
    print(header)
    print("-" * len(header))
    rows = zip(
        result.first, result.baseline, result.ours, result.ratios, result.overheads_us, strict=True
    )
    for n, (first, b, o, ratio, over) in enumerate(rows, 1):
        print(
            f"{n:>5}  {first:<8}  {b.rate:>10,.0f}  {o.rate:>8,.0f}  {ratio:>6.3f}  "
            f"{over:>11.0f}  {b.cpu_us:>11.0f}  {o.cpu_us:>11.0f}"
        )
    print("-" * len(header))
    med = statistics.median
    ratios, overheads = result.ratios, result.overheads_us
    print(
        f"{'median':>5}  {'':<8}  {med(b.rate for b in result.baseline):>10,.0f}  "
        f"{med(o.rate for o in result.ours):>8,.0f}  {med(ratios):>6.3f}  "
        f"{med(overheads):>11.0f}  {med(b.cpu_us for b in result.baseline):>11.0f}  "
        f"{med(o.cpu_us for o in result.ours):>11.0f}"
    )
    print(
        f"{'range':>5}  {'':<8}  {'':>10}  {'':>8}  {min(ratios):.2f}..{max(ratios):.2f}  "
        f"{min(overheads):.0f}..{max(overheads):.0f}"
    )
    cpu = result.cpu_overheads_us
    print(
        f"client CPU added per call (this thread, less sensitive to the machine's noise): "
        f"median {med(cpu):.0f} us, range {min(cpu):.0f}..{max(cpu):.0f}"
    )


def verdict(result: Result, cache: str) -> str:
    med = statistics.median
    ratio = med(result.ratios)
    ok = ratio >= GOAL
    return (
        f"verdict ({cache} cache): {'PASS' if ok else 'FAIL'} - median ratio {ratio:.3f} "
        f"{'>=' if ok else '<'} {GOAL} goal; our client adds {med(result.overheads_us):.0f} us "
        f"per call ({med(o.rate for o in result.ours):,.0f} vs "
        f"{med(b.rate for b in result.baseline):,.0f} calls/s; "
        f"{med(result.cpu_overheads_us):.0f} us of client CPU)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="seconds per loop per round (each round runs both loops; default 2)",
    )
    parser.add_argument(
        "--slice",
        type=float,
        default=0.1,
        help="within a round the loops take turns every SLICE seconds (default 0.1; "
        "--slice >= --seconds runs each loop in one piece)",
    )
    parser.add_argument(
        "--rounds", type=int, default=7, help="interleaved rounds (default 7; odd keeps a median)"
    )
    parser.add_argument(
        "--cache",
        choices=sorted(SHARED_CACHES),
        default="locmem",
        help="backend of the shared cache alias (tokens, rate limit); default locmem",
    )
    parser.add_argument(
        "--sandbox",
        choices=("process", "thread", "both"),
        default="process",
        help="where the sandbox runs (default: a separate process; 'both' measures both)",
    )
    parser.add_argument(
        "--no-lease",
        action="store_true",
        help="count every call in the shared cache (no batched slots), as at limits below "
        "200 calls/s, to show what one count costs",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.slice <= 0:
        parser.error("--seconds, --slice and --rounds must be positive")

    with tempfile.TemporaryDirectory(prefix="bench-client-overhead-") as tmp:
        workdir = Path(tmp)
        logging_note = configure_django(args.cache, workdir)

        import django
        import requests
        import urllib3
        from django.core.cache import caches

        if args.no_lease:
            from wecom.clients import ratelimit

            ratelimit.LEASE_SHARE = 10**12
        shared = caches["shared"]
        try:
            shared.get("bench-client-overhead-probe")
        except Exception as exc:
            raise SystemExit(f"the {args.cache} shared cache is not reachable: {exc}") from None
        modes = ("process", "thread") if args.sandbox == "both" else (args.sandbox,)
        results = []
        for mode in modes:
            sandbox = sandbox_process(workdir) if mode == "process" else sandbox_thread()
            with sandbox as (wechat_base, label):
                results.append(measure(wechat_base, label, args))

    print(
        f"python {platform.python_version()}, Django {django.get_version()}, "
        f"requests {requests.__version__}, urllib3 {urllib3.__version__}; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    print("call: GET /cgi-bin/tags/get (Official Account sandbox, demo data)")
    print("baseline: requests.Session keep-alive loop, token fetched once, JSON parsed")
    print(
        f"ours: OfficialAccountClient.tags(), rate limit {RATE_LIMIT:g}/s (counts, never waits)"
        + (", every call counted in the shared cache (--no-lease)" if args.no_lease else "")
    )
    print(
        f"shared cache: {args.cache} ({type(shared).__module__}.{type(shared).__name__}"
        f"{', ' + REDIS_LOCATION if args.cache == 'redis' else ''}"
        f"{', temporary SQLite, migrated' if args.cache == 'db' else ''})"
    )
    print(f"logging: {logging_note}")
    print(
        f"{args.rounds} rounds x {args.seconds:g} s per loop, the loops taking turns every "
        f"{min(args.slice, args.seconds):g} s; ratio = ours / baseline calls/s; "
        "overhead = 1/ours - 1/baseline; cpu = this thread's CPU time per call"
    )
    for result in results:
        print()
        report(result)
    print()
    for mode, result in zip(modes, results, strict=True):
        prefix = "" if len(results) == 1 else f"[sandbox {mode}] "
        print(prefix + verdict(result, args.cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
