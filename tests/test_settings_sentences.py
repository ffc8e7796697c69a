"""Every bad setting gets a sentence naming it from `check` and `bootstrap`, never a traceback.

Settings are read once per process: each case runs manage.py in a fresh interpreter.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.test_configuration import BASE_DIR, clean_env, keys, run, run_python

CASES = [
    ({"DATABASE_URL": "notaurl"}, "DATABASE_URL “notaurl” is not a database URL"),
    (
        {"DATABASE_URL": "postgres://user:hunter2@db.example:port/console"},
        "DATABASE_URL “postgres://user:••••@db.example:port/console” has a port that is not",
    ),
    ({"DATABASE_URL": "postgres://"}, "DATABASE_URL “postgres://” names no database"),
    (
        {"DATABASE_URL": "postgres://console:hunter2@127.0.0.1:1/console"},
        "The database named by DATABASE_URL cannot be reached",
    ),
    ({"REDIS_URL": "notaurl"}, "REDIS_URL “notaurl” is not a Redis URL"),
    (
        {"REDIS_URL": "redis://127.0.0.1:99999/0"},
        "REDIS_URL “redis://127.0.0.1:99999/0” has a port",
    ),
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "The cache at REDIS_URL cannot be reached"),
    ({"PORT": "eighty"}, "PORT must be a whole number; it is set to “eighty”"),
    ({"PLATFORM_RATE_LIMIT": "1e999"}, "PLATFORM_RATE_LIMIT must be a finite number"),
    (
        {"PLATFORM_READ_TIMEOUT": "nan"},
        "PLATFORM_READ_TIMEOUT must be a finite number; it is set to “nan”",
    ),
]


def manage(command: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = clean_env(
        **{**keys(), "DATABASE_URL": f"sqlite:///{tmp_path}/console.sqlite3", **env}
    )
    return run(["manage.py", command], env=environment)


@pytest.mark.parametrize(("env", "sentence"), CASES, ids=[next(iter(c[0].values())) for c in CASES])
@pytest.mark.parametrize("command", ["check", "bootstrap"])
def test_a_bad_setting_is_a_sentence(tmp_path, env, sentence, command):
    result = manage(command, tmp_path, **env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert sentence in result.stderr, result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "The console is ready" not in result.stdout


def test_good_settings_pass(tmp_path):
    result = manage("check", tmp_path)
    assert result.returncode == 0, result.stderr


PRINT_BASES = (
    "import django; from django.conf import settings as s; django.setup(); "
    "print(s.CONSOLE_PORT, s.SANDBOX_PORT, s.WECOM_API_BASE, s.WECHAT_API_BASE, s.CHATBOT_API_BASE)"
)


def test_the_env_file_of_make_run_follows_port_and_sandbox_port(tmp_path):
    """`PORT=18300 SANDBOX_PORT=18390 make run`: the API bases go to the sandbox's port."""
    from console.envfile import render
    from tests.test_configuration import _dotenv_values

    written = _dotenv_values(render((BASE_DIR / ".env.example").read_text(encoding="utf-8")))
    written.update(PORT="18300", SANDBOX_PORT="18390")
    result = run_python(PRINT_BASES, **written)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "18300",
        "18390",
        "http://127.0.0.1:18390/wecom",
        "http://127.0.0.1:18390/wechat",
        "http://127.0.0.1:18390/chatbot",
    ]


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        (
            {
                "SANDBOX": "true",
                "SANDBOX_PORT": "18390",
                "WECOM_API_BASE": "http://127.0.0.1:8900/wecom",
            },
            "WECOM_API_BASE is http://127.0.0.1:8900/wecom, but the sandbox listens on "
            "SANDBOX_PORT=18390",
        ),
        ({"SANDBOX": "true", "PORT": "8900"}, "PORT and SANDBOX_PORT are both 8900"),
        ({"SANDBOX_PORT": "99999"}, "SANDBOX_PORT must be a port number from 1 to 65535"),
        ({"PORT": "0"}, "PORT must be a port number from 1 to 65535"),
    ],
)
def test_ports_that_cannot_work_are_refused_in_words(tmp_path, env, sentence):
    result = manage("check", tmp_path, **env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert sentence in result.stderr, result.stderr
