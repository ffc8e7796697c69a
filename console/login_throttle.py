"""Sign-in throttling: repeated failures for one username from one address lock that pair out.

Counted in the shared cache, so every web process sees the same count. A locked pair is refused
even with the right password until the lock expires; the lockout is recorded in the audit log.
Other usernames from the same address, and the same username from other addresses, still sign
in: a typo-prone colleague is not locked out by an attacker elsewhere.
"""

from __future__ import annotations

import hashlib
import math
import time
import unicodedata
from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UsernameField
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _, ngettext

from console.audit import Actor, AuditAction, AuditSource, audit_record, client_ip, system_user

_MAX_USERNAME_IN_AUDIT = 150


def login_name(username: str) -> str:
    """The name as the sign-in form hands it to ``authenticate()`` (stripped, then NFKC as
    ``AbstractBaseUser.normalize_username``), case-folded: every spelling that can sign in as
    one account shares its count and lock, "victim " and "ｖｉｃｔｉｍ" included. Folding case
    merges more than the (case-sensitive) backend does, which only makes the lock stricter."""
    name = UsernameField().to_python(username) or ""
    return unicodedata.normalize("NFKC", name.strip().casefold()).strip()


def _slot(username: str, ip: str | None) -> str:
    name = login_name(username)
    digest = hashlib.sha256(f"{name}\0{ip or '-'}".encode()).hexdigest()[:32]
    return f"login-throttle:{digest}"


def _cache() -> Any:
    return caches[settings.SHARED_CACHE_ALIAS]


def login_lock_remaining(*, username: str, ip: str | None) -> int:
    """Seconds until the pair may try again; 0 when it is not locked."""
    until = _cache().get(_slot(username, ip) + ":locked")
    if until is None:
        return 0
    return max(0, math.ceil(until - time.time()))


def login_failure_record(*, request: HttpRequest, username: str) -> bool:
    """Count a failed sign-in; lock the pair and audit it at the limit. Say if it locked."""
    ip = client_ip(request)
    slot = _slot(username, ip)
    cache = _cache()
    window = settings.LOGIN_FAILURE_WINDOW
    cache.add(slot, 0, timeout=window)
    try:
        failures = cache.incr(slot)
    except ValueError:  # expired between add and incr
        cache.set(slot, 1, timeout=window)
        failures = 1
    if failures < settings.LOGIN_FAILURE_LIMIT:
        return False
    lockout = settings.LOGIN_LOCKOUT_SECONDS
    cache.set(slot + ":locked", time.time() + lockout, timeout=lockout)
    cache.delete(slot)
    _audit_lockout(request=request, username=username, ip=ip, failures=failures)
    return True


def login_success_record(*, request: HttpRequest, username: str) -> None:
    _cache().delete(_slot(username, client_ip(request)))


def _audit_lockout(*, request: HttpRequest, username: str, ip: str | None, failures: int) -> None:
    user_model = get_user_model()
    target = user_model._default_manager.filter(
        **{f"{user_model.USERNAME_FIELD}__iexact": UsernameField().to_python(username) or ""}
    ).first()
    actor = Actor(
        user=system_user(),
        source=AuditSource.ADMIN,
        ip=ip,
        user_agent=request.headers.get("user-agent", "")[:200],
    )
    audit_record(
        actor=actor,
        obj=target or system_user(),
        action=AuditAction.CHANGE,
        note=_(
            "Sign-in locked for %(minutes)s minutes after %(failures)s failed attempts for "
            "“%(username)s” from %(ip)s."
        ),
        note_params={
            "minutes": str(math.ceil(settings.LOGIN_LOCKOUT_SECONDS / 60)),
            "failures": str(failures),
            "username": username[:_MAX_USERNAME_IN_AUDIT],
            "ip": ip or "?",
        },
    )


def _locked_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed sign-ins for this username from your address. Try again in "
        "%(minutes)d minute.",
        "Too many failed sign-ins for this username from your address. Try again in "
        "%(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, refusing a locked username and address pair in words."""

    def clean(self) -> dict[str, Any]:
        username = self.data.get("username", "")
        request = self.request
        if request is not None and username:
            remaining = login_lock_remaining(username=username, ip=client_ip(request))
            if remaining:
                raise ValidationError(_locked_message(remaining), code="locked")
        try:
            cleaned = super().clean()
        except ValidationError as error:
            failed = request is not None and username and error.code == "invalid_login"
            if failed and login_failure_record(request=request, username=username):
                raise ValidationError(
                    _locked_message(settings.LOGIN_LOCKOUT_SECONDS), code="locked"
                ) from None
            raise
        if request is not None and username:
            login_success_record(request=request, username=username)
        return cleaned
