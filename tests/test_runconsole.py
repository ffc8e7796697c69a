"""`manage.py runconsole` (what `make run` starts): however it ends, nothing it started lives on.

The runner runs in a subprocess, sandbox on, on a free pair of ports, against its own SQLite file
(and the CI's Redis when there is one). Every process it starts inherits a marker in its
environment, so that the tests find them all (the dev server's autoreloader child, the task
cluster's sentinel, workers, monitor and pusher included) wherever they were reparented.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import termios
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console import childwatch
from console.launcher import ports_explanation

BASE_DIR = Path(__file__).resolve().parent.parent
PROC = Path("/proc")
READY = "The console is running"
READY_SECONDS = 90
GONE_SECONDS = 15

linux_only = pytest.mark.skipif(not PROC.is_dir(), reason="finds processes through /proc")


def wait_for(condition: Callable[[], object], *, seconds: float, what: str) -> object:
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.05)


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        sockets.append(probe)
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


def marked_processes(marker: str) -> list[int]:
    """Running (not zombie) processes whose environment holds `marker`."""
    needle = marker.encode() + b"\0"
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2 :].split()[0]
        if state not in (b"Z", b"X") and needle in environ:
            found.append(int(entry.name))
    return found


def clean_env(**env: str) -> dict[str, str]:
    prefixes = ("DJANGO", "DATABASE", "SECRET", "CREDENTIALS", "DEBUG", "SECURE", "LANG", "LC_")
    clean = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    return {**clean, **env}


@pytest.fixture(scope="module")
def runner_database(tmp_path_factory) -> str:
    """A migrated SQLite file for the runners of this module (the test database is in memory)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('runner') / 'console.sqlite3'}"
    env = clean_env(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=url)
    for command in (["migrate", "--verbosity", "0"], ["createcachetable"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, check=True, timeout=120
        )
    return url


class Runner:
    def __init__(self, *, database_url: str, directory: Path, ports: list[int]) -> None:
        self.port, self.sandbox_port = ports
        self.directory = directory
        self.marker = f"CONSOLE_RUNNER_TEST={uuid.uuid4().hex}"
        self.output_path = directory / f"runner-{uuid.uuid4().hex[:8]}.log"
        self.env = clean_env(
            DJANGO_SETTINGS_MODULE="tests.settings",
            DATABASE_URL=database_url,
            LANGUAGE="en",
            SANDBOX="true",
            PORT=str(self.port),
            SANDBOX_PORT=str(self.sandbox_port),
            # A queue and cache keys of its own, should it share the CI's Redis.
            Q_CLUSTER_NAME=f"runner{uuid.uuid4().hex[:8]}",
            CACHE_KEY_PREFIX=f"runner{uuid.uuid4().hex[:8]}",
            CONSOLE_RUNNER_TEST=self.marker.split("=", 1)[1],
        )
        self.process: subprocess.Popen | None = None

    def argv(self, *extra: str) -> list[str]:
        state = str(self.directory / "sandbox-state.json")
        return [sys.executable, "manage.py", "runconsole", "--sandbox-state", state, *extra]

    def start(self, *extra: str) -> Runner:
        with self.output_path.open("wb") as output:
            self.process = subprocess.Popen(
                self.argv(*extra), cwd=BASE_DIR, env=self.env, stdout=output, stderr=output
            )
        return self

    @property
    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def wait_until_ready(self) -> None:
        assert self.process is not None

        def ready() -> bool:
            assert self.process.poll() is None, f"the runner ended early:\n{self.output}"
            return READY in self.output

        wait_for(ready, seconds=READY_SECONDS, what="the console to run")

    def processes(self) -> list[int]:
        return marked_processes(self.marker)

    def wait_for_exit(self, seconds: float = GONE_SECONDS + 5) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the runner did not exit:\n{self.output}") from None

    def assert_nothing_left(self) -> None:
        wait_for(lambda: not self.processes(), seconds=GONE_SECONDS, what="every child to be gone")

    def kill_everything(self) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def make_runner(runner_database, tmp_path) -> Iterator[Callable[..., Runner]]:
    runners: list[Runner] = []

    def make(ports: list[int] | None = None) -> Runner:
        runner = Runner(
            database_url=runner_database, directory=tmp_path, ports=ports or free_ports(2)
        )
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.kill_everything()


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status


# --- The runner in a subprocess -------------------------------------------------------------


@linux_only
@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
    ids=["SIGINT (Ctrl-C)", "SIGTERM", "SIGHUP (terminal closed)"],
)
def test_a_stop_signal_stops_every_child_and_exits_zero(make_runner, signum):
    runner = make_runner().start()
    runner.wait_until_ready()
    # Runner, watchdog, web server, sandbox, and the task cluster's main process, sentinel,
    # monitor, pusher and two workers.
    assert len(runner.processes()) >= 10
    assert get(f"http://127.0.0.1:{runner.port}/admin/login/") == 200

    runner.process.send_signal(signum)

    assert runner.wait_for_exit() == 0
    runner.assert_nothing_left()
    assert "Stopped." in runner.output
    assert "Traceback" not in runner.output


