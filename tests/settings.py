"""Settings for the test suite: production settings with hermetic defaults.

DATABASE_URL and REDIS_URL still come from the environment, so `make test` runs the same suite
on SQLite and on PostgreSQL + Redis.
"""

import os

os.environ["CONSOLE_READ_DOTENV"] = "0"
os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "k" * 48)
# A fixed 32-byte key (urlsafe base64) so that failures are reproducible.
os.environ.setdefault("CREDENTIALS_KEY", "dGVzdC1jcmVkZW50aWFscy1rZXktMzItYnl0ZXMhISE=")
os.environ.setdefault("SECURE_HTTPS", "false")
# Playwright's sync API keeps an event loop in the test thread; the ORM calls it makes there
# (fixtures, assertions) are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from console.settings import *  # noqa: F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Platform calls in tests go to a sandbox started per test; nothing may reach Tencent. A runner
# started by a test with SANDBOX=true keeps the bases that follow its own sandbox's port.
if not SANDBOX_ENABLED:  # noqa: F405
    WECOM_API_BASE = "http://127.0.0.1:9/unset-wecom"
    WECHAT_API_BASE = "http://127.0.0.1:9/unset-wechat"
    CHATBOT_API_BASE = "http://127.0.0.1:9/unset-chatbot"
Q_CLUSTER = {**Q_CLUSTER, "sync": False}  # noqa: F405
# Static files come from the finders: tests never run collectstatic.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# No worker runs in most tests: /healthz does not ask for one unless a test says so.
HEALTHZ_REQUIRES_WORKER = False
