"""What the runs in processes of their own share: a database of the run's own, Django set up on
it, the end of a process group started for the run, and the test's side (run the module, read
the JSON object it prints).

Used by tests/liveness.py and tests/tagging/bulk/chaos.py (each run by a test in a subprocess)
and by the benches in bench/, which import from tests/ (never the other way round).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]


def postgres_database(url: str, name: str) -> str:
    """A fresh ``<database>_<name>`` beside the PostgreSQL database of ``url``; its URL."""
    import psycopg

    parsed = urlparse(url)
    database = f"{parsed.path.lstrip('/')}_{name}"
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{database}"')
    return urlunparse(parsed._replace(path="/" + database))


def drop_postgres_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


def run_database(work: Path, name: str) -> str:
    """The run's own database: ``<database>_<name>`` beside the PostgreSQL database of
    DATABASE_URL, else a SQLite file in ``work``."""
    base_url = os.environ.get("DATABASE_URL", "")
    if base_url.startswith("postgres"):
        return postgres_database(base_url, name)
    return f"sqlite:///{work / f'{name}.sqlite3'}"


def run_database_drop(url: str) -> None:
    """Close this process's connection to the run's database, and drop it if it is PostgreSQL."""
    from django.db import connection

    connection.close()
    if url.startswith("postgres"):
        drop_postgres_database(url)


def django_setup(env: dict[str, str]) -> None:
    """Django on the run's settings (``env`` goes into this process's environment too), with
    the run's database migrated and its cache table created."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


def process_group_stop(process: subprocess.Popen, *, grace_seconds: float = 30) -> None:
    """SIGTERM the process group ``process`` leads (started with ``start_new_session``); SIGKILL
    what is left of it after ``grace_seconds``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_module(module: str, *arguments: str, timeout: float) -> dict[str, Any]:
    """Run ``python -m module arguments`` from the project root; the JSON object it prints."""
    completed = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout[completed.stdout.index("{") :])