@linux_only
def test_when_the_runner_is_killed_its_children_stop_by_themselves(make_runner):
    # --reload: the dev server's autoreloader runs the server in a child of its own.
    runner = make_runner().start("--reload")
    runner.wait_until_ready()
    assert len(runner.processes()) >= 11

    runner.process.send_signal(signal.SIGKILL)

    assert runner.wait_for_exit() == -signal.SIGKILL
    runner.assert_nothing_left()
    assert "Traceback" not in runner.output
    # The ports are free again: the next `make run` starts.
    assert (
        ports_explanation(host="127.0.0.1", port=runner.port, sandbox_port=runner.sandbox_port)
        is None
    )


@linux_only
def test_closing_the_terminal_stops_everything(make_runner):
    """The runner on a pseudo-terminal that goes away, as when its window is closed."""
    runner = make_runner()
    controller, terminal = os.openpty()

    def become_controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    runner.process = subprocess.Popen(
        runner.argv(),
        cwd=BASE_DIR,
        env=runner.env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=become_controlling_terminal,
    )
    os.close(terminal)
    seen = b""

    def ready() -> bool:
        nonlocal seen
        assert runner.process.poll() is None, seen.decode(errors="replace")
        if select.select([controller], [], [], 0.2)[0]:
            seen += os.read(controller, 65536)
        return READY.encode() in seen

    wait_for(ready, seconds=READY_SECONDS, what="the console to run")

    os.close(controller)  # the window closes: the kernel hangs up the terminal

    assert runner.wait_for_exit() == 0
    runner.assert_nothing_left()


@linux_only
def test_a_child_that_dies_stops_the_console_with_an_error_status(make_runner):
    runner = make_runner().start()
    runner.wait_until_ready()
    (sandbox,) = [pid for pid in runner.processes() if b"manage.py\0sandbox\0" in command_line(pid)]

    os.kill(sandbox, signal.SIGKILL)

    assert runner.wait_for_exit() == 1
    runner.assert_nothing_left()
    assert "The platform sandbox was ended by signal SIGKILL" in runner.output
    assert "Traceback" not in runner.output


@linux_only
def test_a_task_worker_that_dies_is_started_again(make_runner):
    runner = make_runner().start()
    runner.wait_until_ready()
    (worker,) = [pid for pid in runner.processes() if command_line(pid).endswith(b"qcluster\0")]

    os.kill(worker, signal.SIGKILL)

    def started_again() -> bool:
        assert runner.process.poll() is None, runner.output
        return any(
            command_line(pid).endswith(b"qcluster\0") and pid != worker
            for pid in runner.processes()
        )

    wait_for(started_again, seconds=READY_SECONDS, what="a new task worker")
    assert "The task worker stopped (ended by signal SIGKILL); starting it again." in runner.output
    runner.process.send_signal(signal.SIGTERM)
    assert runner.wait_for_exit() == 0
    runner.assert_nothing_left()
    assert "Traceback" not in runner.output


def command_line(pid: int) -> bytes:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def hold_the_worker(started: str) -> None:
    """A task that keeps a worker busy, so that stopping waits for it."""
    Path(started).touch()
    time.sleep(120)


def keep_a_worker_busy(runner: Runner) -> None:
    started = runner.directory / "task-started"
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django_q.tasks import async_task; "
            f"async_task('tests.test_runconsole.hold_the_worker', {str(started)!r})",
        ],
        cwd=BASE_DIR,
        env=runner.env,
        check=True,
        timeout=60,
    )
    wait_for(started.exists, seconds=60, what="the worker to take the task")


