"""Process groups of `runconsole`'s children, and the watchdog that stops them if it dies.

`runconsole` starts each child (web server, task worker, sandbox) as the leader of its own
process group, so that one signal reaches everything the child started in turn: the dev server's
autoreloader child, the task cluster's sentinel, workers, monitor and pusher.

Stopping a group follows one protocol, used by the runner and by the watchdog alike: SIGTERM to
the leader only (the task cluster's leader then stops its workers in order; its workers would
die mid-task from a SIGTERM of their own), then, once the leader is gone or the grace period is
over, SIGKILL to whatever is left in the group.

The watchdog covers the runner's own death, SIGKILL included, which no handler can catch. It
runs as `python -m console.childwatch` in its own session, with the read end of a pipe as stdin;
the runner keeps the write end (no child inherits it) and writes `watch <pgid> <signalled>` for
each child it starts. When the runner ends in any way, the kernel closes the write end and the
watchdog reads end-of-file: it then stops every group still alive. A runner that stopped its
children itself writes `done` first, and the watchdog leaves at once. On Linux each child also
gets the parent-death signal (prctl PR_SET_PDEATHSIG), so its leader hears SIGTERM the instant
the runner dies (`signalled` 1: the watchdog does not send it a second one); the watchdog
remains the portable path (macOS) and the one that escalates to SIGKILL.

Standard library only, no Django: it must start in milliseconds and cannot fail on settings.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

POLL_SECONDS = 0.1
_PR_SET_PDEATHSIG = 1
_PROC = Path("/proc")


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs (zombies do not: they run nothing)."""
    if _PROC.is_dir():
        # Orphaned zombies can linger when PID 1 does not reap (containers), and kill(0)
        # counts them; /proc tells their state.
        for entry in _PROC.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def signal_leader(pgid: int, signum: int) -> None:
    # The leader's pid is the group's id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pgid, signum)


def parent_death_signal(parent_pid: int) -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel send SIGTERM to the child when `parent_pid` dies.

    Linux only (None elsewhere). Loaded before the fork: a forked child should do no more than
    one foreign call.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:
            # The runner died between fork and prctl: the kernel will not tell us any more.
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def stop_groups(
    groups: dict[int, bool],
    *,
    grace: float,
    poll: Callable[[], None] = lambda: None,
    hurry: Callable[[], bool] = lambda: False,
) -> bool:
    """Stop every group: SIGTERM to leaders not `signalled` yet, then SIGKILL after `grace`.

    `poll` runs on each round (the runner reaps its children there); `hurry` returning True ends
    the grace period early. Returns whether everything stopped within the grace period.
    """
    for pgid, signalled in groups.items():
        if not signalled:
            signal_leader(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    calm = True
    while True:
        poll()
        alive = [pgid for pgid in groups if group_alive(pgid)]
        if not alive:
            break
        if hurry() or time.monotonic() >= deadline:
            calm = False
            break
        time.sleep(POLL_SECONDS)
    # Also after a calm stop: a leader may have left something behind in its group.
    for pgid in groups:
        signal_group(pgid, signal.SIGKILL)
    poll()
    return calm


def watch(stream: object, *, grace: float) -> int:
    """Read the runner's pipe until it says `done` (exit) or closes (stop what it started)."""
    groups: dict[int, bool] = {}
    for line in stream:  # type: ignore[attr-defined]
        words = line.split()
        if words[:1] == ["done"]:
            return 0
        if words[:1] == ["watch"] and len(words) == 3:
            groups[int(words[1])] = words[2] == "1"
    if groups:
        stop_groups(groups, grace=grace)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grace", type=float, default=10.0)
    args = parser.parse_args(argv)
    # The runner is the one to stop on a terminal's signals; this process must outlive it.
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    return watch(sys.stdin, grace=args.grace)


if __name__ == "__main__":
    raise SystemExit(main())
