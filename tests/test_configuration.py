"""Configuration from the environment: refusals, defaults, switches, production checks.

Settings are module-level, so each case runs in a fresh interpreter with a controlled environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from console.encryption import new_key_text

BASE_DIR = Path(__file__).resolve().parent.parent

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "engine": settings.DATABASES["default"]["ENGINE"],
    "sqlite_options": settings.DATABASES["default"].get("OPTIONS", {}),
    "name": str(settings.DATABASES["default"]["NAME"]),
    "default_cache": settings.CACHES["default"]["BACKEND"],
    "shared_cache": settings.CACHES["shared"]["BACKEND"],
    "q": {k: v for k, v in settings.Q_CLUSTER.items() if k != "label"},
    "staticfiles": settings.STORAGES["staticfiles"]["BACKEND"],
}))
"""


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without anything that configures the console, plus ``env``."""
    prefixes = ("DJANGO", "DATABASE", "REDIS", "SECRET", "CREDENTIALS", "DEBUG", "SECURE")
    clean = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    return {
        **clean,
        "CONSOLE_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "console.settings",
        **env,
    }


def run(
    args: list[str], *, env: dict[str, str], cwd: Path = BASE_DIR
) -> subprocess.CompletedProcess:
    """``python args`` in a fresh interpreter: its output as text, its exit status unchecked."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return run(["-c", code], env=clean_env(**env))


def keys() -> dict[str, str]:
    return {"SECRET_KEY": "s" * 20 + new_key_text(), "CREDENTIALS_KEY": new_key_text()}


def settings_with(**env: str) -> dict:
    result = run_python(PRINT_SETTINGS, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("missing", ["SECRET_KEY", "CREDENTIALS_KEY"])
def test_without_debug_the_console_refuses_to_start_and_names_the_missing_key(missing):
    env = keys()
    del env[missing]
    result = run_python(PRINT_SETTINGS, **env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr
    other = ({"SECRET_KEY", "CREDENTIALS_KEY"} - {missing}).pop()
    assert f"{other} is not set" not in result.stderr


def test_manage_py_says_what_is_missing_without_a_traceback():
    result = run(["manage.py", "check"], env=clean_env())
    assert result.returncode == 1
    assert "The console cannot start: SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_is_off_unless_set():
    assert settings_with(**keys())["DEBUG"] is False
    assert settings_with(**keys(), DEBUG="true")["DEBUG"] is True


def test_defaults_are_sqlite_with_wal_locmem_and_the_orm_broker():
    values = settings_with(**keys())
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"].endswith("var/console.sqlite3")
    assert "journal_mode=WAL" in values["sqlite_options"]["init_command"]
    assert values["sqlite_options"]["timeout"] >= 5
    assert values["default_cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["q"]["orm"] == "default"
    assert "redis" not in values["q"]


def test_database_url_switches_to_postgresql():
    values = settings_with(**keys(), DATABASE_URL="postgres://postgres@127.0.0.1:5432/console")
    assert values["engine"] == "django.db.backends.postgresql"


def test_redis_url_switches_the_cache_and_the_broker():
    values = settings_with(**keys(), REDIS_URL="redis://127.0.0.1:6379/3")
    assert values["default_cache"] == "django.core.cache.backends.redis.RedisCache"
    assert values["shared_cache"] == "django.core.cache.backends.redis.RedisCache"
    assert values["q"]["redis"] == "redis://127.0.0.1:6379/3"
    assert "orm" not in values["q"]


def test_the_task_queue_neither_reruns_nor_loses_work():
    q = settings_with(**keys())["q"]
    assert q["timeout"] * 1.5 <= q["retry"]
    assert q["ack_failures"] is True
    assert q["max_attempts"] == 1


def test_production_serves_static_files_from_the_compressed_manifest():
    assert settings_with(**keys())["staticfiles"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )


def test_the_tests_use_plain_static_storage(settings):
    assert settings.STORAGES["staticfiles"]["BACKEND"].endswith("StaticFilesStorage")
    assert "Manifest" not in settings.STORAGES["staticfiles"]["BACKEND"]


def test_production_settings_pass_the_deploy_check(tmp_path):
    # Its own database: the checks read stored secrets, and a developer's var/ has other keys'.
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=clean_env(
            **keys(),
            ALLOWED_HOSTS="console.example.com",
            DATABASE_URL=f"sqlite:///{tmp_path}/console.sqlite3",
        ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_env_example_documents_every_setting_with_a_comment_line_above():
    lines = (BASE_DIR / ".env.example").read_text(encoding="utf-8").splitlines()
    settings_source = (BASE_DIR / "console" / "settings.py").read_text(encoding="utf-8")
    documented = []
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            name = line.split("=", 1)[0]
            documented.append(name)
            assert lines[index - 1].startswith("#"), f"{name} has no comment line above it"
            assert "#" not in line.split("=", 1)[1], f"{name} has an inline comment"
    import re

    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z0-9_]+)"', settings_source))
    read |= set(re.findall(r'_required_secret\(\s*"([A-Z0-9_]+)"', settings_source))
    missing = read - set(documented)
    assert not missing, f"settings read but not in .env.example: {sorted(missing)}"


def test_envfile_writes_fresh_keys_once(tmp_path):
    target = tmp_path / ".env"
    command = [sys.executable, "-m", "console.envfile", "--path", str(target)]
    subprocess.run(command, cwd=BASE_DIR, check=True, capture_output=True, timeout=60)
    first = target.read_text()
    assert "SANDBOX=true" in first
    assert "SECURE_HTTPS=false" in first
    secret_line = next(line for line in first.splitlines() if line.startswith("SECRET_KEY="))
    assert len(secret_line) > len("SECRET_KEY=") + 50
    subprocess.run(command, cwd=BASE_DIR, check=True, capture_output=True, timeout=60)
    assert target.read_text() == first
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def _dotenv_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def test_the_env_file_make_run_writes_loads_as_it_says(tmp_path):
    """Every line of .env.example as `make run` fills it in, empty values included."""
    from console.envfile import render

    written = render((BASE_DIR / ".env.example").read_text(encoding="utf-8"))
    values = settings_with(**_dotenv_values(written))
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"].endswith("var/console.sqlite3")
    assert values["DEBUG"] is False
    assert "orm" in values["q"]


def test_the_console_reads_dot_env_from_its_directory(tmp_path):
    """The real path: settings read `.env` next to manage.py."""
    from console.envfile import render

    tree = tmp_path / "tree"
    shutil.copytree(
        BASE_DIR / "console", tree / "console", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tree / ".env").write_text(
        render((BASE_DIR / ".env.example").read_text(encoding="utf-8")), encoding="utf-8"
    )
    result = run(
        [
            "-c",
            "import console.settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.SANDBOX_ENABLED, s.WECOM_API_BASE)",
        ],
        cwd=tree,
        env=clean_env(CONSOLE_READ_DOTENV="1", PYTHONPATH=str(tree)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "True",
        "http://127.0.0.1:8900/wecom",
    ]


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_a_retry_too_close_to_the_timeout_stops_the_console():
    result = run(["manage.py", "check"], env=clean_env(**keys(), Q_TIMEOUT="600", Q_RETRY="700"))
    assert result.returncode != 0
    assert "console.E002" in result.stderr + result.stdout