@linux_only
def test_a_second_signal_cuts_the_grace_period_short_without_a_traceback(make_runner):
    runner = make_runner().start("--grace", "120")
    runner.wait_until_ready()
    keep_a_worker_busy(runner)

    runner.process.send_signal(signal.SIGTERM)
    wait_for(lambda: "Stopping…" in runner.output, seconds=10, what="the runner to stop")
    # The busy worker holds the stop for the whole grace period (120 s) ...
    with pytest.raises(subprocess.TimeoutExpired):
        runner.process.wait(timeout=1)
    stopping_since = time.monotonic()
    runner.process.send_signal(signal.SIGTERM)

    # ... which a second signal cuts short.
    assert runner.wait_for_exit() == 0
    assert time.monotonic() - stopping_since < GONE_SECONDS
    runner.assert_nothing_left()
    assert "Stopping at once." in runner.output
    assert "Traceback" not in runner.output


@linux_only
def test_a_busy_worker_is_killed_after_the_grace_period_when_the_runner_died(make_runner):
    """No orphaned worker goes on sending batches: the watchdog ends what outlives the grace."""
    runner = make_runner().start("--grace", "3")
    runner.wait_until_ready()
    keep_a_worker_busy(runner)

    runner.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()

    assert runner.wait_for_exit() == -signal.SIGKILL
    # The busy worker would sleep for two minutes: only the watchdog, once the grace period is
    # over, ends it (and with it what waits for it).
    runner.assert_nothing_left()
    assert time.monotonic() - killed_at >= 3


