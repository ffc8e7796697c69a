"""`make run`: runs the web server, task worker and (when SANDBOX is on) the platform sandbox.

However the runner ends, its children end with it: Ctrl-C, SIGTERM and SIGHUP (the terminal
closed) stop them in order; the runner's own death (SIGKILL, out of memory) is noticed by the
children themselves (see `console.childwatch`). If one child stops on its own, the others are
stopped too, so the console never runs half-alive.

Before it starts anything the runner checks that its ports are free, and says in the user's
language what holds one (a console of this project: where to open it). "The console is running"
comes only once every child answers: the web server's `/healthz`, the sandbox's health call, the
task cluster's status in the shared cache.

Stopping is calm: a second signal cuts the grace period short instead of raising, nothing prints
a traceback, and the exit status is 0 for a stop that was asked for, 1 when a child failed, a
port was taken or the console did not come up.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils.translation import gettext as _

from console import childwatch

STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Failed(Exception):
    """The console cannot run; the message says why, in the user's language."""


@dataclass
class Child:
    name: str
    argv: list[str]
    ready: Callable[[Child], bool]
    process: subprocess.Popen | None = None
    is_ready: bool = False
    # Started again when it ends, instead of stopping the console (the task worker).
    restart: bool = False
    restarts: int = 0


@dataclass
class _Signals:
    """Stop signals received. Handlers only count: the main loop decides what to do."""

    received: list[int] = field(default_factory=list)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._record)

    @property
    def count(self) -> int:
        return len(self.received)


# --- Ports -----------------------------------------------------------------------------------


def _probe_host(host: str) -> str:
    # A server on every address is reached through loopback.
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104


def port_problem(host: str, port: int) -> OSError | None:
    """Why the runner could not listen on host:port (EADDRINUSE when taken), or None if free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As both servers do: a connection of a previous run in TIME_WAIT does not take a port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    # macOS lets a specific address be bound beside a server on every address: ask it too.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        if probe.connect_ex((_probe_host(host), port)) == 0:
            return OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    return None


def _get_json(url: str, *, timeout: float = 2) -> tuple[int, Any] | None:
    """Status and JSON body of a GET, or None when nothing (or not JSON) answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read(65536))
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read(65536))
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def is_console(host: str, port: int) -> bool:
    """Whether a console of this project answers on host:port (its `/healthz`, healthy or not)."""
    answer = _get_json(f"{_url(host, port)}/healthz")
    if answer is None:
        return False
    _, body = answer
    checks = body.get("checks") if isinstance(body, dict) else None
    return isinstance(checks, dict) and {"database", "broker"} <= checks.keys()


def is_sandbox(host: str, port: int) -> bool:
    """Whether the platform sandbox answers on host:port."""
    answer = _get_json(f"{_url(host, port)}/__sandbox__/health")
    return answer is not None and isinstance(answer[1], dict) and answer[1].get("ok") is True


