"""Settings for the tag console.

Every value comes from the environment (or `.env`, see `.env.example`): the same code runs on a
laptop (SQLite, local-memory cache, ORM broker) and in production (PostgreSQL, Redis, several
workers).
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

from console.exceptions import MissingRequiredSetting
from console.settings_parsing import CheckedEnv, database_config, redis_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = CheckedEnv()
# Tests set CONSOLE_READ_DOTENV=0 so that a developer's `.env` cannot change what they test.
if os.environ.get("CONSOLE_READ_DOTENV", "1") == "1":
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _listed(name: str, default: list[str]) -> list[str]:
    # `NAME=` in .env means "not set", not a list holding one empty string.
    return [item for item in env.list(name, default=default) if item.strip()] or default


def _required_secret(name: str, purpose: str, *, development_value: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        # A fixed development value keeps `DEBUG=true` usable without a `.env`; it is never
        # accepted with DEBUG off.
        return development_value
    raise MissingRequiredSetting(
        f"{name} is not set. It is required when DEBUG is off: {purpose}. "
        "Set it in the environment or in .env (see .env.example); "
        "`make run` writes a .env with fresh random keys."
    )


SECRET_KEY = _required_secret(
    "SECRET_KEY",
    "Django signs sessions and CSRF tokens with it",
    development_value="insecure-development-secret-key-" + "x" * 32,
)
CREDENTIALS_KEY = _required_secret(
    "CREDENTIALS_KEY",
    "platform secrets are encrypted at rest with it",
    # base64 of 32 bytes that are no secret to anyone: "insecure-development-credential!"
    development_value="aW5zZWN1cmUtZGV2ZWxvcG1lbnQtY3JlZGVudGlhbCE=",
)
# Earlier keys, still accepted for decryption while `rotate_credentials_key` re-encrypts.
CREDENTIALS_OLD_KEYS = _listed("CREDENTIALS_OLD_KEYS", [])

ALLOWED_HOSTS = _listed("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _listed("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # Before django_q: the console's `qcluster` (supervised, console/jobs/supervisor.py) is the
    # one `manage.py qcluster` runs.
    "console.apps.ConsoleConfig",
    "django_q",
    "wecom",
    "tagging",
    "chatbot",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "console.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------

SQLITE_PATH = VAR_DIR / "console.sqlite3"
# `DATABASE_URL=` (empty, as in .env.example) means the default.
DATABASES = {
    "default": database_config(env.str("DATABASE_URL", default="") or f"sqlite:///{SQLITE_PATH}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets the web server read while the worker writes; IMMEDIATE transactions
            # and a busy timeout turn lock contention into waiting instead of errors.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # An unreachable server is reported after seconds, not after the system's TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Caches and the task queue -------------------------------------------------------------

REDIS_URL = redis_url(env.str("REDIS_URL", default=""))
if REDIS_URL:
    _redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="console"),
        # An unreachable server is reported after seconds, not after the TCP timeout.
        "OPTIONS": {"socket_connect_timeout": 5, "socket_timeout": 10},
    }
    CACHES = {"default": _redis_cache, "shared": {**_redis_cache}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "console-default",
        },
        # Platform tokens, rate-limit counters and worker status must be visible to every
        # process (web server and task workers), which a local-memory cache is not.
        "shared": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "console_shared_cache",
            # Culling deletes entries in key order, tokens and worker status included: keep it
            # for caches far larger than this one gets.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        },
    }
SHARED_CACHE_ALIAS = "shared"

Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="console"),
    "workers": env.int("Q_WORKERS", default=2),
    "recycle": 200,
    # A task that runs past `timeout` is killed; `retry` must be well above it or a slow task
    # is handed to a second worker while the first still runs it.
    "timeout": env.int("Q_TIMEOUT", default=600),
    "retry": env.int("Q_RETRY", default=1200),
    # Failures are acknowledged and never re-delivered: tasks retry platform calls themselves,
    # idempotently, and record what they did.
    "ack_failures": True,
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 1000,
    "label": _("Background tasks"),
    "cache": SHARED_CACHE_ALIAS,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # How long the database broker sleeps when it found no task: a new job waited 0.17–0.21 s
    # before a worker started it at 0.2, 0.03–0.05 s at 0.05 (bench/bulk_whole_path.py; 7% of
    # a 100,000-line `tag_users --wait`). An empty look is one SELECT (and, with SQLite's
    # CONN_MAX_AGE of 0, a new connection): an idle cluster used 4.8% of a core instead of 2.1%
    # (15 s measured, 2 cores). Redis's broker blocks on its list instead of polling.
    Q_CLUSTER["poll"] = 0.05

# --- Authentication --------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
# This many failed sign-ins for one username from one address within LOGIN_FAILURE_WINDOW
# seconds lock that pair out for LOGIN_LOCKOUT_SECONDS (console/login_throttle.py).
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=900)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
# The user that background jobs and platform pulls act as in the admin history.
CONSOLE_SYSTEM_USERNAME = env.str("CONSOLE_SYSTEM_USERNAME", default="system")

# --- Languages and time -----------------------------------------------------------------------

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "console" / "locale"]
USE_I18N = True
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_TZ = True

# --- Static files ------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security --------------------------------------------------------------------------------

# SECURE_HTTPS=false is for a console reached over plain HTTP on localhost (`make run`).
SECURE_HTTPS = env.bool("SECURE_HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = SECURE_HTTPS
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SECURE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SECURE_HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Load balancers probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
X_FRAME_OPTIONS = "DENY"
# Sources added to the Content-Security-Policy (console/csp.py), per directive, e.g.
# {"img-src": ["https://cdn.example.com"]}. Empty: our own origin only.
CONSOLE_CSP_EXTRA: dict[str, list[str]] = {}
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload is a commitment for the whole domain that is slow to undo; the operator opts
    # in with SECURE_HSTS_PRELOAD=true once every subdomain serves HTTPS.
    "security.W021",
]
# How many reverse proxies in front of the console append to X-Forwarded-For; the audit trail
# takes the client address from there only when this is set.
AUDIT_TRUSTED_PROXY_COUNT = env.int("AUDIT_TRUSTED_PROXY_COUNT", default=0)
DEFAULT_EXCEPTION_REPORTER_FILTER = "console.reporting.SecretSafeExceptionReporterFilter"

# --- Platforms -------------------------------------------------------------------------------

SANDBOX_ENABLED = env.bool("SANDBOX", default=False)
SANDBOX_PORT = env.port("SANDBOX_PORT", default=8900)


def _platform_base(name: str, *, production: str, sandbox_path: str) -> str:
    """Set explicitly, or the sandbox on SANDBOX_PORT when SANDBOX is on, or production."""
    value = env.str(name, default="")
    if value:
        return value
    if SANDBOX_ENABLED:
        return f"http://127.0.0.1:{SANDBOX_PORT}/{sandbox_path}"
    return production


WECOM_API_BASE = _platform_base(
    "WECOM_API_BASE", production="https://qyapi.weixin.qq.com", sandbox_path="wecom"
)
WECHAT_API_BASE = _platform_base(
    "WECHAT_API_BASE", production="https://api.weixin.qq.com", sandbox_path="wechat"
)
CHATBOT_API_BASE = _platform_base(
    "CHATBOT_API_BASE", production="https://chatbot.weixin.qq.com", sandbox_path="chatbot"
)
PLATFORM_CONNECT_TIMEOUT = env.float("PLATFORM_CONNECT_TIMEOUT", default=5.0)
PLATFORM_READ_TIMEOUT = env.float("PLATFORM_READ_TIMEOUT", default=20.0)
PLATFORM_MAX_ATTEMPTS = env.int("PLATFORM_MAX_ATTEMPTS", default=4)
PLATFORM_RETRY_BUDGET = env.float("PLATFORM_RETRY_BUDGET", default=30.0)
PLATFORM_BACKOFF_BASE = env.float("PLATFORM_BACKOFF_BASE", default=0.5)
PLATFORM_BACKOFF_CAP = env.float("PLATFORM_BACKOFF_CAP", default=8.0)
PLATFORM_RATE_LIMIT = env.float("PLATFORM_RATE_LIMIT", default=20.0)
PLATFORM_TOKEN_REFRESH_MARGIN = env.int("PLATFORM_TOKEN_REFRESH_MARGIN", default=300)

# --- Background jobs ---------------------------------------------------------------------------

# A shard whose worker died is taken up again once its lease expires (and the watchdog runs,
# every minute); the lease must outlast the longest platform call (system check console.E101).
JOBS_LEASE_SECONDS = env.int("JOBS_LEASE_SECONDS", default=60)
# One task works on a shard for at most this long, then hands it back to the queue.
JOBS_SLICE_SECONDS = env.int("JOBS_SLICE_SECONDS", default=120)
# A task whose shard is done goes on with the job's next free shard within the same slice,
# without a trip through the queue (false: every shard through the queue).
JOBS_CHAIN_SHARDS = env.bool("JOBS_CHAIN_SHARDS", default=True)
# How often a running shard looks whether its job was paused or cancelled.
JOBS_STATUS_CHECK_SECONDS = env.float("JOBS_STATUS_CHECK_SECONDS", default=1.0)
# Idempotent batches (bulk tagging) finished within this many seconds of each other share one
# checkpoint statement; a killed worker's successor sends at most that much again.
JOBS_CHECKPOINT_SECONDS = env.float("JOBS_CHECKPOINT_SECONDS", default=0.05)
# Unexpected errors in a row after which a shard's job is stopped.
JOBS_MAX_ERRORS = env.int("JOBS_MAX_ERRORS", default=5)
# How long a worker waits, inside its slice and holding its lease, for a database or cache that
# stopped answering (a restart, a dropped connection) before it gives the slice up.
JOBS_BLIP_SECONDS = env.float("JOBS_BLIP_SECONDS", default=10.0)
# A platform that cannot be reached puts the job on hold: this long after the first outage,
# doubling after each one in a row, up to the cap.
JOBS_OUTAGE_BACKOFF_SECONDS = env.float("JOBS_OUTAGE_BACKOFF_SECONDS", default=15.0)
JOBS_OUTAGE_BACKOFF_CAP_SECONDS = env.float("JOBS_OUTAGE_BACKOFF_CAP_SECONDS", default=300.0)
# The supervisor of `manage.py qcluster` (console/jobs/supervisor.py): how often it looks, after
# how long without any task started or ended (while work waits) it restarts the cluster, and
# after how long without its heartbeat /healthz and the dashboard say the worker is absent.
WORKER_SUPERVISE_SECONDS = env.float("WORKER_SUPERVISE_SECONDS", default=3.0)
WORKER_STUCK_SECONDS = env.float("WORKER_STUCK_SECONDS", default=150.0)
WORKER_ABSENT_SECONDS = env.float("WORKER_ABSENT_SECONDS", default=60.0)
# /healthz answers 503 when no worker's supervisor has been heard from (off in tests, where no
# worker runs unless a test starts one).
HEALTHZ_REQUIRES_WORKER = env.bool("HEALTHZ_REQUIRES_WORKER", default=True)
# Shards the watchdog re-queues per run at most.
JOBS_WATCHDOG_BATCH = env.int("JOBS_WATCHDOG_BATCH", default=500)
# Minutes between scheduled pulls of each WeCom app's strategy tags (0: no schedule).
STRATEGY_PULL_MINUTES = env.int("STRATEGY_PULL_MINUTES", default=15)

# --- Bulk user-tag jobs (tagging) ----------------------------------------------------------------

# Largest audience file (CSV, TXT, XLSX) or pasted list, in megabytes.
BULK_UPLOAD_MAX_BYTES = int(env.float("BULK_UPLOAD_MAX_MB", default=50) * 1024 * 1024)
# OpenIDs per call: Official Account (at most 50), dialogue platform.
BULK_OA_BATCH_SIZE = env.int("BULK_OA_BATCH_SIZE", default=20)
BULK_CHATBOT_BATCH_SIZE = env.int("BULK_CHATBOT_BATCH_SIZE", default=50)
# Following a chatbot publish: how often its progress is asked, and how long the percentage
# may stay the same before the publish counts as stuck (the job then fails, saying so).
CHATBOT_PUBLISH_POLL_SECONDS = env.float("CHATBOT_PUBLISH_POLL_SECONDS", default=1.0)
CHATBOT_PUBLISH_STUCK_SECONDS = env.float("CHATBOT_PUBLISH_STUCK_SECONDS", default=300.0)
# OpenIDs per shard: the unit of work one worker leases at a time.
BULK_SHARD_SIZE = env.int("BULK_SHARD_SIZE", default=5000)
# Seconds before a batch refused with 45159 (seen right after a tag is created) is sent again.
BULK_45159_RETRY_SECONDS = env.float("BULK_45159_RETRY_SECONDS", default=10.0)
# Days an uploaded or pasted list (its OpenIDs) is kept; a daily schedule deletes older ones that
# no open job reads. Jobs keep their counts and failed OpenIDs.
BULK_AUDIENCE_KEEP_DAYS = env.int("BULK_AUDIENCE_KEEP_DAYS", default=30)

# --- Logging -----------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "console.logging.RedactSecretsFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # urllib3 writes whole URLs, access_token included, at DEBUG.
        "urllib3": {"level": "WARNING"},
        "urllib3.connectionpool": {"level": "WARNING", "filters": ["redact_secrets"]},
    },
}

# --- `make run` --------------------------------------------------------------------------------

CONSOLE_PORT = env.port("PORT", default=8000)
ADMIN_USERNAME = env.str("ADMIN_USERNAME", default="admin")
ADMIN_PASSWORD = env.str("ADMIN_PASSWORD", default="")