@linux_only
def test_a_second_runner_on_the_same_ports_says_where_the_first_one_is(make_runner):
    first = make_runner().start()
    first.wait_until_ready()
    first_processes = set(first.processes())

    second = make_runner(ports=[first.port, first.sandbox_port])
    result = subprocess.run(
        second.argv(),
        cwd=BASE_DIR,
        env={**second.env, "LANGUAGE": "", "LANG": "zh_CN.UTF-8"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "控制台已经在运行" in result.stderr
    assert f"http://127.0.0.1:{first.port}/admin/" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "控制台正在运行" not in result.stdout
    # What `make run` asks before it migrates anything says the same.
    check = subprocess.run(
        [*second.argv(), "--check-ports"],
        cwd=BASE_DIR,
        env=second.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1
    assert f"The console is already running at http://127.0.0.1:{first.port}." in check.stderr
    # The second runner started nothing, and the first one still serves.
    assert not second.processes()
    assert set(first.processes()) == first_processes
    assert get(f"http://127.0.0.1:{first.port}/admin/login/") == 200

    first.process.send_signal(signal.SIGTERM)
    assert first.wait_for_exit() == 0
    first.assert_nothing_left()


# --- Taken ports, in process ------------------------------------------------------------------


@pytest.fixture
def english() -> Iterator[None]:
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Some other program, listening on a free port."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server


def test_a_port_taken_by_another_program_is_named_with_free_ones_to_use_instead(listener, english):
    taken = listener.getsockname()[1]
    free_web, free_sandbox = free_ports(2)

    web_taken = ports_explanation(host="127.0.0.1", port=taken, sandbox_port=free_sandbox)
    sandbox_taken = ports_explanation(host="127.0.0.1", port=free_web, sandbox_port=taken)

    assert f"Cannot start the web server: 127.0.0.1:{taken} is already in use" in web_taken
    assert f"Cannot start the platform sandbox: 127.0.0.1:{taken} is already in use" in (
        sandbox_taken
    )
    for explanation in (web_taken, sandbox_taken):
        suggestion = explanation.split("other ports: ")[1].removesuffix(" make run")
        suggested = dict(part.split("=") for part in suggestion.split())
        ports = {int(suggested["PORT"]), int(suggested["SANDBOX_PORT"])}
        assert len(ports) == 2
        assert taken not in ports
        for port in ports:
            assert ports_explanation(host="127.0.0.1", port=port, sandbox_port=None) is None


def test_a_sandbox_left_running_is_recognised(sandbox, english):
    (free_web,) = free_ports(1)

    explanation = ports_explanation(host="127.0.0.1", port=free_web, sandbox_port=sandbox.port)

    assert f"a platform sandbox is already running on 127.0.0.1:{sandbox.port}" in explanation


@pytest.mark.django_db
def test_free_ports_pass_the_check(capsys):
    from django.core.management import call_command

    web, sandbox_port = free_ports(2)
    call_command(
        "runconsole", "--check-ports", "--port", str(web), "--sandbox-port", str(sandbox_port)
    )
    assert capsys.readouterr().err == ""


def test_free_ports_need_no_explanation():
    web, sandbox_port = free_ports(2)
    assert ports_explanation(host="127.0.0.1", port=web, sandbox_port=sandbox_port) is None


def test_the_explanation_speaks_the_users_language(listener):
    from django.utils import translation

    with translation.override("zh-hans"):
        explanation = ports_explanation(
            host="127.0.0.1", port=listener.getsockname()[1], sandbox_port=None
        )
    assert "已被其他程序占用" in explanation


# --- The watchdog alone (the portable path, as on macOS without the parent-death signal) -----

STUBBORN_GROUP = """
import signal, subprocess, sys, time
# A leader that ignores SIGTERM, with a child of its own: only SIGKILL to the group ends both.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("up", flush=True)
time.sleep(120)
"""

POLITE_GROUP = """
import signal, subprocess, sys, time
# A leader that stops what it started on SIGTERM, as the task cluster does.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
def stop(signum, frame):
    child.terminate()
    child.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("up", flush=True)
time.sleep(120)
"""


@linux_only
@pytest.mark.parametrize("program", [STUBBORN_GROUP, POLITE_GROUP], ids=["stubborn", "polite"])
def test_the_watchdog_stops_the_groups_when_the_runner_is_gone(program):
    marker = f"CONSOLE_RUNNER_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "CONSOLE_RUNNER_TEST": marker.split("=", 1)[1]}
    read_end, write_end = os.pipe()
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "console.childwatch", "--grace", "3"],
        stdin=read_end,
        cwd=BASE_DIR,
        env=env,
        start_new_session=True,
    )
    os.close(read_end)
    group = subprocess.Popen(
        [sys.executable, "-c", program], env=env, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert group.stdout.readline() == b"up\n"
        os.write(write_end, f"watch {group.pid} 0\n".encode())
        # The watchdog, the leader and its child; on a loaded machine /proc can show a process
        # a moment after its start returned.
        wait_for(
            lambda: len(marked_processes(marker)) == 3,
            seconds=10,
            what=f"3 processes (watchdog exit status {watchdog.poll()})",
        )

        os.close(write_end)  # what the kernel does when the runner dies
        started = time.monotonic()

        assert watchdog.wait(timeout=GONE_SECONDS) == 0
        group.wait(timeout=5)
        wait_for(lambda: not marked_processes(marker), seconds=5, what="the group to be gone")
        # The stubborn group took the grace period; the polite one stopped on SIGTERM.
        elapsed = time.monotonic() - started
        assert elapsed >= 3 if program is STUBBORN_GROUP else elapsed < 3
    finally:
        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)


@linux_only
def test_the_watchdog_leaves_alone_what_the_runner_stopped_itself():
    read_end, write_end = os.pipe()
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "console.childwatch"], stdin=read_end, cwd=BASE_DIR
    )
    os.close(read_end)
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        os.write(write_end, f"watch {bystander.pid} 0\ndone\n".encode())
        os.close(write_end)
        assert watchdog.wait(timeout=10) == 0
        assert bystander.poll() is None
        assert childwatch.group_alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()
    assert not childwatch.group_alive(bystander.pid)


def test_the_runner_uses_the_ports_it_is_given(settings):
    from django.core.management import get_commands, load_command_class

    command = load_command_class(get_commands()["runconsole"], "runconsole")
    parser = command.create_parser("manage.py", "runconsole")
    defaults = vars(parser.parse_args([]))
    given = vars(parser.parse_args(["--port", "8123", "--sandbox-port", "8124"]))

    assert (defaults["port"], defaults["sandbox_port"]) == (
        settings.CONSOLE_PORT,
        settings.SANDBOX_PORT,
    )
    assert (given["port"], given["sandbox_port"]) == (8123, 8124)
