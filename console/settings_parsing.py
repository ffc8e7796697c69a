"""Reading settings from the environment with a sentence, not a traceback, for a bad value.

Imported by ``console.settings`` before Django is set up: nothing here may use Django's
settings or translations.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

import environ

from console.exceptions import InvalidSetting

_CAST_WORDS = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
}


class CheckedEnv(environ.Env):
    """django-environ's reader, with two differences.

    An empty value (``PORT=`` in .env) means "not set" when there is a default, and a value that
    cannot be cast says which setting it is instead of raising ValueError.
    """

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        raw = self.ENVIRON.get(f"{self.prefix}{var}")
        if raw is not None and not raw.strip() and default is not self.NOTSET:
            return default
        try:
            value = super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError):
            wanted = _CAST_WORDS.get(cast, "a valid value")
            raise InvalidSetting(f"{var} must be {wanted}; it is set to “{raw}”.") from None
        return value

    def port(self, var: str, default: int) -> int:
        value = self.int(var, default=default)
        if not 1 <= value <= 65535:
            raise InvalidSetting(f"{var} must be a port number from 1 to 65535; it is {value}.")
        return value

    def float(self, var: str, default: Any = environ.Env.NOTSET) -> float:  # type: ignore[override]
        # django-environ drops characters it does not expect ("1e999" reads as 1999.0): Python's
        # own float() reads exactly what was written, or refuses it.
        raw = self.ENVIRON.get(f"{self.prefix}{var}")
        if raw is None or not raw.strip():
            return super().float(var, default=default)
        try:
            value = float(raw.strip())
        except ValueError:
            raise InvalidSetting(f"{var} must be a number; it is set to “{raw}”.") from None
        if not math.isfinite(value):
            raise InvalidSetting(f"{var} must be a finite number; it is set to “{raw}”.")
        return value


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def hide_passwords(text: str) -> str:
    """Any URL's password in ``text`` replaced by dots."""
    return _PASSWORD_IN_URL.sub(r"\1••••@", text)


def _shown(url: str) -> str:
    """The URL with its password hidden, for a message."""
    try:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":••••@")
            return parts._replace(netloc=netloc).geturl()
    except ValueError:
        pass
    return url


_DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "sqlite"}
_DATABASE_HELP = (
    "Use postgres://USER:PASSWORD@HOST:5432/NAME for PostgreSQL, or leave it empty for SQLite "
    "in var/."
)


def database_config(url: str) -> dict[str, Any]:
    """Django's DATABASES entry for DATABASE_URL, or InvalidSetting saying what is wrong."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _DATABASE_SCHEMES:
        raise InvalidSetting(
            f"DATABASE_URL “{_shown(url)}” is not a database URL the console can use. "
            + _DATABASE_HELP
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidSetting(
            f"DATABASE_URL “{_shown(url)}” has a port that is not a number from 0 to 65535. "
            + _DATABASE_HELP
        ) from None
    if scheme != "sqlite":
        if not parts.path.strip("/"):
            raise InvalidSetting(
                f"DATABASE_URL “{_shown(url)}” names no database. " + _DATABASE_HELP
            )
        if port == 0:
            raise InvalidSetting(f"DATABASE_URL “{_shown(url)}” has port 0. " + _DATABASE_HELP)
    try:
        return environ.Env.db_url_config(url)
    except (KeyError, ValueError) as exc:
        raise InvalidSetting(
            f"DATABASE_URL “{_shown(url)}” cannot be read ({exc}). " + _DATABASE_HELP
        ) from None


_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_REDIS_HELP = (
    "Use redis://HOST:6379/0, or leave it empty for the local cache and the database queue."
)


def redis_url(url: str) -> str:
    """REDIS_URL if Django's cache and django-q2's broker can use it, else InvalidSetting."""
    if not url:
        return url
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _REDIS_SCHEMES:
        raise InvalidSetting(f"REDIS_URL “{_shown(url)}” is not a Redis URL. " + _REDIS_HELP)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidSetting(
            f"REDIS_URL “{_shown(url)}” has a port that is not a number from 0 to 65535. "
            + _REDIS_HELP
        ) from None
    if scheme != "unix":
        if not parts.hostname:
            raise InvalidSetting(f"REDIS_URL “{_shown(url)}” names no host. " + _REDIS_HELP)
        if port == 0:
            raise InvalidSetting(f"REDIS_URL “{_shown(url)}” has port 0. " + _REDIS_HELP)
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise InvalidSetting(
                f"REDIS_URL “{_shown(url)}” ends in “/{database}”: the Redis database is a "
                "number. " + _REDIS_HELP
            )
    return url