def _url(host: str, port: int) -> str:
    host = _probe_host(host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _free_port_after(host: str, port: int, *, besides: int | None = None) -> int:
    """The first free port above `port` (not `besides`), to suggest instead of a taken one."""
    candidate = port + 1
    while candidate < 65535 and (candidate == besides or port_problem(host, candidate)):
        candidate += 1
    return candidate


def ports_explanation(*, host: str, port: int, sandbox_port: int | None) -> str | None:
    """What stops the console from listening on its ports, in words; None when both are free."""
    web_problem = port_problem(host, port)
    if web_problem is not None and web_problem.errno == errno.EADDRINUSE and is_console(host, port):
        url = _url(host, port)
        return "\n".join(
            [
                _("The console is already running at %(url)s.") % {"url": url},
                "",
                "    " + _("Open %(url)s/admin/") % {"url": url},
                "",
                _(
                    "To stop it, press Ctrl-C in the terminal where it runs. If that terminal is "
                    "gone, find the process with `lsof -i :%(port)s` or `ss -ltnp` and end it "
                    "with `kill`."
                )
                % {"port": port},
            ]
        )
    sandbox_host = "127.0.0.1"
    sandbox_problem = port_problem(sandbox_host, sandbox_port) if sandbox_port else None
    lines = []
    for part, part_host, part_port, problem in (
        (_("the web server"), host, port, web_problem),
        (_("the platform sandbox"), sandbox_host, sandbox_port, sandbox_problem),
    ):
        if problem is None:
            continue
        address = f"{part_host}:{part_port}"
        if problem.errno != errno.EADDRINUSE:
            lines.append(
                _("Cannot start %(part)s: cannot listen on %(address)s (%(reason)s).")
                % {"part": part, "address": address, "reason": problem.strerror or problem}
            )
        elif part_port == sandbox_port and is_sandbox(part_host, part_port):
            lines.append(
                _(
                    "Cannot start %(part)s: a platform sandbox is already running on %(address)s "
                    "(left by another console?)."
                )
                % {"part": part, "address": address}
            )
        else:
            lines.append(
                _("Cannot start %(part)s: %(address)s is already in use by another program.")
                % {"part": part, "address": address}
            )
    if not lines:
        return None
    taken = port if web_problem is not None else sandbox_port
    new_port = _free_port_after(host, port) if web_problem is not None else port
    suggestion = f"PORT={new_port}"
    if sandbox_port:
        if sandbox_problem is not None or sandbox_port == new_port:
            sandbox_port = _free_port_after(sandbox_host, sandbox_port, besides=new_port)
        suggestion += f" SANDBOX_PORT={sandbox_port}"
    lines += [
        "",
        _(
            "Stop that program (`lsof -i :%(port)s` or `ss -ltnp` shows which one it is), or "
            "start the console on other ports: %(suggestion)s make run"
        )
        % {"port": taken, "suggestion": suggestion},
    ]
    return "\n".join(lines)


# --- Readiness -------------------------------------------------------------------------------


def _web_ready(url: str) -> Callable[[Child], bool]:
    def ready(child: Child) -> bool:
        answer = _get_json(url, timeout=2)
        return answer is not None and answer[0] == 200

    return ready


def _sandbox_ready(url: str) -> Callable[[Child], bool]:
    def ready(child: Child) -> bool:
        answer = _get_json(url, timeout=2)
        return answer is not None and answer[0] == 200 and answer[1].get("ok") is True

    return ready


def _worker_ready(child: Child) -> bool:
    # The cluster publishes its status in the shared cache; ours is the one with our child's pid.
    from django_q.conf import Conf
    from django_q.status import Stat

    from console.jobs.supervisor import descendants

    assert child.process is not None
    try:
        stats = Stat.get_all()
    except Exception:  # the cache table may be busy: ask again next round
        return False
    # `qcluster` supervises the cluster it starts (console/jobs/supervisor.py): ours is the
    # one whose pid is our child's or under it.
    ours = {child.process.pid, *descendants(child.process.pid)}
    return any(stat.pid in ours and stat.status in (Conf.IDLE, Conf.WORKING) for stat in stats)


# --- The runner ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    host: str
    port: int
    sandbox: bool
    sandbox_port: int
    sandbox_state: str
    reload: bool = False
    grace: float = STOP_GRACE_SECONDS


class ConsoleRunner:
    """Starts the children, says when the console runs, and stops them all however it ends."""

    def __init__(
        self, options: RunOptions, *, stdout: OutputWrapper, stderr: OutputWrapper, style: Style
    ) -> None:
        self.options = options
        self.stdout = stdout
        self.stderr = stderr
        self.style = style
        self._watchdog: _Watchdog | None = None

    # -- output that survives a closed terminal

    def _say(
        self, text: str, *, error: bool = False, style: Callable[[str], str] | None = None
    ) -> None:
        stream = self.stderr if error else self.stdout
        try:
            stream.write(style(text) if style else text)
            stream.flush()
        except OSError:
            # The terminal is gone (window closed): nobody reads any more, and writing to it
            # again would only raise. Later output, the children's too, goes nowhere.
            _silence_terminal()

    def _ports_explanation(self) -> str | None:
        return ports_explanation(
            host=self.options.host,
            port=self.options.port,
            sandbox_port=self.options.sandbox_port if self.options.sandbox else None,
        )

    def check_ports(self) -> int:
        """Exit status 1, with the reason said, when the console could not listen; else 0."""
        explanation = self._ports_explanation()
        if explanation:
            self._say(explanation + "\n", error=True, style=self.style.ERROR)
            return 1
        return 0

    def run(self) -> int:
        """Run until a stop signal or a child's failure; the exit status for the process."""
        options = self.options
        signals = _Signals()
        signals.install()
        children: list[Child] = []
        watchdog: _Watchdog | None = None
        status = 0
        try:
            explanation = self._ports_explanation()
            if explanation:
                raise _Failed(explanation)
            children = self._children()
            if options.sandbox and not signals.count:
                # The demo data's credentials, so that the console works out of the box.
                call_command("credential", "demo")
            if not signals.count:
                watchdog = self._watchdog = _Watchdog.start(grace=options.grace)
                for child in children:
                    self._start(child, watchdog)
                    if signals.count:
                        break
            if not signals.count:
                self._wait_until_ready(children, signals)
            if not signals.count:
                self._announce(children)
                self._supervise(children, signals)
        except _Failed as failure:
            self._say(str(failure) + "\n", error=True, style=self.style.ERROR)
            status = 1
        finally:
            if signals.count:
                self._say("\n" + _("Stopping… (press Ctrl-C again to stop at once)") + "\n")
            try:
                self._stop(children, signals, grace=options.grace)
            finally:
                if watchdog is not None:
                    watchdog.release()
        # The handlers stay until the process ends: a signal that comes after the stop must
        # neither kill the runner (exit status -15) nor print a traceback.
        if signals.count and status == 0:
            self._say(_("Stopped.") + "\n")
        return status

    def _children(self) -> list[Child]:
        options = self.options
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        host, port = options.host, options.port
        web = [*manage, "runserver", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        if not options.reload:
            web.append("--noreload")
        children = [
            Child(_("web server"), web, _web_ready(f"{_url(host, port)}/healthz")),
            Child(_("task worker"), [*manage, "qcluster"], _worker_ready, restart=True),
        ]
        if options.sandbox:
            sandbox_port = options.sandbox_port
            children.append(
                Child(
                    _("platform sandbox"),
                    [
                        *manage,
                        "sandbox",
                        "--port",
                        str(sandbox_port),
                        "--demo",
                        "--state",
                        options.sandbox_state,
                    ],
                    _sandbox_ready(f"http://127.0.0.1:{sandbox_port}/__sandbox__/health"),
                )
            )
        return children

    def _start(self, child: Child, watchdog: _Watchdog) -> None:
        arm = childwatch.parent_death_signal(os.getpid())
        # Its own session and process group: the terminal's Ctrl-C and hang-up reach only this
        # runner, which stops the children in order; one signal to the group reaches all a
        # child started.
        child.process = subprocess.Popen(  # noqa: S603
            child.argv,
            start_new_session=True,
            preexec_fn=arm,  # safe: the runner starts no threads
        )
        watchdog.watch(child.process.pid, signalled=arm is not None)

    def _check_alive(self, children: list[Child]) -> None:
        for child in children:
            assert child.process is not None
            code = child.process.poll()
            if code is None:
                continue
            if child.restart and self._watchdog is not None:
                # The worker's own supervisor restarts a stuck cluster; this covers the
                # supervisor itself (killed, out of memory): jobs wait, the console stays up.
                how = (
                    _("ended by signal %(signal)s") % {"signal": _signal_name(-code)}
                    if code < 0
                    else _("exit code %(code)s") % {"code": code}
                )
                self._say(
                    _("The %(name)s stopped (%(how)s); starting it again.")
                    % {"name": child.name, "how": how}
                    + "\n",
                    error=True,
                )
                child.restarts += 1
                self._start(child, self._watchdog)
                continue
            if code < 0:
                raise _Failed(
                    _("The %(name)s was ended by signal %(signal)s; stopping the console.")
                    % {"name": child.name, "signal": _signal_name(-code)}
                )
            raise _Failed(
                _("The %(name)s stopped unexpectedly (exit code %(code)s); stopping the console.")
                % {"name": child.name, "code": code}
            )

    def _wait_until_ready(self, children: list[Child], signals: _Signals) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not signals.count:
            self._check_alive(children)
            for child in children:
                if not child.is_ready:
                    child.is_ready = child.ready(child)
            if all(child.is_ready for child in children):
                return
            if time.monotonic() >= deadline:
                waiting = ", ".join(child.name for child in children if not child.is_ready)
                raise _Failed(
                    _(
                        "The console did not come up within %(seconds)d seconds "
                        "(waiting for: %(parts)s)."
                    )
                    % {"seconds": READY_TIMEOUT_SECONDS, "parts": waiting}
                )
            time.sleep(POLL_SECONDS)

    def _announce(self, children: list[Child]) -> None:
        names = ", ".join(child.name for child in children)
        bar = "-" * 64
        lines = [
            bar,
            _("The console is running (%(parts)s).") % {"parts": names},
            "",
            "    " + _("Open %(url)s/admin/") % {"url": _url(self.options.host, self.options.port)},
            "",
            _("Press Ctrl-C to stop."),
            bar,
        ]
        self._say("\n".join(lines) + "\n", style=self.style.SUCCESS)

    def _supervise(self, children: list[Child], signals: _Signals) -> None:
        while not signals.count:
            self._check_alive(children)
            time.sleep(POLL_SECONDS)

    def _stop(self, children: list[Child], signals: _Signals, *, grace: float) -> None:
        started = [child.process for child in children if child.process is not None]
        if not started:
            return
        signals_at_start = signals.count
        hurried = False

        def hurry() -> bool:
            nonlocal hurried
            if not hurried and (signals.count > signals_at_start or signals.count >= 2):
                hurried = True
                self._say(_("Stopping at once.") + "\n")
            return hurried

        def reap() -> None:
            for process in started:
                process.poll()

        childwatch.stop_groups(
            {process.pid: process.poll() is not None for process in started},
            grace=grace,
            poll=reap,
            hurry=hurry,
        )
        for process in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


class _Watchdog:
    """The `console.childwatch` process and the pipe whose end tells it the runner is gone."""

    def __init__(self, process: subprocess.Popen, pipe: TextIO) -> None:
        self.process = process
        self.pipe = pipe

    @classmethod
    def start(cls, *, grace: float) -> _Watchdog:
        read_end, write_end = os.pipe()  # not inheritable: no child holds the write end
        try:
            process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "console.childwatch", "--grace", str(grace)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                cwd=settings.BASE_DIR,
                start_new_session=True,
            )
        finally:
            os.close(read_end)
        return cls(process, os.fdopen(write_end, "w", buffering=1))

    def watch(self, pgid: int, *, signalled: bool) -> None:
        # A watchdog that is gone cannot help; the runner still stops its children itself.
        with contextlib.suppress(OSError):
            self.pipe.write(f"watch {pgid} {int(signalled)}\n")

    def release(self) -> None:
        """The runner has stopped its children itself: the watchdog may leave."""
        with contextlib.suppress(OSError):
            self.pipe.write("done\n")
            self.pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _silence_terminal() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)
